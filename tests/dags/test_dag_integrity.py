"""The team's DAG policy, written down (docs/architecture.md)."""

import datetime
import json
import os
import subprocess
import sys

import pytest

from tests.dags.conftest import DAGS, REPO

PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dags), "seconds": time.perf_counter() - t,
                  "heavy": sorted(m for m in ("tensorflow", "tf_slim", "tf_keras", "keras")
                                  if m in sys.modules)}))
"""


def test_dag_folder_parses_without_errors_and_without_tensorflow(tmp_path):
  env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
         "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, "-c", PARSE, str(DAGS)], env=env, capture_output=True,
                       text=True, timeout=120, check=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["errors"] == {}
  assert result["dags"] == ["deeplab_deploy", "deeplab_retrain", "deeplab_rollback"]
  assert result["heavy"] == [], "parsing the DAG folder imported TensorFlow"


def test_task_graph(dag):
  chain = ["resolve_config", "build_tfrecords", "check_dataset", "train", "evaluate", "check_champion",
           "evaluate_champion", "gate", "approve", "export", "promote"]
  assert sorted(dag.task_ids) == sorted(chain)
  for up, down in zip(chain, chain[1:]):
    assert down in dag.get_task(up).downstream_task_ids, f"{up} -> {down} missing"
  assert dag.get_task("promote").downstream_task_ids == set()


def test_policy(dag):
  assert dag.tags >= {"deeplab", "training"}
  assert dag.catchup is False
  assert dag.max_active_runs == 1
  for task in dag.tasks:
    assert task.owner == "ml-platform"


def test_retries_on_retryable_tasks_only(dag):
  for task_id in ("build_tfrecords", "check_dataset", "train", "evaluate", "check_champion", "evaluate_champion",
                  "gate", "export", "promote"):
    assert dag.get_task(task_id).retries >= 2, task_id
  # A bad conf does not get better by retrying; a person's answer is not asked twice.
  for task_id in ("resolve_config", "approve"):
    assert dag.get_task(task_id).retries == 0, task_id


def test_timeouts(dag):
  train = dag.get_task("train")
  assert train.execution_timeout is not None
  assert datetime.timedelta(minutes=10) <= train.execution_timeout <= datetime.timedelta(days=2)
  for task_id in ("build_tfrecords", "evaluate", "evaluate_champion", "export"):
    assert dag.get_task(task_id).execution_timeout is not None


def test_train_runs_when_conversion_was_skipped(dag):
  assert dag.get_task("train").trigger_rule == "none_failed"
  assert dag.get_task("check_dataset").trigger_rule == "none_failed"


def test_gate_runs_without_a_champion_evaluation_but_not_after_a_failure(dag):
  # evaluate_champion is skipped when there is no champion; the gate still judges. A failed
  # champion evaluation stops it (upstream_failed): no promotion on half the evidence.
  assert dag.get_task("gate").trigger_rule == "none_failed_min_one_success"
  assert "evaluate_champion" in dag.get_task("gate").upstream_task_ids


def test_schedule_weekly_or_new_raw_data(dag):
  from airflow.sdk import AssetOrTimeSchedule
  assert isinstance(dag.timetable, AssetOrTimeSchedule)
  assert dag.timetable.timetable.expression == "0 0 * * 0"  # @weekly
  assert "deeplab_raw_data" in str(dag.timetable.asset_condition)


def test_promote_emits_dataset_and_model_assets(dag):
  names = {getattr(o, "name", None) for o in dag.get_task("promote").outlets}
  assert names == {"deeplab_dataset", "deeplab_model"}


@pytest.mark.parametrize("section", ["Data", "Model", "Training", "Gate", "Runtime"])
def test_params_grouped_in_sections_with_title_and_description(dag, section):
  params = dag.params
  in_section = [k for k in params.keys() if params.get_param(k).schema.get("section") == section]
  assert in_section, section
  for k in in_section:
    param = params.get_param(k)
    assert param.schema.get("title") and param.description, k


def test_every_param_default_is_valid(dag):
  dag.params.validate()
  for key in dag.params.keys():
    p = dag.params.get_param(key)
    p.resolve(p.value)  # raises ParamValidationError on an invalid default


def test_required_params_exist(dag):
  required = {"dataset_format", "source_uri", "model_variant", "num_clones", "train_batch_size",
              "training_number_of_steps", "base_learning_rate", "train_crop_size",
              "atrous_rates", "output_stride", "decoder_output_stride", "tf_initial_checkpoint",
              "initialize_last_layer", "init_from", "min_miou", "launcher", "force"}
  assert required <= set(dag.params.keys())
  assert dag.params.get_param("init_from").schema["enum"] == ["scratch", "model_zoo", "champion"]
  assert dag.params.get_param("launcher").schema["enum"] == ["local", "kubernetes"]
  # Every model variant the trainer builds, from the one list (NAS included since issue 24).
  from deeplab.config import SUPPORTED_VARIANTS
  variants = dag.params.get_param("model_variant").schema["enum"]
  assert variants == list(SUPPORTED_VARIANTS) and {"nas_hnasnet", "nas_pnasnet"} <= set(variants)


def test_params_with_an_empty_default_accept_null(dag):
  # The trigger form sends an empty text field as null; a schema that refuses null marks its
  # own default invalid and disables the Trigger button (seen in the UI before this test).
  for name, param in dag.params.items():
    value = dag.params[name]
    if value in ("", None):
      types = param.schema.get("type")
      types = types if isinstance(types, list) else [types]
      assert "null" in types, f"Param {name} has an empty default but its schema refuses null"
      param.resolve(value=None)


def test_export_serves_what_evaluate_scored(dag):
  # The checkpoint the gate judged, with the input size settings evaluate recorded.
  export = dag.get_task("export")
  assert export.checkpoint_path == "{{ ti.xcom_pull(task_ids='evaluate')['checkpoint'] }}"
  assert export.eval_metrics_json == "{{ ti.xcom_pull(task_ids='evaluate')['metrics_json'] }}"


def test_train_gets_the_cluster_shape_from_the_plan(dag):
  # num_replicas/num_ps_tasks Params -> the plan -> the train operator's launcher (a group).
  train = dag.get_task("train")
  for name in ("num_clones", "num_replicas", "num_ps_tasks"):
    arg = getattr(train, name)
    assert (arg.operator.task_id, arg.key) == ("resolve_config", name), name


# -- serving: deeplab_deploy on the model Asset, deeplab_rollback by hand ----------------------
SERVING_DAGS = ("deeplab_deploy", "deeplab_rollback")


@pytest.fixture(params=SERVING_DAGS)
def serving_dag(request, dagbag):
  return dagbag.dags[request.param]


def test_deploy_is_scheduled_on_the_model_asset_promote_emits(dagbag, dag):
  from airflow.sdk import AssetAlias
  deploy = dagbag.dags["deeplab_deploy"]
  promoted = {o.name for o in dag.get_task("promote").outlets if isinstance(o, AssetAlias)}
  assert isinstance(deploy.timetable.asset_condition, AssetAlias)
  assert deploy.timetable.asset_condition.name in promoted
  assert type(dagbag.dags["deeplab_rollback"].timetable).__name__ == "NullTimetable"  # by hand


def test_serving_task_graph_and_policy(serving_dag):
  assert sorted(serving_dag.task_ids) == ["deploy", "plan", "record", "serve"]
  assert "deploy" in serving_dag.get_task("plan").downstream_task_ids
  # record and serve both take the push's result: a serving target that is not ready does not
  # keep the push out of history.jsonl, and serve is skipped with a skipped push.
  assert serving_dag.get_task("deploy").downstream_task_ids == {"record", "serve"}
  assert serving_dag.catchup is False and serving_dag.max_active_runs == 1
  assert {"deeplab", "serving"} <= serving_dag.tags
  for task in serving_dag.tasks:
    assert task.owner == "ml-platform"
  # Every task reads or writes storage or runs a job: all retry (a bad model name, a missing
  # champion or a failed request check fail at once through AirflowFailException / exit 2).
  for task in serving_dag.tasks:
    assert task.retries >= 2, task.task_id
  deploy = serving_dag.get_task("deploy")
  assert deploy.command == "deploy" and deploy.execution_timeout is not None
  assert deploy.num_gpus() == 0


def test_serving_params_have_titles_descriptions_and_valid_defaults(serving_dag):
  serving_dag.params.validate()
  for name, param in serving_dag.params.items():
    assert param.schema.get("title") and param.description, name
    assert param.schema.get("section"), name
    if serving_dag.params[name] in ("", None):
      assert "null" in param.schema["type"], name
  assert {"model_name", "launcher"} <= set(serving_dag.params.keys())


def test_rollback_form_takes_previous_or_a_version(dagbag):
  from airflow.sdk.exceptions import ParamValidationError
  target = dagbag.dags["deeplab_rollback"].params.get_param("target")
  assert target.resolve("previous") == "previous" and target.resolve("12") == "12"
  for bad in ("0", "latest", "-1"):
    with pytest.raises(ParamValidationError):
      target.resolve(bad)


def test_rollback_emits_the_model_asset(dagbag):
  names = {getattr(o, "name", None) for o in dagbag.dags["deeplab_rollback"].get_task("record").outlets}
  assert names == {"deeplab_model"}
