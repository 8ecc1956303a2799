"""Real Airflow services on 127.0.0.1 (api-server, scheduler, dag-processor): trigger the DAG
through the REST API with a conf (approval=human, approved through the API) and see it succeed;
a bad conf is refused."""

import json
import urllib.request

import pytest

from tests.dags.airflow_services import AirflowServices, request as _request, wait as _wait
from tests.dags.test_end_to_end import TINY


def parked(logs, dag_id, task_id):
  """Whether the scheduler has seen the worker process of a task that parked itself (awaiting
  input) exit. Answering before that loses a race in Airflow 3.3: the late "success" event finds
  the resumed task queued and fails it. A person never answers that fast; tests wait for it."""
  line = ("Received executor event with state success for task instance "
          f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}'")
  scheduler = next(p for p in logs if p.name == "scheduler.log")
  return scheduler.exists() and line in scheduler.read_text()


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

  # approval=human: the real DAG waits for a reviewer after the gate; approve through the API.
  status, body = _request("POST", f"{dag_url}/dagRuns", token,
                          {"logical_date": None, "conf": {**TINY, "approval": "human"}})
  assert status == 200, body
  run_url = f"{dag_url}/dagRuns/{urllib.request.quote(body['dag_run_id'], safe='')}"
  hitl = f"{run_url}/taskInstances/approve/-1/hitlDetails"

  def awaiting():
    tis = _request("GET", f"{run_url}/taskInstances", token)[1]["task_instances"]
    state = {t["task_id"]: t["state"] for t in tis}.get("approve")
    assert state not in ("skipped", "failed", "upstream_failed"), state
    return _request("GET", hitl, token)[1] if state == "awaiting_input" else None

  detail = _wait(awaiting, 600, "the approval request", logs)
  _wait(lambda: parked(logs, "deeplab_retrain", "approve"), 120, "the request to settle", logs)
  assert "candidate mIoU" in detail["body"] and "promoted: " in detail["body"]
  status, body = _request("PATCH", hitl, token, {"chosen_options": ["Approve"]})
  assert status == 200, body

  def finished():
    state = _request("GET", run_url, token)[1]["state"]
    return state if state in ("success", "failed") else None

  final = _wait(finished, 600, "the DAG run", logs)
  status, tis = _request("GET", f"{run_url}/taskInstances", token)
  states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
  assert final == "success", states
  assert states["train"] == "success" and states["promote"] == "success", states
