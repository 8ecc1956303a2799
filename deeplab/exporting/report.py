"""The device formats' scores as a table: format, file, size, pixel agreement, mIoU, verdict.

Pure Python (no numpy or TensorFlow): the export command logs it, and on the Airflow side the
promote task and the run summary (scripts/demo.py) show it from the export's result JSON.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

FROZEN_ROW = "frozen"


def summary(result: Mapping[str, Any]) -> Optional[dict]:
  """The result JSON's `device_formats` from export_result.json's: {'frozen_miou', 'split',
  format: {'file', 'bytes', 'miou', 'agreement', 'miou_drop', 'rule', 'passed'}}; None when
  no device format was scored."""
  scored = result.get("device_formats")
  if not scored:
    return None
  sizes = {f["path"]: f["bytes"] for f in result.get("files") or []}
  out: Dict[str, Any] = {"frozen_miou": scored["frozen"]["miou"], "split": scored["split"]}
  for fmt, row in scored["formats"].items():
    name = scored["files"][fmt]
    out[fmt] = {"file": name, "bytes": sizes.get(name), "miou": row["miou"],
                "agreement": row["agreement"], "miou_drop": row["miou_drop"],
                "rule": row["rule"], "passed": row["passed"]}
  return out


def rows(device: Optional[Mapping[str, Any]], files: Sequence[Mapping[str, Any]],
         frozen_graph: str) -> List[dict]:
  """One row per scored format, the frozen graph (the reference) first; [] without scores.

  Args:
    device: `summary(...)` (the result JSON's `device_formats`).
    files: the export's files [{'path', 'bytes', ...}].
    frozen_graph: the frozen graph's file name in `files`.
  """
  if not device:
    return []
  sizes = {f["path"]: f["bytes"] for f in files}
  out = [{"format": FROZEN_ROW, "file": frozen_graph, "bytes": sizes.get(frozen_graph),
          "agreement": None, "miou": device.get("frozen_miou"), "miou_drop": None,
          "verdict": "reference"}]
  for fmt, row in device.items():
    if not isinstance(row, Mapping):
      continue
    passed = row.get("passed")
    verdict = ("n/a" if passed is None else ("passed" if passed else "FAILED")) + (
        f" ({row['rule']})" if row.get("rule") else "")
    out.append({"format": fmt, "file": row.get("file"),
                "bytes": row.get("bytes", sizes.get(row.get("file"))),
                "agreement": row.get("agreement"), "miou": row.get("miou"),
                "miou_drop": row.get("miou_drop"), "verdict": verdict})
  return out


def markdown(table: Sequence[Mapping[str, Any]]) -> str:
  """`rows(...)` as a Markdown table ('' when empty)."""
  if not table:
    return ""
  lines = ["| format | file | size (MB) | pixel agreement | mIoU | mIoU drop | verdict |",
           "|---|---|---|---|---|---|---|"]
  for r in table:
    size = "n/a" if r["bytes"] is None else f"{r['bytes'] / 1e6:.2f}"
    agreement = ("frozen graph" if r["format"] == FROZEN_ROW else
                 _number(r["agreement"], lambda v: f"{100 * v:.2f}%"))
    lines.append(f"| {r['format']} | {r['file']} | {size} | {agreement} | "
                 f"{_number(r['miou'], '{:.4f}'.format)} | "
                 f"{_number(r['miou_drop'], '{:+.4f}'.format)} | {r['verdict']} |")
  return "\n".join(lines)


def _number(value: Optional[float], fmt) -> str:
  return "n/a" if value is None else fmt(value)
