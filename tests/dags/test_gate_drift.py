"""The gate writes the drift report against the champion's dataset and its reason carries the
warnings (never silent)."""

import os

from deeplab_pipeline.dataset_check import check
from deeplab_pipeline.judge import judge
from tests.deeplab.datasets.test_drift import _version


def test_gate_reason_names_the_drift_and_links_the_report(tmp_path):
  _version(str(tmp_path / "v1"), 20, 2, 3)
  _version(str(tmp_path / "v2"), 40, 30, 2)
  plan = {"min_miou": 0.1, "miou_tolerance": 0.01, "gate_mode": "not_worse",
          "max_class_iou_drop": 0.05, "drift_factor": 2.0, "run_dir": str(tmp_path / "run"),
          "dataset_dir": str(tmp_path / "v2-out"),
          "champion": {"run_id": "r0", "miou": 0.3, "dataset_dir": str(tmp_path / "v1-out")}}
  check(plan)  # check_dataset writes the report once the dataset exists
  decision = judge(plan, {"miou": 0.5}, None)
  assert decision["passed"]
  assert "dataset drift against the champion's data" in decision["reason"]
  assert "pixel share of class 'dog' changed 0.1 -> 0.75" in decision["reason"]
  assert decision["drift"]["md"] in decision["reason"] and os.path.exists(decision["drift"]["md"])
  assert os.path.exists(os.path.join(tmp_path, "run", "drift.png"))
  calm_plan = {**plan, "drift_factor": 100.0}
  check(calm_plan)
  calm = judge(calm_plan, {"miou": 0.5}, None)
  assert "drift" not in calm["reason"] and calm["drift"]["warnings"] == []


def test_the_gate_report_links_the_drift_report_and_its_chart(tmp_path):
  # With the champion evaluated on this split, compare/compare.md (the gate's report) links
  # the drift report; drift.md shows the chart of class shares and image sizes.
  from tests.dags.test_gate_compare_task import _data, _plan, _write_eval
  _version(str(tmp_path / "v1"), 20, 2, 3)
  _version(str(tmp_path / "v2"), 40, 30, 2)
  plan = {**_plan(str(tmp_path), {"miou": 0.5, "run_id": "r1",
                                  "dataset_dir": str(tmp_path / "v1-out")}),
          "dataset_dir": str(tmp_path / "v2-out"), "drift_factor": 2.0}
  labels, perfect = _data()
  names = [f"img_{i}" for i in range(len(labels))]
  champion_eval = _write_eval(plan["champion_eval_logdir"], labels, perfect, names)
  checked = check(plan)
  decision = judge(plan, _write_eval(plan["eval_logdir"], labels, perfect, names),
                   champion_eval)
  with open(decision["report"]) as f:
    report = f.read()
  assert f"- dataset drift against the champion's data: `{checked['drift']['md']}`" in report
  assert "pixel share of class 'dog' changed" in report  # the verdict line carries the warning
  assert f"dataset drift: {checked['drift']['md']}" in decision["summary"]
  with open(checked["drift"]["md"]) as f:
    assert ("![Class pixel share before/after and image-area histogram (train)](drift.png)"
            in f.read())
