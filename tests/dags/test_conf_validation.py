"""Bad run confs are rejected before any work, each with a message that says what to fix."""

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from deeplab_pipeline import resolve as r
from deeplab_pipeline.params import DEFAULTS


def _no_work(*args, **kwargs):
  raise AssertionError("work started for a conf that should have been rejected")


def check(dag, overrides, root, run_type="manual", champion=None, converted=lambda folder: False):
  """Trigger-time schema validation, then resolve_config's checks (as the DAG runs them)."""
  params = copy.deepcopy(dag.params)
  for k, v in overrides.items():
    params[k] = v  # ParamsDict validates each value on assignment
  conf = params.validate()
  return r.resolve(conf, run_id="manual__2026-11-26T02:00:00+00:00", run_type=run_type,
                   storage_root=root, load_champion=lambda uri: champion,
                   fingerprint_fn=lambda fmt, src, opts: "f" * 16, converted_fn=converted)


BAD = [
    # (conf, where it is caught, words the message must contain)
    ({"num_clones": 0}, "schema", ["num_clones"]),
    ({"model_variant": "vgg16"}, "schema", ["vgg16"]),
    ({"train_crop_size": [65]}, "schema", ["train_crop_size"]),
    ({"train_crop_size": [0, 65]}, "schema", ["train_crop_size"]),
    ({"train_crop_size": "65,65"}, "schema", ["train_crop_size"]),
    ({"dataset_name": "a;rm -rf"}, "schema", ["dataset_name"]),
    ({"model_name": "../../etc"}, "schema", ["model_name"]),
    ({"train_batch_size": 7}, "resolve", ["train_batch_size 7", "num_clones 2", "multiple of 2"]),
    ({"source_uri": "/etc/passwd-data", "dataset_format": "folder"}, "resolve",
     ["outside the storage root"]),
    ({"source_uri": "gs://someone-else/raw", "dataset_format": "voc"}, "resolve",
     ["outside the storage root"]),
    ({"source_uri": "raw/voc; rm -rf /", "dataset_format": "voc"}, "resolve",
     ["shell metacharacters"]),
    ({"source_uri": "raw/../../outside", "dataset_format": "voc"}, "resolve", ["'..'"]),
    ({"dataset_name": "a..b"}, "resolve", ["dataset_name", "'..'"]),
    ({"dataset_format": "voc", "source_uri": ""}, "resolve", ["source_uri is empty"]),
    ({"init_from": "model_zoo", "tf_initial_checkpoint": ""}, "resolve",
     ["tf_initial_checkpoint is empty"]),
    ({"extra_train_flags": {"train_logdir": "/tmp/x"}}, "resolve", ["set by the pipeline"]),
    ({"extra_train_flags": {"weight_decay": "1;reboot"}}, "resolve", ["shell metacharacters"]),
    ({"converter_options": {"seed": "$(id)"}}, "resolve", ["shell metacharacters"]),
    ({"output_stride": 16, "decoder_output_stride": [16]}, "resolve", ["decoder_output_stride"]),
    ({"launcher": "kubernetes"}, "resolve", ["needs a gs:// storage root", "DEEPLAB_STORAGE_ROOT"]),
    # Keys that are no Param: Airflow passes them through, so a misspelt one would train the
    # default without a word (issue 19). Named, with the Param meant.
    ({"trainig_number_of_steps": 5}, "resolve",
     ["'trainig_number_of_steps' is not a Param", "did you mean 'training_number_of_steps'"]),
    ({"fine_tune_batch_norm": False}, "resolve", ["'fine_tune_batch_norm'", "extra_train_flags"]),
    ({"gpus": 4}, "resolve", ["'gpus' is not a Param"]),
    # The original's distributed mode.
    ({"num_replicas": 2}, "resolve", ["num_replicas 2 needs num_ps_tasks >= 1"]),
    ({"num_replicas": 0}, "schema", ["num_replicas"]),
    ({"num_ps_tasks": -1}, "schema", ["num_ps_tasks"]),
    ({"num_replicas": 2, "num_ps_tasks": 1, "train_batch_size": 3}, "resolve",
     ["train_batch_size 3", "multiple of 2"]),
    ({"export_formats": ["frozen", "coreml"]}, "schema", ["coreml"]),
    ({"export_formats": ["saved_model", "onnx"]}, "resolve", ["export_formats",
                                                             "must include 'frozen'"]),
]


