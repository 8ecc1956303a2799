"""Runs the whole retraining DAG once on the embedded default and says what came out.

    .venv/bin/python scripts/demo.py                    # synthetic data, 2 CPU clones, a few minutes
    .venv/bin/python scripts/demo.py --conf '{"training_number_of_steps": 50}'
    .venv/bin/python scripts/demo.py --fresh            # forget earlier runs and the champion

SQLite in a project-local AIRFLOW_HOME (<repo>/.airflow), LocalLauncher, artifacts under
DEEPLAB_STORAGE_ROOT (default <repo>/demo_output/storage). Run it twice: the second run reuses
the converted dataset (build_tfrecords is skipped). Exit code 0 when the DAG run succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO_LOG = REPO / "demo_output" / "demo.log"


def airflow_env(airflow_home: str | None = None, storage_root: str | None = None) -> dict:
  """The variables scripts/airflow_env.sh exports, as a dict (also used by tests and benchmarks)."""
  home = airflow_home or os.environ.get("DEEPLAB_AIRFLOW_HOME") or str(REPO / ".airflow")
  root = storage_root or os.environ.get("DEEPLAB_STORAGE_ROOT") or str(
      REPO / "demo_output" / "storage")
  path = os.environ.get("PYTHONPATH", "")
  return {
      "AIRFLOW_HOME": home,
      "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
      "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
      "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
      "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
      "DEEPLAB_STORAGE_ROOT": root,
      "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), path) if p),
      "PATH": os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]]),
      "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
  }


def run_dag(conf: dict, dag_id: str = "deeplab_retrain") -> tuple:
  """dag.test() in this process (the environment must be set before airflow is imported).

  Returns (dag_run, {task_id: (state, seconds)}).
  """
  for path in (str(REPO / "dags"), str(REPO)):
    if path not in sys.path:
      sys.path.insert(0, path)
  from airflow.dag_processing.dagbag import DagBag

  bag = DagBag(dag_folder=str(REPO / "dags"))
  if bag.import_errors:
    raise SystemExit(f"DAG import errors: {bag.import_errors}")
  dr = bag.dags[dag_id].test(run_conf=conf)
  return dr, task_times(dr.dag_id, dr.run_id)


def run_deploy(model_name: str) -> dict:
  """deeplab_deploy on the promoted model, as the model Asset starts it under a scheduler
  (dag.test runs no Asset consumer): the version a server now serves, checked by a request."""
  from deeplab_pipeline import history
  from operators.settings import storage_root

  dr, times = run_dag({"model_name": model_name}, "deeplab_deploy")
  out = {"state": str(dr.state), "tasks": task_states(times)}
  lines = history.read(history.history_uri(storage_root(), model_name))
  if out["state"] == "success" and lines:
    # A deploy that succeeded passed its request check (a failed check exits 2, pushes nothing).
    out.update(version=lines[-1]["version"], model_dir=lines[-1]["model_dir"],
               request_check="passed")
  return out


def task_times(dag_id: str, run_id: str) -> dict:
  from airflow.models.taskinstance import TaskInstance
  from airflow.utils.session import create_session

  with create_session() as session:
    tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                             TaskInstance.run_id == run_id).all()
    # In run order (start time), so the summary reads like the DAG.
    tis = sorted(tis, key=lambda ti: (ti.start_date is None, ti.start_date or 0))
    return {ti.task_id: (str(ti.state), (ti.end_date - ti.start_date).total_seconds()
                         if ti.start_date and ti.end_date else 0.0) for ti in tis}


def task_states(times: dict) -> dict:
  """The summary's form of task_times: {task_id: {'state', 'seconds'}}."""
  return {k: {"state": s, "seconds": round(t, 1)} for k, (s, t) in times.items()}


