"""Lost workers and restarts with the real Airflow services (issue 11).

* The train task's process is SIGKILLed mid-training (OOM killer, worker restart): its job ends
  with it, Airflow retries, the retry resumes and the run ends at exactly
  training_number_of_steps; at no moment do two trainers run on the logdir; nothing is left.
* The scheduler is SIGKILLed mid-run and started again: the run completes.
* The train task is marked failed from the REST API mid-training (Airflow's kill path: SIGTERM,
  on_kill, SIGKILL 5 s later): the trainer saves a checkpoint at the step it reached and exits;
  nothing is left running; when it ends within those 5 s its last lines are in the task log.
"""

import json
import os
import pathlib
import signal
import threading
import time

import pytest

from tests.dags.airflow_services import AirflowServices, request, wait
from tests.dags.test_end_to_end import TINY

STEPS = 150
CONF = {**TINY, "training_number_of_steps": STEPS,
        # The DAG's defaults plus a checkpoint every 5 steps, so that a retry has one to resume.
        "extra_train_flags": {"backbone_batch_norm_decay": 0.9, "batch_norm_decay": 0.99,
                              "add_image_level_feature": False, "save_interval_steps": 5}}


def _cmdline(pid: str) -> list:
  try:
    return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
  except OSError:
    return []


def _processes_mentioning(text: str) -> dict:
  """pid -> argv of every live process whose command line mentions `text`."""
  found = {}
  for entry in pathlib.Path("/proc").iterdir():
    if entry.name.isdigit() and entry.name != str(os.getpid()):
      argv = _cmdline(entry.name)
      if any(text in a for a in argv):
        try:
          state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
          continue
        if state not in ("Z", "X"):
          found[int(entry.name)] = argv
  return found


def _ppid(pid: int) -> int:
  return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _parent(pid: int):
  try:
    return _ppid(pid)
  except (OSError, IndexError, ValueError):
    return None


def _is_guard(argv: list) -> bool:
  return len(argv) > 1 and argv[1].endswith("job_guard.py")


class TrainerWatch(threading.Thread):
  """Samples /proc every 20 ms: the most `deeplab train` processes seen at once on a logdir."""

  def __init__(self, storage: pathlib.Path):
    super().__init__(daemon=True)
    self.storage = str(storage)
    self.max_at_once = 0
    self.seen = set()
    self.stop = threading.Event()

  def trainers(self) -> dict:
    found = {pid: argv for pid, argv in _processes_mentioning(self.storage).items()
             if "train" in argv and not _is_guard(argv) and "deeplab" in argv}
    # A trainer's own fork (a library's platform.uname() runs `uname -p`) carries its command line
    # until exec: it is that trainer, not a second one.
    return {pid: argv for pid, argv in found.items() if _parent(pid) not in found}

  def run(self):
    while not self.stop.wait(0.02):
      now = self.trainers()
      self.seen.update(now)
      self.max_at_once = max(self.max_at_once, len(now))


@pytest.fixture
def services(tmp_path):
  s = AirflowServices(tmp_path, {"DEEPLAB_RETRY_DELAY_SECONDS": "3"}).start_all()
  try:
    yield s
  finally:
    s.stop_all()


def _first_checkpoint(storage: pathlib.Path, services) -> pathlib.Path:
  return wait(lambda: next(iter(storage.glob("runs/*/train/checkpoint")), None), 600,
              "the first checkpoint of train", services.logs, interval=0.2)