@pytest.mark.parametrize("overrides,where,words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_conf_rejected_with_a_clear_message(dag, tmp_path, overrides, where, words):
  expected = ParamValidationError if where == "schema" else r.ConfError
  with pytest.raises(expected) as e:
    check(dag, overrides, str(tmp_path))
  for word in words:
    assert word in str(e.value), f"{word!r} not in {e.value}"
  assert list(tmp_path.iterdir()) == []  # nothing written


def test_replicas_and_ps_tasks_reach_the_plan_and_the_run_config(dag, tmp_path):
  plan = check(dag, {"num_replicas": 2, "num_ps_tasks": 1}, str(tmp_path))
  assert (plan["num_replicas"], plan["num_ps_tasks"]) == (2, 1)
  assert (plan["train_config"]["num_replicas"], plan["train_config"]["num_ps_tasks"]) == (2, 1)
  single = check(dag, {}, str(tmp_path))
  assert (single["num_replicas"], single["num_ps_tasks"]) == (1, 0)  # one process, as before


def test_every_param_is_a_known_key(dag, tmp_path):
  # The check for unknown keys must never refuse a Param of the form itself.
  assert r.unknown_keys(dict(dag.params), DEFAULTS) == []
  assert set(dag.params) == set(DEFAULTS)


def test_all_problems_listed_at_once(dag, tmp_path):
  with pytest.raises(r.ConfError) as e:
    check(dag, {"train_batch_size": 7, "source_uri": "/elsewhere", "dataset_format": "voc"},
          str(tmp_path))
  assert "multiple of 2" in str(e.value) and "outside the storage root" in str(e.value)


def test_default_conf_resolves(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path))
  root = str(tmp_path)
  assert plan["dataset_dir"] == f"{root}/datasets/synthetic/{'f' * 16}"
  assert plan["run_dir"].startswith(f"{root}/runs/manual__2026-11-26T02_00_00_00_00-")
  assert plan["train_config"]["train_crop_size"] == [65, 65]
  assert plan["train_config"]["tf_initial_checkpoint"] is None  # scratch
  assert plan["build_skip"] == "" and plan["train_skip"] == ""
  assert plan["train_config"]["num_clones"] == 2


def test_source_inside_root_accepted_relative_or_absolute(dag, tmp_path):
  for src in ("raw/voc", f"{tmp_path}/raw/voc"):
    plan = check(dag, {"dataset_format": "voc", "source_uri": src}, str(tmp_path))
    assert plan["build_source"] == f"{tmp_path}/raw/voc"
  plan = check(dag, {"dataset_format": "voc", "source_uri": "gs://b/p/raw/voc"}, "gs://b/p")
  assert plan["build_source"] == "gs://b/p/raw/voc"
  assert plan["dataset_dir"] == "gs://b/p/datasets/synthetic/" + "f" * 16


def test_existing_fingerprint_skips_conversion(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path), converted=lambda folder: True)
  assert "already converted" in plan["build_skip"] and "f" * 16 in plan["build_skip"]


