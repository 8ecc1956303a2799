"""Real Airflow services on 127.0.0.1 for tests: api-server, scheduler, dag-processor.

A throwaway AIRFLOW_HOME (SQLite, LocalExecutor), free ports, the simple auth manager with a
generated password. Each service runs in its own session so that a test can kill one (the
scheduler, say) and start it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Mapping, Optional

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
SERVICES = {"api-server": ["api-server"], "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"]}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def request(method, url, token=None, body=None, timeout=30):
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


def wait(predicate, timeout, what, logs, interval=2.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      value = predicate()
      if value:
        return value
    except (OSError, urllib.error.URLError):
      pass
    time.sleep(interval)
  tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
  raise AssertionError(f"timed out waiting for {what}\n{tails}")


def finished_runs(base: str, token: str, dag_id: str) -> list:
  """The DAG's runs that ended (success or failed), through the REST API."""
  status, body = request("GET", f"{base}/api/v2/dags/{dag_id}/dagRuns", token)
  assert status == 200, body
  return [r for r in body["dag_runs"] if r["state"] in ("success", "failed")]


class AirflowServices:
  """Starts the services; `base`, `token`, `logs` once `start_all()` returned."""

  def __init__(self, tmp_path: pathlib.Path, extra_env: Optional[Mapping[str, str]] = None):
    self.tmp_path = tmp_path
    home = tmp_path / "airflow_home"
    home.mkdir()
    self.port = free_port()
    self.password = secrets.token_urlsafe(8)
    (home / "passwords.json").write_text(json.dumps({"admin": self.password}))
    self.env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(self.port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "DEEPLAB_STORAGE_ROOT": str(tmp_path / "storage"),
        "PYTHONPATH": str(REPO),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CUDA_VISIBLE_DEVICES": "",
        # Unpausing a weekly DAG starts the latest weekly run at once; tests want only theirs.
        "DEEPLAB_RETRAIN_SCHEDULE": "none",
        **(extra_env or {}),
    }
    self.procs: dict = {}
    self.started: list = []  # every process group started, restarted services' old ones too
    self.logs: list = []
    self.base = f"http://127.0.0.1:{self.port}"
    self.token: Optional[str] = None

  def start(self, name: str) -> subprocess.Popen:
    log = self.tmp_path / f"{name}.log"
    if log not in self.logs:
      self.logs.append(log)
    args = SERVICES[name] + (["--port", str(self.port)] if name == "api-server" else [])
    proc = subprocess.Popen([str(BIN / "airflow"), *args], env=self.env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    self.procs[name] = proc
    self.started.append(proc)
    return proc

  def start_all(self) -> "AirflowServices":
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=self.env, check=True,
                   capture_output=True, timeout=300)
    for name in SERVICES:
      self.start(name)
    wait(lambda: request("GET", f"{self.base}/api/v2/monitor/health")[0] == 200, 180,
         "the api-server", self.logs)
    status, body = request("POST", f"{self.base}/auth/token",
                           body={"username": "admin", "password": self.password})
    assert status in (200, 201), body
    self.token = body["access_token"]
    return self

  def stop_all(self) -> None:
    """Ends every group ever started: a SIGKILLed scheduler's children (serve-logs) included."""
    for p in self.started:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGTERM)
    for p in self.started:
      try:
        p.wait(timeout=30)
      except subprocess.TimeoutExpired:
        pass
      with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)  # what is left of the group
      p.wait()

  # -- the DAG ----------------------------------------------------------------------------------
  def trigger(self, conf: dict, dag_id: str = "deeplab_retrain") -> str:
    """Unpauses the DAG once parsed, triggers a run with `conf`; returns the run's URL."""
    dag_url = f"{self.base}/api/v2/dags/{dag_id}"
    wait(lambda: request("GET", dag_url, self.token)[0] == 200, 180, "the DAG to be parsed",
         self.logs)
    request("PATCH", dag_url, self.token, {"is_paused": False})
    status, body = request("POST", f"{dag_url}/dagRuns", self.token,
                           {"logical_date": None, "conf": conf})
    assert status == 200, body
    return f"{dag_url}/dagRuns/{urllib.request.quote(body['dag_run_id'], safe='')}"

  def wait_finished(self, run_url: str, timeout: float = 600) -> str:
    def finished():
      state = request("GET", run_url, self.token)[1]["state"]
      return state if state in ("success", "failed") else None
    return wait(finished, timeout, "the DAG run", self.logs)

  def wait_deployed(self, timeout: float = 300) -> dict:
    """The deeplab_deploy run the promotion's model Asset started, once finished: its processes
    mention the storage root too, so a test that checks nothing is left waits for it."""
    return wait(lambda: (finished_runs(self.base, self.token, "deeplab_deploy") or [None])[0],
                timeout, "deeplab_deploy on the promoted model", self.logs)

  def task_instances(self, run_url: str) -> dict:
    status, body = request("GET", f"{run_url}/taskInstances", self.token)
    assert status == 200, body
    return {t["task_id"]: t for t in body["task_instances"]}
