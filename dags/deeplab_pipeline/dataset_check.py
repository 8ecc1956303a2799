"""check_dataset: this run's dataset beside the champion's, once, as soon as it exists.

resolve_config runs before the conversion, so it cannot know the classes of data it has not
converted yet; the task after build_tfrecords (which runs whether the conversion ran or was
skipped because the fingerprint was already converted) is the first point where both
manifests always exist. There, once per run:
  - the class check: a warm start (init_from champion) from a champion trained on other
    classes fails before training, naming the difference, unless class_mapping covers it;
  - the drift report runs/<run_id>/drift.{json,md,png} against the champion's dataset.
The outcome is runs/<run_id>/dataset_check.json; the gate links the drift report from it
instead of computing it again.

Reads and writes through deeplab.storage (local or gs://); no TensorFlow.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

DATASET_CHECK_JSON = "dataset_check.json"


class ClassesDiffer(ValueError):
  """A warm start from a champion whose dataset has other classes (not retryable)."""


def warm_starts_from_champion(plan: Mapping[str, Any]) -> bool:
  """Whether this run's training starts from the champion's checkpoint."""
  checkpoint = (plan.get("champion") or {}).get("checkpoint")
  return bool(plan.get("init_from") == "champion" and checkpoint
              and plan["train_config"].get("tf_initial_checkpoint") == checkpoint)


def check(plan: Mapping[str, Any]) -> dict:
  """The class check and the drift report; writes runs/<run_id>/dataset_check.json.

  Returns {"champion_dataset_dir", "class_difference" ("" when the classes are the same or
  the champion's are unknown), "drift" (drift.write's URIs + "warnings", or None), "note"}.

  Raises:
    ClassesDiffer: the run warm-starts from a champion whose dataset has other classes.
  """
  from deeplab import storage
  from deeplab.datasets import class_mapping, drift

  old_dir = (plan.get("champion") or {}).get("dataset_dir") or ""
  result = {"champion_dataset_dir": old_dir or None, "class_difference": "", "drift": None,
            "note": ""}
  if not old_dir:
    result["note"] = "no champion dataset to compare with"
  elif old_dir == plan["dataset_dir"]:
    result["note"] = "the champion was trained on this same dataset"
  else:
    old_uri = storage.join(old_dir, "manifest.json")
    if not storage.exists(old_uri):
      result["note"] = (f"the champion's dataset {old_dir} is gone: its classes and drift "
                        "cannot be compared")
    else:
      old = storage.read_json(old_uri)
      new = storage.read_json(storage.join(plan["dataset_dir"], "manifest.json"))
      result["class_difference"] = class_mapping.difference(
          old.get("class_names"), new.get("class_names"), plan.get("class_mapping"))
      if result["class_difference"] and warm_starts_from_champion(plan):
        # Output index i means class i of the training data: the warm start would be wrong.
        raise ClassesDiffer(f"init_from champion refused: {result['class_difference']}")
      # Classes are matched by name: a renamed class is compared with itself under its new name.
      mapping = plan.get("class_mapping") or {}
      if old.get("class_names"):
        old = {**old, "class_names": [mapping.get(n, n) for n in old["class_names"]]}
      report = drift.compare(old, new, float(plan.get("drift_factor") or drift.DEFAULT_FACTOR))
      result["drift"] = {**drift.write(report, plan["run_dir"]),
                         "warnings": report["warnings"]}
  storage.write_json(storage.join(plan["run_dir"], DATASET_CHECK_JSON), result)
  return result


def load(plan: Mapping[str, Any]) -> Optional[dict]:
  """What check() wrote for this run, or None (the task did not run)."""
  from deeplab import storage
  uri = storage.join(plan["run_dir"], DATASET_CHECK_JSON)
  return storage.read_json(uri) if storage.exists(uri) else None
