"""Two `python -m deeplab train` on one train_logdir never train at the same time (issue 11).

The second waits on the folder's lease; when the first is SIGKILLed (a lost node) it takes the
lease over, resumes from the first one's last checkpoint and ends at exactly N steps.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from deeplab.storage import lease

from tests.deeplab.test_train_cli import REPO, TINY_MODEL, _env, dataset  # noqa: F401

STEP_LINE = re.compile(r"^(\S+ \S+) INFO deeplab.train: step (\d+)/", re.MULTILINE)


def _steps(text: str) -> list:
  """(time, step) of each 'step k/N' log line."""
  return [(datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f"), int(s))
          for t, s in STEP_LINE.findall(text)]


def _wait_for(predicate, what: str, timeout: float = 240.0) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.05)


@pytest.mark.slow
def test_second_trainer_waits_takes_over_a_dead_holder_and_ends_at_n(tmp_path, dataset):  # noqa: F811
  logdir = tmp_path / "train"
  steps = 120
  args = [sys.executable, "-m", "deeplab", "train", f"--dataset_dir={dataset}",
          f"--train_logdir={logdir}", *TINY_MODEL, f"--training_number_of_steps={steps}",
          "--save_interval_steps=5", "--base_learning_rate=0.01"]
  env = dict(_env(), DEEPLAB_LEASE_WAIT_SECONDS="300")
  out_a, out_b = tmp_path / "a.log", tmp_path / "b.log"
  a = subprocess.Popen(args, cwd=REPO, env=env, stdout=out_a.open("w"),
                       stderr=subprocess.STDOUT, start_new_session=True)
  b = None
  try:
    _wait_for(lambda: (logdir / "checkpoint").exists() or a.poll() is not None,
              "the first trainer's first checkpoint")
    assert a.poll() is None, out_a.read_text()[-3000:]
    b = subprocess.Popen(args + [f"--result_json={tmp_path / 'b.json'}"], cwd=REPO, env=env,
                         stdout=out_b.open("w"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    _wait_for(lambda: f"is in use by pid {a.pid}" in out_b.read_text() or b.poll() is not None,
              "the second trainer to wait on the lease")
    assert a.poll() is None, "the first trainer ended before the second one waited"
    os.killpg(a.pid, signal.SIGKILL)  # a lost node: no cleanup, the lease file stays behind
    a.wait(timeout=30)
    b.wait(timeout=600)
  finally:
    for p in (a, b):
      if p is not None and p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
  text_a, text_b = out_a.read_text(), out_b.read_text()
  assert b.returncode == 0, text_b[-3000:]
  assert f"taking over the lease on {logdir} from pid {a.pid}" in text_b
  steps_a, steps_b = _steps(text_a), _steps(text_b)
  assert steps_a and steps_b
  # Never at the same time: every step of the second comes after the last step of the first.
  assert steps_b[0][0] >= steps_a[-1][0], (steps_a[-3:], steps_b[:3])
  result = json.loads((tmp_path / "b.json").read_text())
  assert result["start_step"] >= 5 and result["final_step"] == steps
  assert result["checkpoint"] == f"{logdir}/model.ckpt-{steps}"
  assert json.loads((logdir / "train_result.json").read_text())["final_step"] == steps
  assert not (logdir / lease.LEASE_NAME).exists()
