"""Shared fixtures: a gcp-storage-emulator on 127.0.0.1 and environment hygiene."""

import os
import socket
import uuid

import pytest

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_server():
  """An in-memory gcp-storage-emulator for the whole session; yields its http endpoint."""
  from gcp_storage_emulator.server import create_server

  port = _free_port()
  server = create_server("127.0.0.1", port, in_memory=True)
  server.start()
  try:
    yield f"http://127.0.0.1:{port}"
  finally:
    server.stop()


@pytest.fixture
def gcs_bucket(gcs_server, monkeypatch):
  """A fresh bucket on the emulator; STORAGE_EMULATOR_HOST is set for this test."""
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage

  monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server)
  monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
  name = "test-" + uuid.uuid4().hex[:12]
  client = storage.Client(project="test-project", credentials=AnonymousCredentials())
  client.create_bucket(name)
  yield name


# Tests that run a TensorFlow model (train, evaluate, export, vis, or a DAG run that does):
# the ones whose verdict could hang on numerics. `make test-numerics` runs them with oneDNN
# off (docs/testing.md). A module is listed here rather than marked in place so that the
# list is whole in one place; a test file that starts running a model belongs here.
RUNS_A_MODEL = (
    "tests/deeplab/core/",
    "tests/deeplab/test_compat.py", "tests/deeplab/test_deployment.py",
    "tests/deeplab/test_model.py", "tests/deeplab/test_train.py",
    "tests/deeplab/test_train_cli.py", "tests/deeplab/test_train_e2e.py",
    "tests/deeplab/test_two_trainers.py", "tests/deeplab/test_sigterm_budget.py",
    "tests/deeplab/test_resume_fallback.py", "tests/deeplab/test_evaluate.py",
    "tests/deeplab/test_evaluate_against_numpy.py", "tests/deeplab/test_evaluate_gcs.py",
    "tests/deeplab/test_vis.py", "tests/deeplab/test_export.py",
    "tests/deeplab/test_export_serves_dataset.py", "tests/deeplab/test_export_formats.py",
    "tests/deeplab/serving/test_deploy.py", "tests/deeplab/serving/test_kserve_server.py",
    "tests/dags/test_end_to_end.py", "tests/dags/test_lost_workers.py",
    "tests/dags/test_checkpoint_cadence.py", "tests/dags/test_rest_api.py",
    "tests/dags/test_gate_real_models.py", "tests/dags/test_gate_compare_task.py",
)


def pytest_collection_modifyitems(config, items):
  root = str(config.rootpath) + os.sep
  for item in items:
    if str(item.path).replace(root, "", 1).startswith(RUNS_A_MODEL):
      item.add_marker(pytest.mark.runs_a_model)
