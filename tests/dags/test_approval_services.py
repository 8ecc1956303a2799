"""approval=human on the real services (api-server, scheduler, dag-processor): a reviewer's
Approve through the REST API lets promote run; no answer within the timeout resolves to Reject
(the scheduler's awaiting-input sweep) and promote is skipped: the champion stays.

The DAG is tests/dags/approval_dag/approval_check.py: the pipeline's ModelApprovalOperator
between a gate that passed and promote, without training, so the test takes seconds per run."""

import json
import pathlib
import urllib.parse

import pytest

from tests.dags.airflow_services import AirflowServices, request as _request, wait as _wait
from tests.dags.test_rest_api import parked

DAG_FOLDER = pathlib.Path(__file__).resolve().parent / "approval_dag"


@pytest.fixture
def services(tmp_path):
  running = AirflowServices(
      tmp_path, {"AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER)}).start_all()
  try:
    yield running.base, running.token, running.logs
  finally:
    running.stop_all()


def _trigger(base, token, conf):
  status, body = _request("POST", f"{base}/api/v2/dags/approval_check/dagRuns", token,
                          {"logical_date": None, "conf": conf})
  assert status == 200, body
  return f"{base}/api/v2/dags/approval_check/dagRuns/{urllib.parse.quote(body['dag_run_id'], safe='')}"


def _states(run_url, token):
  tis = _request("GET", f"{run_url}/taskInstances", token)[1]["task_instances"]
  return {t["task_id"]: t["state"] for t in tis}


def _finished(run_url, token):
  state = _request("GET", run_url, token)[1]["state"]
  return state if state in ("success", "failed") else None


@pytest.mark.slow
def test_human_approval_approved_and_timed_out(services, tmp_path):
  base, token, logs = services
  dag_url = f"{base}/api/v2/dags/approval_check"
  _wait(lambda: _request("GET", dag_url, token)[0] == 200, 180, "the DAG to be parsed", logs)

  approved_dir = tmp_path / "approved"
  run = _trigger(base, token, {"approval_timeout_minutes": 30, "run_dir": str(approved_dir)})
  hitl = f"{run}/taskInstances/approve/-1/hitlDetails"
  detail = _wait(lambda: _request("GET", hitl, token)[1] if _states(run, token).get(
      "approve") == "awaiting_input" else None, 180, "the approval request", logs)
  assert detail["body"].startswith("candidate mIoU 0.9000")  # the gate's summary is shown
  _wait(lambda: parked(logs, "approval_check", "approve"), 120, "the request to settle", logs)
  status, body = _request("PATCH", hitl, token, {"chosen_options": ["Approve"]})
  assert status == 200, body
  assert _wait(lambda: _finished(run, token), 180, "the approved run", logs) == "success"
  assert _states(run, token)["promote"] == "success"
  assert json.loads((approved_dir / "approval.json").read_text())["chosen"] == "Approve"

  timeout_dir = tmp_path / "timeout"
  run = _trigger(base, token, {"approval_timeout_minutes": 0.05, "run_dir": str(timeout_dir)})
  assert _wait(lambda: _finished(run, token), 240, "the unanswered run", logs) == "success"
  states = _states(run, token)
  assert states["approve"] == "success" and states["promote"] == "skipped", states
  record = json.loads((timeout_dir / "approval.json").read_text())
  assert record["chosen"] == "Reject" and record["timed_out"] is True
  assert record["outcome"].startswith("champion kept: no answer")
