"""evaluate and export with gs:// datasets, checkpoints and outputs (gcp-storage-emulator)."""

import json
import os

import pytest

from deeplab import evaluate, export, storage
from deeplab.evaluation import input_size
from tests.deeplab import _eval_kit as kit


def _upload_run(ckpt, bucket):
  run = f"gs://{bucket}/runs/r1/train"
  storage.sync_dir(os.path.dirname(ckpt), run, commit_last=("checkpoint",))
  return run


@pytest.mark.slow  # evaluates and exports a model through the emulator: 13 s idle
def test_evaluate_and_export_on_gcs(tmp_path_factory, gcs_bucket, monkeypatch, tmp_path):
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  data, ckpt = kit.shared_run(tmp_path_factory)
  run = _upload_run(ckpt, gcs_bucket)
  gs_data = f"gs://{gcs_bucket}/datasets/tiny/feedface"
  storage.sync_dir(data, gs_data, commit_last=("manifest.json",))
  eval_dir = f"gs://{gcs_bucket}/runs/r1/eval"
  assert kit.run_cli(evaluate, [f"--checkpoint_dir={run}", f"--dataset_dir={gs_data}",
                                f"--eval_logdir={eval_dir}", "--num_overlays=1"]) == 0
  names = set(storage.listdir(eval_dir))
  assert {"metrics.json", "report.md", "confusion.png", "per_class_iou.png", "overlays"} <= names
  metrics = storage.read_json(f"{eval_dir}/metrics.json")
  assert metrics["checkpoint"] == f"{run}/model.ckpt-7" and metrics["checkpoint_step"] == 7
  assert metrics["num_images"] == 4 and metrics["dataset_dir"] == gs_data

  export_dir = f"gs://{gcs_bucket}/runs/r1/export"
  result = tmp_path / "r.json"
  assert kit.run_cli(export, [f"--checkpoint_path={run}/model.ckpt-7",
                              f"--export_path={export_dir}", "--num_check_images=1",
                              f"--dataset_dir={gs_data}", f"--eval_metrics_json={eval_dir}/"
                              "metrics.json", f"--result_json={result}"]) == 0
  assert {"frozen_inference_graph.pb", "saved_model", "export_result.json"} <= set(
      storage.listdir(export_dir))
  summary = json.loads(result.read_text())
  assert summary["frozen_graph"] == f"{export_dir}/frozen_inference_graph.pb"
  assert summary["check_passed"]
  exported = storage.read_json(f"{export_dir}/export_result.json")
  assert exported["config_json"] == f"{run}/config.json"
  assert exported["inference_policy"] == {k: metrics[k] for k in input_size.SIZE_KEYS}
