"""tf.data input pipeline over DeepLab TFRecords (the original data_generator.Dataset).

Reads the `<split>-*` shards of a dataset folder (gs:// folders are staged to the local cache
first), parses DeepLab's features, decodes JPEG/PNG, preprocesses as DeepLab does
(`preprocess.py`) and batches. Shards from the original build_*_data.py scripts and from
`python -m deeplab build-tfrecords` read the same way.
"""

import logging
import os
import random
import re
from typing import Dict, List, Optional, Sequence

from deeplab import storage
from deeplab.compat import tf
from deeplab.datasets import features, preprocess
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.input")

# Sample keys (the original common.py names).
IMAGE = "image"
LABEL = "label"
IMAGE_NAME = "image_name"
HEIGHT = "height"
WIDTH = "width"
ORIGINAL_IMAGE = "original_image"
TEST_SET = "test"

_SHUFFLE_BUFFER = 100  # The original's buffer_size.
_SHARD_RE = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}(\.tfrecord)?$")


def splits_present(folder: str) -> List[str]:
  """Split names that have `<split>-%05d-of-%05d` shards in a local folder or gs:// prefix."""
  if not storage.exists(folder):
    return []
  names = (_SHARD_RE.match(n) for n in storage.listdir(folder))
  return sorted({m.group("split") for m in names if m})


def list_shards(dataset_dir: str, split: str) -> List[str]:
  """Sorted local paths of the `<split>-*` shards, staging gs:// folders first.

  Raises:
    UserInputError: no such folder or no shard for `split` (the message lists the splits
      that do have shards).
  """
  pattern = features.SPLIT_PATTERN % split
  if storage.is_gcs(dataset_dir):
    local_dir = storage.stage_in(dataset_dir, pattern=pattern)
  else:
    if not os.path.isdir(dataset_dir):
      raise UserInputError(f"dataset_dir {dataset_dir} is not a folder; pass the folder that "
                           "holds the <split>-*.tfrecord shards")
    local_dir = dataset_dir
  files = features.local_shards(local_dir, split)
  if not files:
    raise UserInputError(
        f"no TFRecords for split {split!r} in {dataset_dir} (looked for {pattern}); splits "
        f"present: {splits_present(dataset_dir) or 'none'}")
  return files


def decode_image(content, channels: int):
  """JPEG or PNG by content (the original's tf.cond on is_jpeg)."""
  return tf.cond(tf.image.is_jpeg(content),
                 lambda: tf.image.decode_jpeg(content, channels=channels),
                 lambda: tf.image.decode_png(content, channels=channels))


def parse_example(serialized, with_label: bool, ignore_label: int) -> Dict:
  """One serialized Example -> {image uint8 [H,W,3], labels_class [H,W,1], image_name, height, width}.

  `image/channels` is not read (as in the original). An example with empty label bytes gets a
  label of ignore_label everywhere.
  """
  parsed = tf.parse_single_example(serialized, features.parse_spec(tf))
  image = decode_image(parsed[features.IMAGE_ENCODED], channels=3)
  image.set_shape([None, None, 3])
  shape = tf.shape(image)
  sample = {IMAGE: image, IMAGE_NAME: parsed[features.IMAGE_FILENAME],
            HEIGHT: shape[0], WIDTH: shape[1]}
  if with_label:
    encoded = parsed[features.LABEL_ENCODED]
    label = tf.cond(tf.equal(tf.strings.length(encoded), 0),
                    lambda: tf.fill(tf.stack([shape[0], shape[1], 1]),
                                    tf.cast(ignore_label, tf.uint8)),
                    lambda: decode_image(encoded, channels=1))
    label.set_shape([None, None, 1])
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(label)[:2], shape[:2])),
        ["label size differs from image size for", parsed[features.IMAGE_FILENAME],
         tf.shape(label), shape])
    with tf.control_dependencies([check]):
      sample["labels_class"] = tf.identity(label)
  return sample


