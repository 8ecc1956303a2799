"""Our records are tf.train.Examples with DeepLab's 8 features, readable by the original parser."""

import os

import numpy as np
from PIL import Image

from deeplab.datasets import features
from deeplab.datasets.sharded_writer import encode_example, tfrecord_frame
from deeplab.datasets.validate import CheckedExample
from tests.deeplab.datasets.test_build_trees import convert, label_array, make_voc


def test_encoding_is_byte_identical_to_tf_train_example():
  from deeplab.compat import tf
  ex = CheckedExample(stem="2007_000032", image_bytes=b"\xff\xd8jpeg-bytes\xff\xd9",
                      image_format="jpeg", height=375, width=500, label_bytes=b"\x89PNG-bytes",
                      histogram=[0] * 256)
  ours = encode_example(ex)

  def b(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

  def i(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

  # build_data.image_seg_to_tfexample, as the original wrote it.
  theirs = tf.train.Example(features=tf.train.Features(feature={
      "image/encoded": b(ex.image_bytes), "image/filename": b(b"2007_000032"),
      "image/format": b(b"jpeg"), "image/height": i(375), "image/width": i(500),
      "image/channels": i(3), "image/segmentation/class/encoded": b(ex.label_bytes),
      "image/segmentation/class/format": b(b"png")}))
  assert ours == theirs.SerializeToString(deterministic=True)
  parsed = tf.train.Example.FromString(ours)
  assert sorted(parsed.features.feature) == sorted(features.ALL_KEYS)
  framed = tfrecord_frame(ours)
  assert len(framed) == len(ours) + 16


def test_shards_parse_with_the_original_feature_spec(tmp_path):
  from deeplab.compat import tf
  root = make_voc(str(tmp_path / "src"))
  convert("voc", root, str(tmp_path / "out"), num_shards=2)
  files = sorted(str(p) for p in (tmp_path / "out").glob("train-*"))
  ds = tf.data.TFRecordDataset(files)
  raw = tf.data.make_one_shot_iterator(ds).get_next()
  parsed = tf.io.parse_single_example(raw, features.parse_spec(tf))
  image = tf.image.decode_jpeg(parsed[features.IMAGE_ENCODED], channels=3)
  label = tf.image.decode_png(parsed[features.LABEL_ENCODED], channels=1)
  seen = []
  with tf.Session() as sess:
    for k in range(3):
      rec, p, img, lab = sess.run([raw, parsed, image, label])
      keys = tf.train.Example.FromString(rec).features.feature
      assert sorted(keys) == sorted(features.ALL_KEYS)
      assert (p[features.IMAGE_HEIGHT], p[features.IMAGE_WIDTH]) == img.shape[:2]
      assert p[features.IMAGE_FORMAT] == b"jpeg" and p[features.LABEL_FORMAT] == b"png"
      seen.append(p[features.IMAGE_FILENAME])
      stem = p[features.IMAGE_FILENAME].decode()
      jpeg = os.path.join(root, "VOC2012", "JPEGImages", stem + ".jpg")
      # TF and PIL use different IDCTs: the same JPEG decodes within a few levels.
      assert np.abs(img.astype(int) - np.asarray(Image.open(jpeg), int)).mean() < 2
      np.testing.assert_array_equal(lab[..., 0], label_array(k, 21, ignore=255))
      assert p[features.IMAGE_ENCODED] == open(jpeg, "rb").read()  # stored as-is
  assert seen == [b"2007_000001", b"2007_000002", b"2007_000003"]
