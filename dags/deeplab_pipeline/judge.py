"""What the gate task does with storage: check the champion can be evaluated here, compare the
two evaluations image by image, write gate.json and the comparison report.

Reads and writes through deeplab.storage (local or gs://); imports numpy and deeplab.evaluation
lazily, inside the functions, so parsing the DAG stays light. No TensorFlow.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any, Mapping, Optional

from deeplab_pipeline.gate import champion_eval_skip, decide, find_miou, outcome

GATE_JSON = "gate.json"


def check_champion(plan: Mapping[str, Any]) -> dict:
  """{"skip": why the champion is not evaluated here or "", "checkpoint", "checkpoint_dir",
  "eval_flags"}: the champion's checkpoint with this run's evaluation settings."""
  from deeplab import run_config, storage
  from deeplab.errors import UserInputError

  champion = plan.get("champion") or {}
  checkpoint = champion.get("checkpoint") or ""
  exists = bool(checkpoint) and storage.exists(checkpoint + ".index")
  classes = dataset_classes = names = old_names = None
  if exists:
    try:
      cfg, _ = run_config.load_run_config(checkpoint)
      classes = cfg.model.num_classes if cfg is not None else None
    except UserInputError:
      classes = None
    # Only a champion that can be rebuilt needs this run's dataset to compare class counts.
    manifest = storage.read_json(storage.join(plan["dataset_dir"], "manifest.json"))
    dataset_classes, names = manifest["num_classes"], manifest.get("class_names")
    old = champion.get("dataset_dir")
    old_uri = storage.join(old, "manifest.json") if old else ""
    old_names = storage.read_json(old_uri).get("class_names") if old_uri and storage.exists(
        old_uri) else None
  skip = champion_eval_skip(champion or None, checkpoint_exists=exists,
                            champion_num_classes=classes, dataset_num_classes=dataset_classes,
                            champion_class_names=old_names, dataset_class_names=names,
                            class_mapping=plan.get("class_mapping"))
  return {"skip": skip, "checkpoint": checkpoint,
          "checkpoint_dir": posixpath.dirname(checkpoint) if checkpoint else "",
          # The same settings as the candidate's evaluation, on the champion's checkpoint.
          "eval_flags": {**plan["eval_flags"], "checkpoint_path": checkpoint or None}}


def _load(uri: str):
  from deeplab import storage
  from deeplab.evaluation import per_image
  return per_image.load(io.BytesIO(storage.read_bytes(uri)), uri)


def compare_evaluations(plan: Mapping[str, Any]) -> tuple:
  """(comparison, candidate [N,C,C], champion [N,C,C], image names) from the two eval folders.

  Raises:
    deeplab.errors.UserInputError: the evaluations are not over the same images or classes.
  """
  from deeplab import storage
  from deeplab.evaluation import compare, per_image

  names, cand = _load(storage.join(plan["eval_logdir"], per_image.PER_IMAGE_NPZ))
  names_b, champ = _load(storage.join(plan["champion_eval_logdir"], per_image.PER_IMAGE_NPZ))
  champ = compare.align(names, cand, names_b, champ)
  metrics = storage.read_json(storage.join(plan["eval_logdir"], "metrics.json"))
  return compare.compare(cand, champ, metrics["class_names"]), cand, champ, names


def shared_overlays(plan: Mapping[str, Any], names) -> list:
  """(image index, candidate overlay, champion overlay) for the images both evaluations drew,
  as links relative to the compare folder (all three folders sit in the run folder)."""
  from deeplab import storage

  def drawn(eval_dir):
    files = storage.read_json(storage.join(eval_dir, "metrics.json")).get("report_files") or []
    rel = "../" + eval_dir.rstrip("/").rsplit("/", 1)[-1] + "/"
    return [rel + f for f in files if f.startswith("overlays/")]

  from deeplab.evaluation.report import safe_stem

  cand, champ = drawn(plan["eval_logdir"]), drawn(plan["champion_eval_logdir"])
  # Both draw the first images read (the split's stored order); the file names say which.
  return [(i, a, b) for i, (a, b) in enumerate(zip(cand, champ))
          if i < len(names) and a.endswith(f"_{safe_stem(names[i])}.png")
          and b.endswith(f"_{safe_stem(names[i])}.png")]


def judge(plan: Mapping[str, Any], eval_result: Mapping[str, Any],
          champion_eval: Optional[Mapping[str, Any]], champion_note: str = "") -> dict:
  """The gate's decision, written to runs/<run_id>/gate.json (+ compare/ when compared)."""
  from deeplab import storage

  comparison = None
  found = drift_report(plan)
  if champion_eval:
    comparison, cand, champ, names = compare_evaluations(plan)
  decision = decide(find_miou(eval_result or {}), min_miou=plan["min_miou"],
                    tolerance=plan["miou_tolerance"], champion=plan.get("champion"),
                    comparison=comparison, mode=plan["gate_mode"],
                    max_class_iou_drop=plan["max_class_iou_drop"],
                    champion_note=champion_note)
  if found:
    decision["drift"] = found
    if found["warnings"]:  # never silent: the reason a reviewer reads carries them
      decision["reason"] += ("; dataset drift against the champion's data: "
                             + "; ".join(found["warnings"]) + f" (see {found['md']})")
  if comparison is not None:
    from deeplab.evaluation import compare_report
    with storage.output_dir(plan["compare_dir"],
                            commit_last=(compare_report.COMPARE_MD,)) as out:
      compare_report.write(out, comparison, cand, champ, names, verdict=decision, reports={
          "candidate": storage.join(plan["eval_logdir"], "report.md"),
          "champion": storage.join(plan["champion_eval_logdir"], "report.md")},
          overlays=shared_overlays(plan, names), drift=(found or {}).get("md", ""))
    decision["report"] = storage.join(plan["compare_dir"], compare_report.COMPARE_MD)
  decision["outcome"] = outcome(decision)
  decision["skip_reason"] = "" if decision["passed"] else f"gate: {decision['reason']}"
  decision["summary"] = summary(decision)  # what a reviewer reads (approval=human)
  storage.write_json(storage.join(plan["run_dir"], GATE_JSON), decision)
  return decision


def drift_report(plan: Mapping[str, Any]) -> Optional[dict]:
  """The drift report check_dataset wrote against the champion's dataset (its URIs and
  warnings), or None (no champion dataset to compare with, or the check did not run)."""
  from deeplab_pipeline.dataset_check import load

  return (load(plan) or {}).get("drift")


def summary(decision: Mapping[str, Any]) -> str:
  """A few lines for a person: the comparison and the verdict (the approval form, the demo)."""
  lines = [f"candidate mIoU {_f(decision.get('candidate_miou'))}"]
  if decision.get("delta_ci"):
    low, high = decision["delta_ci"]
    lines.append(f"champion mIoU {_f(decision.get('champion_miou'))} on the same images "
                 f"(recorded {_f(decision.get('champion_miou_recorded'))})")
    lines.append(f"delta {decision['delta']:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}]")
  elif decision.get("champion_miou_recorded") is not None:
    lines.append(f"champion mIoU {_f(decision['champion_miou_recorded'])} (recorded)")
  lines.append(decision.get("outcome") or outcome(decision))
  if decision.get("report"):
    lines.append(f"report: {decision['report']}")
  if decision.get("drift"):
    lines.append(f"dataset drift: {decision['drift']['md']}")
  return "\n".join(lines)


def _f(v) -> str:
  return "n/a" if v is None else f"{v:.4f}"
