"""A stage re-run into the same gs:// prefix leaves nothing stale that a reader could pick up."""

import os

import pytest

from deeplab import storage
from deeplab.storage import lease


def _write(folder, files: dict) -> None:
  for name, text in files.items():
    path = os.path.join(folder, *name.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write(text)


def test_output_dir_rerun_removes_what_the_new_run_did_not_write(gcs_bucket):
  uri = f"gs://{gcs_bucket}/runs/r/eval"
  with storage.output_dir(uri, commit_last=("metrics.json",)) as out:
    _write(out, {"metrics.json": "old", "overlays/a.png": "old", "overlays/b.png": "old",
                 "report.md": "old"})
  storage.write_text(f"{uri}/{lease.LEASE_NAME}", "{}")  # the re-run's own lease
  with storage.output_dir(uri, commit_last=("metrics.json",)) as out:
    # Re-running: the old result is no longer committed, so no reader takes it for this run.
    assert not storage.exists(f"{uri}/metrics.json")
    _write(out, {"metrics.json": "new", "overlays/a.png": "new", "report.md": "new"})
  names = storage.listdir(uri) + [f"overlays/{n}" for n in storage.listdir(f"{uri}/overlays")]
  assert sorted(names) == sorted([lease.LEASE_NAME, "metrics.json", "overlays", "overlays/a.png",
                                  "report.md"])
  assert storage.read_text(f"{uri}/metrics.json") == "new"
  assert storage.read_text(f"{uri}/overlays/a.png") == "new"


def test_a_failed_rerun_leaves_the_folder_uncommitted(gcs_bucket):
  uri = f"gs://{gcs_bucket}/runs/r/eval"
  with storage.output_dir(uri, commit_last=("metrics.json",)) as out:
    _write(out, {"metrics.json": "old", "report.md": "old"})
  with pytest.raises(RuntimeError):
    with storage.output_dir(uri, commit_last=("metrics.json",)) as out:
      raise RuntimeError("the re-run failed")
  assert not storage.exists(f"{uri}/metrics.json")


def test_sync_dir_replace_deletes_stale_files_before_the_commit_file(gcs_bucket, tmp_path,
                                                                    monkeypatch):
  uri = f"gs://{gcs_bucket}/runs/r/export"
  first, second = tmp_path / "first", tmp_path / "second"
  _write(str(first), {"frozen_inference_graph.pb": "1", "saved_model/old.pb": "1",
                      "export_result.json": "1"})
  _write(str(second), {"frozen_inference_graph.pb": "2", "saved_model/new.pb": "2",
                       "export_result.json": "2"})
  storage.sync_dir(str(first), uri, commit_last=("export_result.json",), replace=True)
  events = []
  real_upload, real_delete = storage.upload_file, storage.delete
  monkeypatch.setattr(storage, "upload_file",
                      lambda src, u: (events.append(("up", u[len(uri) + 1:])), real_upload(src, u)))
  monkeypatch.setattr(storage, "delete",
                      lambda u: (events.append(("del", u[len(uri) + 1:])), real_delete(u)))
  storage.sync_dir(str(second), uri, commit_last=("export_result.json",), replace=True)
  assert events[0] == ("del", "export_result.json")  # uncommitted before anything changes
  assert events[-1] == ("up", "export_result.json")  # committed after everything else
  assert ("del", "saved_model/old.pb") in events
  assert not storage.exists(f"{uri}/saved_model/old.pb")
  assert storage.read_text(f"{uri}/export_result.json") == "2"
