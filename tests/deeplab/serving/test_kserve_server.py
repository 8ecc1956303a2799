"""A real model server on the pushed folder: KServe's Python model server (kserve 0.21, its own
install beside the venv since it needs protobuf < 7) started on 127.0.0.1, sent over HTTP the
same REST bodies as the request check, answering with the export's predictions."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from deeplab import export
from deeplab.exporting import graph as eg
from deeplab.exporting import self_check
from deeplab.serving import push as sp
from deeplab.serving import rest
from tests.deeplab.test_export import exported  # noqa: F401 (the shared export, built once)

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[3]
SERVER = pathlib.Path(__file__).with_name("kserve_model_server.py")
PINS = ROOT / "tests" / "kserve_server.txt"
MODEL = "deeplab"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _http(url, body=None):
  request = urllib.request.Request(url, data=body and body.encode(),
                                   headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=30) as response:
    return json.loads(response.read())


@pytest.fixture(scope="module")
def kserve_site(tmp_path_factory):
  site = tmp_path_factory.mktemp("kserve-site")
  run = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-compile", "--disable-pip-version-check", "--target", str(site),
                        "-r", str(PINS)], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-2000:]
  return site


def test_kserve_model_server_answers_the_request_bodies_with_the_exports_predictions(
    exported, kserve_site, tmp_path):
  data, _, out, _ = exported
  model_dir = tmp_path / "serving" / MODEL
  pushed = sp.push(str(out / "saved_model"), str(model_dir), "kserve-server-test")
  images, _, _ = export.check_images(str(data), "val", 2)
  assert pushed.version == 1 and images
  # The reference: the export's frozen graph (which its self-check held to evaluation's
  # predictions) on the same images, without graph rewrites.
  reference = self_check.frozen_predictions(
      eg.read_frozen_graph(str(out / eg.FROZEN_GRAPH)), images)

  port = _free_port()
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(kserve_site), str(ROOT)])}
  log = tmp_path / "server.log"
  with open(log, "w") as log_file:
    server = subprocess.Popen(
        [sys.executable, str(SERVER), f"--model_dir={model_dir}", f"--model_name={MODEL}",
         f"--http_port={port}"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
  base = f"http://127.0.0.1:{port}/v1/models/{MODEL}"
  try:
    deadline = time.monotonic() + 180
    while True:
      assert server.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
      try:
        if _http(base).get("ready"):
          break
      except (urllib.error.URLError, ConnectionError):
        pass
      assert time.monotonic() < deadline, f"not ready: {log.read_text()[-3000:]}"
      time.sleep(0.5)
    for (name, image), expected in zip(images, reference):
      for body in (rest.predict_body(eg.BYTES_SIGNATURE, self_check.png_bytes(image)),
                   rest.predict_body(rest.DEFAULT_SIGNATURE, image)):
        answer = _http(base + ":predict", body)
        (got,) = rest.read_predictions(json.dumps(answer), "semantic_predictions")
        assert got.shape == expected.shape and (got == expected).all(), (
            f"{name}: {json.loads(body)['signature_name']} differs in "
            f"{int((got != expected).sum())} pixels")
  finally:
    server.terminate()
    try:
      server.wait(timeout=30)
    except subprocess.TimeoutExpired:
      server.kill()
      server.wait()
