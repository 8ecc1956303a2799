"""DeepLab's TFRecord feature keys (docs/compatibility.md), in one place.

Pure Python: the converters encode with `tf.train.Example` protos, readers parse with
`parse_spec()`; nothing else may spell these keys.
"""

import fnmatch
import os

IMAGE_ENCODED = "image/encoded"
IMAGE_FILENAME = "image/filename"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_CHANNELS = "image/channels"
LABEL_ENCODED = "image/segmentation/class/encoded"
LABEL_FORMAT = "image/segmentation/class/format"

ALL_KEYS = (IMAGE_ENCODED, IMAGE_FILENAME, IMAGE_FORMAT, IMAGE_HEIGHT, IMAGE_WIDTH,
            IMAGE_CHANNELS, LABEL_ENCODED, LABEL_FORMAT)

# The original build_data._IMAGE_FORMAT_MAP.
IMAGE_FORMAT_MAP = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}

SHARD_TEMPLATE = "%s-%05d-of-%05d.tfrecord"
SPLIT_PATTERN = "%s-*"
MANIFEST = "manifest.json"


def shard_name(split: str, index: int, num_shards: int) -> str:
  return SHARD_TEMPLATE % (split, index, num_shards)


def local_shards(local_dir: str, split: str) -> list:
  """The `<split>-*` shard files of a local folder in stored (name) order; hidden and
  unfinished (`.tmp`) files are not shards. [] when the folder or the split is missing."""
  if not os.path.isdir(local_dir):
    return []
  names = fnmatch.filter(os.listdir(local_dir), SPLIT_PATTERN % split)
  return [os.path.join(local_dir, n) for n in sorted(names)
          if not n.startswith(".") and not n.endswith(".tmp")
          and os.path.isfile(os.path.join(local_dir, n))]


def parse_spec(tf):
  """The original data_generator._parse_function spec; `tf` is the TF module to use."""
  return {
      IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
      IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
      IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
      IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
      IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
      LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
      LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="png"),
  }
