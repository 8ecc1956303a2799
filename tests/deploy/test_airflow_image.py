"""deploy/airflow/Dockerfile (can't be built here: no Docker) — base image, pins, what goes in."""

import pathlib
import re

from tests.pins import dockerfile_pins, lock_installs, lock_pins, requirement_pins

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "airflow" / "Dockerfile").read_text()
IGNORE = (ROOT / "deploy" / "airflow" / "Dockerfile.dockerignore").read_text()


def _instructions():
  text = re.sub(r"\\\n", " ", DOCKERFILE)
  return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def test_base_is_the_official_airflow_image_of_the_pinned_release_on_python_3_11():
  assert _instructions()[0] == (
      f"FROM apache/airflow:{lock_pins()['apache-airflow']}-python3.11")


def test_versions_come_from_the_lock_and_leave_tensorflow_out():
  installs, lock = lock_installs(DOCKERFILE), lock_pins()
  for needed in ("apache-airflow", "apache-airflow-providers-cncf-kubernetes",
                 "google-cloud-storage"):
    assert needed in installs, f"{needed} not installed in deploy/airflow/Dockerfile"
  assert all(name in lock for name in installs), set(installs) - set(lock)
  assert dockerfile_pins(DOCKERFILE) == {}, "a version written in the Dockerfile, not the lock"
  assert lock["apache-airflow"] == requirement_pins()["apache-airflow"]
  assert not {"tensorflow", "tensorflow-cpu", "tf-keras", "tf-slim"} & set(installs)
  assert "[train]" not in DOCKERFILE


def test_installs_the_package_and_bakes_only_the_dag_files_into_the_dags_folder():
  lines = _instructions()
  install = next(l for l in lines if l.startswith("RUN ") and "pip install" in l)
  assert "--no-cache-dir" in install and " /tmp/deeplab-src " in install
  copies = [l.split()[-2:] for l in lines if l.startswith("COPY")]
  dags = [(src, dst) for src, dst in copies if dst.startswith("/opt/airflow/dags")]
  assert dags == [(f"dags/{name}", f"/opt/airflow/dags/{name}") for name in
                  ("deeplab_retrain.py", "deeplab_deploy.py", "deeplab_rollback.py")]
  assert not any(l.startswith("USER") for l in lines)  # stays the image's airflow user


def test_build_context_lets_in_exactly_what_the_copies_need():
  allowed = {l[1:].rstrip("/") for l in IGNORE.splitlines() if l.startswith("!")}
  assert IGNORE.splitlines()[1] == "*"  # everything else stays out (tests, demo output, .venv)
  sources = set()
  for line in _instructions():
    if line.startswith("COPY"):
      sources.update(p.rstrip("/") for p in line.split()[1:-1] if not p.startswith("--"))
  for src in sources:
    assert src in allowed or src.split("/")[0] in allowed, (
        f"COPY {src} but {src} is excluded from the context")
    assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
