"""The training image (can't be built here: no Docker) — its key lines and pins."""

import json
import pathlib
import re

from tests.pins import dockerfile_pins, requirement_pins

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


def test_copies_only_the_deeplab_package():
  copies = [l for l in _instructions() if l.startswith(("COPY", "ADD"))]
  assert copies and all(re.search(r"\sdeeplab/\s", l + " ") for l in copies)
  assert not any(p in DOCKERFILE for p in ("COPY . ", "COPY dags", "COPY operators"))


def test_pins_match_requirements_txt():
  reqs = requirement_pins()
  pins = dockerfile_pins(DOCKERFILE)
  for needed in ("tf-keras", "tf-slim", "google-cloud-storage"):
    assert needed in pins, f"{needed} not installed in the image"
  for name, version in pins.items():
    assert reqs.get(name) == version, f"{name}=={version} in Dockerfile, {reqs.get(name)} in requirements.txt"
  # The base image's TensorFlow is the same release as the pinned tensorflow-cpu.
  assert reqs["tensorflow-cpu"] == "2.21.0"
  assert "tensorflow-cpu" not in pins and "tensorflow" not in pins


def test_builds_the_native_helpers_where_runtime_finds_them():
  lines = _instructions()
  build = [l for l in lines if "-m deeplab.native" in l]
  assert len(build) == 1 and "DEEPLAB_NATIVE_DIR=/opt/deeplab/native" in build[0]
  assert lines.index(build[0]) > min(i for i, l in enumerate(lines) if "deeplab/" in l
                                     and l.startswith("COPY"))
  assert re.search(r"ENV .*DEEPLAB_NATIVE_DIR=/opt/deeplab/native", " ".join(lines))
  assert any("gcc" in l for l in lines if l.startswith("RUN apt-get"))
