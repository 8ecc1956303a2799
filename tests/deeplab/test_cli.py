"""`python -m deeplab`: usage, unknown commands and the exit-code mapping."""

import subprocess
import sys

import pytest

from deeplab import cli
from deeplab.errors import NonFiniteLossError, UserInputError


def _run(*args):
  return subprocess.run([sys.executable, "-m", "deeplab", *args], capture_output=True, text=True)


def test_unknown_command_exits_2_and_lists_the_commands():
  res = _run("trian")
  assert res.returncode == 2
  assert "unknown command 'trian'" in res.stderr and "train" in res.stderr


def test_help_lists_commands():
  res = _run("--help")
  assert res.returncode == 0 and "build-tfrecords" in res.stdout


@pytest.mark.parametrize("exc, code", [
    (UserInputError("bad label"), 2),
    (NonFiniteLossError("loss is nan"), 3),
    (RuntimeError("network blip"), 1),
])
def test_exceptions_map_to_the_exit_code_contract(exc, code):
  def main():
    raise exc
  assert cli.guarded(main) == code


def test_unknown_flag_exits_2():
  assert cli.run_command("train", ["--no_such_flag_xyz=1"]) == 2


def test_helpfull_lists_the_command_flags():
  res = _run("build-tfrecords", "--helpfull")
  assert res.returncode == 0
  assert "--output_dir" in res.stdout and "--on_bad_example" in res.stdout