def test_scheduled_run_equal_to_champion_skips_training_unless_forced(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path))
  champion = {"run_id": "r0", "dataset_fingerprint": plan["fingerprint"],
              "config_hash": plan["config_hash"], "miou": 0.5}
  scheduled = check(dag, {}, str(tmp_path), run_type="scheduled", champion=champion)
  assert "would waste a GPU node" in scheduled["train_skip"] and "r0" in scheduled["train_skip"]
  asset = check(dag, {}, str(tmp_path), run_type="asset_triggered", champion=champion)
  assert asset["train_skip"]
  assert check(dag, {"force": True}, str(tmp_path), run_type="scheduled",
               champion=champion)["train_skip"] == ""
  assert check(dag, {}, str(tmp_path), run_type="manual", champion=champion)["train_skip"] == ""
  changed = check(dag, {"training_number_of_steps": 301}, str(tmp_path), run_type="scheduled",
                  champion=champion)
  assert changed["train_skip"] == ""


def test_init_from_champion_uses_its_checkpoint(dag, tmp_path):
  champion = {"checkpoint": f"{tmp_path}/runs/r0/train/model.ckpt-300"}
  plan = check(dag, {"init_from": "champion"}, str(tmp_path), champion=champion)
  assert plan["train_config"]["tf_initial_checkpoint"] == champion["checkpoint"]
  first = check(dag, {"init_from": "champion"}, str(tmp_path), champion=None)
  assert first["train_config"]["tf_initial_checkpoint"] is None


@pytest.mark.parametrize("run_id,safe", [
    ("manual__2026-11-26T02:00:00+00:00", "manual__2026-11-26T02_00_00_00_00-"),
    ("asset_triggered__2026-11-26T02:00:00.123456+00:00", "asset_triggered__2026-11-26T02_00_00"),
    ("plain-id_1", "plain-id_1"),
])
def test_run_ids_become_filesystem_safe(run_id, safe):
  out = r.safe_run_id(run_id)
  assert out.startswith(safe)
  assert all(c.isalnum() or c in "._-" for c in out)
  assert r.safe_run_id(run_id) == out  # stable
  assert r.safe_run_id("a:b") != r.safe_run_id("a/b")  # distinct ids stay distinct


def test_run_config_leaves_the_class_count_to_the_dataset(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path))
  assert plan["train_config"]["model"]["num_classes"] is None
  plan = check(dag, {"dataset_format": "folder", "source_uri": "raw/x",
                     "converter_options": {"num_classes": 7}}, str(tmp_path))
  assert plan["train_config"]["model"]["num_classes"] == 7


def test_scheduled_and_new_data_runs_train_with_the_fingerprint_seed(dag, tmp_path):
  seed = r.training_seed("f" * 16)
  for run_type in ("scheduled", "asset_triggered"):
    plan = check(dag, {}, str(tmp_path), run_type=run_type)
    assert plan["train_config"]["seed"] == seed
  assert r.training_seed("e" * 16) != seed  # other data, another seed
  assert check(dag, {}, str(tmp_path))["train_config"]["seed"] is None  # manual: as given
  assert check(dag, {"extra_train_flags": {"seed": 7}}, str(tmp_path),
               run_type="scheduled")["train_config"]["seed"] == 7


def test_plan_carries_the_gate_policy_and_the_champion_eval_folder(dag, tmp_path):
  plan = check(dag, {"gate_mode": "significantly_better", "max_class_iou_drop": 0.1,
                     "approval": "human"}, str(tmp_path))
  assert (plan["gate_mode"], plan["max_class_iou_drop"], plan["approval"]) == (
      "significantly_better", 0.1, "human")
  assert plan["champion_eval_logdir"] == plan["run_dir"] + "/eval_champion"
  with pytest.raises(ParamValidationError):
    check(dag, {"gate_mode": "better"}, str(tmp_path))


def test_export_formats_reach_the_export_flags(dag, tmp_path):
  plan = check(dag, {}, str(tmp_path))
  assert plan["export_flags"]["formats"] == ["frozen", "saved_model"]  # today's export
  plan = check(dag, {"export_formats": ["frozen", "tflite_int8", "onnx"]}, str(tmp_path))
  assert plan["export_flags"]["formats"] == ["frozen", "tflite_int8", "onnx"]
