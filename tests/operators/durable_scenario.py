"""A worker loses the Kubernetes API mid-job; the retry reconnects through the task state store.

Run by test_kubernetes_durable.py in its own process (AIRFLOW_HOME with a migrated SQLite DB):
`dag.test()` runs the task with Airflow's in-process supervisor, so `context["task_state_store"]`
is the real accessor writing the metadata DB, and the trigger runs in-process as in the
triggerer. Only the Kubernetes API is scripted (fake_kubernetes). Writes JSON to $SCENARIO_OUT.
"""

import datetime
import json
import os
import sys

sys.path.insert(0, os.environ["REPO_ROOT"])

import pytest
from airflow.sdk import DAG

from operators import DeepLabTrainOperator
from tests.operators import fake_kubernetes

cluster = fake_kubernetes.FakeCluster(exit_code=0, result={"checkpoint": "gs://b/t/model.ckpt-9"},
                                      log_lines=["step 9 loss 0.2"])
# Try 1 creates the pod, stores its identity, defers; then its worker is cut off: the trigger
# and the resume fail, the pod runs on. The retry callback heals the cluster for try 2.
cluster.cut_off_after_create = True

with DAG("durable_probe", schedule=None,
         start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)) as dag:
  DeepLabTrainOperator(task_id="train", dataset_dir="gs://b/d", train_logdir="gs://b/t",
                       num_clones=1, launcher="kubernetes", retries=1,
                       retry_delay=datetime.timedelta(0),
                       on_retry_callback=lambda context: cluster.heal())

from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

DagBundlesManager().sync_bundles_to_db()

bag = DagBag(collect_dags=False)  # dag.test needs the DAG serialised (not in a bundle here)
bag.bag_dag(dag)
sync_bag_to_db(bag, "dags-folder", None)

with fake_kubernetes.installed(pytest.MonkeyPatch(), cluster):
  run = dag.test()

from airflow.models.task_state_store import TaskStateStoreModel
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session

with create_session() as session:
  ti = session.query(TaskInstance).filter_by(dag_id="durable_probe", task_id="train").one()
  stored = {row.key: json.loads(row.value) for row in session.query(TaskStateStoreModel)
            .filter_by(dag_id="durable_probe", task_id="train", run_id=run.run_id)}
  out = {"run_state": str(run.state), "ti_state": str(ti.state), "try_number": ti.try_number,
         "stored": stored, "pods_created": cluster.created, "pods_left": sorted(
             name for _, name in cluster.pods), "deleted": cluster.deleted,
         "calls": cluster.calls}
with open(os.environ["SCENARIO_OUT"], "w") as f:
  json.dump(out, f, indent=2, default=str)
