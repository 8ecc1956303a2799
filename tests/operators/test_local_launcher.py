"""LocalLauncher: on_kill and execution_timeout end the whole process group, no orphans."""

import os
import pathlib
import signal
import sys
import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout
from airflow.sdk.execution_time.timeout import TimeoutPosix

from operators import DeepLabTrainOperator
from operators.launchers.local import LocalLauncher
from tests.operators.conftest import FAKE_JOB, pid_alive


def _wait_for_pids(pidfile: pathlib.Path, timeout=20.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    g = pathlib.Path(str(pidfile) + ".g")
    if pidfile.exists() and g.exists() and len(pidfile.read_text().split()) == 2 \
        and g.read_text().strip():
      return [int(x) for x in pidfile.read_text().split()] + [int(g.read_text())]
    time.sleep(0.05)
  raise AssertionError("the fake job did not start its children")


def _wait_gone(pids, timeout=10.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
    time.sleep(0.05)
  return [p for p in pids if pid_alive(p)]


def _op(tmp_path, **flags):
  return DeepLabTrainOperator(task_id="train", dataset_dir="/d", train_logdir="/l",
                              flags={"spawn": str(tmp_path / "pids"), "sleep": 300, **flags})


@pytest.mark.parametrize("ignore_term", [False, True], ids=["sigterm", "sigkill-after-grace"])
def test_on_kill_ends_job_child_and_grandchild(fake_launcher, tmp_path, ignore_term):
  op = _op(tmp_path, **({"ignore_term": True} if ignore_term else {}))
  errors = []

  def run():
    try:
      op.execute({})
    except Exception as e:  # noqa: BLE001 - collected for the assertion below
      errors.append(e)

  t = threading.Thread(target=run)
  t.start()
  pids = _wait_for_pids(tmp_path / "pids")
  assert all(pid_alive(p) for p in pids)
  op.on_kill()
  t.join(timeout=20)
  assert not t.is_alive()
  assert _wait_gone(pids) == []
  # Killed by a signal: a negative exit code, treated as transient (retried), not "bad input".
  assert errors and isinstance(errors[0], AirflowException)


def test_execution_timeout_leaves_no_orphan(fake_launcher, tmp_path):
  op = _op(tmp_path)
  with pytest.raises(AirflowTaskTimeout):
    with TimeoutPosix(seconds=3):  # what the task runner wraps execute() in
      op.execute({})
  op.on_kill()  # the task runner calls it after the timeout; must be harmless
  pids = [int(x) for x in (tmp_path / "pids").read_text().split()]
  pids.append(int((tmp_path / "pids.g").read_text()))
  assert _wait_gone(pids) == []


def test_leftover_grandchild_after_normal_exit_is_stopped(fake_launcher, tmp_path):
  # The job exits 0 but leaves a child holding stdout: the task must still finish, cleanly.
  op = _op(tmp_path, sleep=0)
  start = time.monotonic()
  op.execute({})
  assert time.monotonic() - start < 30
  pids = [int(x) for x in (tmp_path / "pids").read_text().split()]
  pids.append(int((tmp_path / "pids.g").read_text()))
  assert _wait_gone(pids) == []


def test_the_jobs_last_lines_survive_on_kill_run_from_a_signal_handler(tmp_path):
  # Airflow calls on_kill inside its SIGTERM handler, on the thread that reads the job's output.
  # The job takes 1 s to stop (longer than one wait for output) and says so while stopping:
  # those lines must reach the log and the failure message.
  launcher = LocalLauncher(command_prefix=[sys.executable, FAKE_JOB], kill_grace_seconds=10.0)
  pids = tmp_path / "pids"

  def stop_when_started():
    _wait_for_pids(pids)  # the job's SIGTERM handler is in place
    os.kill(os.getpid(), signal.SIGTERM)

  old = signal.signal(signal.SIGTERM, lambda signum, frame: launcher.kill())
  threading.Thread(target=stop_when_started, daemon=True).start()
  try:
    result = launcher.run(["train", f"--spawn={pids}", "--sleep=300", "--stop_seconds=1"])
  finally:
    signal.signal(signal.SIGTERM, old)
  assert result.exit_code == 143
  assert result.tail[-2:] == ("stopping", "stopped"), result.tail
