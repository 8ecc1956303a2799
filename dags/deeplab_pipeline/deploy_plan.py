"""What the deploy and rollback DAGs push: decided on the Airflow side, pushed by a job.

`plan_deploy` turns a run's trigger (the model Asset's event, or the form) into the flags of
`python -m deeplab deploy`; `plan_rollback` finds in history.jsonl the version to serve again.
Both raise PlanError for what a retry cannot fix (the DAGs fail the task without retrying).
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, Iterable, Mapping, Optional, Tuple

from deeplab_pipeline import champion as ch
from deeplab_pipeline import history

log = logging.getLogger(__name__)

PREVIOUS = "previous"
ROLLBACK_TARGET_PATTERN = r"^(previous|[1-9][0-9]{0,9})$"


class PlanError(ValueError):
  """Bad input for a deploy or a rollback: retrying cannot help."""


def _check_split(champion: Mapping[str, Any]) -> Optional[str]:
  """The split the champion was scored on (its metrics.json), for the request check's images."""
  from deeplab import storage
  eval_logdir = champion.get("eval_logdir")
  if not eval_logdir:
    return None
  uri = storage.join(eval_logdir, "metrics.json")
  try:
    return storage.read_json(uri).get("eval_split") if storage.exists(uri) else None
  except ValueError:
    return None


def _export_must_exist(export_path: str, what: str) -> None:
  from deeplab import storage
  from deeplab.export import EXPORT_RESULT  # pure Python at import (the command is lazy)
  uri = storage.join(export_path.rstrip("/"), EXPORT_RESULT)
  if not storage.exists(uri):
    raise PlanError(f"{uri} does not exist: {what} is not an export folder (or it was deleted); "
                    "give the folder `python -m deeplab export` wrote")


def plan_deploy(params: Mapping[str, Any], events: Iterable[Tuple[str, Any]], *,
                storage_root: str, serving_base_path: str, triggered_by: str) -> dict:
  """The deploy job's inputs for one run.

  Args:
    params: the run's Params (model_name, export_path, push_id, launcher).
    events: (asset name, extra) of the events that triggered the run, oldest first; empty for
      a run started by hand.
    storage_root, serving_base_path: the installation's settings.
    triggered_by: who or what started the run, for history.jsonl.

  Returns:
    {model_name, export_path, serving_base_path, flags, champion, history_uri, triggered_by,
     launcher, skip_reason}; skip_reason is non-empty when there is nothing to push.
  """
  model_name, extra, others = ch.model_from_events(events)
  skip = ""
  if model_name is None:
    model_name = params["model_name"]
  else:
    if others:
      log.warning("events for models %s arrived too: this run deploys %s (trigger the "
                  "others by hand)", others, model_name)
    if extra.get("pushed_version"):
      skip = (f"the model Asset event came from a rollback, which already pushed version "
              f"{extra['pushed_version']} of {model_name}")
  champion = ch.read_champion(storage_root, model_name)
  export_path = (params.get("export_path") or "").strip() or champion["export_path"]
  from_champion = export_path.rstrip("/") == str(champion["export_path"]).rstrip("/")
  if not from_champion:
    _export_must_exist(export_path, "export_path")
  flags = {"push_id": (params.get("push_id") or "").strip() or None}
  if from_champion:
    flags.update(dataset_dir=champion.get("dataset_dir"), check_split=_check_split(champion))
  return {
      "model_name": model_name,
      "export_path": export_path,
      "serving_base_path": serving_base_path,
      "flags": flags,
      # Only an export that is the champion's carries its record (a rollback restores it).
      "champion": dict(champion) if from_champion else None,
      "history_uri": history.history_uri(storage_root, model_name),
      "triggered_by": triggered_by,
      "launcher": params.get("launcher") or "local",
      "skip_reason": skip,
  }


def rollback_push_id(run_id: str) -> str:
  """One push id per rollback run: its retries find their version instead of pushing again."""
  return "rollback-" + hashlib.sha256(run_id.encode()).hexdigest()[:16]


def choose_target(entries: list, served: Optional[int], target: str, uri: str) -> Tuple[dict, dict]:
  """(the served version's line, the line of the version to serve again).

  "previous": the newest line before the served one whose export differs from the served
  export (so a rollback of a rollback goes back, not to the same model); a number: that
  version's line.
  """
  if served is None:
    raise PlanError(f"nothing is served: no complete version under the serving folder, so "
                    f"there is nothing to roll back from ({uri} has {len(entries)} lines)")
  current = [e for e in entries if e["version"] == served]
  if not current:
    raise PlanError(f"the served version {served} is not in {uri}: it was not pushed by the "
                    "deploy DAG; roll back by pushing an export with `python -m deeplab deploy`")
  current_line = current[-1]
  if target == PREVIOUS:
    before = [e for e in entries[:entries.index(current_line)]
              if e["export_path"].rstrip("/") != current_line["export_path"].rstrip("/")]
    if not before:
      raise PlanError(f"nothing to roll back to: {uri} has no version before {served} with "
                      f"another export than {current_line['export_path']}")
    return current_line, before[-1]
  if not re.match(ROLLBACK_TARGET_PATTERN, str(target)):
    raise PlanError(f"target {target!r} must be 'previous' or a version number")
  wanted = [e for e in entries if e["version"] == int(target)]
  if not wanted:
    known = sorted({e["version"] for e in entries})
    raise PlanError(f"version {target} is not in {uri} (versions recorded: {known}); choose one "
                    "of them or 'previous'")
  if int(target) == served:
    raise PlanError(f"version {target} is already the served version")
  return current_line, wanted[-1]


def plan_rollback(params: Mapping[str, Any], *, run_id: str, storage_root: str,
                  serving_base_path: str, triggered_by: str) -> dict:
  """The deploy job's inputs that serve a former version again, as the next version."""
  from deeplab import storage
  from deeplab.serving import push

  model_name = params["model_name"]
  uri = history.history_uri(storage_root, model_name)
  entries = history.read(uri)
  if not entries:
    raise PlanError(f"nothing to roll back to: {uri} "
                    + ("is empty" if storage.exists(uri) else "does not exist")
                    + f"; model {model_name!r} was never pushed by the deploy DAG")
  model_dir = storage.join(serving_base_path, model_name)
  served = push.newest(model_dir)
  current, target = choose_target(entries, served, str(params.get("target") or PREVIOUS), uri)
  _export_must_exist(target["export_path"], f"the export of version {target['version']}")
  champion = target.get("champion")
  flags = {"push_id": rollback_push_id(run_id)}
  if champion:
    flags.update(dataset_dir=champion.get("dataset_dir"), check_split=_check_split(champion))
  return {
      "model_name": model_name,
      "export_path": target["export_path"],
      "serving_base_path": serving_base_path,
      "flags": flags,
      "champion": champion,
      "history_uri": uri,
      "triggered_by": triggered_by,
      "launcher": params.get("launcher") or "local",
      "skip_reason": "",
      "rolled_back_from": current["version"],
      "rolled_back_to": target["version"],
  }
