"""Orchestration cost: DAG folder parse time, and the demo's wall time through Airflow vs the
same four `python -m deeplab` commands run directly. Prints one JSON object.

Two overhead figures. `orchestration_overhead` compares the DAG run with the commands re-run
directly afterwards; on a shared 2-core VM one training run can differ from the next by 30%, so
it is noisy. `orchestration_overhead_same_run` compares the DAG run's wall time with the time its
own jobs ran (the launcher's "Running:" to "Job exited" lines in the same log): what Airflow adds
around the very same jobs, free of run-to-run training speed.

    .venv/bin/python benchmarks/bench_dag.py            # the demo's default settings
    .venv/bin/python benchmarks/bench_dag.py --quick    # tiny settings (a couple of minutes)

Targets: parse < 0.5 s without importing tensorflow; orchestration overhead < 25 %.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

QUICK = {"training_number_of_steps": 20, "train_crop_size": [33, 33], "train_batch_size": 4,
         "converter_options": {"synthetic_num_train": 32, "synthetic_num_val": 8,
                               "synthetic_image_size": 32}}

PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag   # Airflow itself is loaded before timing
t = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "errors": len(bag.import_errors), "dags": len(bag.dags),
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def parse_time(env: dict, repeats: int = 3) -> dict:
  runs = []
  for _ in range(repeats):
    out = subprocess.run([sys.executable, "-c", PARSE, str(REPO / "dags")], env=env,
                         capture_output=True, text=True, check=True)
    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
  best = min(runs, key=lambda r: r["seconds"])
  return {"dag_folder_parse_seconds": round(best["seconds"], 3),
          "dag_folder_parse_seconds_all": [round(r["seconds"], 3) for r in runs],
          "tensorflow_imported_by_parse": any(r["tensorflow_imported"] for r in runs),
          "import_errors": best["errors"], "dags": best["dags"]}


def run_direct(plan: dict, root_from: str, root_to: str, env: dict) -> dict:
  """The same four commands with the same flags, straight from a shell, into another root."""
  from operators.argv import deeplab_argv

  def moved(value):
    if isinstance(value, str):
      return value.replace(root_from, root_to)
    if isinstance(value, dict):
      return {k: moved(v) for k, v in value.items()}
    return value

  p = moved(plan)
  result_json = os.path.join(root_to, "eval_result.json")
  steps = [
      ("build_tfrecords", "build-tfrecords", {**p["build_flags"], "format": p["build_format"],
                                              "source": p["build_source"] or None,
                                              "output_dir": p["dataset_dir"]}),
      ("train", "train", {**p["train_flags"], "dataset_dir": p["dataset_dir"],
                          "train_logdir": p["train_logdir"], "num_clones": p["num_clones"]}),
      ("evaluate", "evaluate", {**p["eval_flags"], "dataset_dir": p["dataset_dir"],
                                "checkpoint_dir": p["train_logdir"],
                                "eval_logdir": p["eval_logdir"], "result_json": result_json}),
      ("export", "export", {**p["export_flags"], "export_path": p["export_path"]}),
  ]
  # The train task reads the run's config.json, as the DAG's does.
  os.makedirs(os.path.dirname(p["config_uri"]), exist_ok=True)
  with open(p["config_uri"], "w") as f:
    json.dump(p["train_config"], f)
  times = {}
  for task_id, command, flags in steps:
    if command == "export":  # exactly the checkpoint and input size evaluate used, as the DAG
      evaluated = json.load(open(result_json))
      flags.update(checkpoint_path=evaluated["checkpoint"],
                   eval_metrics_json=evaluated["metrics_json"])
    argv = [sys.executable, "-m", "deeplab", *deeplab_argv(command, flags)]
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times[task_id] = round(time.perf_counter() - t, 2)
  return times


def job_seconds(log_text: str) -> dict:
  """task_id -> seconds its job ran, from a DAG run's full log (the launcher's own lines)."""
  from demo import _TASK_START

  def stamp(line: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))

  task, started, seconds = None, None, {}
  for line in log_text.splitlines():
    start = _TASK_START.search(line)
    if start:
      task, started = start.group(1), None
    elif "] Running: " in line:
      started = stamp(line)
    elif "] Job exited with code " in line and started is not None:
      seconds[task] = round(seconds.get(task, 0.0) + (stamp(line) - started).total_seconds(), 2)
      started = None
  return seconds


def main() -> int:
  ap = argparse.ArgumentParser()
  ap.add_argument("--quick", action="store_true", help="tiny settings instead of the demo's")
  args = ap.parse_args()
  # min_miou 0: export runs in both columns whatever the mIoU (the gate is not what is timed).
  conf = {**(QUICK if args.quick else {}), "min_miou": 0.0}
  from demo import airflow_env

  tmp = tempfile.mkdtemp(prefix="bench_dag_")
  root_dag, root_direct = os.path.join(tmp, "dag"), os.path.join(tmp, "direct")
  env = {**os.environ, **airflow_env(os.path.join(tmp, "airflow_home"), root_dag),
         "CUDA_VISIBLE_DEVICES": "", "DEEPLAB_AIRFLOW_HOME": os.path.join(tmp, "airflow_home")}
  out = {"settings": "quick" if args.quick else "demo defaults", "conf": conf}
  out.update(parse_time(env))

  t = time.perf_counter()
  log_path = os.path.join(tmp, "demo.log")
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--json", "--conf",
                         json.dumps(conf), "--log", log_path], env=env, capture_output=True,
                        text=True)
  demo_process = time.perf_counter() - t
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode or not lines:
    print(json.dumps({**out, "error": "demo failed", "tail": proc.stdout[-2000:]}))
    return 1
  summary = json.loads(lines[-1])
  from deeplab import storage
  plan = storage.read_json(os.path.join(summary["run_dir"], "plan.json"))

  direct = run_direct(plan, root_dag, root_direct, env)
  dag_tasks = {k: v["seconds"] for k, v in summary["tasks"].items()}
  direct_total = sum(direct.values())
  dag_total = summary["wall_seconds"]
  with open(log_path) as f:
    jobs = job_seconds(f.read())
  jobs_total = sum(jobs.values())
  out.update({
      "miou": summary.get("miou"),
      "dag_wall_seconds": dag_total,  # DagBag + dag.test(), i.e. the whole DAG run
      "dag_process_seconds_incl_db_migrate": round(demo_process, 1),
      "direct_cli_total_seconds": round(direct_total, 1),
      "dag_jobs_total_seconds": round(jobs_total, 1),
      "per_task_seconds": {k: {"dag": dag_tasks.get(k), "job_in_dag": jobs.get(k),
                               "direct": direct.get(k)}
                           for k in ["resolve_config", "build_tfrecords", "train", "evaluate",
                                     "check_champion", "evaluate_champion", "gate",
                                     "approve", "export", "promote"]},
      "orchestration_overhead": round((dag_total - direct_total) / direct_total, 3),
      "orchestration_overhead_same_run": round((dag_total - jobs_total) / jobs_total, 3),
      "targets": {"dag_folder_parse_seconds": "< 0.5", "orchestration_overhead": "< 0.25",
                  "orchestration_overhead_same_run": "< 0.25"},
  })
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
