"""deeplab.datasets.input_pipeline on tiny TFRecords written here with tf.train.Example.

Includes the compatibility promise: shards laid out as the original build_voc2012_data.py
writes them (4 shards, bare list-entry filenames, format 'jpeg', no manifest.json) are read
with dataset_name='pascal_voc_seg'.
"""

import io
import os

import numpy as np
import pytest
from PIL import Image

from deeplab import config, storage
from deeplab.compat import tf
from deeplab.datasets import descriptors, features, input_pipeline
from deeplab.errors import UserInputError


def _encode(array, fmt):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format=fmt)
  return buf.getvalue()


def _bytes(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def original_example(image, label, filename, image_format="jpeg"):
  """build_data.image_seg_to_tfexample, field for field (docs/compatibility.md)."""
  encoded = _encode(image, "JPEG" if image_format == "jpeg" else "PNG")
  return tf.train.Example(features=tf.train.Features(feature={
      features.IMAGE_ENCODED: _bytes(encoded),
      features.IMAGE_FILENAME: _bytes(filename.encode()),
      features.IMAGE_FORMAT: _bytes(image_format.encode()),
      features.IMAGE_HEIGHT: _int(image.shape[0]),
      features.IMAGE_WIDTH: _int(image.shape[1]),
      features.IMAGE_CHANNELS: _int(3),
      features.LABEL_ENCODED: _bytes(_encode(label, "PNG") if label is not None else b""),
      features.LABEL_FORMAT: _bytes(b"png"),
  })).SerializeToString()


def _pattern_image(index, h, w):
  """A constant image whose value encodes the example index (JPEG keeps it within ~2)."""
  return np.full((h, w, 3), 10 * index + 5, np.uint8)


def write_split(folder, split, num_examples, num_shards, size=(20, 24), image_format="jpeg",
                with_labels=True):
  """Writes `<split>-%05d-of-%05d.tfrecord` shards; example i is named 'ex_<i>' (bare stem)."""
  os.makedirs(folder, exist_ok=True)
  per_shard = -(-num_examples // num_shards)  # ceil(N / shards), as the original.
  for shard in range(num_shards):
    path = os.path.join(folder, features.shard_name(split, shard, num_shards))
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(shard * per_shard, min(num_examples, (shard + 1) * per_shard)):
        h, w = size[0] + i % 3, size[1]
        label = np.full((h, w), i % 4, np.uint8) if with_labels else None
        writer.write(original_example(_pattern_image(i, h, w), label, f"ex_{i}", image_format))


def _read_all(ds, limit=100):
  nxt = tf.data.make_one_shot_iterator(ds).get_next()
  batches = []
  with tf.Session() as sess:
    try:
      while len(batches) < limit:
        batches.append(sess.run(nxt))
    except tf.errors.OutOfRangeError:
      pass
  return nxt, batches


def test_original_voc_layout_reads_with_descriptor(tmp_path):
  folder = str(tmp_path / "tfrecord")
  write_split(folder, "train", 10, 4)
  write_split(folder, "val", 3, 4)
  assert sorted(os.listdir(folder))[:4] == [
      "train-00000-of-00004.tfrecord", "train-00001-of-00004.tfrecord",
      "train-00002-of-00004.tfrecord", "train-00003-of-00004.tfrecord"]
  info = descriptors.get_dataset_info(folder, "pascal_voc_seg")
  assert (info.num_classes, info.ignore_label, info.fingerprint) == (21, 255, None)
  ds = input_pipeline.build_dataset(folder, "train", batch_size=1, crop_size=(33, 33),
                                    is_training=False, ignore_label=info.ignore_label)
  nxt, batches = _read_all(ds)
  assert set(nxt) == {"image", "label", "image_name", "height", "width", "original_image"}
  assert sorted(b["image_name"][0].decode() for b in batches) == [f"ex_{i}" for i in range(10)]
  for b in batches:
    i = int(b["image_name"][0].decode().split("_")[1])
    h, w = b["height"][0], b["width"][0]
    assert (h, w) == (20 + i % 3, 24)
    assert b["original_image"].shape == (1, h, w, 3) and b["original_image"].dtype == np.uint8
    assert np.abs(b["image"][0, :h, :w] - (10 * i + 5)).max() <= 3
    assert np.allclose(b["image"][0, h:], config.mean_pixel(None))  # No variant: ImageNet mean.
    assert (b["label"][0, :h, :w] == i % 4).all() and (b["label"][0, h:] == 255).all()


def test_training_batches_have_static_shapes_and_valid_labels(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "train", 6, 2, image_format="png")
  ds = input_pipeline.build_dataset(
      folder, "train", batch_size=4, crop_size=(17, 21), is_training=True,
      model_variant="mobilenet_v2", min_scale_factor=0.5, max_scale_factor=2.0,
      scale_factor_step_size=0.25, should_shuffle=True, should_repeat=True, seed=3)
  nxt, batches = _read_all(ds, limit=5)
  assert nxt["image"].shape.as_list() == [4, 17, 21, 3]
  assert nxt["label"].shape.as_list() == [4, 17, 21, 1]
  assert nxt["label"].dtype == tf.int32 and nxt["height"].dtype == tf.int32
  assert "original_image" not in nxt
  for b in batches:
    assert set(np.unique(b["label"])) <= {0, 1, 2, 3, 255}
  names = {n.decode() for b in batches for n in b["image_name"]}
  assert names == {f"ex_{i}" for i in range(6)}  # Repeats over every example.


def test_seed_makes_the_pipeline_reproducible(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "train", 6, 2)

  def first_batches():
    with tf.Graph().as_default():
      ds = input_pipeline.build_dataset(
          folder, "train", batch_size=2, crop_size=(15, 15), is_training=True,
          min_scale_factor=0.5, max_scale_factor=1.5, should_shuffle=True,
          should_repeat=True, seed=11)
      return _read_all(ds, limit=3)[1]

  a, b = first_batches(), first_batches()
  for x, y in zip(a, b):
    assert list(x["image_name"]) == list(y["image_name"])
    assert np.array_equal(x["image"], y["image"]) and np.array_equal(x["label"], y["label"])


def test_eval_batches_pad_original_images(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "val", 3, 1)
  ds = input_pipeline.build_dataset(folder, "val", batch_size=3, crop_size=(25, 25),
                                    is_training=False, model_variant="resnet_v1_50")
  _, (batch,) = _read_all(ds)
  assert batch["image"].shape == (3, 25, 25, 3)
  assert batch["original_image"].shape == (3, 22, 24, 3)
  assert np.allclose(batch["image"][0, 24, 0], (123.15, 115.90, 103.06))


def test_resize_to_range_in_pipeline(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "val", 1, 1, size=(10, 20))
  ds = input_pipeline.build_dataset(folder, "val", batch_size=1, crop_size=(33, 33),
                                    is_training=False, min_resize_value=16, max_resize_value=32)
  _, (batch,) = _read_all(ds)
  assert batch["original_image"].shape == (1, 16, 32, 3)  # Resized image is the "original".
  assert (batch["height"][0], batch["width"][0]) == (10, 20)  # The decoded size.
  assert (batch["label"][0, 16:] == 255).all() and (batch["label"][0, :16, :32] == 0).all()


def test_test_split_has_no_label(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "test", 2, 1, with_labels=False)
  ds = input_pipeline.build_dataset(folder, "test", batch_size=2, crop_size=(25, 25),
                                    is_training=False)
  nxt, _ = _read_all(ds)
  assert "label" not in nxt


def test_missing_split_lists_the_splits_present(tmp_path):
  folder = str(tmp_path / "ds")
  write_split(folder, "train", 1, 1)
  write_split(folder, "val", 1, 1)
  with pytest.raises(UserInputError, match=r"'trian'.*\['train', 'val'\]"):
    input_pipeline.build_dataset(folder, "trian", batch_size=1, crop_size=(9, 9),
                                 is_training=False)
  with pytest.raises(UserInputError, match="not a folder"):
    input_pipeline.build_dataset(str(tmp_path / "nope"), "train", batch_size=1,
                                 crop_size=(9, 9), is_training=False)
  with pytest.raises(UserInputError, match="batch_size"):
    input_pipeline.build_dataset(folder, "train", batch_size=0, crop_size=(9, 9),
                                 is_training=True)


def test_reads_a_gcs_dataset_dir(tmp_path, gcs_bucket, monkeypatch):
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  local = str(tmp_path / "src")
  write_split(local, "train", 4, 2)
  write_split(local, "val", 2, 1)
  storage.write_json(os.path.join(local, features.MANIFEST), {
      "format_version": 1, "name": "tiny", "num_classes": 4, "ignore_label": 255,
      "splits": {"train": {"num_examples": 4}, "val": {"num_examples": 2}}})
  uri = f"gs://{gcs_bucket}/datasets/tiny/abc"
  storage.sync_dir(local, uri, commit_last=(features.MANIFEST,))
  info = descriptors.get_dataset_info(uri)
  assert (info.name, info.num_classes, info.splits_to_sizes["train"]) == ("tiny", 4, 4)
  ds = input_pipeline.build_dataset(uri, "val", batch_size=2, crop_size=(25, 25),
                                    is_training=False)
  _, (batch,) = _read_all(ds)
  assert sorted(n.decode() for n in batch["image_name"]) == ["ex_0", "ex_1"]
  cached = os.listdir(tmp_path / "cache" / gcs_bucket / "datasets" / "tiny" / "abc")
  assert cached == ["val-00000-of-00001.tfrecord"]  # Only the split that was read.
  with pytest.raises(UserInputError, match=r"splits present: \['train', 'val'\]"):
    input_pipeline.build_dataset(uri, "test", batch_size=1, crop_size=(9, 9), is_training=False)


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_eval_reads_the_split_in_stored_order_whatever_the_seed(tmp_path, seed):
  # 3 shards: ex_0..2 in shard 0, ex_3..5 in shard 1, ex_6 in shard 2. Interleaved reading
  # would give ex_0, ex_3, ex_6, ex_1, ...; evaluation must see the stored order.
  folder = str(tmp_path / "ds")
  write_split(folder, "val", 7, 3)
  ds = input_pipeline.build_dataset(folder, "val", batch_size=2, crop_size=(25, 25),
                                    is_training=False, num_readers=3, seed=seed)
  _, batches = _read_all(ds)
  names = [n.decode() for b in batches for n in b["image_name"]]
  assert names == [f"ex_{i}" for i in range(7)]
