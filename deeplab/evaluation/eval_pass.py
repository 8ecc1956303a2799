"""The evaluation pass shared by evaluate and vis: graph, one pass over a split, crop rule.

The graph is the input pipeline's eval preprocessing followed by `inference.predict`, the
same function the exported model uses, so vis, evaluate and export agree by construction.
"""

from __future__ import annotations

import logging
import time
from typing import List, Optional, Sequence, Tuple

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


def choose_crop_size(info, split: str, local_dir: str, model_cfg: ModelConfig) -> Tuple[int, int]:
  """The auto eval/vis crop (input_size.choose_crop): the split's largest image, at least 513."""
  from deeplab.evaluation import input_size

  def largest_image() -> Tuple[int, int]:
    if split in info.max_image_size:
      return info.max_image_size[split]
    from deeplab.evaluation import split_reader
    log.info("manifest has no image sizes for %r: scanning the split", split)
    return split_reader.scan_max_size(local_dir, split)

  return input_size.choose_crop(model_cfg, largest_image)


class EvalGraph:
  """Input pipeline (eval preprocessing) -> the shared prediction function; used by vis too."""

  def __init__(self, local_data: str, split: str, batch_size: int, model_cfg: ModelConfig,
               crop: Tuple[int, int], scales: Sequence[float], add_flipped_images: bool,
               ignore_label: int, repeat: bool = False):
    from deeplab.evaluation import inference
    from deeplab.compat import tf
    from deeplab.datasets import input_pipeline

    self.tf = tf
    self.graph = tf.Graph()
    m = model_cfg
    with self.graph.as_default():
      # Eval mode reads the split in its stored order (split_reader's order too), so every
      # run sees the images in the same order and names them the same.
      ds = input_pipeline.build_dataset(
          local_data, split, batch_size=batch_size, crop_size=list(crop), is_training=False,
          model_variant=m.model_variant, min_resize_value=m.min_resize_value,
          max_resize_value=m.max_resize_value, resize_factor=m.resize_factor,
          keep_aspect_ratio=m.keep_aspect_ratio, ignore_label=ignore_label,
          should_repeat=repeat)
      self.batch = tf.data.make_one_shot_iterator(ds).get_next()
      images = self.batch["image"]
      images.set_shape([None, crop[0], crop[1], 3])
      self.predictions, _ = inference.predict(images, m, crop, scales, add_flipped_images)
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
  fetch_examples = dict(fetch, label=b["label"], name=b["image_name"], image=b["image"],
                        height=b["height"], width=b["width"])
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
    if "larger than" not in str(e):
      raise
    detail = str(e).strip().splitlines()[0][:300]
    raise UserInputError(
        f"an image is larger than the crop size ({detail}); pass a larger --eval_crop_size / "
        "--vis_crop_size, or leave it unset to use the split's largest image") from e


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
