"""The real trainer as a 1 ps + 2 worker group on 127.0.0.1: a worker or the chief SIGKILLed
mid-run stops the group, and the retry resumes from the chief's checkpoint and ends at exactly
N steps; the supervising task SIGKILLed leaves no process of the group within 5 s."""

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from operators.launchers.base import ClusterShape
from operators.launchers.local import LocalLauncher
from operators.launchers.processes import group_members

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 60  # ~0.1 s a step here: room for the kill (after the
# chief's first checkpoint, at step 5) to land mid-run


class _Lines(logging.Handler):
  def __init__(self):
    super().__init__()
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("group")
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
  subprocess.run([sys.executable, "-m", "deeplab", "build-tfrecords", "--format=synthetic",
                  f"--source={root / 'src'}", f"--output_dir={root / 'ds'}",
                  "--synthetic_num_train=8", "--synthetic_num_val=2",
                  "--synthetic_image_size=33", "--num_workers=0"],
                 cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
  return str(root / "ds")


def _argv(dataset, logdir):
  return ["train", f"--dataset_dir={dataset}", f"--train_logdir={logdir}",
          "--train_crop_size=33,33", "--train_batch_size=2", "--num_clones=1",
          "--depth_multiplier=0.25", "--aspp_convs_filters=16", "--log_steps=1",
          "--save_summaries_secs=0", "--save_interval_steps=5", "--seed=3",
          f"--training_number_of_steps={STEPS}", "--num_replicas=2", "--num_ps_tasks=1",
          "--startup_delay_steps=0"]


def _launcher(name):
  log = logging.getLogger(f"test.group.{name}")
  log.setLevel(logging.INFO)
  lines = _Lines()
  log.addHandler(lines)
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  return LocalLauncher(log=log, kill_grace_seconds=20.0, env=env), lines


def _job_of(guard_pid):
  """The task's own process: the only child of its job guard."""
  with open(f"/proc/{guard_pid}/task/{guard_pid}/children") as f:
    children = f.read().split()
  return int(children[0]) if children else None


def _chief_saved_mid_run(lines) -> bool:
  """The chief has saved a checkpoint (every 5 steps) before the end: a retry can resume."""
  saved = [int(m.group(1)) for m in (re.search(r"\[worker-0\] .*saved checkpoint \S*-(\d+)\b",
                                               line) for line in lines) if m]
  return bool(saved) and max(saved) < STEPS


@pytest.mark.slow
@pytest.mark.parametrize("victim_task", [2, 1], ids=["worker-1", "chief"])
def test_task_sigkilled_mid_run_then_retry_ends_at_exactly_n_steps(dataset, tmp_path,
                                                                    victim_task):
  logdir = tmp_path / "train"
  launcher, lines = _launcher("first")
  out = {}
  thread = threading.Thread(target=lambda: out.update(
      result=launcher.run(_argv(dataset, logdir), cluster=ClusterShape(2, 1))))
  thread.start()
  deadline = time.monotonic() + 240
  victim = None
  while victim is None:
    assert time.monotonic() < deadline and thread.is_alive(), "\n".join(lines.lines[-30:])
    if _chief_saved_mid_run(lines.lines):
      # tasks start ps-0, worker-0 (the chief), worker-1
      victim = _job_of(launcher._group[victim_task][1].pid)
    time.sleep(0.2)
  os.kill(victim, signal.SIGKILL)
  thread.join(timeout=60)
  first = out["result"]
  assert first.exit_code == -signal.SIGKILL, first.tail
  if victim_task == 2:  # another task than the chief ended the group: the tail says which
    assert "worker-1" in first.tail[0]
  assert all(not group_members(p.pid) for _, p in launcher._group)  # nothing of the group is left
  assert not (logdir / "train_result.json").exists()

  retry, retry_lines = _launcher("retry")
  second = retry.run(_argv(dataset, logdir), cluster=ClusterShape(2, 1))
  assert second.exit_code == 0, "\n".join(second.tail)
  assert second.result["final_step"] == STEPS
  assert 0 < second.result["start_step"] < STEPS  # resumed from the chief's checkpoint
  assert any("resuming from" in line for line in retry_lines.lines)
  from deeplab.compat import tf
  reader = tf.train.load_checkpoint(str(logdir / f"model.ckpt-{STEPS}"))
  assert reader.get_tensor("global_step") == STEPS
  assert all(not group_members(p.pid) for _, p in retry._group)


@pytest.mark.slow
def test_supervisor_sigkilled_mid_run_leaves_no_process_of_the_group_within_5_s(dataset,
                                                                                tmp_path):
  supervisor_py = os.path.join(REPO, "tests", "operators", "supervisor.py")
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  sup = subprocess.Popen([sys.executable, supervisor_py, "--cluster=2,1",
                          *_argv(dataset, tmp_path / "train")], env=env, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(sup.stdout), daemon=True)
  reader.start()
  try:
    deadline = time.monotonic() + 240
    while not _chief_saved_mid_run(list(lines)):
      assert time.monotonic() < deadline and sup.poll() is None, "\n".join(lines[-30:])
      time.sleep(0.2)
    with open(f"/proc/{sup.pid}/task/{sup.pid}/children") as f:
      guards = [int(p) for p in f.read().split()]  # one job guard per task, each its own group
    assert len(guards) == 3
    members = {pid for g in guards for pid in group_members(g)}
    assert len(members) >= 6  # each guard and its task
    os.kill(sup.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    sup.wait(timeout=10)
    while any(group_members(g) for g in guards) and time.monotonic() - killed_at < 5.0:
      time.sleep(0.05)
    left = {g: group_members(g) for g in guards if group_members(g)}
    assert not left, f"still running 5 s after the supervisor died: {left}"
  finally:
    if sup.poll() is None:
      sup.kill()
    sup.wait(timeout=10)
