"""LocalLauncher with a cluster: ps and workers as one supervised group on 127.0.0.1.

Real processes (tests/operators/fake_task.py as the tasks), real signals: the chief's exit ends
the group, a task killed with SIGKILL stops the whole group and fails the job with its lines.
"""

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from operators.launchers.base import ClusterShape
from operators.launchers.local import LocalLauncher
from tests.operators.conftest import pid_alive

FAKE_TASK = str(pathlib.Path(__file__).with_name("fake_task.py"))
SHAPE = ClusterShape(num_replicas=2, num_ps_tasks=1)
NAMES = ("ps-0", "worker-0", "worker-1")


def _start(tmp_path, *extra, log=None):
  launcher = LocalLauncher(log, command_prefix=[sys.executable, FAKE_TASK], kill_grace_seconds=2.0)
  out = {}
  thread = threading.Thread(target=lambda: out.update(result=launcher.run(
      ["train", f"--task_dir={tmp_path}", *extra], cluster=SHAPE)))
  thread.start()
  deadline = time.monotonic() + 30
  while not all((tmp_path / f"{n}.json").exists() for n in NAMES):
    assert time.monotonic() < deadline, "the group's tasks did not start"
    time.sleep(0.05)
  time.sleep(0.1)  # the files are complete once the next one exists; the last one too by now
  tasks = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in NAMES}
  return thread, out, tasks


def _gone(pids, timeout=10.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
    time.sleep(0.05)
  return [p for p in pids if pid_alive(p)]


def test_each_task_gets_its_tf_config_and_the_chief_ends_the_group(tmp_path):
  thread, out, tasks = _start(tmp_path)
  cluster = tasks["ps-0"]["tf_config"]["cluster"]
  assert len(cluster["ps"]) == 1 and len(cluster["worker"]) == 2
  addresses = cluster["ps"] + cluster["worker"]
  assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
  for name, task in tasks.items():
    job, index = name.split("-")
    assert task["tf_config"] == {"cluster": cluster, "task": {"type": job, "index": int(index)}}
    # Only the chief is told where to write the result.
    assert any(a.startswith("--result_json=") for a in task["argv"]) == (name == "worker-0")
  (tmp_path / "finish").touch()
  thread.join(timeout=30)
  result = out["result"]
  assert (result.exit_code, result.result) == (0, {"final_step": 7})
  assert "chief done" in result.tail[-1]
  assert _gone([t["pid"] for t in tasks.values()]) == []  # the ps serving forever too


def test_a_worker_killed_stops_the_whole_group_and_fails_with_its_lines(tmp_path):
  thread, out, tasks = _start(tmp_path)
  os.kill(tasks["worker-1"]["pid"], signal.SIGKILL)
  thread.join(timeout=30)
  result = out["result"]
  assert result.exit_code == -signal.SIGKILL
  assert "worker-1" in result.tail[0] and "worker 1 started" in result.tail
  assert result.result is None
  assert _gone([t["pid"] for t in tasks.values()]) == []


def test_a_lost_worker_leaves_each_members_last_lines_in_the_task_log(tmp_path):
  """The job's error carries the lost task's lines; the log (the task log, under an operator)
  carries every member's, down to what the others print while the group is being stopped."""
  log = logging.getLogger(f"test.local_group.{tmp_path.name}")
  log.setLevel(logging.INFO)
  lines = []
  handler = logging.Handler()
  handler.emit = lambda record: lines.append(record.getMessage())
  log.addHandler(handler)
  try:
    thread, out, tasks = _start(tmp_path, log=log)
    os.kill(tasks["worker-1"]["pid"], signal.SIGKILL)
    thread.join(timeout=30)
  finally:
    log.removeHandler(handler)
  assert out["result"].exit_code == -signal.SIGKILL
  for name in NAMES:
    job, index = name.split("-")
    assert f"[{name}] {job} {index} started" in lines, lines
  for name in ("ps-0", "worker-0"):  # stopped by the launcher: their last words are logged
    job, index = name.split("-")
    assert f"[{name}] {job} {index} stopping" in lines, lines


def test_a_failing_chief_fails_the_job_with_its_code(tmp_path):
  thread, out, tasks = _start(tmp_path, "--chief_exit=3")
  (tmp_path / "finish").touch()
  thread.join(timeout=30)
  assert out["result"].exit_code == 3
  assert _gone([t["pid"] for t in tasks.values()]) == []


def test_a_sigkilled_supervisor_leaves_no_task_of_the_group_within_5_s(tmp_path):
  supervisor = str(pathlib.Path(__file__).with_name("supervisor.py"))
  sup = subprocess.Popen([sys.executable, supervisor, "--fake_task", "--cluster=2,1", "train",
                          f"--task_dir={tmp_path}"], stdout=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"{n}.json").exists() for n in NAMES):
      assert time.monotonic() < deadline, "the group's tasks did not start"
      time.sleep(0.05)
    time.sleep(0.1)
    pids = [json.loads((tmp_path / f"{n}.json").read_text())["pid"] for n in NAMES]
    sup.kill()
    sup.wait(timeout=10)
    assert _gone(pids, timeout=5.0) == []
  finally:
    sup.kill()


def test_the_train_operator_hands_a_group_to_the_launcher_and_leaves_one_process_alone():
  import pytest
  from operators import DeepLabTrainOperator
  single = DeepLabTrainOperator(task_id="t1", dataset_dir="/d", train_logdir="/l")
  assert single.launch_options() == {}
  assert "num_replicas" not in single.command_flags()
  group = DeepLabTrainOperator(task_id="t2", dataset_dir="/d", train_logdir="/l",
                               num_replicas=2, num_ps_tasks=1)
  assert group.launch_options() == {"cluster": SHAPE}
  assert (group.command_flags()["num_replicas"], group.command_flags()["num_ps_tasks"]) == (2, 1)
  with pytest.raises(ValueError, match="num_ps_tasks"):
    DeepLabTrainOperator(task_id="t3", dataset_dir="/d", train_logdir="/l", num_ps_tasks=-1)
