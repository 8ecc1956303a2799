"""`python -m deeplab train` as a process: exit codes, resume after a kill, exact stop."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MODEL = ["--train_crop_size=33,33", "--train_batch_size=2", "--num_clones=2",
              "--depth_multiplier=0.25", "--aspp_convs_filters=16", "--log_steps=1",
              "--save_summaries_secs=0", "--seed=3"]


def _env():
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _deeplab(*args, **kwargs):
  return subprocess.run([sys.executable, "-m", "deeplab", *args], cwd=REPO, env=_env(),
                        capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic")
  proc = _deeplab("build-tfrecords", "--format=synthetic", f"--source={root / 'src'}",
                  f"--output_dir={root / 'tfrecords'}", "--synthetic_num_train=8",
                  "--synthetic_num_val=2", "--synthetic_image_size=33", "--num_workers=0",
                  timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return str(root / "tfrecords")


def test_missing_flags_exit_2(tmp_path):
  proc = _deeplab("train", f"--train_logdir={tmp_path}", timeout=120)
  assert proc.returncode == 2
  assert "--dataset_dir" in proc.stderr


def test_batch_not_divisible_exit_2(tmp_path, dataset):
  proc = _deeplab("train", f"--dataset_dir={dataset}", f"--train_logdir={tmp_path}",
                  *TINY_MODEL, "--train_batch_size=3", timeout=120)
  assert proc.returncode == 2
  assert "does not divide evenly over num_clones 2" in proc.stderr


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_nan_loss_exits_3(tmp_path, dataset):
  proc = _deeplab("train", f"--dataset_dir={dataset}", f"--train_logdir={tmp_path / 'run'}",
                  *TINY_MODEL, "--training_number_of_steps=20", "--base_learning_rate=1e30",
                  timeout=300)
  assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "the training loss became" in proc.stderr
  assert "learning rate" in proc.stderr and "label values" in proc.stderr


@pytest.mark.slow
def test_resume_after_kill_ends_at_the_exact_step(tmp_path, dataset):
  logdir = tmp_path / "train"
  steps = 200  # Long enough that the first run cannot finish while this process polls.
  args = ["train", f"--dataset_dir={dataset}", f"--train_logdir={logdir}", *TINY_MODEL,
          f"--training_number_of_steps={steps}", "--save_interval_steps=3",
          "--base_learning_rate=0.01"]
  proc = subprocess.Popen([sys.executable, "-m", "deeplab", *args], cwd=REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
  try:
    deadline = time.time() + 240
    while not (logdir / "checkpoint").exists():
      assert proc.poll() is None, "training ended before its first checkpoint"
      assert time.time() < deadline, "no checkpoint within 240 s"
      time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # No chance to clean up: a crash or a lost node.
    proc.wait(timeout=30)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  assert not (logdir / "train_result.json").exists(), "the run finished before the kill"

  out = tmp_path / "result.json"
  again = _deeplab(*args, f"--result_json={out}", timeout=300)
  assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
  result = json.loads(out.read_text())
  assert 3 <= result["start_step"] < steps
  assert f"resuming from {logdir}/model.ckpt-{result['start_step']}" in again.stdout
  assert result["final_step"] == steps
  assert result["checkpoint"] == f"{logdir}/model.ckpt-{steps}"
  assert json.loads((logdir / "train_result.json").read_text())["final_step"] == steps

  # Already at the last step: exit 0 at once, without building the model.
  start = time.time()
  done = _deeplab(*args, timeout=120)
  assert done.returncode == 0
  assert "nothing to train" in done.stdout
  assert time.time() - start < 60


@pytest.mark.slow  # trains a model: 11-22 s idle
def test_sigterm_saves_and_exits_for_a_retry(tmp_path, dataset):
  logdir = tmp_path / "train"
  proc = subprocess.Popen(
      [sys.executable, "-m", "deeplab", "train", f"--dataset_dir={dataset}",
       f"--train_logdir={logdir}", *TINY_MODEL, "--training_number_of_steps=100000",
       "--save_interval_steps=5"],
      cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      start_new_session=True)
  try:
    deadline = time.time() + 240
    while not (logdir / "checkpoint").exists():
      assert proc.poll() is None and time.time() < deadline
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # Kubernetes preemption / Airflow on_kill.
    out, _ = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  assert proc.returncode == 143, out[-3000:]
  assert "stopped at step" in out
  step = int(out.split("stopped at step ")[1].split()[0])
  assert f'model_checkpoint_path: "model.ckpt-{step}"' in (logdir / "checkpoint").read_text()
  assert not (logdir / "train_result.json").exists()
