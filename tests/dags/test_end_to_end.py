"""The whole DAG on the embedded default (dag.test through scripts/demo.py), local and gs://.

Tiny settings (crop 33, a few steps) keep each run around a minute on 2 cores; the demo's
defaults are what a user runs. The images (48x48) are larger than the training crop, so the
exported model must serve images the crop never saw whole.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TINY = {
    "training_number_of_steps": 5, "train_crop_size": [33, 33], "train_batch_size": 4,
    "converter_options": {"synthetic_num_train": 16, "synthetic_num_val": 4,
                          "synthetic_image_size": 48},
    "min_miou": 0.0, "miou_tolerance": 1.0,
}


def run_demo(tmp_path, root, conf=TINY, timeout=600):
  env = {**os.environ, "DEEPLAB_AIRFLOW_HOME": str(tmp_path / "airflow_home"),
         "DEEPLAB_STORAGE_ROOT": root, "CUDA_VISIBLE_DEVICES": "",
         "DEEPLAB_CACHE_DIR": str(tmp_path / "cache")}
  out = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--json",
                        "--conf", json.dumps(conf)], env=env, capture_output=True, text=True,
                       timeout=timeout)
  lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  assert lines, f"demo printed no summary (rc {out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
  summary = json.loads(lines[-1])
  assert out.returncode == 0 and summary["state"] == "success", \
      f"{summary}\n{out.stdout[-6000:]}"
  # A run that succeeds prints no ERROR line (the demo shows Airflow's [error] log lines as
  # "<task> ERROR: ..."): e.g. not the gate reading the XCom of a skipped champion evaluation.
  errors = [l for l in out.stdout.splitlines() if " ERROR: " in l]
  assert not errors, "\n".join(errors)
  return summary


def assert_export_serves_the_split_as_scored(summary):
  """The DAG's export, fed every eval image at full size, scores evaluate's mIoU."""
  from deeplab.evaluation import input_size
  from tests.deeplab import _serving_kit as kit
  metrics = json.loads(pathlib.Path(summary["run_dir"], "eval", "metrics.json").read_text())
  exported = json.loads(pathlib.Path(summary["export"], "export_result.json").read_text())
  # The policy evaluate scored with is the one the export serves (not only the crop).
  assert exported["inference_policy"] == {k: metrics[k] for k in input_size.SIZE_KEYS}
  assert exported["eval_metrics_json"] == str(pathlib.Path(summary["run_dir"], "eval",
                                                           "metrics.json"))
  examples, predictions = kit.frozen_graph_on_split(summary["export"], summary["dataset_dir"],
                                                    metrics["eval_split"])
  assert len(examples) == metrics["num_images"]
  assert all(img.shape[:2] == (48, 48) for _, img, _ in examples)
  miou = kit.numpy_miou(predictions, [label for _, _, label in examples],
                        metrics["num_classes"], metrics["ignore_label"])
  assert miou == pytest.approx(metrics["miou"], abs=1e-4)


@pytest.mark.slow
def test_demo_local_twice_second_run_skips_conversion(tmp_path):
  root = str(tmp_path / "storage")
  first = run_demo(tmp_path, root)
  assert first["tasks"]["build_tfrecords"]["state"] == "success"
  assert first["conversion"] == "converted"
  assert isinstance(first["miou"], float) and 0.0 <= first["miou"] <= 1.0
  assert pathlib.Path(first["report"]).is_file()
  assert (pathlib.Path(first["export"]) / "frozen_inference_graph.pb").is_file()
  assert_export_serves_the_split_as_scored(first)
  assert first["promoted"] is True
  # The promoted model reaches serving: deeplab_deploy pushed it as version 1, request-checked.
  deploy = first["deploy"]
  assert (deploy["state"], deploy["version"], deploy["request_check"]) == ("success", 1, "passed")
  assert (pathlib.Path(deploy["model_dir"]) / "1" / "saved_model.pb").is_file()
  champion = json.loads(pathlib.Path(first["champion"]).read_text())
  assert champion["run_id"] in first["run_dir"]
  # runs/<run_id>/config.json is the contract: training adds the resolved class count only.
  run_config = json.loads(pathlib.Path(first["run_dir"], "config.json").read_text())
  trained = json.loads(pathlib.Path(first["run_dir"], "train", "config.json").read_text())
  assert run_config["model"].pop("num_classes") is None
  assert trained["model"].pop("num_classes") == 5
  assert trained == run_config
  assert trained["dataset"] == "synthetic" and trained["train_crop_size"] == [33, 33]

  second = run_demo(tmp_path, root)
  assert second["tasks"]["build_tfrecords"]["state"] == "skipped"
  assert second["conversion"].startswith("skipped: dataset fingerprint")
  assert second["dataset_dir"] == first["dataset_dir"]
  assert second["tasks"]["train"]["state"] == "success"  # a manual run trains again
  if second["promoted"]:  # versions only go up, the first stays
    assert second["deploy"]["version"] == 2
    assert (pathlib.Path(deploy["model_dir"]) / "1" / "saved_model.pb").is_file()
  # The champion is evaluated on this run's split and the gate compares image by image.
  assert first["tasks"]["evaluate_champion"]["state"] == "skipped"  # no champion yet
  assert second["tasks"]["evaluate_champion"]["state"] == "success"
  c = second["comparison"]
  assert c["champion_miou"] == pytest.approx(first["miou"])  # same data, same checkpoint
  assert c["delta_ci"][0] <= c["delta"] <= c["delta_ci"][1]
  assert pathlib.Path(c["report"]).is_file()


@pytest.mark.slow
def test_demo_with_storage_root_on_gcs(tmp_path, gcs_bucket):
  from deeplab import storage

  root = f"gs://{gcs_bucket}/deeplab"
  summary = run_demo(tmp_path, root)
  assert summary["dataset_dir"].startswith(root + "/datasets/synthetic/")
  assert storage.exists(summary["dataset_dir"] + "/manifest.json")
  assert summary["export"].startswith(root + "/runs/")
  assert storage.exists(summary["export"] + "/frozen_inference_graph.pb")
  assert summary["promoted"] is True
  assert storage.read_json(f"{root}/models/deeplab-synthetic/champion.json")["miou"] == \
      pytest.approx(summary["miou"])


@pytest.mark.slow
def test_bad_conf_fails_in_resolve_config_before_any_job(tmp_path):
  env = {**os.environ, "DEEPLAB_AIRFLOW_HOME": str(tmp_path / "airflow_home"),
         "DEEPLAB_STORAGE_ROOT": str(tmp_path / "storage")}
  out = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--json", "--conf",
                        json.dumps({"train_batch_size": 7})], env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 1
  summary = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
  states = {k: v["state"] for k, v in summary["tasks"].items()}
  assert states["resolve_config"] == "failed"
  assert all(s == "upstream_failed" for k, s in states.items() if k != "resolve_config"), states
  assert "train_batch_size 7 does not divide evenly over num_clones 2" in out.stdout + out.stderr
  assert not (tmp_path / "storage" / "datasets").exists()
