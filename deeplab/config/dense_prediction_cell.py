"""Reading and checking a dense prediction cell file (--dense_prediction_cell_json), TF-free.

The original's format (core/dense_prediction_cell.py): a JSON list of branches, each
{"op": "conv", "kernel": 1 or 3 (or [k, k]), "rate": [r_h, r_w], "input": i} or
{"op": "pyramid_pooling", "grid_size": [g_h, g_w], "input": i}, where "input" is -1 for the
backbone features or the index of an earlier branch. The cell the DeepLab paper (DPC) found
for Cityscapes ships as deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json, a
verbatim copy of tensorflow/models research/deeplab/core's file of that name (Apache 2.0,
Copyright The TensorFlow Authors).
"""

from __future__ import annotations

import json
import pathlib
from typing import List

from deeplab.errors import ConfigError

BUNDLED_CITYSCAPES_CELL = (pathlib.Path(__file__).parents[1] / "core" /
                           "dense_prediction_cell_branch5_top1_cityscapes.json")
OPS = ("conv", "pyramid_pooling")


def _pair(value) -> bool:
  return (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value))


def _branch_problems(i: int, branch) -> List[str]:
  where = f"branch {i}"
  if not isinstance(branch, dict):
    return [f"{where} must be an object such as "
            '{"op": "conv", "kernel": 3, "rate": [1, 6], "input": -1}']
  out = []
  op = branch.get("op")
  if op not in OPS:
    out.append(f"{where}: key 'op' must be one of {list(OPS)}, got {op!r}")
  source = branch.get("input")
  if not isinstance(source, int) or isinstance(source, bool) or not -1 <= source < i:
    out.append(f"{where}: key 'input' must be -1 (the backbone features) or the index of an "
               f"earlier branch (0..{i - 1}), got {source!r}")
  if op == "conv":
    kernel = branch.get("kernel")
    if kernel not in (1, 3, [1, 1], [3, 3]):
      out.append(f"{where}: key 'kernel' must be 1 or 3 (or [1, 1], [3, 3]), got {kernel!r}")
    elif kernel not in (1, [1, 1]) and not _pair(branch.get("rate")):
      out.append(f"{where}: key 'rate' must be two positive integers [rate_h, rate_w], "
                 f"got {branch.get('rate')!r}")
  if op == "pyramid_pooling" and not _pair(branch.get("grid_size")):
    out.append(f"{where}: key 'grid_size' must be two positive integers, "
               f"got {branch.get('grid_size')!r}")
  return out


def parse(text: str, source: str) -> list:
  """The validated cell in `text` (read from `source`).

  Raises:
    ConfigError: naming `source` and every bad key, when the cell is malformed.
  """
  try:
    cell = json.loads(text)
  except ValueError as e:
    raise ConfigError(f"dense_prediction_cell_json {source}: not valid JSON ({e}); fix the "
                      "file (see docs/compatibility.md for the format)") from None
  if not isinstance(cell, list) or not cell:
    raise ConfigError(f"dense_prediction_cell_json {source}: expected a non-empty JSON list "
                      f"of branches, got {type(cell).__name__}")
  problems = [p for i, branch in enumerate(cell) for p in _branch_problems(i, branch)]
  if problems:
    raise ConfigError(f"dense_prediction_cell_json {source}: " + "; ".join(problems))
  return cell


def load(path: str) -> list:
  """Reads and validates a cell from a local path or a gs:// URI.

  Raises:
    ConfigError: the file is missing, unreadable or malformed.
  """
  from deeplab import storage

  try:
    text = storage.read_text(path)
  except (OSError, storage.NotFoundError) as e:
    raise ConfigError(f"dense_prediction_cell_json {path}: cannot read it ({e}); check the "
                      f"path (the paper's Cityscapes cell ships as {BUNDLED_CITYSCAPES_CELL})"
                      ) from None
  return parse(text, path)
