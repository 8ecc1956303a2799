"""What the deploy and rollback DAGs push, decided on the Airflow side: the champion's export
for a promotion, the version served before for a rollback, and clear refusals."""

import json
import pathlib

import pytest

from deeplab_pipeline import champion as ch
from deeplab_pipeline import deploy_plan as dp
from deeplab_pipeline import history
from deeplab_pipeline.records import record_rollback


def _export(root, name):
  folder = pathlib.Path(root) / "runs" / name / "export"
  folder.mkdir(parents=True)
  (folder / "export_result.json").write_text("{}")
  return str(folder)


def _promote(root, model, run_id, export):
  record = {"model_name": model, "run_id": run_id, "export_path": export, "miou": 0.5,
            "dataset_dir": f"{root}/datasets/d/f", "eval_logdir": f"{root}/runs/{run_id}/eval"}
  path = pathlib.Path(root) / "models" / model / "champion.json"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(record))
  return record


def _serve(base, model, version):
  """A complete version folder (what push.newest looks for)."""
  folder = pathlib.Path(base) / model / str(version)
  folder.mkdir(parents=True)
  (folder / "saved_model.pb").write_bytes(b"x")


def _line(root, version, export, run_id, event="deploy"):
  entry = {"event": event, "model_name": "m", "version": version, "push_id": f"p{version}",
           "champion_run": run_id, "checkpoint": "c", "export_path": export,
           "model_dir": "d", "time": "t", "triggered_by": "x",
           "champion": {"run_id": run_id, "export_path": export, "dataset_dir": "/data"}}
  history.append(history.history_uri(str(root), "m"), entry)


PARAMS = {"model_name": "m", "export_path": None, "push_id": None, "launcher": "local"}


def test_no_champion_is_refused_naming_the_file(tmp_path):
  with pytest.raises(ch.NoChampion) as e:
    dp.plan_deploy(PARAMS, [], storage_root=str(tmp_path), serving_base_path="s",
                   triggered_by="t")
  assert str(tmp_path / "models" / "m" / "champion.json") in str(e.value)
  assert "Promote one" in str(e.value)
  path = tmp_path / "models" / "m" / "champion.json"
  path.parent.mkdir(parents=True)
  path.write_text("{half")
  with pytest.raises(ch.NoChampion, match=r"champion.json is not valid JSON"):
    ch.read_champion(str(tmp_path), "m")
  path.write_text("{}")
  with pytest.raises(ch.NoChampion, match=r"champion.json names no export_path"):
    ch.read_champion(str(tmp_path), "m")


def test_a_manual_deploy_pushes_the_champions_export_with_its_data(tmp_path):
  export = _export(tmp_path, "r1")
  record = _promote(tmp_path, "m", "r1", export)
  (tmp_path / "runs" / "r1" / "eval").mkdir()
  (tmp_path / "runs" / "r1" / "eval" / "metrics.json").write_text('{"eval_split": "holdout"}')
  plan = dp.plan_deploy(PARAMS, [], storage_root=str(tmp_path), serving_base_path="/srv",
                        triggered_by="manual by admin")
  assert (plan["model_name"], plan["export_path"], plan["serving_base_path"]) == ("m", export,
                                                                                 "/srv")
  assert plan["flags"] == {"push_id": None, "dataset_dir": record["dataset_dir"],
                           "check_split": "holdout"}
  assert plan["champion"] == record and plan["skip_reason"] == ""
  assert plan["history_uri"] == str(tmp_path / "models" / "m" / "history.jsonl")


def test_the_asset_event_names_the_model_and_a_rollbacks_event_is_skipped(tmp_path):
  _promote(tmp_path, "other", "r9", _export(tmp_path, "r9"))
  events = [("deeplab_model/m", {}), ("deeplab_raw_data", {}), ("deeplab_model/other", {})]
  plan = dp.plan_deploy(PARAMS, events, storage_root=str(tmp_path), serving_base_path="/srv",
                        triggered_by="asset")
  assert plan["model_name"] == "other" and plan["skip_reason"] == ""
  plan = dp.plan_deploy(PARAMS, [("deeplab_model/other", {"pushed_version": 3})],
                        storage_root=str(tmp_path), serving_base_path="/srv", triggered_by="a")
  assert "rollback, which already pushed version 3" in plan["skip_reason"]


def test_another_export_is_checked_and_carries_no_champion_record(tmp_path):
  _promote(tmp_path, "m", "r1", _export(tmp_path, "r1"))
  other = _export(tmp_path, "r0")
  plan = dp.plan_deploy({**PARAMS, "export_path": other, "push_id": "again"}, [],
                        storage_root=str(tmp_path), serving_base_path="/srv", triggered_by="t")
  assert plan["export_path"] == other and plan["flags"] == {"push_id": "again"}
  assert plan["champion"] is None
  with pytest.raises(dp.PlanError, match=r"runs/nope/export_result.json does not exist"):
    dp.plan_deploy({**PARAMS, "export_path": str(tmp_path / "runs" / "nope")}, [],
                   storage_root=str(tmp_path), serving_base_path="/srv", triggered_by="t")


