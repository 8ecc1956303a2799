"""Finding checkpoints: the one place that reads `checkpoint` index files and step numbers.

Local paths and gs:// URIs alike; gs:// checkpoints are staged into the verified cache.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Optional

from deeplab import storage
from deeplab.errors import UserInputError

CHECKPOINT_INDEX = "checkpoint"
_STEP_RE = re.compile(r"-(\d+)$")
_PATH_RE = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.MULTILINE)


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


def find_checkpoint(checkpoint_dir: Optional[str], checkpoint_path: Optional[str]) -> str:
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
