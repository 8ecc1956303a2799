"""Operators: exact argv with the launcher mocked, the exit-code table with a real fake job."""

from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from operators import (BuildTFRecordsOperator, DeepLabDeployOperator, DeepLabEvalOperator,
                       DeepLabExportOperator, DeepLabTrainOperator)
from operators.launchers.base import JobResult


@pytest.fixture
def mocked_launcher(monkeypatch):
  launcher = mock.Mock()
  launcher.run.return_value = JobResult(exit_code=0, result={"ok": 1})
  make = mock.Mock(return_value=launcher)
  monkeypatch.setattr("operators.base.make_launcher", make)
  return make, launcher


@pytest.mark.parametrize("op,argv,gpus", [
    (BuildTFRecordsOperator(task_id="b", format="synthetic", source="", output_dir="/r/d",
                            flags={"synthetic_num_train": 40, "seed": 1}),
     ["build-tfrecords", "--format=synthetic", "--output_dir=/r/d", "--seed=1",
      "--synthetic_num_train=40"], 0),
    (DeepLabTrainOperator(task_id="t", dataset_dir="gs://b/d", train_logdir="gs://b/r/train",
                          num_clones=2, flags={"train_crop_size": [65, 65],
                                               "model_variant": "mobilenet_v2",
                                               "tf_initial_checkpoint": None}),
     ["train", "--dataset_dir=gs://b/d", "--model_variant=mobilenet_v2", "--num_clones=2",
      "--train_crop_size=65,65", "--train_logdir=gs://b/r/train"], 2),
    (DeepLabEvalOperator(task_id="e", dataset_dir="/d", checkpoint_dir="/r/train",
                         eval_logdir="/r/eval", flags={"eval_split": "val"}),
     ["evaluate", "--checkpoint_dir=/r/train", "--dataset_dir=/d", "--eval_logdir=/r/eval",
      "--eval_split=val"], 1),
    (DeepLabExportOperator(task_id="x", checkpoint_path="/r/train/model.ckpt-5",
                           export_path="/r/export"),
     ["export", "--checkpoint_path=/r/train/model.ckpt-5", "--export_path=/r/export"], 1),
    (DeepLabExportOperator(task_id="x", checkpoint_path="/r/train/model.ckpt-5",
                           export_path="/r/export", eval_metrics_json="/r/eval/metrics.json",
                           flags={"dataset_dir": "/d", "check_split": "val"}),
     ["export", "--check_split=val", "--checkpoint_path=/r/train/model.ckpt-5",
      "--dataset_dir=/d", "--eval_metrics_json=/r/eval/metrics.json",
      "--export_path=/r/export"], 1),
    # A rendered plan's flags: None (no push id, no check split) leaves the command's default.
    (DeepLabDeployOperator(task_id="d", export_path="gs://b/runs/r/export",
                           serving_base_path="gs://b/serving", model_name="m",
                           flags={"push_id": None, "dataset_dir": "gs://b/d",
                                  "check_split": None}),
     ["deploy", "--dataset_dir=gs://b/d", "--export_path=gs://b/runs/r/export",
      "--model_name=m", "--serving_base_path=gs://b/serving"], 0),
])
def test_exact_argv_and_result(mocked_launcher, op, argv, gpus):
  make, launcher = mocked_launcher
  assert op.execute({}) == {"ok": 1}
  make.assert_called_once_with("local", task_id=op.task_id, log=op.log)
  launcher.run.assert_called_once_with(argv, context={}, num_gpus=gpus)


def test_template_fields_cover_every_named_argument():
  assert set(DeepLabTrainOperator.template_fields) >= {
      "flags", "launcher", "skip_reason", "dataset_dir", "train_logdir", "num_clones"}
  assert set(BuildTFRecordsOperator.template_fields) >= {"format", "source", "output_dir"}
  assert set(DeepLabEvalOperator.template_fields) >= {"dataset_dir", "checkpoint_dir",
                                                      "eval_logdir"}
  assert set(DeepLabExportOperator.template_fields) >= {"checkpoint_path", "export_path",
                                                        "eval_metrics_json"}
  assert set(DeepLabDeployOperator.template_fields) >= {"export_path", "serving_base_path",
                                                        "model_name"}


def test_impossible_values_rejected_at_construction():
  with pytest.raises(ValueError, match="launcher"):
    DeepLabExportOperator(task_id="x", checkpoint_path="c", export_path="e", launcher="ssh")
  with pytest.raises(ValueError, match="num_clones"):
    DeepLabTrainOperator(task_id="t", dataset_dir="d", train_logdir="l", num_clones=0)
  # Templated values are checked when they render, not at parse time.
  DeepLabTrainOperator(task_id="t", dataset_dir="d", train_logdir="l",
                       num_clones="{{ params.num_clones }}", launcher="{{ params.launcher }}")


def test_skip_reason_skips_without_running(mocked_launcher):
  make, _ = mocked_launcher
  op = DeepLabExportOperator(task_id="x", checkpoint_path="c", export_path="e",
                             skip_reason="gate: mIoU too low")
  with pytest.raises(AirflowSkipException, match="mIoU too low"):
    op.execute({})
  make.assert_not_called()


@pytest.mark.parametrize("empty", ["", None, "None"])
def test_empty_skip_reason_runs(mocked_launcher, empty):
  op = DeepLabExportOperator(task_id="x", checkpoint_path="c", export_path="e", skip_reason=empty)
  assert op.execute({}) == {"ok": 1}


# --- A real fake job: the exit-code contract (BashOperator's table). ---

def _train(**flags):
  return DeepLabTrainOperator(task_id="train", dataset_dir="/d", train_logdir="/l",
                              num_clones=2, flags=flags)


def test_exit_0_returns_the_result_json(fake_launcher):
  out = _train(lines=2).execute({})
  assert out["command"] == "train"
  assert "--num_clones=2" in out["argv"]
  assert any(a.startswith("--result_json=") for a in out["argv"])


@pytest.mark.parametrize("code,meaning", [(2, "bad input"), (3, "NaN or inf")])
def test_exit_2_and_3_fail_without_retry(fake_launcher, code, meaning):
  with pytest.raises(AirflowFailException, match=f"exited with code {code}.*{meaning}") as e:
    _train(exit=code).execute({})
  assert "line 0" in str(e.value)  # the last lines of output are in the message


def test_other_exit_codes_are_retryable(fake_launcher):
  with pytest.raises(AirflowException, match="exited with code 1.*retried") as e:
    _train(exit=1).execute({})
  assert not isinstance(e.value, AirflowFailException)


def test_output_is_streamed_line_by_line_into_the_task_log(fake_launcher, monkeypatch):
  op = _train(lines=5)
  logged = []
  monkeypatch.setattr(type(op), "log", mock.Mock(info=lambda fmt, *a: logged.append(fmt % a)))
  op.execute({})
  # One log record per output line, in order (not one blob at the end).
  assert [m for m in logged if m.startswith("line ")] == [f"line {i}" for i in range(5)]
