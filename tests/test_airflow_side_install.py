"""The Airflow-side install: a fresh venv with only `pip install <repo>` (no [train] extra).

It must parse the DAGs (lone copies of the three files of dags/ in another folder, as in any
Airflow's DAGs folder) and run resolve_config, gate, promote, then the deploy DAG's plan and
serve against the storage emulator, with TensorFlow neither installed nor imported. pip reads its cache (~/.cache/pip) and skips
byte-compiling; still the slowest test of its kind (about a minute), so it is marked slow.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from tests.pins import lockfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = pathlib.Path(__file__).with_name("airflow_side_probe.py")
# What `pip install <repo>` needs of the checkout (what a wheel build reads).
SOURCES = ("pyproject.toml", "README.md", "deeplab", "operators", "dags")
DAG_FILES = sorted(p.name for p in (ROOT / "dags").glob("*.py"))


def _copy_sources(dest: pathlib.Path) -> None:
  # A copy, so that pip's in-tree build (build/, *.egg-info) never lands in the checkout.
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
  for name in SOURCES:
    src = ROOT / name
    if src.is_dir():
      shutil.copytree(src, dest / name, ignore=ignore)
    else:
      shutil.copy2(src, dest / name)


@pytest.mark.slow
def test_airflow_side_install_has_no_tensorflow_and_runs_the_light_tasks(tmp_path, gcs_bucket):
  started = time.monotonic()
  src, venv = tmp_path / "src", tmp_path / "venv"
  src.mkdir()
  _copy_sources(src)
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  # The lock's versions, as the Airflow image installs them (deploy/airflow/Dockerfile).
  constraints = tmp_path / "constraints.txt"
  constraints.write_text(lockfile.constraints(lockfile.LOCK.read_text()))
  install = subprocess.run(
      [python, "-m", "pip", "install", "--no-compile", "--disable-pip-version-check", "-q",
       "-c", str(constraints), str(src)], env=env, capture_output=True, text=True)
  assert install.returncode == 0, install.stderr[-3000:]
  listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], env=env,
                          capture_output=True, text=True, check=True).stdout
  # A name may be locked twice (one version per Python range); pip and setuptools come with
  # the venv, not from the install.
  locked = {}
  for line in lockfile.constraints(lockfile.LOCK.read_text()).splitlines():
    name, version = line.split(" ;")[0].split("==")
    locked.setdefault(name.lower().replace("_", "-"), set()).add(version)
  off_lock = {}
  for p in json.loads(listed):
    name = p["name"].lower().replace("_", "-")
    if name in locked and name not in ("pip", "setuptools") and p["version"] not in locked[name]:
      off_lock[name] = p["version"]
  assert off_lock == {}, f"installed off the lock: {off_lock}"
  installed_at = time.monotonic()

  # Only the DAG files, in a folder of their own: they must find everything else installed.
  dags = tmp_path / "airflow" / "dags"
  dags.mkdir(parents=True)
  for dag_file in DAG_FILES:
    shutil.copy2(ROOT / "dags" / dag_file, dags)
  probe = tmp_path / "probe" / PROBE.name
  probe.parent.mkdir()
  shutil.copy2(PROBE, probe)
  result = tmp_path / "probe.json"
  env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
             AIRFLOW__CORE__DAGS_FOLDER=str(dags), PROBE_DAGS=str(dags), PROBE_OUT=str(result),
             DEEPLAB_STORAGE_ROOT=f"gs://{gcs_bucket}/deeplab")
  run = subprocess.run([python, str(probe)], env=env, cwd=probe.parent, capture_output=True,
                       text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  out = json.loads(result.read_text())
  print(f"airflow-side install: venv + pip {installed_at - started:.1f}s, "
        f"probe {time.monotonic() - installed_at:.1f}s")

  assert out["tensorflow"] is None, "the default install pulled TensorFlow in"
  assert out["import_errors"] == {}
  assert sorted(out["dags"]) == ["deeplab_deploy", "deeplab_retrain", "deeplab_rollback"]
  for serving in ("deeplab_deploy", "deeplab_rollback"):
    assert out["dags"][serving] == ["deploy", "plan", "record", "serve"], serving
  assert out["tensorflow_loaded"] == []
  assert {"resolve_config", "build_tfrecords", "check_dataset", "train", "evaluate",
          "check_champion", "evaluate_champion", "gate", "approve", "export",
          "promote"} == set(out["tasks"])
  assert out["dataset_check"]["note"] == "no champion dataset to compare with"
  site = str(venv)
  for name, path in out["module_files"].items():
    assert path.startswith(site), f"{name} came from {path}, not from the installed package"
  assert out["config_written"] is True
  assert out["gate"]["passed"] is True and out["gate"]["miou"] == 0.61
  assert out["champion"] == out["promote_returned"]
  assert out["champion"]["miou"] == 0.61
  assert out["champion"]["run_id"] == out["plan"]["run_dir"].rsplit("/", 1)[-1]
  assert out["plan"]["champion_uri"].startswith(f"gs://{gcs_bucket}/deeplab/models/")
  assert len(out["asset_events"]) == 2
  # deeplab_deploy's plan found the champion promote wrote, and would push its export.
  assert out["deploy_plan"] == {
      "model_name": out["champion"]["model_name"], "export_path": out["champion"]["export_path"],
      "serving_base_path": f"gs://{gcs_bucket}/deeplab/serving", "skip_reason": ""}
  assert out["serve"]["target"] == "folder" and out["serve"]["version"] == 1
