"""Real Airflow services on 127.0.0.1 (api-server, scheduler, dag-processor): trigger the DAG
through the REST API with a conf and see it succeed; a bad conf is refused."""

import json
import urllib.request

import pytest

from tests.dags.airflow_services import AirflowServices, request as _request, wait as _wait
from tests.dags.test_end_to_end import TINY


@pytest.fixture
def airflow_services(tmp_path):
  services = AirflowServices(tmp_path).start_all()
  try:
    yield services.base, services.token, services.logs
  finally:
    services.stop_all()


@pytest.mark.slow
def test_trigger_through_rest_api(airflow_services):
  base, token, logs = airflow_services
  dag_url = f"{base}/api/v2/dags/deeplab_retrain"
  _wait(lambda: _request("GET", dag_url, token)[0] == 200, 180, "the DAG to be parsed", logs)
  _request("PATCH", dag_url, token, {"is_paused": False})

  status, body = _request("POST", f"{dag_url}/dagRuns", token,
                          {"logical_date": None, "conf": {"num_clones": 0}})
  assert status == 400, body
  assert "num_clones" in json.dumps(body)

  status, body = _request("POST", f"{dag_url}/dagRuns", token,
                          {"logical_date": None, "conf": TINY})
  assert status == 200, body
  run_url = f"{dag_url}/dagRuns/{urllib.request.quote(body['dag_run_id'], safe='')}"

  def finished():
    state = _request("GET", run_url, token)[1]["state"]
    return state if state in ("success", "failed") else None

  assert _wait(finished, 600, "the DAG run", logs) == "success"
  status, tis = _request("GET", f"{run_url}/taskInstances", token)
  states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
  assert states["train"] == "success" and states["promote"] == "success", states
