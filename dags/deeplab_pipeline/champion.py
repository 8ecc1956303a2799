"""The promoted model as the serving DAGs see it: models/<name>/champion.json and its Asset.

Airflow side only (no TensorFlow): the deploy and rollback DAGs read the pointer here and hand
the export to `python -m deeplab deploy`, which runs where TensorFlow is.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

# Promotion adds one Asset per model through this alias (dags/deeplab_retrain.py); the deploy
# DAG is scheduled on it. The Asset of model <name> is "deeplab_model/<name>".
MODEL_ALIAS_NAME = "deeplab_model"
MODEL_ASSET_PREFIX = MODEL_ALIAS_NAME + "/"
CHAMPION_FILE = "champion.json"


class NoChampion(ValueError):
  """There is no usable champion pointer: retrying cannot help."""


def model_asset_name(model_name: str) -> str:
  return MODEL_ASSET_PREFIX + model_name


def model_dir(storage_root: str, model_name: str) -> str:
  from deeplab import storage
  return storage.join(storage_root, "models", model_name)


def champion_uri(storage_root: str, model_name: str) -> str:
  from deeplab import storage
  return storage.join(model_dir(storage_root, model_name), CHAMPION_FILE)


def read_champion(storage_root: str, model_name: str) -> dict:
  """The champion record of `model_name`.

  Raises:
    NoChampion: the file is absent, not JSON, or names no export.
  """
  from deeplab import storage

  uri = champion_uri(storage_root, model_name)
  if not storage.exists(uri):
    raise NoChampion(
        f"{uri} does not exist: model {model_name!r} has no champion yet. Promote one with the "
        "deeplab_retrain DAG (its promote task writes this file), or check the model name.")
  try:
    record = storage.read_json(uri)
  except ValueError as e:
    raise NoChampion(f"{uri} is not valid JSON ({e}); promote again to rewrite it") from e
  if not isinstance(record, dict) or not record.get("export_path"):
    raise NoChampion(f"{uri} names no export_path: it was not written by promote; promote "
                     "again to rewrite it")
  return record


def model_from_events(events: Iterable[Tuple[str, Any]]) -> Tuple[Optional[str], dict, list]:
  """(model name of the newest model event, that event's extra, the other models named) from
  (asset name, extra) pairs in time order; (None, {}, []) when no event is a model Asset's."""
  found = [(name[len(MODEL_ASSET_PREFIX):], dict(extra or {})) for name, extra in events
           if name.startswith(MODEL_ASSET_PREFIX)]
  if not found:
    return None, {}, []
  name, extra = found[-1]
  return name, extra, sorted({n for n, _ in found} - {name})
