"""The input size settings: what evaluation scores with, recorded, and what export serves with.

One rule for both. The crop is the smallest output_stride*k+1 (the original's requirement)
that holds the split's largest image (after resize_to_range when configured), never below the
original's 513x513 default. Predictions depend on the crop (the image-pooling branch averages
over the padded crop), so export reuses exactly the settings evaluate recorded in metrics.json:
the exported model then predicts what evaluation scored.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Optional, Sequence, Tuple

from deeplab import run_config, storage
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)

DEFAULT_CROP = (513, 513)  # the original eval.py / vis.py / export_model.py default
# resize_to_range settings: model settings in config.json, but they only shape the input.
RESIZE_KEYS = ("min_resize_value", "max_resize_value", "resize_factor", "keep_aspect_ratio")
# What evaluate records in metrics.json and its result JSON, and export reads back.
SIZE_KEYS = ("eval_crop_size", "eval_scales", "add_flipped_images") + RESIZE_KEYS


def crop_for(max_height: int, max_width: int, output_stride: int) -> Tuple[int, int]:
  """output_stride*k+1 holding a max_height x max_width input, at least DEFAULT_CROP."""
  fit = run_config.auto_crop_size(max_height, max_width, output_stride)
  return max(fit[0], DEFAULT_CROP[0]), max(fit[1], DEFAULT_CROP[1])


def choose_crop(model_cfg: ModelConfig,
                largest_image: Optional[Callable[[], Tuple[int, int]]]) -> Tuple[int, int]:
  """The automatic crop: resize_to_range's bound, else the largest image, else DEFAULT_CROP.

  Args:
    model_cfg: the run's model (output_stride and resize settings).
    largest_image: returns the split's (max height, max width); None when there is no split.

  Raises:
    UserInputError: min_resize_value without max_resize_value (the resized size is unbounded).
  """
  if model_cfg.max_resize_value:
    max_h = max_w = int(model_cfg.max_resize_value)
    why = f"max_resize_value {max_h}"
  elif model_cfg.min_resize_value:
    raise UserInputError("min_resize_value without max_resize_value: the resized image size is "
                         "unbounded; pass a crop size (--eval_crop_size, --vis_crop_size or "
                         "--crop_size) or set --max_resize_value")
  elif largest_image is None:
    log.info("crop size %s (the original default; no split to measure)", DEFAULT_CROP)
    return DEFAULT_CROP
  else:
    max_h, max_w = largest_image()
    why = f"largest image {max_h}x{max_w}"
  crop = crop_for(max_h, max_w, model_cfg.output_stride)
  log.info("crop size %s (%s, output_stride %d, at least %dx%d)", crop, why,
           model_cfg.output_stride, *DEFAULT_CROP)
  return crop


def record(crop: Sequence[int], model_cfg: ModelConfig, scales: Sequence[float],
           add_flipped_images: bool) -> dict:
  """The SIZE_KEYS entries evaluate writes: everything that shapes a prediction's input."""
  out = {"eval_crop_size": [int(c) for c in crop], "eval_scales": [float(s) for s in scales],
         "add_flipped_images": bool(add_flipped_images)}
  out.update({k: getattr(model_cfg, k) for k in RESIZE_KEYS})
  return out


def read_recorded(uri: str) -> dict:
  """The SIZE_KEYS entries of an evaluate metrics.json (local or gs://).

  Raises:
    UserInputError: the file is missing, is not evaluate's metrics.json, or predates SIZE_KEYS.
  """
  if not storage.exists(uri):
    raise UserInputError(f"--eval_metrics_json {uri} does not exist; pass the metrics.json "
                         "that `python -m deeplab evaluate` wrote into its --eval_logdir")
  doc = storage.read_json(uri)
  missing = [k for k in SIZE_KEYS if not isinstance(doc, dict) or k not in doc]
  if missing:
    raise UserInputError(f"{uri} does not record the evaluation's input size ({', '.join(missing)} "
                         "missing): re-run evaluate with this version, or pass --crop_size "
                         "(and any --min/max_resize_value) yourself")
  crop = run_config.parse_crop_size(doc["eval_crop_size"], "eval_crop_size in " + uri)
  return dict({k: doc[k] for k in SIZE_KEYS}, eval_crop_size=list(crop))


def with_resize(model_cfg: ModelConfig, settings: dict) -> ModelConfig:
  """model_cfg with the RESIZE_KEYS of `settings` (keys absent from it keep their value)."""
  return dataclasses.replace(model_cfg, **{k: settings[k] for k in RESIZE_KEYS if k in settings})