def summarize(dr, times: dict) -> dict:
  """Reads the run's plan, gate decision, metrics and the champion pointer from storage."""
  from deeplab import storage
  from deeplab_pipeline.resolve import safe_run_id
  from operators.settings import storage_root

  run_dir = storage.join(storage_root(), "runs", safe_run_id(dr.run_id))
  out = {"run_id": dr.run_id, "state": str(dr.state), "run_dir": run_dir,
         "tasks": task_states(times)}
  plan_uri = storage.join(run_dir, "plan.json")
  if not storage.exists(plan_uri):
    return out
  plan = storage.read_json(plan_uri)
  out["dataset_dir"] = plan["dataset_dir"]
  out["conversion"] = "skipped: " + plan["build_skip"] if plan["build_skip"] else "converted"
  if plan["train_skip"]:
    out["training"] = "skipped: " + plan["train_skip"]
  metrics_uri = storage.join(plan["eval_logdir"], "metrics.json")
  if storage.exists(metrics_uri):
    out["miou"] = storage.read_json(metrics_uri).get("miou")
    out["report"] = storage.join(plan["eval_logdir"], "report.md")
  gate_uri = storage.join(run_dir, "gate.json")
  if storage.exists(gate_uri):
    gate = storage.read_json(gate_uri)
    out["gate"] = gate["reason"]
    if gate.get("delta_ci"):  # the champion was evaluated on this run's split
      out["comparison"] = {k: gate.get(k) for k in (
          "candidate_miou", "champion_miou", "champion_miou_recorded", "delta", "delta_ci",
          "verdict", "report")}
  if storage.exists(storage.join(plan["export_path"], "frozen_inference_graph.pb")):
    out["export"] = plan["export_path"]
  export_result_uri = storage.join(plan["export_path"], "export_result.json")
  if storage.exists(export_result_uri):  # the device formats' scores, when any was asked for
    out["formats"] = export_formats(storage.read_json(export_result_uri))
  champion = (storage.read_json(plan["champion_uri"])
              if storage.exists(plan["champion_uri"]) else None)
  out["model_name"] = plan["model_name"]
  out["promoted"] = bool(champion and champion.get("run_id") == plan["run_id"])
  out["champion"] = plan["champion_uri"] if champion else None
  return out


def export_formats(export_result: dict) -> list:
  """Rows of the export's device formats (format, file, size, agreement, mIoU, verdict)."""
  from deeplab.exporting import report

  return report.rows(report.summary(export_result), export_result.get("files") or [],
                     export_result.get("frozen_graph") or "")


def print_summary(s: dict) -> None:
  miou = s.get("miou")
  lines = [
      "", "=" * 78, f"DAG run {s['run_id']}: {s['state']}",
      f"  dataset:   {s.get('dataset_dir', '-')} ({s.get('conversion', '-')})",
      f"  mIoU:      {miou:.4f}" if isinstance(miou, float) else "  mIoU:      -",
      f"  report:    {s.get('report', '-')}",
      f"  export:    {s.get('export', '- (not exported)')}",
      f"  promoted:  {'yes -> ' + s['champion'] if s.get('promoted') else 'no'}"
      + (f" ({s['gate']})" if s.get("gate") else ""),
  ]
  c = s.get("comparison")
  if c:
    lo, hi = c["delta_ci"]
    f4 = lambda v: "n/a" if v is None else f"{v:.4f}"
    lines.append(f"  compared:  candidate {f4(c['candidate_miou'])} vs champion "
                 f"{f4(c['champion_miou'])} on the same images (recorded "
                 f"{f4(c['champion_miou_recorded'])}): delta {c['delta']:+.4f}, 95% interval "
                 f"[{lo:+.4f}, {hi:+.4f}] -> {c['verdict']}")
    lines.append(f"  compare:   {c.get('report')}")
  if s.get("formats"):
    from deeplab.exporting import report

    lines.append("  formats:")
    lines.extend("    " + line for line in report.markdown(s["formats"]).splitlines())
  d = s.get("deploy")
  if d:
    lines.append(f"  served:    version {d['version']} at {d['model_dir']} (TF Serving layout; "
                 f"request check {d['request_check']})" if d.get("version") else
                 f"  served:    deeplab_deploy {d['state']}: "
                 + ", ".join(f"{k} {v['state']}" for k, v in d["tasks"].items()))
  if s.get("training"):
    lines.append(f"  training:  {s['training']}")
  lines.append("  tasks:     " + ", ".join(f"{k} {v['state']} {v['seconds']}s"
                                          for k, v in s["tasks"].items()))
  lines.append("=" * 78)
  print("\n".join(lines), flush=True)


