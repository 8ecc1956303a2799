"""The gate and promote tasks of the DAG, called as the workers call them: a model below the
threshold is neither exported (skip_reason) nor promoted (champion.json untouched)."""

import json
import math
import os

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

MIN_MIOU, TOLERANCE = 0.5, 0.125


class _OutletEvents(dict):
  """What promote receives as outlet_events: `events[alias].add(asset, extra=...)`."""

  class _Added(list):
    def add(self, asset, extra=None):
      self.append((asset, extra))

  def __missing__(self, alias):
    self[alias] = self._Added()
    return self[alias]


def _plan(root):
  run = os.path.join(root, "runs", "r1")
  return {"model_name": "m", "run_id": "r1", "run_dir": run, "fingerprint": "0123456789abcdef",
          "dataset_dir": os.path.join(root, "datasets", "d", "0123456789abcdef"),
          "export_path": os.path.join(run, "export"), "config_hash": "c" * 16,
          "config_uri": os.path.join(run, "config.json"), "eval_logdir": os.path.join(run, "eval"),
          "champion_uri": os.path.join(root, "models", "m", "champion.json"),
          "champion_eval_logdir": os.path.join(run, "eval_champion"),
          "compare_dir": os.path.join(run, "compare"), "champion": None,
          "min_miou": MIN_MIOU, "miou_tolerance": TOLERANCE, "gate_mode": "not_worse",
          "max_class_iou_drop": 0.05}


def _gate(dag, plan, miou):
  gate = dag.get_task("gate").python_callable
  return gate({"miou": miou}, None, {"skip": "no champion yet"}, plan)


def test_gate_task_skips_export_below_min_miou_only(dag, tmp_path):
  plan = _plan(str(tmp_path))
  below = _gate(dag, plan, math.nextafter(MIN_MIOU, 0.0))
  assert below["passed"] is False and below["skip_reason"].startswith("gate: ")
  with open(os.path.join(plan["run_dir"], "gate.json")) as f:
    assert json.load(f)["passed"] is False
  at = _gate(dag, plan, MIN_MIOU)
  assert at["passed"] is True and at["skip_reason"] == ""


def test_promote_task_refuses_what_the_gate_failed(dag, tmp_path):
  plan = _plan(str(tmp_path))
  promote = dag.get_task("promote").python_callable
  failed = _gate(dag, plan, math.nextafter(MIN_MIOU, 0.0))
  events = _OutletEvents()
  with pytest.raises(AirflowSkipException, match="champion kept: .*below min_miou"):
    promote(plan, failed, {}, {"checkpoint": "x"}, outlet_events=events)
  assert not os.path.exists(plan["champion_uri"]) and not events
  passed = _gate(dag, plan, MIN_MIOU)
  record = promote(plan, passed, {}, {"checkpoint": "x"}, outlet_events=events)
  with open(plan["champion_uri"]) as f:
    assert json.load(f) == record and record["miou"] == MIN_MIOU
  assert len(events) == 2  # the dataset and the model Assets


def _evaluation(folder, names):
  import numpy as np

  from deeplab.evaluation.per_image import PER_IMAGE_NPZ, PerImageConfusion

  os.makedirs(folder, exist_ok=True)
  per_image = PerImageConfusion(num_classes=2)
  for name in names:
    per_image.add(name, np.array([[5, 1], [0, 4]]))
  per_image.save(os.path.join(folder, PER_IMAGE_NPZ))
  with open(os.path.join(folder, "metrics.json"), "w") as f:
    json.dump({"class_names": ["background", "thing"]}, f)


def test_gate_fails_without_retry_when_the_two_evaluations_cannot_be_compared(dag, tmp_path):
  plan = _plan(str(tmp_path))
  _evaluation(plan["eval_logdir"], ["a", "b"])
  _evaluation(plan["champion_eval_logdir"], ["a", "c"])
  gate = dag.get_task("gate").python_callable
  with pytest.raises(AirflowFailException, match="not over the same images"):
    gate({"miou": 0.8}, {"miou": 0.8}, {"skip": ""}, plan)
  assert not os.path.exists(os.path.join(plan["run_dir"], "gate.json"))
