"""The evaluation pass shared by evaluate and vis: the graph and one pass over a split.

The graph applies the inference policy's functions (`inference.prepare`, `predict`,
`restore_size`), the same ones the exported model is built from, so vis, evaluate and
export agree by construction. Predictions are compared with the labels at their original size.
"""

from __future__ import annotations

import logging
import time
from typing import List, Optional

import numpy as np

from deeplab import run_config
from deeplab.storage import checkpoints
from deeplab.evaluation import colormap, metrics
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
_LOG_EVERY_SECS = 10.0


def stage_split(dataset_dir: str, split: str) -> str:
  """A local folder with the split's shards (gs:// stages only `<split>-*`, not every split)."""
  from deeplab import storage
  from deeplab.datasets import features
  return storage.stage_in(dataset_dir, pattern=features.SPLIT_PATTERN % split)


def default_colormap(dataset_name: str) -> str:
  name = (dataset_name or "").lower()
  if "cityscapes" in name:
    return colormap.CITYSCAPES
  if "ade20k" in name:
    return colormap.ADE20K
  return colormap.PASCAL


def eval_dataset(local_data: str, split: str, batch_size: int, policy, ignore_label: int,
                 repeat: bool = False):
  """The split in stored order, each image prepared by `inference.prepare`.

  Elements: image float32 [B, h', w', 3] (one network size per batch), valid_size int32
  [B, 2], original_image uint8 [B, H, W, 3], label int32 [B, H, W, 1] at the original size
  (padded with ignore_label to the batch's largest; not for split 'test'), image_name,
  height, width. With batch_size > 1 at own size, images are batched by network size (a
  batch holds one size, so a small image never pays for a large one); the order of
  batches then differs from the stored order, but never the images they hold.
  """
  from deeplab.compat import tf
  from deeplab.datasets import input_pipeline as ip
  from deeplab.evaluation import inference

  with_label = split != ip.TEST_SET
  ds = tf.data.TFRecordDataset(ip.list_shards(local_data, split))
  ds = ds.repeat() if repeat else ds

  def process(serialized):
    sample = ip.parse_example(serialized, with_label, ignore_label)
    label = sample.pop("labels_class", None)
    image, valid = inference.prepare(sample[ip.IMAGE], policy)
    out = {ip.IMAGE: image, VALID_SIZE: valid, ip.ORIGINAL_IMAGE: sample[ip.IMAGE],
           ip.IMAGE_NAME: sample[ip.IMAGE_NAME], ip.HEIGHT: sample[ip.HEIGHT],
           ip.WIDTH: sample[ip.WIDTH]}
    if label is not None:
      out[ip.LABEL] = tf.cast(label, tf.int32)
    return out

  ds = ds.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  pad = {ip.IMAGE: 0.0, VALID_SIZE: 0, ip.ORIGINAL_IMAGE: tf.constant(0, tf.uint8),
         ip.IMAGE_NAME: "", ip.HEIGHT: 0, ip.WIDTH: 0}
  if with_label:
    pad[ip.LABEL] = ignore_label
  if batch_size > 1 and not policy.fixed:
    def key(sample):
      shape = tf.cast(tf.shape(sample[ip.IMAGE]), tf.int64)
      return shape[0] * (1 << 20) + shape[1]
    ds = ds.group_by_window(key, lambda _, w: w.padded_batch(batch_size, padding_values=pad),
                            window_size=batch_size)
  else:
    ds = ds.padded_batch(batch_size, padding_values=pad)
  return ds.prefetch(tf.data.AUTOTUNE)


VALID_SIZE = "valid_size"


class EvalGraph:
  """Eval dataset -> the shared prediction functions -> class maps at the original size.

  `predictions` is int32 [B, H, W]: each image's prediction at its own original size,
  zero-padded to the batch's label size (the label is ignore_label there).
  """

  def __init__(self, local_data: str, split: str, batch_size: int, policy,
               ignore_label: int, repeat: bool = False):
    from deeplab.evaluation import inference
    from deeplab.compat import tf
    from deeplab.datasets import input_pipeline as ip

    self.tf = tf
    self.policy = policy
    self.graph = tf.Graph()
    with self.graph.as_default():
      ds = eval_dataset(local_data, split, batch_size, policy, ignore_label, repeat)
      self.batch = tf.data.make_one_shot_iterator(ds).get_next()
      b = self.batch
      labels, _ = inference.predict(b[ip.IMAGE], b[VALID_SIZE], policy)
      originals = tf.stack([b[ip.HEIGHT], b[ip.WIDTH]], axis=1)
      out_size = (tf.shape(b[ip.LABEL])[1:3] if ip.LABEL in b
                  else tf.reduce_max(originals, axis=0))

      def one(args):
        pred, valid, original = args
        pred = inference.restore_size(pred, valid, original)
        return tf.pad(pred, [[0, out_size[0] - original[0]], [0, out_size[1] - original[1]]])

      self.predictions = tf.map_fn(one, (labels, b[VALID_SIZE], originals),
                                   fn_output_signature=tf.int32)
      self.saver = inference.restore_saver()

  def session(self, checkpoint_local: str):
    from deeplab.evaluation import inference
    sess = self.tf.Session(graph=self.graph)
    inference.restore(self.saver, sess, checkpoint_local)
    return sess


