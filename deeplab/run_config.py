"""A checkpoint's run configuration (config.json) and the automatic eval crop size.

evaluate, vis and export rebuild the model from the `config.json` that training wrote next
to its checkpoints (train_logdir), or one folder up (runs/<run_id>/config.json), so the
graph always matches what was trained: model flags on their command lines only describe
checkpoints that come without one (docs/compatibility.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import posixpath
from typing import Optional, Sequence, Tuple

from deeplab import storage
from deeplab.config import ModelConfig, TrainConfig, load_train_config
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"


def _dirname(uri: str) -> str:
  return posixpath.dirname(uri) if storage.is_gcs(uri) else os.path.dirname(uri)


def find_config_json(checkpoint: str) -> Optional[str]:
  """config.json next to the checkpoint, else one folder up (runs/<run_id>/config.json)."""
  folder = _dirname(checkpoint)
  for candidate in (storage.join(folder, CONFIG_JSON),
                    storage.join(_dirname(folder), CONFIG_JSON)):
    if _dirname(folder) and storage.exists(candidate):
      return candidate
  return None


def load_run_config(checkpoint: str, config_json: Optional[str] = None,
                    required: bool = False) -> Tuple[Optional[TrainConfig], Optional[str]]:
  """The run's TrainConfig and where it came from (None, None when absent and not required).

  Raises:
    UserInputError: required and missing, or the file is invalid.
  """
  if config_json and not storage.exists(config_json):
    raise UserInputError(f"--config_json {config_json} does not exist; pass the config.json "
                         "that training wrote into its train_logdir")
  uri = config_json or find_config_json(checkpoint)
  if uri is None:
    if required:
      raise UserInputError(
          f"no {CONFIG_JSON} for checkpoint {checkpoint} (looked next to it and one folder "
          "up): export builds the model only from the run's config; pass --config_json=<run>/"
          "config.json")
    return None, None
  cfg = load_train_config(storage.read_text(uri), source=uri)
  problems = cfg.model.problems()
  if problems:
    raise UserInputError(f"{uri} describes an invalid model: " + "; ".join(problems))
  return cfg, uri


def auto_crop_size(max_height: int, max_width: int, output_stride: int) -> Tuple[int, int]:
  """Smallest output_stride*k+1 that is >= each side (the original FAQ's eval_crop_size rule)."""
  def fit(dim: int) -> int:
    k = max(0, math.ceil((int(dim) - 1) / output_stride))
    return output_stride * k + 1
  return fit(max_height), fit(max_width)


def parse_crop_size(value: Sequence | str | None, what: str) -> Optional[Tuple[int, int]]:
  """'513,513' / ['513', '513'] / [513, 513] -> (513, 513); None stays None."""
  if value is None or value == "" or value == []:
    return None
  items = value.split(",") if isinstance(value, str) else list(value)
  try:
    crop = tuple(int(str(v).strip()) for v in items)
  except ValueError:
    crop = ()
  if len(crop) != 2 or min(crop) < 1:
    raise UserInputError(f"--{what} must be 'height,width' with two positive integers, got "
                         f"{value!r}")
  return crop


def resolve_model_config(checkpoint: str, num_classes: int, fallback: ModelConfig,
                         config_json: Optional[str] = None) -> Tuple[ModelConfig, str]:
  """The run's model (config.json) or, for checkpoints without one, `fallback` (model flags).

  Returns:
    (model config, where it came from: the config.json URI or 'model flags').

  Raises:
    UserInputError: the config's num_classes differs from the dataset's, or the fallback
      configuration is invalid.
  """
  cfg, uri = load_run_config(checkpoint, config_json)
  if cfg is not None:
    model_cfg, source = cfg.model, uri
    log.info("model settings from %s (model flags are ignored)", uri)
  else:
    model_cfg, source = dataclasses.replace(fallback, num_classes=num_classes), "model flags"
    problems = model_cfg.problems()
    if problems:
      raise UserInputError("invalid model flags: " + "; ".join(problems))
    log.info("no %s next to %s: model settings from the model flags", CONFIG_JSON, checkpoint)
  if model_cfg.num_classes != num_classes:
    raise UserInputError(
        f"{source} has num_classes {model_cfg.num_classes} but the dataset has {num_classes} "
        "classes; evaluate with the dataset the model was trained on")
  return model_cfg, source
