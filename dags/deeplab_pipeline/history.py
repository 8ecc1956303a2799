"""models/<name>/history.jsonl: one JSON line per push of the model to serving.

Every line is a push (event "deploy": a promotion reached serving; "rollback": a former
version's export pushed again as the newest). The file is what the rollback DAG reads to find
what was served before, and what a person reads to see what was served when.

Appending is atomic and idempotent: under the model folder's lease (the one the jobs use),
the whole file is rewritten with the new line (tmp + rename locally, one object on gs://), so
a reader never sees half a line; a line whose (push_id, version) is already there is not
written again, so a retried task appends nothing twice.
"""

from __future__ import annotations

import json
import logging
from typing import Any, List, Mapping, Optional

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
# What every line holds; `champion` (the champion record at push time, when the pushed export
# was the champion's) lets a rollback re-point champion.json.
FIELDS = ("event", "model_name", "version", "push_id", "champion_run", "checkpoint",
          "export_path", "model_dir", "time", "triggered_by")
LEASE_WAIT_SECONDS = 60.0


class HistoryError(ValueError):
  """history.jsonl cannot be read or lacks what was asked for: retrying cannot help."""


def history_uri(storage_root: str, model_name: str) -> str:
  from deeplab import storage
  return storage.join(storage_root, "models", model_name, HISTORY_FILE)


def parse(text: str, uri: str) -> List[dict]:
  entries = []
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    try:
      entry = json.loads(line)
    except ValueError as e:
      raise HistoryError(f"{uri} line {number} is not JSON ({e}); fix or remove that line") from e
    if not isinstance(entry, dict) or not isinstance(entry.get("version"), int):
      raise HistoryError(f"{uri} line {number} has no integer 'version'; fix or remove it")
    entries.append(entry)
  return entries


def read(uri: str) -> List[dict]:
  """Every line of the history, oldest first (an absent file: none)."""
  from deeplab import storage
  if not storage.exists(uri):
    return []
  return parse(storage.read_text(uri), uri)


def make_entry(event: str, *, model_name: str, result: Mapping[str, Any],
               champion: Optional[Mapping[str, Any]], triggered_by: str,
               **extra: Any) -> dict:
  """A history line from the deploy command's result JSON (deeplab/deploy.py)."""
  import datetime
  entry = {
      "event": event,
      "model_name": model_name,
      "version": int(result["version"]),
      "push_id": result["push_id"],
      "champion_run": (champion or {}).get("run_id"),
      "checkpoint": result.get("checkpoint"),
      "export_path": result["export_path"],
      "model_dir": result["model_dir"],
      "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "triggered_by": triggered_by,
      **extra,
  }
  if champion:
    entry["champion"] = dict(champion)
  return entry


def append(uri: str, entry: Mapping[str, Any], wait_seconds: float = LEASE_WAIT_SECONDS) -> bool:
  """Appends `entry` unless a line with its push_id and version is already there.

  Returns:
    True if the line was written, False if it was already there (a retry).
  """
  from deeplab import storage
  from deeplab.storage import lease

  missing = [f for f in FIELDS if f not in entry]
  if missing:
    raise ValueError(f"a history line needs {', '.join(missing)}")
  folder = uri.rsplit("/", 1)[0]
  if not storage.is_gcs(folder):
    import os
    os.makedirs(folder, exist_ok=True)

  def lost(reason: str) -> None:  # the write below is one atomic object: nothing half-done
    log.warning("%s", reason)

  with lease.hold(folder, f"append to {uri}", wait_seconds=wait_seconds, on_lost=lost):
    text = storage.read_text(uri) if storage.exists(uri) else ""
    key = (entry["push_id"], entry["version"])
    if any((e.get("push_id"), e.get("version")) == key for e in parse(text, uri)):
      log.info("%s already records push %s (version %s): not appended again", uri, *key)
      return False
    if text and not text.endswith("\n"):
      text += "\n"
    storage.write_text(uri, text + json.dumps(dict(entry), sort_keys=True) + "\n")
    return True
