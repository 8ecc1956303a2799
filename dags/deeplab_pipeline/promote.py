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
      "formats": list(export_result.get("formats") or []),
      "files": exported_files(export_result, decision["miou"]),
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


def exported_files(export_result: Mapping[str, Any], miou: float) -> list:
  """[{path, bytes, sha256, format, miou}] of every exported file (issue 20).

  A device format's file carries the mIoU it scored on the eval split at export; the frozen
  graph and the SavedModel predict exactly what evaluate scored, so they carry its mIoU.
  """
  device = export_result.get("device_formats") or {}
  by_file = {v["file"]: (fmt, v["miou"]) for fmt, v in device.items() if isinstance(v, dict)}
  out = []
  for f in export_result.get("files") or []:
    fmt, file_miou = by_file.get(f["path"], (None, miou))
    if fmt is None:
      fmt = "saved_model" if f["path"].startswith("saved_model/") else "frozen"
    out.append({**f, "format": fmt, "miou": file_miou})
  return out


def formats_table(export_result: Mapping[str, Any]) -> str:
  """The export's device formats as a Markdown table (format, file, size, pixel agreement,
  mIoU, verdict) from its result JSON; '' when no device format was exported."""
  from deeplab.exporting import report

  frozen = str(export_result.get("frozen_graph") or "").rsplit("/", 1)[-1]
  return report.markdown(report.rows(export_result.get("device_formats"),
                                     export_result.get("files") or [], frozen))
