"""Tiny seeded datasets and checkpoints for the evaluate/vis/export tests (built in the test).

The dataset is a few PNG images with rectangles of each class and an ignored (255) border
strip, written as DeepLab TFRecords plus a manifest.json. The checkpoint is a freshly
initialised model saved with tf.train.Saver, with config.json next to it like train.py writes.
"""

import contextlib
import io
import json
import os

import numpy as np
from PIL import Image

from deeplab import config as dl_config
from deeplab.datasets import features

TINY_MODEL = dict(model_variant="mobilenet_v2", depth_multiplier=0.25, aspp_convs_filters=16,
                  decoder_filters=16)


def _png(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def make_example(seed: int, height: int, width: int, num_classes: int):
  rng = np.random.RandomState(seed)
  label = np.zeros((height, width), np.uint8)
  image = np.zeros((height, width, 3), np.uint8) + rng.randint(0, 60, (height, width, 3),
                                                              dtype=np.uint8)
  for c in range(1, num_classes):
    y, x = rng.randint(0, height - 8), rng.randint(0, width - 8)
    h, w = rng.randint(6, height // 2 + 6), rng.randint(6, width // 2 + 6)
    label[y:y + h, x:x + w] = c
    image[y:y + h, x:x + w] = (np.array([60 * c, 255 - 50 * c, 40 * c]) % 256).astype(np.uint8)
  label[:, :2] = 255  # an ignored strip, like VOC's object borders
  return image, label


def write_dataset(folder: str, split: str = "val", num_classes: int = 3,
                  sizes=((33, 41), (29, 33), (37, 30), (33, 33)), manifest: bool = True,
                  name: str = "tiny", num_shards: int = 1) -> str:
  """Writes `<split>-%05d-of-%05d.tfrecord` shards (+ manifest.json); returns the folder.

  Example i is named img_<i>; shards hold consecutive examples, as the converters write them.
  """
  from deeplab.compat import tf
  os.makedirs(folder, exist_ok=True)
  per_shard = -(-len(sizes) // num_shards)
  paths = [os.path.join(folder, features.shard_name(split, s, num_shards))
           for s in range(num_shards)]
  writers = [tf.io.TFRecordWriter(p) for p in paths]
  with contextlib.ExitStack() as stack:
    for writer in writers:
      stack.enter_context(writer)
    for i, (h, w) in enumerate(sizes):
      writer = writers[i // per_shard]
      image, label = make_example(i, h, w, num_classes)
      feats = {
          features.IMAGE_ENCODED: _bytes(_png(image)),
          features.IMAGE_FILENAME: _bytes(f"img_{i:03d}".encode()),
          features.IMAGE_FORMAT: _bytes(b"png"),
          features.IMAGE_HEIGHT: _int(h), features.IMAGE_WIDTH: _int(w),
          features.IMAGE_CHANNELS: _int(3),
          features.LABEL_ENCODED: _bytes(_png(label)),
          features.LABEL_FORMAT: _bytes(b"png"),
      }
      writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
  if manifest:
    doc = {"format_version": 1, "name": name, "fingerprint": "feedfacecafe0001",
           "num_classes": num_classes, "ignore_label": 255,
           "class_names": ["background"] + [f"shape{c}" for c in range(1, num_classes)],
           "image_format": "png",
           "splits": {split: {"num_examples": len(sizes),
                              "shards": [{"name": os.path.basename(p),
                                          "num_examples": len(sizes[s * per_shard:
                                                                   (s + 1) * per_shard])}
                                         for s, p in enumerate(paths)],
                              "max_height": max(h for h, _ in sizes),
                              "max_width": max(w for _, w in sizes)}}}
    with open(os.path.join(folder, features.MANIFEST), "w") as f:
      json.dump(doc, f)
  return folder


def _bytes(v):
  from deeplab.compat import tf
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _int(v):
  from deeplab.compat import tf
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))


def _padded_examples(crop, num_classes, sizes):
  images, labels = [], []
  for i, (h, w) in enumerate(sizes):
    image, label = make_example(i, h, w, num_classes)
    img = np.full((crop[0], crop[1], 3), 127.5, np.float32)
    lab = np.full((crop[0], crop[1]), 255, np.int32)
    img[:h, :w], lab[:h, :w] = image[:crop[0], :crop[1]], label[:crop[0], :crop[1]]
    images.append(img)
    labels.append(lab)
  return np.stack(images), np.stack(labels)


def make_run(folder: str, num_classes: int = 3, crop=(33, 41), step: int = 7, seed: int = 0,
             write_config: bool = True, sizes=((33, 41), (29, 33), (37, 30), (33, 33)),
             **model_overrides) -> str:
  """Saves a random model as `model.ckpt-<step>` (+ config.json like train.py); returns it.

  Batch norm is calibrated on the write_dataset() examples (moving statistics := one
  training-mode pass's batch statistics) and the logits get unit-scale random weights, so
  predictions vary from pixel to pixel, as a trained model's do, without training.
  """
  from deeplab import model
  from deeplab.compat import tf
  model_cfg = dl_config.ModelConfig(num_classes=num_classes, **{**TINY_MODEL, **model_overrides})
  os.makedirs(folder, exist_ok=True)
  crop_all = (max(crop[0], max(h for h, _ in sizes)), max(crop[1], max(w for _, w in sizes)))
  x_np, _ = _padded_examples(crop_all, num_classes, sizes)
  rng = np.random.RandomState(seed)
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(seed)
    model.multi_scale_logits(tf.constant(x_np), model_cfg, crop_all, is_training=True,
                             fine_tune_batch_norm=True)
    tf.train.get_or_create_global_step()
    variables = {v.op.name: v for v in tf.global_variables()}
    stats = {}
    for op in graph.get_operations():
      if op.type.startswith("FusedBatchNorm"):
        scope = op.name.rsplit("/", 1)[0]
        stats[variables[scope + "/moving_mean"]] = op.outputs[1]
        stats[variables[scope + "/moving_variance"]] = op.outputs[2]
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      values = sess.run(stats)
      for var, value in values.items():
        var.load(value, sess)
      for var in variables.values():
        if var.op.name.startswith("logits") and var.op.name.endswith("weights"):
          shape = var.shape.as_list()
          var.load(rng.normal(0, 1.0 / np.sqrt(shape[2]), shape).astype(np.float32), sess)
      prefix = tf.train.Saver().save(sess, os.path.join(folder, "model.ckpt"), global_step=step)
  if write_config:
    cfg = dl_config.TrainConfig(model=model_cfg, train_crop_size=crop, train_logdir=folder,
                                dataset_dir="", train_batch_size=1, dataset="tiny")
    with open(os.path.join(folder, "config.json"), "w") as f:
      f.write(dl_config.dumps(cfg))
  return prefix


# One dataset + one run shared by the evaluate/vis/export tests of a session (graph building
# dominates their time). The run's config differs from the flag defaults on purpose.
SHARED_MODEL = dict(output_stride=8, decoder_output_stride=(4,))
SHARED_CLASSES = 5
SHARED_CROP = (41, 41)
_SHARED = {}


def shared_run(tmp_path_factory):
  """(dataset_dir, checkpoint prefix) built once per session."""
  if "run" not in _SHARED:
    root = tmp_path_factory.mktemp("evalkit")
    data = write_dataset(str(root / "data"), num_classes=SHARED_CLASSES)
    ckpt = make_run(str(root / "train"), num_classes=SHARED_CLASSES, crop=SHARED_CROP,
                    **SHARED_MODEL)
    _SHARED["run"] = (data, ckpt)
  return _SHARED["run"]


def run_cli(module, argv):
  """Runs a command in-process through the real flag parsing; returns the exit code."""
  from deeplab import cli
  from deeplab.contract import COMMANDS
  command = next(name for name, mod in COMMANDS.items() if mod == module.__name__)
  return cli.run_command(command, list(argv))