@pytest.mark.slow
def test_sigkilled_train_task_is_retried_without_a_second_trainer(services, tmp_path):
  storage = tmp_path / "storage"
  watch = TrainerWatch(storage)
  watch.start()
  run_url = services.trigger(CONF)
  index = _first_checkpoint(storage, services)
  logdir = index.parent
  trainers = watch.trainers()
  assert len(trainers) == 1, trainers
  guard_pid = _ppid(next(iter(trainers)))
  assert _is_guard(_cmdline(str(guard_pid))), "the trainer does not run under job_guard.py"
  task_process = _ppid(guard_pid)  # the process running the operator
  assert not (logdir / "train_result.json").exists(), "trained to the end before the kill"
  os.kill(task_process, signal.SIGKILL)

  state = services.wait_finished(run_url, timeout=900)
  watch.stop.set()
  watch.join()
  tis = services.task_instances(run_url)
  assert state == "success", {k: v["state"] for k, v in tis.items()}
  assert watch.max_at_once == 1, "two trainers ran on the logdir at once"
  assert tis["train"]["try_number"] == 2
  result = json.loads((logdir / "train_result.json").read_text())
  assert result["final_step"] == STEPS and 5 <= result["start_step"] < STEPS
  assert f'model_checkpoint_path: "model.ckpt-{STEPS}"' in (logdir / "checkpoint").read_text()
  assert len(watch.seen) >= 2, "the retry's trainer was never seen"
  # The retry read try 1's job from Airflow's real task_state_store (job_record).
  retry_logs = "".join(p.read_text() for p in
                       (tmp_path / "airflow_home" / "logs").rglob("task_id=train/attempt=2*"))
  assert f"earlier try (process group {guard_pid})" in retry_logs, retry_logs[-3000:]
  assert services.wait_deployed()["state"] == "success"
  time.sleep(1)
  assert _processes_mentioning(str(storage)) == {}, "a process of the run is still running"


@pytest.mark.slow
def test_scheduler_killed_and_restarted_mid_run_completes(services, tmp_path):
  storage = tmp_path / "storage"
  run_url = services.trigger(CONF)
  _first_checkpoint(storage, services)
  scheduler = services.procs["scheduler"]
  os.kill(scheduler.pid, signal.SIGKILL)  # the scheduler only: its task workers live on
  scheduler.wait()
  time.sleep(3)
  services.start("scheduler")
  state = services.wait_finished(run_url, timeout=900)
  tis = services.task_instances(run_url)
  assert state == "success", {k: v["state"] for k, v in tis.items()}
  logdir = next(storage.glob("runs/*/train"))
  assert json.loads((logdir / "train_result.json").read_text())["final_step"] == STEPS
  assert services.wait_deployed()["state"] == "success"
  assert _processes_mentioning(str(storage)) == {}, "a process of the run is still running"


@pytest.mark.slow
def test_train_task_marked_failed_saves_where_it_stopped(services, tmp_path):
  # Far more steps than run before the kill lands (Airflow acts on the next task heartbeat,
  # up to [workers] min_heartbeat_interval = 5 s later): the job is always stopped mid-way.
  steps = 1000
  storage = tmp_path / "storage"
  run_url = services.trigger({**CONF, "training_number_of_steps": steps})
  logdir = _first_checkpoint(storage, services).parent
  status, body = request("PATCH", f"{run_url}/taskInstances/train", services.token,
                         {"new_state": "failed"})
  assert status == 200, body
  state = services.wait_finished(run_url, timeout=600)
  assert state == "failed"
  wait(lambda: not _processes_mentioning(str(storage)), 60, "the run's processes to end",
       services.logs, interval=0.5)

  index = (logdir / "checkpoint").read_text()
  newest = int(index.split('model_checkpoint_path: "model.ckpt-')[1].split('"')[0])
  assert 5 <= newest < steps, index  # stopped mid-way, with a checkpoint where it stopped

  def whole_log():  # Airflow's task supervisor writes it on its own time; "Task killed!" is last
    text = "".join(p.read_text() for p in (tmp_path / "airflow_home" / "logs").rglob(
        "task_id=train/attempt=1*"))
    return text if "Task killed!" in text else None
  log = wait(whole_log, 60, "the end of the train task's log", services.logs, interval=0.5)
  assert "Stopping process group" in log, log[-3000:]  # on_kill ran
  if "Job exited with code" in log:
    # The job stopped while on_kill waited for it: its last lines are in the log.
    assert "saving a checkpoint and stopping" in log, log[-3000:]
    assert f"stopped at step {newest} of {steps}" in log, log[-3000:]
  # Otherwise Airflow SIGKILLed the task process 5 s after its SIGTERM, before the job had
  # ended (slow teardown on a loaded machine): nobody was left to log its lines, and the job
  # guard let the stop finish (the checkpoint above, nothing left running).
  assert not (logdir / "train_result.json").exists()
