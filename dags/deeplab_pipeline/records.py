"""What the deploy and rollback DAGs record once the job pushed: history.jsonl, and for a
rollback the champion pointer re-pointed to the model served again."""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping, Optional

from deeplab_pipeline import champion as ch
from deeplab_pipeline import history


def triggered_by(dag_run: Any, events: Iterable[Any] = ()) -> str:
  """"asset deeplab_model/x from deeplab_retrain/<run>" or "manual by <user>"."""
  events = list(events)
  if events:
    e = events[-1]
    source = "/".join(str(s) for s in (getattr(e, "source_dag_id", None),
                                       getattr(e, "source_run_id", None)) if s)
    return f"asset {e.asset.name}" + (f" from {source}" if source else "")
  run_type = getattr(dag_run, "run_type", "manual")
  run_type = str(getattr(run_type, "value", run_type))
  user = getattr(dag_run, "triggering_user_name", None)
  return f"{run_type} by {user}" if user else run_type


def record_deploy(plan: Mapping[str, Any], result: Mapping[str, Any]) -> dict:
  """Appends the push to history.jsonl (once per push id and version); returns the line."""
  entry = history.make_entry("deploy", model_name=plan["model_name"], result=result,
                             champion=plan.get("champion"), triggered_by=plan["triggered_by"],
                             reused=bool(result.get("reused")))
  written = history.append(plan["history_uri"], entry)
  return {**entry, "appended": written}


def record_rollback(plan: Mapping[str, Any], result: Mapping[str, Any],
                    storage_root: str) -> dict:
  """Re-points champion.json to the rolled-back-to model (when its record is known) and appends
  the rollback to history.jsonl; returns the line."""
  from deeplab import storage

  champion: Optional[Mapping[str, Any]] = plan.get("champion")
  restored = None
  if champion:
    uri = ch.champion_uri(storage_root, plan["model_name"])
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    # The record the model had when it was champion, marked as restored (written atomically).
    storage.write_json(uri, {**champion, "restored_by_rollback": {
        "at": now, "version": int(result["version"]),
        "from_version": plan["rolled_back_from"]}})
    restored = uri
  entry = history.make_entry("rollback", model_name=plan["model_name"], result=result,
                             champion=champion, triggered_by=plan["triggered_by"],
                             rolled_back_from=plan["rolled_back_from"],
                             rolled_back_to=plan["rolled_back_to"], champion_restored=restored)
  written = history.append(plan["history_uri"], entry)
  return {**entry, "appended": written}
