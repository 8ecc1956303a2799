"""Real Airflow services on 127.0.0.1 (api-server, scheduler, dag-processor): trigger the DAG
through the REST API with a conf (approval=human, approved through the API) and see it succeed;
a bad conf is refused. The promotion's model Asset then starts deeplab_deploy, which serves the
model as version 1; a rollback serves it again after another export was pushed.

The run trains as a group: 1 parameter server + 2 workers on 127.0.0.1, under the
LocalLauncher. Nothing here depends on what training learns, so the group costs this test only
its start-up (one DAG run fewer than a test of its own)."""

import json
import pathlib
import shutil
import urllib.request

import pytest

from tests.dags.airflow_services import AirflowServices, finished_runs as _finished_runs
from tests.dags.airflow_services import request as _request, wait as _wait
from tests.dags.test_end_to_end import TINY
from tests.dags.test_lost_workers import _processes_mentioning

GROUP = {"num_replicas": 2, "num_ps_tasks": 1}


def parked(logs, dag_id, task_id):
  """Whether the scheduler has seen the worker process of a task that parked itself (awaiting
  input) exit. Answering before that loses a race in Airflow 3.3: the late "success" event finds
  the resumed task queued and fails it. A person never answers that fast; tests wait for it."""
  line = ("Received executor event with state success for task instance "
          f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}'")
  scheduler = next(p for p in logs if p.name == "scheduler.log")
  return scheduler.exists() and line in scheduler.read_text()


@pytest.fixture
def airflow_services(tmp_path):
  services = AirflowServices(tmp_path).start_all()
  try:
    yield services.base, services.token, services.logs
  finally:
    services.stop_all()


@pytest.mark.slow
def test_trigger_through_rest_api(airflow_services, tmp_path):
  base, token, logs = airflow_services
  dag_url = f"{base}/api/v2/dags/deeplab_retrain"
  _wait(lambda: _request("GET", dag_url, token)[0] == 200, 180, "the DAG to be parsed", logs)
  _request("PATCH", dag_url, token, {"is_paused": False})

  status, body = _request("POST", f"{dag_url}/dagRuns", token,
                          {"logical_date": None, "conf": {"num_clones": 0}})
  assert status == 400, body
  assert "num_clones" in json.dumps(body)

  # approval=human: the real DAG waits for a reviewer after the gate; approve through the API.
  status, body = _request("POST", f"{dag_url}/dagRuns", token,
                          {"logical_date": None, "conf": {**TINY, **GROUP, "approval": "human"}})
  assert status == 200, body
  run_url = f"{dag_url}/dagRuns/{urllib.request.quote(body['dag_run_id'], safe='')}"
  hitl = f"{run_url}/taskInstances/approve/-1/hitlDetails"
  storage = tmp_path / "storage"

  def trained():
    tis = _request("GET", f"{run_url}/taskInstances", token)[1]["task_instances"]
    state = {t["task_id"]: t["state"] for t in tis}.get("train")
    assert state not in ("skipped", "failed", "upstream_failed"), state
    return state == "success"

  _wait(trained, 600, "the train task", logs, interval=0.5)
  # Every job guard and task of the group ended with the task (a ps serves until stopped).
  left = {pid: argv for pid, argv in _processes_mentioning(str(storage)).items()
          if "train" in argv}
  assert not left, f"processes of the training group outlived the train task: {left}"

  def awaiting():
    tis = _request("GET", f"{run_url}/taskInstances", token)[1]["task_instances"]
    state = {t["task_id"]: t["state"] for t in tis}.get("approve")
    assert state not in ("skipped", "failed", "upstream_failed"), state
    return _request("GET", hitl, token)[1] if state == "awaiting_input" else None

  detail = _wait(awaiting, 600, "the approval request", logs)
  _wait(lambda: parked(logs, "deeplab_retrain", "approve"), 120, "the request to settle", logs)
  assert "candidate mIoU" in detail["body"] and "promoted: " in detail["body"]
  status, body = _request("PATCH", hitl, token, {"chosen_options": ["Approve"]})
  assert status == 200, body

  def finished():
    state = _request("GET", run_url, token)[1]["state"]
    return state if state in ("success", "failed") else None

  final = _wait(finished, 600, "the DAG run", logs)
  status, tis = _request("GET", f"{run_url}/taskInstances", token)
  states = {t["task_id"]: t["state"] for t in tis["task_instances"]}
  assert final == "success", states
  assert states["train"] == "success" and states["promote"] == "success", states
  assert_group_trained_what_evaluate_and_export_read(storage, tmp_path, TINY)
  check_serving(base, token, logs, tmp_path / "storage", "deeplab-synthetic")


