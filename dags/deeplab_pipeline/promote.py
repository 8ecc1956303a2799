"""Promotion: the champion pointer models/<name>/champion.json, written atomically and last."""

from __future__ import annotations

import datetime
from typing import Any, Mapping


def champion_record(plan: Mapping[str, Any], *, decision: Mapping[str, Any],
                    export_result: Mapping[str, Any], train_result: Mapping[str, Any]) -> dict:
  return {
      "model_name": plan["model_name"],
      "run_id": plan["run_id"],
      "miou": decision["miou"],
      "export_path": plan["export_path"],
      "frozen_graph": export_result.get("frozen_graph")
      or export_result.get("frozen_inference_graph"),
      "saved_model": export_result.get("saved_model"),
      "checkpoint": train_result.get("checkpoint"),
      "dataset_dir": plan["dataset_dir"],
      "dataset_fingerprint": plan["fingerprint"],
      "config_hash": plan["config_hash"],
      "config_uri": plan["config_uri"],
      "eval_logdir": plan["eval_logdir"],
      "promoted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def asset_uri(uri: str) -> str:
  """Asset URIs need a scheme: local paths become file:// URIs."""
  return uri if "://" in uri else "file://" + uri
