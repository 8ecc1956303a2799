"""Raw-data Assets per source: an annotation export announced on its source's Asset starts a
run that converts that export, into that source's dataset and model (deeplab_pipeline/
raw_sources.py); declarations and events that cannot work are refused, naming the fix."""

import copy
import datetime
import json
import os
import subprocess
import sys
import types

import pytest

from deeplab_pipeline import raw_sources
from tests.dags.conftest import DAGS, REPO

SOURCES = json.dumps({"pets": {"dataset_format": "coco",
                               "converter_options": {"ignore_classes": "__ignore__,dog"}}})


def _events(*events):
  """The run's triggering_asset_events as Airflow builds them from the API's answer."""
  from airflow.sdk.api.datamodels._generated import AssetReferenceAssetEventDagRun
  from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
  from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor
  t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
  return TriggeringAssetEventsAccessor.build([AssetEventDagRunReferenceResult(
      asset=AssetReferenceAssetEventDagRun(name=name, uri=uri, extra={}), extra=extra,
      source_task_id=None, source_dag_id=None, source_run_id=None, source_map_index=None,
      source_aliases=[], timestamp=t0 + datetime.timedelta(minutes=i))
      for i, (name, uri, extra) in enumerate(events)])


def _resolve(dag, events):
  run = types.SimpleNamespace(run_id="asset_triggered__2026-12-01T00:00:00+00:00",
                              run_type="asset_triggered")
  params = copy.deepcopy(dag.params).validate()
  return dag.get_task("resolve_config").python_callable(
      params=params, dag_run=run, triggering_asset_events=events)


def test_a_coco_export_on_its_source_asset_starts_a_coco_run(dag, tmp_path, monkeypatch,
                                                               capsys):
  from deeplab import config as dlconfig
  from deeplab.datasets import build
  from deeplab.datasets.converters.base import ConvertOptions
  from deeplab.datasets.fingerprint import compute_fingerprint
  from tests.deeplab.datasets.test_convert_coco import make_coco

  root = str(tmp_path / "storage")
  monkeypatch.setenv("DEEPLAB_STORAGE_ROOT", root)
  monkeypatch.setenv(raw_sources.ENV, SOURCES)
  export = make_coco(os.path.join(root, "raw", "pets", "2026-12"))
  plan = _resolve(dag, _events(("deeplab_raw_data/pets", "file://" + root + "/raw/pets",
                                {"source_uri": "raw/pets/2026-12"})))
  assert "Started by new data on Asset 'deeplab_raw_data/pets'" in capsys.readouterr().out
  assert (plan["build_format"], plan["build_source"]) == ("coco", export)
  assert plan["build_flags"] == {"ignore_classes": "__ignore__,dog"}
  assert plan["fingerprint"] == compute_fingerprint("coco", export, {"ignore_classes": "__ignore__,dog"})
  assert plan["dataset_dir"] == os.path.join(root, "datasets", "pets", plan["fingerprint"])
  assert plan["champion_uri"] == os.path.join(root, "models", "pets", "champion.json")
  assert plan["build_skip"] == ""  # a new export is converted
  # What build_tfrecords then does with the plan: the export's categories become the classes,
  # but for the one the source's converter options ignore.
  opts = dlconfig.from_dict(ConvertOptions, {**plan["build_flags"], "format": plan["build_format"],
                                             "source": plan["build_source"]})
  build.build_tfrecords(opts, plan["dataset_dir"], 0)
  with open(os.path.join(plan["dataset_dir"], "manifest.json")) as f:
    assert json.load(f)["class_names"] == ["background", "cat"]


