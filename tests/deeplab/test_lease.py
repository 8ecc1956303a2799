"""deeplab.storage.lease: one writer per folder, locally (flock) and on gs:// (the emulator)."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from deeplab.contract import EXIT_FOLDER_BUSY
from deeplab.storage import gcs, lease

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD_AND_SLEEP = ("import sys, time\n"
                  "from deeplab.storage import lease\n"
                  "with lease.hold(sys.argv[1], 'holder-under-test'):\n"
                  "  print('held', flush=True)\n"
                  "  time.sleep(300)\n")


def _env():
  return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _start_holder(folder):
  proc = subprocess.Popen([sys.executable, "-c", HOLD_AND_SLEEP, str(folder)], env=_env(),
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held"
  return proc


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_local_lease_records_the_holder_and_is_removed_on_release(tmp_path):
  with lease.hold(str(tmp_path), "deeplab train"):
    info = json.loads((tmp_path / lease.LEASE_NAME).read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    assert info["command"] == "deeplab train" and info["started"]
  assert not (tmp_path / lease.LEASE_NAME).exists()
  with lease.hold(str(tmp_path), "again"):  # free again
    pass


def test_a_second_job_waits_then_fails_naming_the_holder(tmp_path):
  holder = _start_holder(tmp_path)
  try:
    start = time.monotonic()
    with pytest.raises(lease.FolderBusyError) as err:
      with lease.hold(str(tmp_path), "second", wait_seconds=1.0):
        pytest.fail("two holders at once")
    assert time.monotonic() - start >= 1.0
    assert f"pid {holder.pid} on {socket.gethostname()}" in str(err.value)
    assert "holder-under-test" in str(err.value)
    assert err.value.exit_code == EXIT_FOLDER_BUSY not in (0, 2, 3)
  finally:
    holder.kill()
    holder.wait()


def test_a_waiting_job_gets_the_lease_once_the_holder_ends(tmp_path):
  holder = _start_holder(tmp_path)
  threading.Timer(1.0, holder.terminate).start()
  try:
    with lease.hold(str(tmp_path), "second", wait_seconds=60):
      assert holder.poll() is not None, "got the lease while the holder was alive"
  finally:
    holder.kill()
    holder.wait()


def test_the_lease_of_a_killed_holder_is_taken_over_with_a_log_line(tmp_path, caplog):
  holder = _start_holder(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert (tmp_path / lease.LEASE_NAME).read_text()  # left behind, as after a crash
  with caplog.at_level(logging.WARNING, logger="deeplab.lease"):
    with lease.hold(str(tmp_path), "second", wait_seconds=0):
      pass
  assert f"taking over the lease on {tmp_path} from pid {holder.pid}" in caplog.text


def test_folder_of_a_frozen_graph_path_is_its_folder():
  assert lease.folder_of("gs://b/run/export/frozen_inference_graph.pb") == "gs://b/run/export"
  assert lease.folder_of("/x/export/") == "/x/export"
  assert lease.folder_of(None) is None


def test_cli_on_a_busy_folder_exits_transient_naming_the_holder(tmp_path):
  holder = _start_holder(tmp_path)
  try:
    proc = subprocess.run(
        [sys.executable, "-m", "deeplab", "train", f"--train_logdir={tmp_path}",
         f"--dataset_dir={tmp_path / 'none'}"], env=dict(_env(), DEEPLAB_LEASE_WAIT_SECONDS="1"),
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == EXIT_FOLDER_BUSY, proc.stderr[-2000:]
    assert f"in use by pid {holder.pid}" in proc.stderr
  finally:
    holder.kill()
    holder.wait()


# -- gs:// --------------------------------------------------------------------------------------
def _lease_blob(folder):
  bucket, name = gcs.split_gcs(folder + "/" + lease.LEASE_NAME)
  return gcs.client().bucket(bucket).get_blob(name)


def _plant(folder, **holder):
  gcs.blob(folder + "/" + lease.LEASE_NAME).upload_from_string(json.dumps(holder))


def test_gcs_lease_is_an_object_that_a_second_job_waits_on(gcs_bucket):
  folder = f"gs://{gcs_bucket}/runs/r1/train"
  with lease.hold(folder, "deeplab train"):
    info = json.loads(_lease_blob(folder).download_as_bytes())
    assert info["pid"] == os.getpid() and info["ttl_seconds"] == lease.TTL_SECONDS
    with pytest.raises(lease.FolderBusyError, match=f"pid {os.getpid()} on"):
      with lease.hold(folder, "second", wait_seconds=1.0):
        pytest.fail("two holders at once")
  assert _lease_blob(folder) is None


def test_gcs_lease_not_renewed_within_its_ttl_is_taken_over(gcs_bucket, caplog):
  folder = f"gs://{gcs_bucket}/runs/r2/train"
  _plant(folder, pid=1, host="another-host", command="old", started="x", ttl_seconds=0.5)
  with caplog.at_level(logging.WARNING, logger="deeplab.lease"):
    with lease.hold(folder, "new", wait_seconds=30):
      assert json.loads(_lease_blob(folder).download_as_bytes())["command"] == "new"
  assert "took over the lease" in caplog.text and "not renewed for" in caplog.text


def test_gcs_lease_of_a_dead_pid_on_this_host_is_taken_over_at_once(gcs_bucket, caplog):
  folder = f"gs://{gcs_bucket}/runs/r3/train"
  _plant(folder, pid=_dead_pid(), host=socket.gethostname(), command="old", started="x",
         ttl_seconds=3600)
  with caplog.at_level(logging.WARNING, logger="deeplab.lease"):
    with lease.hold(folder, "new", wait_seconds=0):
      pass
  assert "its process is gone" in caplog.text


def test_gcs_lease_of_a_live_holder_elsewhere_is_respected(gcs_bucket):
  folder = f"gs://{gcs_bucket}/runs/r4/train"
  _plant(folder, pid=1, host="another-host", command="old", started="x", ttl_seconds=3600)
  with pytest.raises(lease.FolderBusyError, match="pid 1 on another-host"):
    with lease.hold(folder, "new", wait_seconds=1.0):
      pass


def test_gcs_heartbeat_renews_and_notices_a_takeover(gcs_bucket, monkeypatch):
  monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.2)
  folder = f"gs://{gcs_bucket}/runs/r5/train"
  lost = []
  with lease.hold(folder, "holder", on_lost=lost.append):
    first = _lease_blob(folder).generation
    deadline = time.monotonic() + 20
    while _lease_blob(folder).generation == first and time.monotonic() < deadline:
      time.sleep(0.1)
    assert _lease_blob(folder).generation != first, "the heartbeat did not renew the lease"
    _plant(folder, pid=1, host="another-host", command="thief", started="x", ttl_seconds=60)
    while not lost and time.monotonic() < deadline:
      time.sleep(0.1)
  assert lost and "taken over by another job" in lost[0]
  # Release must not delete the new holder's lease.
  assert json.loads(_lease_blob(folder).download_as_bytes())["command"] == "thief"
