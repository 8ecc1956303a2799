"""The blessing gate (TFX Evaluator -> Pusher): export and promote only a model good enough.

With a champion evaluated on this run's split (a paired comparison from
deeplab.evaluation.compare), the candidate must be
  - not worse: the bootstrap interval's lower bound of ΔmIoU >= -tolerance, or
  - significantly better: that lower bound > 0,
lose no class's IoU by more than max_class_iou_drop, and reach min_miou. Without a comparison
(no champion, or one that could not be evaluated on this split) the old rule holds: min_miou
and, with a champion, its recorded mIoU minus the tolerance.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from deeplab.datasets.class_mapping import difference as class_mapping_difference

GATE_MODES = ("not_worse", "significantly_better")
APPROVALS = ("auto", "human")
PROMOTE, KEEP = "promote", "keep_champion"


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


def _class_drops(comparison: Mapping[str, Any], max_drop: Optional[float]) -> list:
  if max_drop is None:  # no per-class rule
    return []
  return [p for p in comparison.get("per_class") or ()
          if p.get("delta") is not None and p["delta"] < -max_drop]


def _paired(miou, comparison, mode, tolerance, max_drop, out) -> dict:
  low, high = comparison["delta_ci"]
  delta = comparison["delta"]
  interval = (f"ΔmIoU {delta:+.4f} on the same {comparison.get('num_images')} images, "
              f"{round(100 * comparison.get('confidence', 0.95))}% interval "
              f"[{low:+.4f}, {high:+.4f}]")
  problems = []
  if mode == "significantly_better" and not low > 0:
    problems.append(f"{interval}: not significantly better than the champion (lower bound "
                    "must be > 0)")
  elif mode == "not_worse" and not low >= -tolerance:
    problems.append(f"{interval}: possibly worse than the champion by more than the tolerance "
                    f"{tolerance:.4f}")
  for p in _class_drops(comparison, max_drop):
    problems.append(f"class {p['class']} lost {-p['delta']:.4f} IoU ({p['champion_iou']:.4f} -> "
                    f"{p['candidate_iou']:.4f}), more than max_class_iou_drop {max_drop:.4f}")
  if problems:
    return {**out, "passed": False, "reason": "; ".join(problems) + ": the champion stays"}
  classes = "" if max_drop is None else f", no class lost more than {max_drop:.4f}"
  return {**out, "passed": True,
          "reason": (f"mIoU {miou:.4f} vs champion {comparison['champion_miou']:.4f}: {interval}; "
                     f"mode {mode}{classes}")}


def decide(miou: Optional[float], *, min_miou: float, tolerance: float,
           champion: Optional[Mapping[str, Any]], comparison: Optional[Mapping[str, Any]] = None,
           mode: str = "not_worse", max_class_iou_drop: Optional[float] = None,
           champion_note: str = "") -> dict:
  """The verdict and everything it rests on (gate.json).

  :param miou: the candidate's mIoU on this run's split (metrics.json).
  :param champion: models/<name>/champion.json, or None.
  :param comparison: deeplab.evaluation.compare.compare(candidate, champion) on this run's
      split, or None when the champion was not evaluated on it.
  :param mode: "not_worse" or "significantly_better" (GATE_MODES).
  :param max_class_iou_drop: the largest per-class IoU loss allowed; None: no per-class rule.
  :param champion_note: why there is no comparison (recorded in the reason).
  :return: {"passed", "verdict", "reason", "candidate_miou", "champion_miou" (measured here),
      "champion_miou_recorded", "delta", "delta_ci", "per_class", ...}.
  """
  if mode not in GATE_MODES:
    raise ValueError(f"gate mode {mode!r} must be one of {', '.join(GATE_MODES)}")
  recorded = (champion or {}).get("miou")
  recorded = float(recorded) if isinstance(recorded, (int, float)) else None
  threshold = float(min_miou)
  if comparison is None and recorded is not None:
    threshold = max(threshold, recorded - float(tolerance))
  comparison = dict(comparison) if comparison else None
  out = {"miou": miou, "candidate_miou": miou, "min_miou": min_miou, "tolerance": tolerance,
         "mode": mode, "max_class_iou_drop": max_class_iou_drop,
         "champion_miou": comparison["champion_miou"] if comparison else None,
         "champion_miou_recorded": recorded, "threshold": threshold,
         "compared_on": ("same_split" if comparison else
                         "recorded_miou" if recorded is not None else "no_champion"),
         "champion_note": champion_note,
         "delta": comparison["delta"] if comparison else None,
         "delta_ci": comparison["delta_ci"] if comparison else None,
         "per_class": comparison["per_class"] if comparison else None,
         "bootstrap": ({k: comparison.get(k) for k in ("resamples", "seed", "confidence",
                                                        "num_images")} if comparison else None)}
  decision = _decide(miou, min_miou, tolerance, comparison, recorded, threshold, mode,
                     max_class_iou_drop, champion_note, out)
  decision["verdict"] = PROMOTE if decision["passed"] else KEEP
  return decision


def _decide(miou, min_miou, tolerance, comparison, recorded, threshold, mode, max_drop, note,
            out) -> dict:
  if miou is None:
    return {**out, "passed": False, "reason": "evaluation reported no mIoU"}
  if miou < min_miou:
    return {**out, "passed": False,
            "reason": f"mIoU {miou:.4f} is below min_miou {min_miou:.4f}: not exported"}
  if comparison is not None:
    return _paired(miou, comparison, mode, tolerance, max_drop, out)
  why = f"; {note}" if note else ""
  if miou < threshold:
    return {**out, "passed": False,
            "reason": (f"mIoU {miou:.4f} is worse than the champion's {recorded:.4f} minus "
                       f"tolerance {tolerance:.4f}: the champion stays{why}")}
  vs = (f" (champion {recorded:.4f} as recorded, tolerance {tolerance:.4f}{why})"
        if recorded is not None else " (no champion yet)")
  return {**out, "passed": True, "reason": f"mIoU {miou:.4f} >= {threshold:.4f}{vs}"}


def outcome(decision: Mapping[str, Any]) -> str:
  """One line for the UI: 'promoted: …' or 'champion kept: <reason>'."""
  if decision.get("passed"):
    return f"promoted: {decision.get('reason')}"
  return f"champion kept: {decision.get('reason')}"


def champion_eval_skip(champion: Optional[Mapping[str, Any]], *, checkpoint_exists: bool,
                       champion_num_classes: Optional[int],
                       dataset_num_classes: Optional[int],
                       champion_class_names: Optional[list] = None,
                       dataset_class_names: Optional[list] = None,
                       class_mapping: Optional[Mapping[str, str]] = None) -> str:
  """Why the champion cannot be evaluated on this run's split ("" when it can).

  :param champion: models/<name>/champion.json, or None.
  :param checkpoint_exists: whether the champion's checkpoint is still in storage.
  :param champion_num_classes: num_classes of the champion's config.json (None: no config).
  :param dataset_num_classes: num_classes of this run's dataset manifest (read only when the
      champion's checkpoint and config exist).
  :param champion_class_names: class names of the champion's dataset manifest (None: unknown).
  :param dataset_class_names: class names of this run's dataset manifest (None: unknown).
  :param class_mapping: the run's class_mapping, old name -> new name.
  """
  if not champion:
    return "no champion yet: nothing to compare with"
  checkpoint = champion.get("checkpoint")
  if not checkpoint:
    return (f"the champion record (run {champion.get('run_id')}) names no checkpoint: compared "
            "with its recorded mIoU only")
  if not checkpoint_exists:
    return (f"the champion's checkpoint {checkpoint} no longer exists: compared with its "
            "recorded mIoU only")
  if champion_num_classes is None:
    return (f"no config.json for the champion's checkpoint {checkpoint}: its model cannot be "
            "rebuilt; compared with its recorded mIoU only")
  different = class_mapping_difference(champion_class_names, dataset_class_names, class_mapping)
  if different:
    return f"{different}; compared with its recorded mIoU only"
  if int(champion_num_classes) != int(dataset_num_classes):
    return (f"the champion has {champion_num_classes} classes, this run's dataset "
            f"{dataset_num_classes}: not comparable on the same split; compared with its "
            "recorded mIoU only")
  return ""
