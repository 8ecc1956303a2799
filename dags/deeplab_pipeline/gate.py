"""The blessing gate (TFX Evaluator -> Pusher): export and promote only a model good enough."""

from __future__ import annotations

from typing import Any, Mapping, Optional


def find_miou(metrics: Mapping[str, Any]) -> Optional[float]:
  """mIoU from an evaluate result or metrics.json ('miou' or 'mean_iou', top level or nested)."""
  for key in ("miou", "mean_iou", "mIoU"):
    if isinstance(metrics.get(key), (int, float)):
      return float(metrics[key])
  for value in metrics.values():
    if isinstance(value, Mapping):
      found = find_miou(value)
      if found is not None:
        return found
  return None


def decide(miou: Optional[float], *, min_miou: float, tolerance: float,
           champion: Optional[Mapping[str, Any]]) -> dict:
  """{"passed": bool, "reason": str, "miou", "threshold", "champion_miou"}."""
  champion_miou = (champion or {}).get("miou")
  threshold = float(min_miou)
  if isinstance(champion_miou, (int, float)):
    threshold = max(threshold, float(champion_miou) - float(tolerance))
  out = {"miou": miou, "min_miou": min_miou, "tolerance": tolerance,
         "champion_miou": champion_miou, "threshold": threshold}
  if miou is None:
    return {**out, "passed": False, "reason": "evaluation reported no mIoU"}
  if miou < min_miou:
    return {**out, "passed": False,
            "reason": f"mIoU {miou:.4f} is below min_miou {min_miou:.4f}: not exported"}
  if miou < threshold:
    return {**out, "passed": False,
            "reason": (f"mIoU {miou:.4f} is worse than the champion's {champion_miou:.4f} minus "
                       f"tolerance {tolerance:.4f}: the champion stays")}
  vs = (f" (champion {champion_miou:.4f}, tolerance {tolerance:.4f})"
        if champion_miou is not None else " (no champion yet)")
  return {**out, "passed": True, "reason": f"mIoU {miou:.4f} >= {threshold:.4f}{vs}"}