SUMMARY_MARK = "DEMO_SUMMARY "
# A job's own log line inside Airflow's task log: "... INFO deeplab.train: step 20/500: ...".
_JOB_LINE = re.compile(r"\d\d:\d\d:\d\d,\d+ (INFO|WARNING|ERROR) [\w.]+: (.*?)"
                       r"(?: \[airflow\.task\.operators\.[^\]]*\] loc=\S+)?$")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\w+)")
_AIRFLOW_ERROR = re.compile(r"\[(error|critical)\s*\]\s*(.*)")


def condense(line: str, task: list) -> str | None:
  """The line a person wants to see from the DAG run's full log, or None."""
  start = _TASK_START.search(line)
  if start:
    task[0] = start.group(1)
    return None
  job = _JOB_LINE.search(line)
  if job:
    level = "" if job.group(1) == "INFO" else job.group(1) + ": "
    return f"  {task[0]:<15} {level}{job.group(2)}"
  error = _AIRFLOW_ERROR.search(line)
  if error:
    return f"  {task[0]:<15} ERROR: {error.group(2)[:300]}"
  if not line.startswith("20") and line.strip():  # the DAG's own print() lines
    return f"  {task[0]:<15} {line.strip()}"
  return None


def run_quietly(argv: list, log_path: pathlib.Path) -> dict:
  """Runs this script's DAG run in a child; shows progress lines, keeps the full log."""
  log_path.parent.mkdir(parents=True, exist_ok=True)
  cmd = [sys.executable, __file__, "--child", *argv]
  summary, task = None, ["-"]
  with open(log_path, "w") as log, subprocess.Popen(
      cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
    for line in proc.stdout:
      log.write(line)
      if line.startswith(SUMMARY_MARK):
        summary = json.loads(line[len(SUMMARY_MARK):])
        continue
      shown = condense(line.rstrip("\n"), task)
      if shown:
        print(shown, flush=True)
  if summary is None:
    raise SystemExit(f"the DAG run did not finish (exit code {proc.returncode}); full log: "
                     f"{log_path}")
  return summary


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--conf", default="{}", help="JSON run conf overriding the DAG's Params")
  ap.add_argument("--fresh", action="store_true", help="delete earlier demo runs and champion")
  ap.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
  ap.add_argument("--verbose", action="store_true", help="show Airflow's full log")
  ap.add_argument("--log", default=str(DEMO_LOG), help="where the full log goes (default: %(default)s)")
  ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = ap.parse_args(argv)
  env = airflow_env()
  os.environ.update(env)
  if not args.child and not args.verbose:
    log_path = pathlib.Path(args.log)
    print(f"Running the DAG deeplab_retrain (full log: {log_path})", flush=True)
    summary = run_quietly(["--conf", args.conf] + (["--fresh"] if args.fresh else []), log_path)
    return report(summary, args.json)
  conf = json.loads(args.conf)
  root = env["DEEPLAB_STORAGE_ROOT"]
  if args.fresh and not root.startswith("gs://"):
    shutil.rmtree(root, ignore_errors=True)
  os.makedirs(env["AIRFLOW_HOME"], exist_ok=True)
  # Idempotent; creates the SQLite DB on the first run.
  subprocess.run([str(pathlib.Path(sys.executable).parent / "airflow"), "db", "migrate"],
                 check=True, stdout=subprocess.DEVNULL, env=os.environ)
  start = time.perf_counter()
  dr, times = run_dag(conf)
  summary = summarize(dr, times)
  if summary.get("promoted"):
    summary["deploy"] = run_deploy(summary["model_name"])
  summary["wall_seconds"] = round(time.perf_counter() - start, 1)
  if args.child:
    print(SUMMARY_MARK + json.dumps(summary), flush=True)
    return 0
  return report(summary, args.json)


def report(summary: dict, as_json: bool) -> int:
  print_summary(summary)
  if as_json:
    print(json.dumps(summary))
  deployed = summary.get("deploy", {}).get("state", "success")
  return 0 if summary["state"] == "success" and deployed == "success" else 1


if __name__ == "__main__":
  sys.exit(main())
