"""Durable reattach through OUR task's state store (issue 11): the KubernetesPodOperator that
runs inside DeepLabTrainOperator stores the pod's identity with the task's real
`task_state_store` (Airflow's in-process supervisor and a SQLite metadata DB), and the retry
reconnects to the running pod by that identity instead of starting a second trainer.

Only the Kubernetes API is scripted (fake_kubernetes); the scenario runs in its own process
(durable_scenario.py) because it needs its own AIRFLOW_HOME before Airflow is imported.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIO = pathlib.Path(__file__).with_name("durable_scenario.py")
HEALED = "--- a new try on a healthy worker ---"


@pytest.mark.slow
def test_retry_reattaches_to_the_running_pod_by_the_identity_in_the_task_state_store(tmp_path):
  env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"),
         "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
         "AIRFLOW_CONN_KUBERNETES_DEFAULT": '{"conn_type": "kubernetes"}',
         "DEEPLAB_KUBERNETES": '{"namespace": "ml", "poll_interval": 0.01, '
                               '"logging_interval": null}',
         "REPO_ROOT": str(ROOT), "SCENARIO_OUT": str(tmp_path / "out.json")}
  bin_dir = pathlib.Path(sys.executable).parent
  migrate = subprocess.run([str(bin_dir / "airflow"), "db", "migrate"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
  assert migrate.returncode == 0, migrate.stderr[-3000:]
  run = subprocess.run([sys.executable, str(SCENARIO)], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
  out = json.loads((tmp_path / "out.json").read_text())

  assert (out["run_state"], out["ti_state"], out["try_number"]) == ("success", "success", 2)
  identity = out["stored"]["pod_identifier"]  # written by try 1 into the metadata DB
  assert identity["namespace"] == "ml" and identity["name"].startswith("deeplab-train-")
  assert out["pods_created"] == 1, "the retry started a second trainer"
  second_try = out["calls"][out["calls"].index(HEALED) + 1:]
  # Try 2 asked for the stored pod by name first: no label search, no new pod.
  assert second_try[0] == "read_namespaced_pod"
  assert "list_namespaced_pod" not in second_try and "create_namespaced_pod" not in second_try
  assert out["deleted"] == [identity["name"]] and out["pods_left"] == []
