"""job_guard.py: a job never outlives the process that supervises it, and reports like the job."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from operators.launchers.local import JOB_GUARD, LocalLauncher
from operators.launchers.processes import group_members
from tests.operators.conftest import FAKE_JOB, pid_alive

SUPERVISOR = str(pathlib.Path(__file__).with_name("supervisor.py"))


def _wait_for(path: pathlib.Path, lines: int, timeout: float = 30.0) -> list:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if path.exists() and len(path.read_text().split()) == lines:
      return [int(x) for x in path.read_text().split()]
    time.sleep(0.05)
  raise AssertionError(f"{path} did not get {lines} pids within {timeout} s")


def _alive_after(pids: list, timeout: float) -> list:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
    time.sleep(0.05)
  return [p for p in pids if pid_alive(p)]


@pytest.mark.parametrize("ignore_term", [False, True], ids=["job-stops-on-sigterm",
                                                            "job-ignores-sigterm"])
def test_sigkilled_supervisor_leaves_no_process_of_the_job(tmp_path, ignore_term):
  pids_file = tmp_path / "pids"
  flags = [f"--spawn={pids_file}", "--sleep=300"] + (["--ignore_term"] if ignore_term else [])
  sup = subprocess.Popen([sys.executable, SUPERVISOR, "--fake", "train", *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  members = []
  try:
    job, child = _wait_for(pids_file, 2)
    grandchild = _wait_for(pathlib.Path(f"{pids_file}.g"), 1)[0]
    guard = os.getpgid(job)
    members = group_members(guard)
    assert {guard, job, child, grandchild} <= set(members), members
    sup.kill()  # SIGKILL: no finally, no on_kill
    sup.wait(timeout=10)
    # ORPHAN_GRACE_SECONDS (3) plus the poll: well under the 10 s allowed here.
    assert _alive_after(members, timeout=10) == []
  finally:
    if sup.poll() is None:
      sup.kill()
    for p in members:  # a failed assertion must not leave sleepers behind
      if pid_alive(p):
        os.kill(p, signal.SIGKILL)


def _wait_for_text(path: pathlib.Path, text: str, timeout: float = 30.0) -> None:
  deadline = time.monotonic() + timeout
  while not (path.exists() and path.read_text() == text):
    assert time.monotonic() < deadline, f"{path} did not say {text!r} within {timeout} s"
    time.sleep(0.02)


def _airflow_kill(tmp_path, supervisor_flags: list, stop_seconds: float):
  """Airflow's kill path on a supervised fake job that needs `stop_seconds` to stop: SIGTERM to
  the supervisor (on_kill stops the job), SIGKILL once the job has begun stopping (Airflow
  waits 5 s). Returns the job's pid, the members of its group and the file it writes once it
  has stopped."""
  pids_file, marker = tmp_path / "pids", tmp_path / "stopped"
  sup = subprocess.Popen([sys.executable, SUPERVISOR, "--fake", *supervisor_flags, "train",
                          f"--spawn={pids_file}", "--sleep=300", f"--stop_seconds={stop_seconds}",
                          f"--stop_marker={marker}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  members = []
  try:
    job, _ = _wait_for(pids_file, 2)
    _wait_for(pathlib.Path(f"{pids_file}.g"), 1)
    members = group_members(os.getpgid(job))
    sup.send_signal(signal.SIGTERM)
    _wait_for_text(marker, "stopping")
    sup.kill()
    sup.wait(timeout=10)
    return job, members, marker
  except BaseException:
    for p in members:
      if pid_alive(p):
        os.kill(p, signal.SIGKILL)
    raise
  finally:
    if sup.poll() is None:
      sup.kill()


def _kill_leftovers(pids: list) -> None:
  for p in pids:  # a failed assertion must not leave sleepers behind
    if pid_alive(p):
      os.kill(p, signal.SIGKILL)


def test_a_stop_begun_by_the_supervisor_may_finish_after_the_supervisor_is_killed(tmp_path):
  # The job needs 8 s to stop (a trainer saving): more than the guard's orphan grace of 3 s.
  job, members, marker = _airflow_kill(tmp_path, [], stop_seconds=8)
  try:
    assert _alive_after([job], timeout=30) == []
    assert marker.read_text() == "stopped", "the job was killed before it finished stopping"
    assert _alive_after(members, timeout=10) == []
  finally:
    _kill_leftovers(members)


def test_a_stop_is_not_waited_for_beyond_the_supervisors_grace(tmp_path):
  # The job would take 60 s to stop: it ends with the supervisor's own grace (4 s from the
  # SIGTERM), not later.
  _, members, marker = _airflow_kill(tmp_path, ["--kill_grace=4"], stop_seconds=60)
  try:
    assert _alive_after(members, timeout=15) == []
    assert marker.read_text() == "stopping"
  finally:
    _kill_leftovers(members)


@pytest.mark.parametrize("code", [0, 2, 3, 75])
def test_the_guard_exits_with_the_jobs_code(code):
  proc = subprocess.run([sys.executable, JOB_GUARD, str(os.getpid()), "--", sys.executable,
                         FAKE_JOB, "train", f"--exit={code}"], capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode == code
  assert f"exiting with {code}" in proc.stdout


def test_the_guard_dies_by_the_signal_that_killed_the_job():
  proc = subprocess.run([sys.executable, JOB_GUARD, str(os.getpid()), "--", sys.executable, "-c",
                         "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                        capture_output=True, timeout=60)
  assert proc.returncode == -signal.SIGSEGV


def test_a_guard_started_by_another_parent_stops_the_job_at_once(tmp_path):
  # Its supervisor pid is not its parent: the supervisor died before the guard was running.
  marker = tmp_path / "ran"
  proc = subprocess.run([sys.executable, JOB_GUARD, "1", "--", sys.executable, "-c",
                         f"import time; time.sleep(2); open({str(marker)!r}, 'w')"],
                        capture_output=True, timeout=60, start_new_session=True)
  assert proc.returncode == -signal.SIGKILL
  assert not marker.exists()


def test_launcher_runs_the_job_behind_the_guard(tmp_path):
  launcher = LocalLauncher(command_prefix=[sys.executable, FAKE_JOB])
  result = launcher.run(["train", "--lines=2"])
  assert result.exit_code == 0
  assert result.result["command"] == "train"
  assert "line 1" in result.tail
