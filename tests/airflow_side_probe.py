"""Runs inside a fresh venv holding only `pip install <repo>` (no extras); never under pytest.

Copied next to the DAG copy and run from there, so nothing of the source checkout is on
sys.path: every import below must come from the installed package. Writes what it saw as JSON
to $PROBE_OUT (stdout carries the tasks' own prints).
"""

import json
import os
import sys
import types

out = {}
try:
  import tensorflow  # noqa: F401
  out["tensorflow"] = "importable"
except ModuleNotFoundError:
  out["tensorflow"] = None

from airflow.dag_processing.dagbag import DagBag  # 3.3: no include_examples argument
from airflow.sdk.execution_time.context import OutletEventAccessors

bag = DagBag(dag_folder=os.environ["PROBE_DAGS"])
out["import_errors"] = {path: str(error)[-800:] for path, error in bag.import_errors.items()}
out["dags"] = {dag_id: sorted(d.task_ids) for dag_id, d in bag.dags.items()}
dag = bag.dags.get("deeplab_retrain")
out["tasks"] = sorted(dag.task_ids) if dag else []


def _write():
  with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump(out, f, indent=2, default=str)


if dag is None:  # the test reports the import errors
  _write()
  sys.exit(0)

import deeplab
import deeplab_pipeline
import operators

out["module_files"] = {m.__name__: m.__file__ for m in (deeplab, deeplab_pipeline, operators)}

params = {name: dag.params[name] for name in dag.params}
dag_run = types.SimpleNamespace(run_id="manual__2026-11-28T00:00:00+00:00", run_type="manual")
plan = dag.get_task("resolve_config").python_callable(params=params, dag_run=dag_run)
out["dataset_check"] = dag.get_task("check_dataset").python_callable(plan)
champion = dag.get_task("check_champion").python_callable(plan)
decision = dag.get_task("gate").python_callable(
    eval_result={"miou": 0.61, "checkpoint": f"{plan['train_logdir']}/model.ckpt-500"},
    champion_eval=None, champion=champion, plan=plan)
events = OutletEventAccessors()
record = dag.get_task("promote").python_callable(
    plan, decision,
    export_result={"frozen_graph": f"{plan['export_path']}/frozen_inference_graph.pb",
                   "saved_model": f"{plan['export_path']}/saved_model"},
    train_result={"checkpoint": f"{plan['train_logdir']}/model.ckpt-500"},
    outlet_events=events)

# The deploy DAG on the promoted model, by hand: its plan reads the champion from the emulator;
# serve with DEEPLAB_SERVING_TARGET unset is the folder target (no provider call).
deploy = bag.dags.get("deeplab_deploy")
if deploy is not None:
  deploy_params = {name: deploy.params[name] for name in deploy.params}
  deploy_params["model_name"] = record["model_name"]
  planned = deploy.get_task("plan").python_callable(params=deploy_params, dag_run=dag_run,
                                                    triggering_asset_events={})
  out["deploy_plan"] = {k: planned[k] for k in ("model_name", "export_path",
                                                "serving_base_path", "skip_reason")}
  out["serve"] = deploy.get_task("serve").python_callable({
      "model_name": planned["model_name"], "version": 1, "push_id": "probe",
      "model_dir": f"{planned['serving_base_path']}/{planned['model_name']}"})

from deeplab import storage

out["plan"] = {k: plan[k] for k in ("run_dir", "config_uri", "champion_uri", "dataset_dir")}
out["config_written"] = storage.exists(plan["config_uri"])
out["gate"] = storage.read_json(storage.join(plan["run_dir"], "gate.json"))
out["champion"] = storage.read_json(plan["champion_uri"])
out["promote_returned"] = record
out["asset_events"] = sorted(e.dest_asset_key.name for accessor in events._dict.values()
                             for e in accessor.asset_alias_events)
out["tensorflow_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in
                                  ("tensorflow", "tf_slim", "tf_keras", "keras"))
_write()
