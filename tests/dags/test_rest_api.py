"""Real Airflow services on 127.0.0.1 (api-server, scheduler, dag-processor): trigger the DAG
through the REST API with a conf (approval=human, approved through the API) and see it succeed;
a bad conf is refused."""

import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.dags.test_end_to_end import TINY

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _request(method, url, token=None, body=None, timeout=30):
  data = json.dumps(body).encode() if body is not None else None
  req = urllib.request.Request(url, data=data, method=method,
                               headers={"Content-Type": "application/json"})
  if token:
    req.add_header("Authorization", f"Bearer {token}")
  try:
    with urllib.request.urlopen(req, timeout=timeout) as resp:
      return resp.status, json.loads(resp.read() or b"null")
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read() or b"null")


def _wait(predicate, timeout, what, logs):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      value = predicate()
      if value:
        return value
    except (OSError, urllib.error.URLError):
      pass
    time.sleep(2)
  tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
  raise AssertionError(f"timed out waiting for {what}\n{tails}")


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
  yield from start_services(tmp_path, REPO / "dags")


def start_services(tmp_path, dags_folder):
  """Yields (base URL, token, log files) of api-server, scheduler and dag-processor."""
  home = tmp_path / "airflow_home"
  home.mkdir()
  port = _free_port()
  password = secrets.token_urlsafe(8)
  (home / "passwords.json").write_text(json.dumps({"admin": password}))
  env = {
      **os.environ,
      "AIRFLOW_HOME": str(home),
      "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
      "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
      "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
      "AIRFLOW__CORE__PARALLELISM": "2",
      "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
      "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
      "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
      "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
      "AIRFLOW__API__HOST": "127.0.0.1",
      "AIRFLOW__API__PORT": str(port),
      "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
      "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
      "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
      "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
      "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
      "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
      "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
      "DEEPLAB_STORAGE_ROOT": str(tmp_path / "storage"),
      "PYTHONPATH": str(REPO),
      "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
      "CUDA_VISIBLE_DEVICES": "",
      # Unpausing a weekly DAG starts the latest weekly run at once; this test wants only its own.
      "DEEPLAB_RETRAIN_SCHEDULE": "none",
  }
  subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                 capture_output=True, timeout=300)
  procs, logs = [], []
  for name, args in (("api-server", ["api-server", "--port", str(port)]),
                     ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
    log = tmp_path / f"{name}.log"
    logs.append(log)
    procs.append(subprocess.Popen([str(BIN / "airflow"), *args], env=env,
                                  stdout=log.open("w"), stderr=subprocess.STDOUT,
                                  start_new_session=True))
  try:
    base = f"http://127.0.0.1:{port}"
    _wait(lambda: _request("GET", f"{base}/api/v2/monitor/health")[0] == 200, 180,
          "the api-server", logs)
    status, body = _request("POST", f"{base}/auth/token",
                            body={"username": "admin", "password": password})
    assert status in (200, 201), body
    yield base, body["access_token"], logs
  finally:
    import signal
    for p in procs:
      try:
        os.killpg(p.pid, signal.SIGTERM)
      except ProcessLookupError:
        pass
    for p in procs:
      try:
        p.wait(timeout=30)
      except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)


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
