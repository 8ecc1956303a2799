"""Reads raw examples of a converted split without the training input pipeline.

Used for the images that export's self-check runs through the exported model (and their
sizes, to pick the split's tallest and widest). Stored order: the
sorted shards one after another, records in file order (what evaluation and vis read too).
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deeplab.compat import tf
from deeplab.datasets import features
from deeplab.errors import UserInputError

Example = Tuple[str, np.ndarray, Optional[np.ndarray]]  # name, uint8 [H,W,3], label [H,W]


def split_files(local_dir: str, split: str) -> List[str]:
  """The `<split>-*` shards of a local dataset folder, sorted.

  Raises:
    UserInputError: the split has no shards.
  """
  files = features.local_shards(local_dir, split)
  if not files:
    raise UserInputError(
        f"{local_dir} has no TFRecord shards for split {split!r} (expected "
        f"{features.shard_name(split, 0, 1)} …); check --dataset_dir and the split name")
  return files


def _parse(record, decode_label: bool):
  ex = tf.io.parse_single_example(record, features.parse_spec(tf))
  image = tf.io.decode_image(ex[features.IMAGE_ENCODED], channels=3, expand_animations=False)
  out = {"name": ex[features.IMAGE_FILENAME], "image": image}
  if decode_label:
    out["label"] = tf.io.decode_image(ex[features.LABEL_ENCODED], channels=1,
                                      expand_animations=False)
  return out


def scan_sizes(local_dir: str, split: str) -> np.ndarray:
  """int64 [N, 2]: (height, width) of every example in stored order (decoding only when 0)."""
  spec = features.parse_spec(tf)

  def size(record):
    ex = tf.io.parse_single_example(record, spec)
    h, w = ex[features.IMAGE_HEIGHT], ex[features.IMAGE_WIDTH]
    return tf.cond(
        tf.logical_and(h > 0, w > 0), lambda: tf.stack([h, w]),
        lambda: tf.cast(tf.shape(tf.io.decode_image(ex[features.IMAGE_ENCODED], channels=3,
                                                    expand_animations=False))[:2], tf.int64))

  with tf.Graph().as_default():
    ds = tf.data.TFRecordDataset(split_files(local_dir, split)).map(size).batch(256)
    batch = tf.data.make_one_shot_iterator(ds).get_next()
    parts = [np.zeros((0, 2), np.int64)]
    with tf.Session() as sess:
      while True:
        try:
          parts.append(sess.run(batch))
        except tf.errors.OutOfRangeError:
          break
  return np.concatenate(parts)


def read_examples(local_dir: str, split: str, limit: int, with_label: bool = True,
                  indices: Optional[Sequence[int]] = None) -> List[Example]:
  """Decoded examples in stored order: the first `limit`, or those at `indices` (all of them)."""
  out: List[Example] = []
  with tf.Graph().as_default():
    ds = tf.data.TFRecordDataset(split_files(local_dir, split))
    if indices is None:
      ds = ds.take(limit)
    else:
      wanted = tf.constant(sorted(set(int(i) for i in indices)) or [-1], tf.int64)
      ds = ds.enumerate().filter(lambda i, _: tf.reduce_any(tf.equal(i, wanted)))
      ds = ds.map(lambda _, record: record)
    ds = ds.map(lambda record: _parse(record, with_label))
    item = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess:
      while True:
        try:
          ex = sess.run(item)
        except tf.errors.OutOfRangeError:
          break
        label = ex["label"][:, :, 0] if with_label else None
        out.append((ex["name"].decode("utf-8", "replace"), ex["image"], label))
  return out
