"""The deploy command's push time and request-check time, local and on the GCS emulator.

Prints ONE JSON object: for `local` and `gcs_emulator`, the seconds of `python -m deeplab
deploy` as a whole (`deploy_seconds`, in-process), of its request check (`check_seconds`:
the evaluation-path reference plus both REST bodies per image) and of the rest, the copy and
publish (`push_seconds_without_check`), and the pushed version's size. The issue's baseline:
nothing was pushed before (no figure to compare with).

Model: the tests' seeded random mobilenet_v2 (depth 0.25, 5 classes, batch norm calibrated),
exported with the default own-size policy; 3 check images from its seeded dataset. Speed does
not depend on the weights.

Usage: .venv/bin/python benchmarks/bench_deploy.py
"""

import json
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab import export  # noqa: E402
from deeplab.config.deploy import DeployConfig  # noqa: E402
from tests.deeplab import _eval_kit as kit  # noqa: E402  (the seeded run the tests use)


def _size(folder):
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def _deploy(export_dir, base, data):
  from deeplab import deploy
  start = time.monotonic()
  out = deploy.deploy(DeployConfig(export_path=export_dir, serving_base_path=base,
                                   model_name="deeplab", push_id=uuid.uuid4().hex,
                                   dataset_dir=data, num_check_images=3))
  total = time.monotonic() - start
  check = out["request_check"]["seconds"]
  return {"deploy_seconds": round(total, 3), "check_seconds": check,
          "push_seconds_without_check": round(total - check, 3), "version": out["version"],
          "check_images": out["request_check"]["num_images"]}


def main():
  root = tempfile.mkdtemp(prefix="bench-deploy-")
  data = kit.write_dataset(os.path.join(root, "data"), num_classes=5)
  ckpt = kit.make_run(os.path.join(root, "train"), num_classes=5, crop=(41, 41))
  export_dir = os.path.join(root, "export")
  export.export(ckpt, export_dir, dataset_dir=data)
  result = {"model": "mobilenet_v2 depth 0.25, 5 classes, own-size export",
            "saved_model_bytes": _size(os.path.join(export_dir, "saved_model")),
            "local": _deploy(export_dir, os.path.join(root, "serving"), data)}
  from gcp_storage_emulator.server import create_server
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage as gcs_storage
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  server = create_server("127.0.0.1", port, in_memory=True)
  server.start()
  try:
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "bench")
    gcs_storage.Client(project="bench", credentials=AnonymousCredentials()).create_bucket("bench")
    result["gcs_emulator"] = _deploy(export_dir, "gs://bench/serving", data)
  finally:
    server.stop()
  print(json.dumps(result))


if __name__ == "__main__":
  main()
