"""pyproject.toml against requirements.txt and the source tree (no install: see
test_airflow_side_install.py for the real one)."""

import pathlib
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.pins import requirement_pins as _pins

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# The jobs' stack: never in the default (Airflow-side) install.
TENSORFLOW_STACK = {"tensorflow", "tensorflow-cpu", "tf-keras", "tf-slim", "keras"}
# Pinned in requirements.txt for the demo environment but declared by nobody here:
# apache-airflow-core already requires psutil; ai-edge-litert requires backports-strenum
# (pinned only so that the lock picks a version that installs on Python 3.11).
ENVIRONMENT_ONLY = {"psutil", "backports-strenum"}
# requirements.txt pins the CPU build; the [train] extra names the one that also runs on GPUs.
SAME_PACKAGE = {"tensorflow-cpu": "tensorflow"}


def _declared(requirements) -> dict:
  return {Requirement(r).name.lower(): Requirement(r) for r in requirements}


BASE = _declared(PROJECT["dependencies"])
TRAIN = _declared(PROJECT["optional-dependencies"]["train"])


def test_default_install_has_no_tensorflow_stack():
  assert not set(BASE) & TENSORFLOW_STACK
  assert {"tensorflow", "tf-keras", "tf-slim"} <= set(TRAIN)


@pytest.mark.parametrize("name,version", sorted(_pins().items()))
def test_every_pin_of_requirements_txt_satisfies_pyproject(name, version):
  declared = name if name in ENVIRONMENT_ONLY else SAME_PACKAGE.get(name, name)
  if declared in ENVIRONMENT_ONLY:
    return
  requirement = BASE.get(declared) or TRAIN.get(declared)
  assert requirement is not None, (
      f"{name}=={version} is pinned in requirements.txt but pyproject.toml declares no "
      f"{declared}: add it to dependencies (Airflow side) or to the [train] extra")
  assert requirement.specifier.contains(version, prereleases=True), (
      f"requirements.txt pins {name}=={version}, outside pyproject.toml's {requirement}")


def test_every_declared_package_is_pinned_in_requirements_txt():
  pinned = {SAME_PACKAGE.get(n, n) for n in _pins()}
  assert set(BASE) | set(TRAIN) <= pinned


@pytest.mark.filterwarnings("ignore:Support for `\[tool.setuptools\]`")
def test_every_python_package_folder_is_installed():
  from setuptools.config.pyprojecttoml import read_configuration

  config = read_configuration(ROOT / "pyproject.toml", expand=True)["tool"]["setuptools"]
  packages = set(config["packages"])
  folders = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("deeplab", "operators") for p in (ROOT / top).rglob("__init__.py")}
  assert folders <= packages
  assert "deeplab_pipeline" in packages
  assert config["package-dir"]["deeplab_pipeline"] == "dags/deeplab_pipeline"
  assert not any(p.startswith("tests") for p in packages)
