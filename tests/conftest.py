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
