"""models/<name>/history.jsonl: whole lines only, one per push, never twice for a retry."""

import json
import threading

import pytest

from deeplab_pipeline import history
from deeplab_pipeline.records import record_deploy


def _result(version, push_id="p1", export="/exports/a"):
  """What `python -m deeplab deploy` writes to its result JSON (the fields history reads)."""
  return {"version": version, "push_id": push_id, "export_path": export,
          "checkpoint": "/runs/r1/train/model.ckpt-5", "model_dir": "/serving/m",
          "reused": False}


def _plan(tmp_path, champion=None):
  return {"model_name": "m", "history_uri": str(tmp_path / "models" / "m" / "history.jsonl"),
          "champion": champion, "triggered_by": "manual by admin"}


def _lines(path):
  return [json.loads(l) for l in path.read_text().splitlines()]


def test_a_push_is_one_line_with_every_field(tmp_path):
  line = record_deploy(_plan(tmp_path, {"run_id": "r1", "export_path": "/exports/a"}),
                       _result(1))
  path = tmp_path / "models" / "m" / "history.jsonl"
  [written] = _lines(path)
  assert line["appended"] is True
  assert set(history.FIELDS) <= set(written)
  assert (written["event"], written["version"], written["push_id"], written["champion_run"],
          written["export_path"], written["triggered_by"]) == (
              "deploy", 1, "p1", "r1", "/exports/a", "manual by admin")
  assert written["champion"]["run_id"] == "r1"  # what a rollback restores


def test_a_retry_appends_nothing_and_a_new_version_of_the_same_push_id_does(tmp_path):
  plan = _plan(tmp_path)
  assert record_deploy(plan, _result(1))["appended"] is True
  assert record_deploy(plan, {**_result(1), "reused": True})["appended"] is False
  # Retention removed 1 and the same export was pushed again under its id: a new line.
  assert record_deploy(plan, _result(4))["appended"] is True
  assert [l["version"] for l in _lines(tmp_path / "models" / "m" / "history.jsonl")] == [1, 4]


def test_the_file_is_replaced_whole_never_written_into(tmp_path):
  # A reader that opened the file before an append still reads the complete old content:
  # the new content arrives by rename, never by writing into the file a reader may hold.
  plan = _plan(tmp_path)
  record_deploy(plan, _result(1))
  path = tmp_path / "models" / "m" / "history.jsonl"
  before = path.read_text()
  with open(path) as reader:
    record_deploy(plan, _result(2, push_id="p2"))
    assert reader.read() == before
  assert [l["version"] for l in _lines(path)] == [1, 2]
  assert [p.name for p in path.parent.iterdir() if p.name != ".deeplab-lease.json"] == [
      "history.jsonl"]  # no temporary file left


def test_appends_at_once_lose_no_line(tmp_path, monkeypatch):
  from deeplab.storage import lease
  monkeypatch.setattr(lease, "POLL_SECONDS", 0.01)  # the waiters retry at once
  plan = _plan(tmp_path)
  threads = [threading.Thread(target=record_deploy, args=(plan, _result(v, push_id=f"p{v}")))
             for v in range(1, 5)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  versions = [l["version"] for l in _lines(tmp_path / "models" / "m" / "history.jsonl")]
  assert sorted(versions) == list(range(1, 5))


def test_a_broken_line_is_named_with_its_file_and_number(tmp_path):
  path = tmp_path / "history.jsonl"
  path.write_text(json.dumps({"version": 1}) + "\n{not json\n")
  with pytest.raises(history.HistoryError, match=r"history.jsonl line 2 is not JSON"):
    history.read(str(path))
  path.write_text(json.dumps({"version": "1"}) + "\n")
  with pytest.raises(history.HistoryError, match="line 1 has no integer 'version'"):
    history.read(str(path))


def test_an_absent_history_is_empty(tmp_path):
  assert history.read(str(tmp_path / "nope.jsonl")) == []


def test_history_on_gcs(gcs_bucket):
  uri = f"gs://{gcs_bucket}/root/models/m/history.jsonl"
  plan = {"model_name": "m", "history_uri": uri, "champion": None, "triggered_by": "t"}
  assert record_deploy(plan, _result(1))["appended"] is True
  assert record_deploy(plan, _result(1))["appended"] is False
  assert record_deploy(plan, _result(2, push_id="p2"))["appended"] is True
  assert [e["version"] for e in history.read(uri)] == [1, 2]
