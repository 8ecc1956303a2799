"""KServe's Python model server (kserve 0.21) serving a pushed TF Serving model folder.

Run by tests/deeplab/serving/test_kserve_server.py with kserve and protobuf 6 installed beside
the project's venv (kserve needs protobuf < 7; TensorFlow 2.21 accepts 6.31+), never under
pytest. KServe's own server does the HTTP side (its V1 protocol: GET /v1/models/<name>,
POST /v1/models/<name>:predict, JSON in and out); the model loads the newest complete version
of the folder with the SavedModel loader and answers the row-format body as TF Serving does
(deeplab.serving.request_check.RestServer, the request check's server).

    python kserve_model_server.py --model_dir=<base>/<name> --model_name=<name> --http_port=N
"""

import argparse
import json
import os

import kserve
from kserve.protocol.rest import server as rest_server

from deeplab.serving import push
from deeplab.serving.request_check import RestServer

_init = rest_server.RESTServer.__init__


def _loopback_only(self, *args, **kwargs):
  _init(self, *args, **kwargs)
  self.config.host = "127.0.0.1"  # KServe binds 0.0.0.0; a test server stays on loopback


rest_server.RESTServer.__init__ = _loopback_only


class PushedModel(kserve.Model):
  """The newest complete version under `model_dir`, as TF Serving would pick it."""

  def __init__(self, name: str, model_dir: str):
    super().__init__(name)
    self.model_dir = model_dir
    self.server = None
    self.load()

  def load(self) -> bool:
    version = push.newest(self.model_dir)
    if version is None:
      raise RuntimeError(f"{self.model_dir} holds no complete version")
    self.server = RestServer(os.path.join(self.model_dir, str(version)))
    self.ready = True
    return self.ready

  def predict(self, payload, headers=None):
    return json.loads(self.server.predict(json.dumps(payload)))


if __name__ == "__main__":
  parser = argparse.ArgumentParser()
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--model_name", required=True)
  flags, _ = parser.parse_known_args()  # kserve reads --http_port and the others itself
  kserve.ModelServer(enable_grpc=False, workers=1).start(
      [PushedModel(flags.model_name, flags.model_dir)])