def build_dataset(dataset_dir: str, split: str, *, batch_size: int, crop_size: Sequence[int],
                  is_training: bool, model_variant: Optional[str] = None,
                  min_resize_value: Optional[int] = None, max_resize_value: Optional[int] = None,
                  resize_factor: Optional[int] = None, keep_aspect_ratio: bool = True,
                  min_scale_factor: float = 1., max_scale_factor: float = 1.,
                  scale_factor_step_size: float = 0., ignore_label: int = 255,
                  num_readers: int = 2, should_shuffle: bool = False,
                  should_repeat: bool = False, seed: Optional[int] = None):
  """The batched, preprocessed samples of one split.

  Args:
    dataset_dir: local folder or gs:// prefix with `<split>-*` TFRecord shards.
    split: split name, e.g. 'train'.
    batch_size: examples per batch (training drops the last partial batch: static shapes).
    crop_size: (height, width) of the output images.
    is_training: random scale/crop/flip when True; pad only (and `original_image`) when False.
    model_variant: picks the padding mean pixel.
    min_resize_value, max_resize_value, resize_factor, keep_aspect_ratio: resize_to_range.
    min_scale_factor, max_scale_factor, scale_factor_step_size: training random scale.
    ignore_label: label padding value.
    num_readers: shards read in parallel (training; evaluation reads them one after another).
    should_shuffle: shuffle examples (buffer of 100, as the original).
    should_repeat: repeat forever.
    seed: makes shuffling and augmentation reproducible (and element order deterministic).
      Without shuffling, evaluation (is_training False) always yields the split's stored order.

  Returns:
    A tf.data.Dataset of dicts: image float32 [B,h,w,3] (not normalised), label int32
    [B,h,w,1] (not for split 'test'), image_name string [B], height/width int32 [B] (decoded
    size), original_image uint8 [B,H,W,3] (eval only; zero-padded to the batch's largest).

  Raises:
    UserInputError: bad arguments or no shards for the split.
  """
  crop_h, crop_w = _check_args(batch_size, crop_size, min_scale_factor, max_scale_factor,
                               scale_factor_step_size, num_readers)
  files = list_shards(dataset_dir, split)
  log.info("reading %d shard(s) of split %r from %s", len(files), split, dataset_dir)
  with_label = split != TEST_SET
  # Evaluation reads the split in its stored order (sorted shards, records in file order)
  # whatever the seed, so per-image outputs and vis's numbering are the same on every run.
  stored_order = not is_training and not should_shuffle
  deterministic = seed is not None or stored_order
  op_seed = seed if seed is not None else random.randrange(1 << 31)

  ds = tf.data.Dataset.from_tensor_slices(files)
  if should_shuffle:
    ds = ds.shuffle(len(files), seed=op_seed)
  readers = 1 if stored_order else max(1, min(num_readers, len(files)))
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=readers, block_length=1,
                     num_parallel_calls=readers, deterministic=deterministic)
  if should_shuffle:
    # Shuffling the encoded records is cheaper than shuffling decoded images.
    ds = ds.shuffle(_SHUFFLE_BUFFER, seed=op_seed + 1, reshuffle_each_iteration=True)
  ds = ds.repeat() if should_repeat else ds
  ds = ds.enumerate()  # An index per element: each one gets its own stateless random stream.

  def process(index, serialized):
    sample = parse_example(serialized, with_label, ignore_label)
    label = sample.pop("labels_class", None)
    element_seed = tf.stack([tf.constant(op_seed, tf.int64), index])
    original, image, label = preprocess.preprocess_image_and_label(
        sample[IMAGE], label, crop_h, crop_w, min_resize_value=min_resize_value,
        max_resize_value=max_resize_value, resize_factor=resize_factor,
        min_scale_factor=min_scale_factor, max_scale_factor=max_scale_factor,
        scale_factor_step_size=scale_factor_step_size, ignore_label=ignore_label,
        is_training=is_training, model_variant=model_variant,
        keep_aspect_ratio=keep_aspect_ratio, seed=element_seed)
    sample[IMAGE] = image
    if label is not None:
      sample[LABEL] = label
    if not is_training:
      if original.dtype != tf.uint8:  # Resized: float -> uint8 like a decoded image.
        original = tf.cast(tf.clip_by_value(tf.round(original), 0, 255), tf.uint8)
      sample[ORIGINAL_IMAGE] = original
    return sample

  ds = ds.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
  if is_training:
    ds = ds.batch(batch_size, drop_remainder=True)
  else:
    # original_image keeps each image's own size: pad it within the batch.
    ds = ds.padded_batch(batch_size)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = deterministic
  return ds.with_options(options)


def _check_args(batch_size, crop_size, min_scale, max_scale, step, num_readers):
  try:
    crop_h, crop_w = (int(c) for c in crop_size)
  except (TypeError, ValueError) as e:
    raise UserInputError(f"crop_size should be (height, width), got {crop_size!r}") from e
  problems = []
  if batch_size < 1:
    problems.append(f"batch_size is {batch_size}, expected at least 1")
  if crop_h < 1 or crop_w < 1:
    problems.append(f"crop_size is {crop_size!r}, expected positive sizes")
  if min_scale <= 0 or min_scale > max_scale:
    problems.append(f"scale range [{min_scale}, {max_scale}] needs 0 < min <= max")
  if step < 0:
    problems.append(f"scale_factor_step_size is {step}, expected >= 0")
  if num_readers < 1:
    problems.append(f"num_readers is {num_readers}, expected at least 1")
  if problems:
    raise UserInputError("bad input pipeline arguments: " + "; ".join(problems))
  return crop_h, crop_w