def _crop_valid(label: np.ndarray, height: int, width: int):
  return slice(0, min(height, label.shape[0])), slice(0, min(width, label.shape[1]))


def run_pass(graph: EvalGraph, sess, num_classes: int, ignore_label: int, num_examples: int,
             num_overlays: int = 0, with_metric: bool = True,
             max_images: Optional[int] = None, per_image=None):
  """One pass over the split: returns (confusion matrix, overlay examples, images, seconds).

  `per_image` (a per_image.PerImageConfusion), when given, also collects each image's own
  confusion matrix with its name, for the paired comparison of two models.

  The overlay examples are the first `num_overlays` images read (the reading order is
  deterministic); images are fetched only until they are collected, which keeps the
  metric's cost per batch to the label fetch and a confusion-matrix update.
  """
  stream = metrics.StreamingConfusionMatrix(num_classes, ignore_label)
  fetch = {"pred": graph.predictions}
  if with_metric:
    fetch.update(label=graph.batch["label"])
  if per_image is not None:
    fetch.update(label=graph.batch["label"], name=graph.batch["image_name"])
  b = graph.batch
  fetch_examples = dict(fetch, label=b["label"], name=b["image_name"],
                        image=b["original_image"], height=b["height"], width=b["width"])
  examples: List[tuple] = []
  done, start, last_log = 0, time.time(), time.time()
  while max_images is None or done < max_images:
    out = run_batch(sess, fetch_examples if len(examples) < num_overlays else fetch)
    if out is None:
      break
    if with_metric:
      stream.update(out["label"], out["pred"])
    if per_image is not None:
      per_image.update(out["name"], out["label"], out["pred"])
    if "image" in out:
      _keep_examples(examples, out, num_overlays)
    done += len(out["pred"])
    now = time.time()
    if now - last_log >= _LOG_EVERY_SECS:
      log.info("evaluated %d/%d images, %.2f images/s", done, num_examples, done / (now - start))
      last_log = now
  secs = time.time() - start
  log.info("evaluated %d images in %.1f s (%.2f images/s)", done, secs, done / max(secs, 1e-9))
  return stream.matrix, examples, done, secs


def run_batch(sess, fetch):
  """sess.run for one batch; None at the end of the split.

  Raises:
    UserInputError: an image larger than the crop (the preprocessing's check fails): a
      setting the user must change, not a transient error.
  """
  from deeplab.compat import tf
  try:
    return sess.run(fetch)
  except tf.errors.OutOfRangeError:
    return None
  except tf.errors.InvalidArgumentError as e:
    from deeplab.evaluation import inference
    if inference.TOO_LARGE not in str(e):
      raise
    detail = str(e).strip().splitlines()[0][:300]
    raise UserInputError(
        f"an image is larger than the fixed crop size ({detail}); pass a larger "
        "--eval_crop_size / --vis_crop_size, or leave it unset to run each image at its own "
        "size") from e


def _keep_examples(examples: list, out: dict, limit: int) -> None:
  """Appends (name, image, truth, prediction), cropped to the image, until `limit` are kept."""
  for i, raw_name in enumerate(out["name"][:max(0, limit - len(examples))]):
    label = out["label"][i, :, :, 0]
    rows, cols = _crop_valid(label, out["height"][i], out["width"][i])
    examples.append((raw_name.decode("utf-8", "replace"), out["image"][i][rows, cols],
                     label[rows, cols], out["pred"][i][rows, cols]))


def resolve_run(spec, fallback_model: ModelConfig):
  """(checkpoint URI, DatasetInfo, ModelConfig, model source) for evaluate and vis.

  `spec` is an EvalConfig or VisConfig; `fallback_model` (the model flags) describes the model
  only for checkpoints that have no config.json.
  """
  from deeplab.datasets.descriptors import get_dataset_info
  checkpoint = checkpoints.find_checkpoint(spec.checkpoint_dir, spec.checkpoint_path)
  info = get_dataset_info(spec.dataset_dir, spec.dataset)
  model_cfg, source = run_config.resolve_model_config(checkpoint, info.num_classes,
                                                      fallback_model, spec.config_json)
  return checkpoint, info, model_cfg, source