def test_rollback_to_previous_serves_the_model_before_as_the_next_version(tmp_path):
  base = str(tmp_path / "serving")
  a, b = _export(tmp_path, "a"), _export(tmp_path, "b")
  _line(tmp_path, 1, a, "a")
  _line(tmp_path, 2, b, "b")
  _line(tmp_path, 3, b, "b")  # the same export pushed again under a new id
  for v in (1, 2, 3):
    _serve(base, "m", v)
  plan = dp.plan_rollback({"model_name": "m", "target": "previous"}, run_id="manual__1",
                          storage_root=str(tmp_path), serving_base_path=base, triggered_by="t")
  assert (plan["export_path"], plan["rolled_back_from"], plan["rolled_back_to"]) == (a, 3, 1)
  assert plan["champion"]["run_id"] == "a"
  assert plan["flags"]["push_id"] == dp.rollback_push_id("manual__1")  # same for a retry
  assert dp.rollback_push_id("manual__1") != dp.rollback_push_id("manual__2")
  plan = dp.plan_rollback({"model_name": "m", "target": "2"}, run_id="r",
                          storage_root=str(tmp_path), serving_base_path=base, triggered_by="t")
  assert (plan["export_path"], plan["rolled_back_to"]) == (b, 2)


@pytest.mark.parametrize("target,lines,served,message", [
    ("previous", [], [], "history.jsonl does not exist; model 'm' was never pushed"),
    ("previous", [1], [1], "nothing to roll back to: .*history.jsonl has no version before 1"),
    ("previous", [1, 2], [], "nothing is served"),
    ("7", [1, 2], [1, 2], r"version 7 is not in .*history.jsonl \(versions recorded: \[1, 2\]\)"),
    ("2", [1, 2], [1, 2], "version 2 is already the served version"),
])
def test_nothing_to_roll_back_to_is_refused_naming_what_was_looked_for(tmp_path, target, lines,
                                                                      served, message):
  base = str(tmp_path / "serving")
  for v in lines:
    _line(tmp_path, v, _export(tmp_path, f"r{v}"), f"r{v}")
  for v in served:
    _serve(base, "m", v)
  with pytest.raises(dp.PlanError, match=message):
    dp.plan_rollback({"model_name": "m", "target": target}, run_id="r",
                     storage_root=str(tmp_path), serving_base_path=base, triggered_by="t")


def test_a_rollback_target_whose_export_was_deleted_is_refused(tmp_path):
  base = str(tmp_path / "serving")
  _line(tmp_path, 1, str(tmp_path / "gone"), "a")
  _line(tmp_path, 2, _export(tmp_path, "b"), "b")
  _serve(base, "m", 2)
  with pytest.raises(dp.PlanError, match=r"gone/export_result.json does not exist"):
    dp.plan_rollback({"model_name": "m", "target": "previous"}, run_id="r",
                     storage_root=str(tmp_path), serving_base_path=base, triggered_by="t")


def test_recording_a_rollback_re_points_the_champion_and_appends_once(tmp_path):
  a = _export(tmp_path, "a")
  _promote(tmp_path, "m", "b", _export(tmp_path, "b"))
  champion_a = {"run_id": "a", "export_path": a, "miou": 0.4}
  plan = {"model_name": "m", "champion": champion_a, "rolled_back_from": 2, "rolled_back_to": 1,
          "history_uri": history.history_uri(str(tmp_path), "m"), "triggered_by": "manual"}
  result = {"version": 3, "push_id": "rollback-x", "export_path": a, "checkpoint": "c",
            "model_dir": "d"}
  line = record_rollback(plan, result, str(tmp_path))
  assert record_rollback(plan, result, str(tmp_path))["appended"] is False  # a retry
  restored = json.loads((tmp_path / "models" / "m" / "champion.json").read_text())
  assert restored["run_id"] == "a" and restored["export_path"] == a
  assert restored["restored_by_rollback"]["version"] == 3
  [entry] = history.read(plan["history_uri"])
  assert (entry["event"], entry["version"], entry["rolled_back_from"], entry["rolled_back_to"],
          entry["champion_run"]) == ("rollback", 3, 2, 1, "a")
  assert line["champion_restored"] == str(tmp_path / "models" / "m" / "champion.json")


def test_serving_base_path_defaults_under_the_storage_root(monkeypatch, tmp_path):
  from operators.settings import serving_base_path
  monkeypatch.delenv("DEEPLAB_SERVING_BASE_PATH", raising=False)
  monkeypatch.setenv("DEEPLAB_STORAGE_ROOT", "gs://bucket/prefix/")
  assert serving_base_path() == "gs://bucket/prefix/serving"  # DESIGN's artifact layout
  monkeypatch.setenv("DEEPLAB_STORAGE_ROOT", str(tmp_path))
  assert serving_base_path() == str(tmp_path / "serving")
  monkeypatch.setenv("DEEPLAB_SERVING_BASE_PATH", "gs://models/tfserving/")
  assert serving_base_path() == "gs://models/tfserving"
