"""A retry on the same host stops the job an earlier try left running (task_state_store)."""

import logging
import os
import signal
import socket
import subprocess
import sys

from operators.launchers import job_record
from operators.launchers.local import LocalLauncher
from operators.launchers.processes import group_members, start_ticks
from tests.operators.conftest import FAKE_JOB, pid_alive


class MemoryStore:
  """The task_state_store's get/set/delete, in memory, with the calls made."""

  def __init__(self, **values):
    self.values, self.calls = dict(values), []

  def get(self, key, default=None):
    self.calls.append(("get", key))
    return self.values.get(key, default)

  def set(self, key, value, *, retention=None):
    self.calls.append(("set", key))
    self.values[key] = value

  def delete(self, key):
    self.calls.append(("delete", key))
    self.values.pop(key, None)


def _earlier_try():
  proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
  return proc, {"host": socket.gethostname(), "pgid": proc.pid,
                "start_ticks": start_ticks(proc.pid)}


def _launcher():
  return LocalLauncher(log=logging.getLogger("test"), command_prefix=[sys.executable, FAKE_JOB],
                       kill_grace_seconds=2.0)


def test_a_retry_stops_the_earlier_tries_job_then_records_and_forgets_its_own(caplog):
  old, record = _earlier_try()
  store = MemoryStore(**{job_record.KEY: record})
  try:
    with caplog.at_level(logging.WARNING):
      result = _launcher().run(["train"], context={"task_state_store": store})
    assert result.exit_code == 0
    assert old.wait(timeout=10) is not None and not pid_alive(old.pid)
    assert f"earlier try (process group {old.pid}) is still running" in caplog.text
    assert store.calls == [("get", job_record.KEY), ("set", job_record.KEY),
                           ("delete", job_record.KEY)]
    assert job_record.KEY not in store.values
  finally:
    if old.poll() is None:
      old.kill()


def test_the_job_of_an_earlier_try_whose_guard_was_killed_alone_is_stopped():
  # The leader (the guard) is gone; its child still runs in the group the record names.
  leader = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                             "print(subprocess.Popen(['sleep', '300']).pid, flush=True); "
                             "sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
  job = int(leader.stdout.readline())
  record = {"host": socket.gethostname(), "pgid": leader.pid,
            "start_ticks": start_ticks(leader.pid)}
  leader.stdin.close()
  leader.wait(timeout=10)
  assert group_members(leader.pid) == [job]
  try:
    assert _launcher().run(["train"], context={"task_state_store": MemoryStore(
        **{job_record.KEY: record})}).exit_code == 0
    assert group_members(leader.pid) == [], "the earlier try's job still runs"
  finally:
    if group_members(leader.pid):
      os.killpg(leader.pid, signal.SIGKILL)


def test_a_reused_pid_is_not_mistaken_for_the_earlier_job():
  old, record = _earlier_try()
  store = MemoryStore(**{job_record.KEY: {**record, "start_ticks": record["start_ticks"] - 1}})
  try:
    assert _launcher().run(["train"], context={"task_state_store": store}).exit_code == 0
    assert old.poll() is None, "a process that is not the earlier job was stopped"
  finally:
    old.kill()
    old.wait()


def test_an_earlier_job_on_another_host_is_left_to_the_lease():
  old, record = _earlier_try()
  store = MemoryStore(**{job_record.KEY: {**record, "host": "another-host"}})
  try:
    assert _launcher().run(["train"], context={"task_state_store": store}).exit_code == 0
    assert old.poll() is None
  finally:
    old.kill()
    old.wait()