def test_no_event_keeps_the_params_and_the_catch_all_event_may_name_the_dataset(
    dag, tmp_path, monkeypatch):
  root = str(tmp_path / "storage")
  monkeypatch.setenv("DEEPLAB_STORAGE_ROOT", root)
  monkeypatch.delenv(raw_sources.ENV, raising=False)
  assert _resolve(dag, _events())["build_format"] == "synthetic"
  os.makedirs(os.path.join(root, "raw", "cats"))
  plan = _resolve(dag, _events(("deeplab_raw_data", "file://" + root + "/raw", {
      "dataset_name": "cats", "dataset_format": "labelme", "source_uri": "raw/cats"})))
  assert (plan["build_format"], plan["build_source"]) == ("labelme",
                                                          os.path.join(root, "raw", "cats"))
  assert "/datasets/cats/" in plan["dataset_dir"]


@pytest.mark.parametrize("event,words", [
    (("deeplab_raw_data/dogs", {}), "'deeplab_raw_data/dogs', which is not a declared source"),
    (("deeplab_raw_data/pets", {"model_name": "x"}), "sets ['model_name'] in its extra"),
    (("deeplab_raw_data/pets", {"source_uri": "raw/other"}), "must be in its own folder: "
                                                               "raw/pets"),
    (("deeplab_raw_data", {"dataset_format": "yolo"}), "dataset_format 'yolo'"),
])
def test_events_that_cannot_start_a_run_are_refused(dag, tmp_path, monkeypatch, event, words):
  from airflow.sdk.exceptions import AirflowFailException
  monkeypatch.setenv("DEEPLAB_STORAGE_ROOT", str(tmp_path))
  monkeypatch.setenv(raw_sources.ENV, SOURCES)
  with pytest.raises(AirflowFailException, match=words.replace("[", r"\[").replace("(", r"\(")):
    _resolve(dag, _events((event[0], "file:///x", event[1])))
  assert not os.path.exists(tmp_path / "runs")


def test_bad_declarations_name_the_source_and_the_fix():
  with pytest.raises(raw_sources.SourceError, match="DEEPLAB_RAW_SOURCES is not JSON"):
    raw_sources.parse_sources("{pets}")
  with pytest.raises(raw_sources.SourceError) as e:
    raw_sources.parse_sources(json.dumps({"pets": {"dataset_format": "png"},
                                          "a b": {"dataset_format": "coco", "colour": 1}}))
  assert "source 'pets': dataset_format 'png' must be one of" in str(e.value)
  assert "source 'a b': the name may only use" in str(e.value)
  assert "source 'a b': unknown setting(s) ['colour']" in str(e.value)


def test_the_newest_event_wins_and_the_others_are_named():
  sources = raw_sources.parse_sources(json.dumps({"a": {"dataset_format": "coco"},
                                                  "b": {"dataset_format": "labelme"}}))
  settings, note = raw_sources.run_settings(
      [("deeplab_raw_data/b", {}, "2026-12-01T10:00"),
       ("deeplab_raw_data/a", {}, "2026-12-01T09:00")], sources)
  assert settings["dataset_format"] == "labelme" and settings["source_uri"] == "raw/b"
  assert "events of deeplab_raw_data/a in the same run were not converted" in note


@pytest.mark.slow
def test_the_dag_schedules_on_each_declared_source(tmp_path):
  # Parsed as a deployment parses it, with the sources in its environment (~4 s).
  code = ("import json, sys; from airflow.dag_processing.dagbag import DagBag; "
          "d = DagBag(dag_folder=sys.argv[1]); c = d.dags['deeplab_retrain'].timetable; "
          "c = getattr(c, 'asset_condition', c); "
          "print(json.dumps(sorted([a.name, a.uri] for a in c.objects)))")
  env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO),
         "DEEPLAB_STORAGE_ROOT": str(tmp_path / "st"), raw_sources.ENV: SOURCES}
  out = subprocess.run([sys.executable, "-c", code, str(DAGS)], env=env, capture_output=True,
                       text=True, timeout=120, check=True)
  assets = json.loads(out.stdout.strip().splitlines()[-1])
  assert assets == [["deeplab_raw_data", f"file://{tmp_path}/st/raw"],
                    ["deeplab_raw_data/pets", f"file://{tmp_path}/st/raw/pets"]]