def assert_group_trained_what_evaluate_and_export_read(storage, tmp_path, conf):
  """The group's chief ended at exactly N steps; evaluate and export read that checkpoint."""
  steps = conf["training_number_of_steps"]
  plan = json.loads(next(storage.glob("runs/*/plan.json")).read_text())
  logdir = pathlib.Path(plan["train_logdir"])
  result = json.loads((logdir / "train_result.json").read_text())
  assert result["final_step"] == steps, result
  checkpoint = str(logdir / f"model.ckpt-{steps}")
  assert f'model_checkpoint_path: "model.ckpt-{steps}"' in (logdir / "checkpoint").read_text()
  trained = json.loads((logdir / "config.json").read_text())
  assert (trained["num_replicas"], trained["num_ps_tasks"]) == (2, 1)
  metrics = json.loads(pathlib.Path(plan["eval_logdir"], "metrics.json").read_text())
  exported = json.loads(pathlib.Path(plan["export_path"], "export_result.json").read_text())
  for read in (metrics, exported):
    assert (read["checkpoint"], read["checkpoint_step"]) == (checkpoint, steps), read
  # The train task's log names the group: each task started with its TF_CONFIG, its lines
  # prefixed with its name, and the chief (worker-0) ended it.
  log = "".join(p.read_text() for p in (tmp_path / "airflow_home" / "logs").rglob(
      "task_id=train/attempt=1*"))
  for task in ("ps-0", "worker-0", "worker-1"):
    assert f"Running {task}: TF_CONFIG=" in log and f"[{task}] " in log, (task, log[-3000:])
  assert "Group ended by worker-0 with code 0" in log, log[-3000:]



def _run_url(base, dag_id, run_id):
  return f"{base}/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"


def _trigger_and_wait(base, token, logs, dag_id, conf):
  status, body = _request("POST", f"{base}/api/v2/dags/{dag_id}/dagRuns", token,
                          {"logical_date": None, "conf": conf})
  assert status == 200, body
  url = _run_url(base, dag_id, body["dag_run_id"])
  return _wait(lambda: (lambda s: s if s in ("success", "failed") else None)(
      _request("GET", url, token)[1]["state"]), 300, f"the {dag_id} run", logs)


def check_serving(base, token, logs, root, model):
  """deeplab_deploy ran on the promotion's Asset event; then a push of another export (2/) and
  a rollback to the first model, served again as 3/, both recorded in history.jsonl."""
  serving = root / "serving" / model
  history = root / "models" / model / "history.jsonl"
  champion = json.loads((root / "models" / model / "champion.json").read_text())
  # Scheduled by the Asset: nobody triggers this run.
  [run] = _wait(lambda: _finished_runs(base, token, "deeplab_deploy"), 300,
                "deeplab_deploy on the model Asset", logs)
  assert (run["run_type"], run["state"]) == ("asset_triggered", "success"), run
  assert sorted(p.name for p in serving.iterdir() if not p.name.startswith(".")) == ["1"]
  assert (serving / "1" / "saved_model.pb").is_file()
  [line] = [json.loads(l) for l in history.read_text().splitlines()]
  assert (line["event"], line["version"], line["champion_run"], line["export_path"]) == (
      "deploy", 1, champion["run_id"], champion["export_path"])
  assert line["triggered_by"].startswith(f"asset deeplab_model/{model} from deeplab_retrain/")
  # The push record in the version names the push the history line records (the request
  # check passed: a failed one exits 2 and leaves no version).
  record = json.loads((serving / "1" / "assets.extra" / "deeplab_push.json").read_text())
  assert record["push_id"] == line["push_id"]

  # Another export (a copy: another folder) by hand, then the rollback to the first model. The
  # copy has the same export_result.json, hence the same default push id: without a new id the
  # push would find version 1 and do nothing (the rollback then refuses: nothing before 1).
  other = root / "other_export"
  shutil.copytree(champion["export_path"], other)
  assert _trigger_and_wait(base, token, logs, "deeplab_deploy",
                           {"model_name": model, "export_path": str(other),
                            "push_id": "second"}) == "success"
  assert _trigger_and_wait(base, token, logs, "deeplab_rollback",
                           {"model_name": model, "target": "previous"}) == "success"
  lines = [json.loads(l) for l in history.read_text().splitlines()]
  assert [(l["event"], l["version"]) for l in lines] == [
      ("deploy", 1), ("deploy", 2), ("rollback", 3)]
  assert lines[2]["export_path"] == champion["export_path"]
  assert (lines[2]["rolled_back_from"], lines[2]["rolled_back_to"]) == (2, 1)
  assert lines[2]["triggered_by"] == "manual by admin"
  # Version 3 holds the first model's bytes (the push copies the export's SavedModel).
  first = pathlib.Path(champion["export_path"]) / "saved_model" / "saved_model.pb"
  assert (serving / "3" / "saved_model.pb").read_bytes() == first.read_bytes()
  # The rollback's Asset event starts deeplab_deploy, which sees it was already pushed.
  runs = _wait(lambda: (lambda r: r if len(r) == 3 else None)(
      _finished_runs(base, token, "deeplab_deploy")), 120, "the deploy after the rollback", logs)
  latest = max(runs, key=lambda r: r["run_after"])
  assert latest["run_type"] == "asset_triggered" and latest["state"] == "success"
  tis = _request("GET", _run_url(base, "deeplab_deploy", latest["dag_run_id"])
                 + "/taskInstances", token)[1]["task_instances"]
  assert {t["task_id"]: t["state"] for t in tis}["deploy"] == "skipped"
  assert sorted(p.name for p in serving.iterdir() if not p.name.startswith(".")) == [
      "1", "2", "3"]
