"""The training image (can't be built here: no Docker) — its key lines and pins."""

import json
import pathlib
import re

from tests.pins import dockerfile_pins, lock_installs, lock_pins

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions():
  text = re.sub(r"\\\n", " ", DOCKERFILE)
  return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def test_base_image_is_tensorflow_2_21_gpu():
  assert _instructions()[0] == "FROM tensorflow/tensorflow:2.21.0-gpu"


def test_entrypoint_is_the_deeplab_cli():
  entry = [l for l in _instructions() if l.startswith("ENTRYPOINT")]
  assert len(entry) == 1
  assert json.loads(entry[0][len("ENTRYPOINT"):]) == ["python", "-m", "deeplab"]


def test_runs_as_a_non_root_user_after_setup():
  lines = _instructions()
  users = [l.split()[1] for l in lines if l.startswith("USER ")]
  assert users and users[-1] not in ("root", "0")
  assert lines.index(f"USER {users[-1]}") > max(i for i, l in enumerate(lines)
                                               if l.startswith(("RUN ", "COPY ")))


def test_copies_only_the_deeplab_package_and_the_lock():
  copies = [l for l in _instructions() if l.startswith(("COPY", "ADD"))]
  lock = "COPY requirements.lock scripts/lockfile.py /tmp/lock/"
  assert lock in copies
  assert all(re.search(r"\sdeeplab/\s", l + " ") for l in copies if l != lock)
  assert not any(p in DOCKERFILE for p in ("COPY . ", "COPY dags", "COPY operators"))


def test_versions_come_from_the_lock_and_tensorflow_from_the_base_image():
  installs, lock = lock_installs(DOCKERFILE), lock_pins()
  for needed in ("tf-keras", "tf-slim", "google-cloud-storage"):
    assert needed in installs, f"{needed} not installed in the image"
  assert all(name in lock for name in installs), set(installs) - set(lock)
  assert dockerfile_pins(DOCKERFILE) == {}, "a version written in the Dockerfile, not the lock"
  # The base image's TensorFlow is the lock's release; the image never installs its own.
  assert _instructions()[0] == f"FROM tensorflow/tensorflow:{lock['tensorflow']}-gpu"
  assert "tensorflow-cpu" not in installs and "tensorflow" not in installs


def test_builds_the_native_helpers_where_runtime_finds_them():
  lines = _instructions()
  build = [l for l in lines if "-m deeplab.native" in l]
  assert len(build) == 1 and "DEEPLAB_NATIVE_DIR=/opt/deeplab/native" in build[0]
  assert lines.index(build[0]) > min(i for i, l in enumerate(lines) if "deeplab/" in l
                                     and l.startswith("COPY"))
  assert re.search(r"ENV .*DEEPLAB_NATIVE_DIR=/opt/deeplab/native", " ".join(lines))
  assert any("gcc" in l for l in lines if l.startswith("RUN apt-get"))
