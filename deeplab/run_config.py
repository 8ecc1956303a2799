"""Finds a run's checkpoint and its config.json, and the automatic eval crop size.

evaluate, vis and export rebuild the model from the `config.json` that training wrote next
to its checkpoints (train_logdir), or one folder up (runs/<run_id>/config.json), so the
graph always matches what was trained (reference/deeplab.md §8 item 6).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import posixpath
import re
from typing import Optional, Sequence, Tuple

from deeplab import storage
from deeplab.config import ModelConfig, TrainConfig, load_train_config
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
CHECKPOINT_INDEX = "checkpoint"
_STEP_RE = re.compile(r"-(\d+)$")
_PATH_RE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)


def _dirname(uri: str) -> str:
  return posixpath.dirname(uri) if storage.is_gcs(uri) else os.path.dirname(uri)


def _basename(uri: str) -> str:
  return posixpath.basename(uri) if storage.is_gcs(uri) else os.path.basename(uri)


def latest_checkpoint(checkpoint_dir: str) -> str:
  """The checkpoint prefix named by `<checkpoint_dir>/checkpoint` (local or gs://).

  Unlike the original eval.py this never waits: a folder without a checkpoint is an error.

  Raises:
    UserInputError: no `checkpoint` index file, or it names no checkpoint.
  """
  index = storage.join(checkpoint_dir, CHECKPOINT_INDEX)
  if not storage.exists(index):
    raise UserInputError(
        f"{checkpoint_dir} holds no checkpoint (no '{CHECKPOINT_INDEX}' index file): point "
        "--checkpoint_dir at a train_logdir that has finished saving, or pass "
        "--checkpoint_path=<dir>/model.ckpt-<step>")
  match = _PATH_RE.search(storage.read_text(index))
  if not match:
    raise UserInputError(f"{index} names no model_checkpoint_path; re-run training or pass "
                         "--checkpoint_path")
  # Saver writes absolute paths; the folder may have moved (or be a gs:// copy): keep the name.
  return storage.join(checkpoint_dir, _basename(match.group(1)))


def resolve_checkpoint(checkpoint_dir: Optional[str], checkpoint_path: Optional[str]) -> str:
  """--checkpoint_path wins; else the latest checkpoint in --checkpoint_dir."""
  if checkpoint_path:
    if checkpoint_path.endswith(".index"):
      checkpoint_path = checkpoint_path[:-len(".index")]
    if not storage.exists(checkpoint_path + ".index"):
      raise UserInputError(
          f"checkpoint {checkpoint_path} not found (no {_basename(checkpoint_path)}.index); pass "
          "the prefix, e.g. <train_logdir>/model.ckpt-1000")
    return checkpoint_path
  if not checkpoint_dir:
    raise UserInputError("pass --checkpoint_dir (a train_logdir) or --checkpoint_path")
  return latest_checkpoint(checkpoint_dir)


def checkpoint_step(checkpoint: str) -> Optional[int]:
  """1000 for '.../model.ckpt-1000'; None when the name carries no step."""
  match = _STEP_RE.search(checkpoint)
  return int(match.group(1)) if match else None


def stage_checkpoint(checkpoint: str) -> str:
  """A local checkpoint prefix (gs:// checkpoints are downloaded to the verified cache)."""
  try:
    return storage.stage_in(checkpoint)
  except storage.NotFoundError as e:
    raise UserInputError(f"checkpoint {checkpoint} not found: {e}") from e


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
