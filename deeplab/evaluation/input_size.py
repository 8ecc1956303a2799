"""The inference size policy: how an image of any size becomes the network's input.

One policy for evaluate, vis, the champion evaluation, the export and its self-check:

* own size (the default): each image is padded (bottom/right, mean pixel) only to its own
  output_stride*k+1, and the image-pooling branch averages over the image's own cells, never
  its padding; a prediction then depends on its own image alone, and costs its own size.
  Images whose long side exceeds `max_size` are first resized into range (resize_to_range,
  as the original export_model.py does) and their prediction resized back, which bounds
  memory whatever the input size.
* fixed crop (`--eval_crop_size`, `--vis_crop_size`, export's `--crop_size`): the original's
  model-zoo behaviour, every image padded to one crop and pooled over it; a larger image is
  refused unless min/max_resize_value shrink it.

Metrics are always computed against the label at its original size. evaluate records the
policy in metrics.json (`record`); export reads it back (`read_recorded`), so what is
served is exactly what was scored.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Optional, Sequence, Tuple

from deeplab import run_config, storage
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)

# The long side above which an own-size image is resized into range when neither
# --inference_max_size nor max_resize_value is set: Cityscapes' 2048 fits untouched, a
# 4000x3000 phone photo is shrunk (docs/export.md has the measured memory).
DEFAULT_MAX_SIZE = 2049
OWN_SIZE, FIXED_CROP = "own_size", "fixed_crop"
# resize_to_range settings: model settings in config.json, but they only shape the input.
RESIZE_KEYS = ("min_resize_value", "max_resize_value", "resize_factor", "keep_aspect_ratio")
# What evaluate records in metrics.json and its result JSON, and export reads back.
SIZE_KEYS = ("inference_size", "eval_crop_size", "inference_max_size", "eval_scales",
             "add_flipped_images") + RESIZE_KEYS


@dataclasses.dataclass(frozen=True)
class InferencePolicy:
  """Everything that shapes a prediction's input besides the image itself.

  Attributes:
    model: the run's model, with the resize_to_range settings in force.
    crop_size: a fixed crop (model-zoo mode), or None for each image at its own size.
    max_size: own size only: the long-side bound (0 = none).
    scales, add_flipped_images: multi-scale / flipped inference.
  """

  model: ModelConfig
  crop_size: Optional[Tuple[int, int]] = None
  max_size: int = DEFAULT_MAX_SIZE
  scales: Tuple[float, ...] = (1.0,)
  add_flipped_images: bool = False

  @property
  def fixed(self) -> bool:
    return self.crop_size is not None

  def resize_bounds(self) -> Tuple[Optional[int], Optional[int]]:
    """(min_size, max_size) for resize_to_range; (None, None) = no resize at all."""
    m = self.model
    if self.fixed:
      return m.min_resize_value or None, m.max_resize_value or None
    return m.min_resize_value or None, self.max_size or None

  def padded_size(self, height: int, width: int) -> Tuple[int, int]:
    """The network input for an image of this (already resized) size."""
    if self.fixed:
      return tuple(self.crop_size)
    return run_config.auto_crop_size(height, width, self.model.output_stride)

  def resized_size(self, height: int, width: int) -> Tuple[int, int]:
    """The size resize_to_range gives (python twin of preprocess.resize_to_range, for logs
    and refusals; the graph computes its own)."""
    lo, hi = self.resize_bounds()
    if not lo and not hi:
      return height, width
    h, w = float(height), float(width)
    size = (height, width)
    if lo:
      s = lo / min(h, w)
      size = (int(math.floor(h * s)), int(math.floor(w * s)))
    if hi:
      bound = float(hi)
      if self.model.resize_factor:
        bound -= (bound - 1) % self.model.resize_factor
      if max(size) > bound:
        s = bound / max(h, w)
        size = (int(math.floor(h * s)), int(math.floor(w * s)))
    return size

  def describe(self) -> str:
    scales = "" if tuple(self.scales) == (1.0,) else f", scales {list(self.scales)}"
    flips = ", flipped" if self.add_flipped_images else ""
    if self.fixed:
      return f"fixed crop {self.crop_size[0]}x{self.crop_size[1]}{scales}{flips}"
    bound = f"long side > {self.max_size} resized into range" if self.max_size else "no bound"
    return f"each image at its own size ({bound}){scales}{flips}"


def make_policy(model_cfg: ModelConfig, crop_size: Optional[Sequence[int]] = None,
                max_size: Optional[int] = None, scales: Sequence[float] = (1.0,),
                add_flipped_images: bool = False) -> InferencePolicy:
  """The policy from settings; max_size None: max_resize_value, else DEFAULT_MAX_SIZE.

  Raises:
    UserInputError: a negative max_size.
  """
  if max_size is not None and max_size < 0:
    raise UserInputError(f"--inference_max_size must be >= 0 (0: no bound), got {max_size}")
  if max_size is None:
    max_size = model_cfg.max_resize_value or DEFAULT_MAX_SIZE
  crop = tuple(int(c) for c in crop_size) if crop_size else None
  return InferencePolicy(model=model_cfg, crop_size=crop, max_size=int(max_size),
                         scales=tuple(float(s) for s in scales),
                         add_flipped_images=bool(add_flipped_images))


def record(policy: InferencePolicy) -> dict:
  """The SIZE_KEYS entries evaluate writes into metrics.json."""
  out = {"inference_size": FIXED_CROP if policy.fixed else OWN_SIZE,
         "eval_crop_size": list(policy.crop_size) if policy.fixed else None,
         "inference_max_size": None if policy.fixed else policy.max_size,
         "eval_scales": [float(s) for s in policy.scales],
         "add_flipped_images": bool(policy.add_flipped_images)}
  out.update({k: getattr(policy.model, k) for k in RESIZE_KEYS})
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
    raise UserInputError(f"{uri} does not record the evaluation's inference policy "
                         f"({', '.join(missing)} missing): re-run evaluate with this version, "
                         "or pass --crop_size / --inference_max_size (and any "
                         "--min/max_resize_value) yourself")
  out = {k: doc[k] for k in SIZE_KEYS}
  if doc["inference_size"] == FIXED_CROP:
    out["eval_crop_size"] = list(run_config.parse_crop_size(doc["eval_crop_size"],
                                                            "eval_crop_size in " + uri))
  elif doc["inference_size"] != OWN_SIZE:
    raise UserInputError(f"{uri}: inference_size {doc['inference_size']!r} is neither "
                         f"{OWN_SIZE!r} nor {FIXED_CROP!r}")
  return out


def policy_from_recorded(model_cfg: ModelConfig, recorded: dict) -> InferencePolicy:
  """The policy evaluate recorded (read_recorded's dict), for the run's model."""
  return make_policy(with_resize(model_cfg, recorded), recorded.get("eval_crop_size"),
                     recorded.get("inference_max_size") or 0, recorded["eval_scales"],
                     recorded["add_flipped_images"])


def with_resize(model_cfg: ModelConfig, settings: dict) -> ModelConfig:
  """model_cfg with the RESIZE_KEYS of `settings` (keys absent from it keep their value)."""
  return dataclasses.replace(model_cfg, **{k: settings[k] for k in RESIZE_KEYS if k in settings})
