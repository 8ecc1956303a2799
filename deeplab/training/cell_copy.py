"""The run folder keeps its own copy of the dense prediction cell (--dense_prediction_cell_json).

The cell file is an input like the dataset: if it changed or disappeared after training, the
run's config.json would describe a model nobody can rebuild. Training therefore copies the
(validated) file into the run folder as `dense_prediction_cell.json` and config.json points at
that copy, so evaluate, vis and export read the cell the checkpoint was trained with.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from deeplab import storage
from deeplab.config import TrainConfig
from deeplab.config import dense_prediction_cell
from deeplab.errors import UserInputError
from deeplab.training.logdir import TrainLogdir

log = logging.getLogger("deeplab.train")

CELL_COPY = "dense_prediction_cell.json"


def copy_uri(logdir: TrainLogdir) -> str:
  """Where the run's copy lives (absolute, so config.json works from any directory)."""
  base = logdir.uri if logdir.is_gcs else os.path.abspath(logdir.uri)
  return storage.join(base, CELL_COPY)


def with_cell_copy(logdir: TrainLogdir, cfg: TrainConfig) -> TrainConfig:
  """Copies the cell into the run folder; returns `cfg` pointing at the copy (unchanged
  without a cell).

  Raises:
    ConfigError: the cell file is unreadable or malformed (naming it).
    UserInputError: the run folder already holds a different cell (a resumed run would mix
      two models).
  """
  source = cfg.model.dense_prediction_cell_json
  if not source:
    return cfg
  target = copy_uri(logdir)
  if source != target:
    cell = dense_prediction_cell.load(source)
    if storage.exists(target):
      kept = dense_prediction_cell.load(target)
      if kept != cell:
        raise UserInputError(
            f"{cfg.train_logdir} was trained with the dense prediction cell in {target}, which "
            f"differs from {source}; resume with --dense_prediction_cell_json={target} or use a "
            "fresh --train_logdir")
    else:
      logdir.write_text(CELL_COPY, json.dumps(cell, indent=2) + "\n")
      log.info("copied the dense prediction cell %s into the run folder (%s)", source, target)
  model = dataclasses.replace(cfg.model, dense_prediction_cell_json=target)
  return dataclasses.replace(cfg, model=model)
