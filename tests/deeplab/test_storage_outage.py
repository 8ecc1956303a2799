"""The storage service stops during an upload and comes back: the job recovers by retrying, and
no reader ever sees a partial artifact (issue 11).

Without Airflow: the retry that matters here is below the task. google-cloud-storage retries
each request (DEFAULT_RETRY, up to 120 s) and a job that still fails exits with a transient code,
which the test answers the way the operator's Airflow retry would: by running it again.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import _free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The emulator persists its state by overwriting files in place, so a SIGKILL mid-write leaves
# an empty `.meta` it cannot start from. Real GCS never loses its metadata: writes are made
# atomic (temp file + rename) so that the restart models the service, not the emulator's flaw.
EMULATOR = """
import os, sys
from gcp_storage_emulator import storage
from gcp_storage_emulator.server import create_server

plain_write = storage._FileStore.write_bytes

def atomic_write_bytes(self, rel, content):
  if self._use_memory:
    return plain_write(self, rel, content)
  path = self._disk_path(rel)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".writing")
  tmp.write_bytes(content)
  os.replace(tmp, path)

storage._FileStore.write_bytes = atomic_write_bytes
create_server("127.0.0.1", int(sys.argv[1]), in_memory=False, data_dir=sys.argv[2]).run()
"""
BUCKET = "outage"
PREFIX = "datasets/synthetic/fp"


class Emulator:
  """gcp-storage-emulator in its own process with its data on disk, so it survives a restart."""

  def __init__(self, data_dir):
    self.port, self.data_dir, self.proc = _free_port(), str(data_dir), None

  @property
  def host(self):
    return f"http://127.0.0.1:{self.port}"

  def start(self):
    self.log = open(os.path.join(os.path.dirname(self.data_dir), "emulator.log"), "ab")
    self.proc = subprocess.Popen([sys.executable, "-c", EMULATOR, str(self.port), self.data_dir],
                                 stdout=self.log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
      with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", self.port)) == 0:
          return
      time.sleep(0.05)
    self.log.flush()
    with open(self.log.name, "rb") as f:
      raise AssertionError(f"the emulator did not start: {f.read()[-2000:]!r}")

  def kill(self):
    self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()
    self.log.close()


def _client(host):
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage
  os.environ["STORAGE_EMULATOR_HOST"] = host
  return storage.Client(project="test-project", credentials=AnonymousCredentials())


class Reader(threading.Thread):
  """Reads like a later task: once manifest.json is there, every shard it lists must be whole."""

  def __init__(self, client):
    super().__init__(daemon=True)
    self.bucket = client.bucket(BUCKET)
    self.stop, self.checked, self.partial = threading.Event(), 0, []

  def run(self):
    while not self.stop.wait(0.02):
      try:
        manifest = self.bucket.get_blob(f"{PREFIX}/manifest.json", timeout=2, retry=None)
        if manifest is None:
          continue
        doc = json.loads(manifest.download_as_bytes(timeout=2, retry=None))
        for split in doc["splits"].values():
          for shard in split["shards"]:
            blob = self.bucket.get_blob(f"{PREFIX}/{shard['name']}", timeout=2, retry=None)
            data = blob.download_as_bytes(timeout=2, retry=None) if blob else b""
            if hashlib.sha256(data).hexdigest() != shard["sha256"]:
              self.partial.append(shard["name"])
        self.checked += 1
      except Exception:  # noqa: BLE001 - the service is down: a reader just fails and retries
        continue


@pytest.mark.slow
def test_emulator_down_during_upload_recovers_and_never_shows_a_partial_dataset(tmp_path):
  emulator = Emulator(tmp_path / "gcs")
  emulator.start()
  reader = None
  try:
    client = _client(emulator.host)
    client.create_bucket(BUCKET)
    env = dict(os.environ, STORAGE_EMULATOR_HOST=emulator.host, GOOGLE_CLOUD_PROJECT="test-project",
               PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "deeplab", "build-tfrecords", "--format=synthetic",
           f"--output_dir=gs://{BUCKET}/{PREFIX}", "--synthetic_num_train=60",
           "--synthetic_num_val=20", "--synthetic_image_size=48", "--num_shards=20",
           "--num_workers=0"]
    reader = Reader(client)
    reader.start()
    job = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    bucket = client.bucket(BUCKET)
    deadline = time.monotonic() + 300
    while not any(b.name.endswith(".tfrecord")
                  for b in client.list_blobs(bucket, prefix=PREFIX, timeout=5)):
      assert job.poll() is None, job.stdout.read()[-3000:]
      assert time.monotonic() < deadline, "no upload started"
      time.sleep(0.02)
    assert not bucket.blob(f"{PREFIX}/manifest.json").exists(), "the upload ended before the stop"
    emulator.kill()  # mid-upload
    time.sleep(3)
    emulator.start()
    out = job.communicate(timeout=600)[0]
    attempts = [job.returncode]
    while attempts[-1] not in (0, 2, 3) and len(attempts) < 3:  # what the Airflow retry does
      again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
      attempts.append(again.returncode)
      out = again.stdout + again.stderr
    assert attempts[-1] == 0, (attempts, out[-3000:])
    deadline = time.monotonic() + 30
    while reader.checked == 0 and time.monotonic() < deadline:
      time.sleep(0.1)
  finally:
    if reader is not None:
      reader.stop.set()
      reader.join(timeout=30)
    if emulator.proc and emulator.proc.poll() is None:
      emulator.kill()
  assert reader.checked > 0, "the reader never saw the finished dataset"
  assert reader.partial == [], f"a reader saw partial shards: {reader.partial[:5]}"
  print(f"job attempts: {attempts}")
