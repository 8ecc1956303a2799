"""The CLI's exit-code contract as the operators see it: a process that exits 2 on bad input.

Exit code 2 fails the Airflow task without retries and anything else is retried, so a command
that exits 0 or 1 on a missing flag would either pass silently or retry forever. The codes are
written out literally here: they are the contract, not an implementation detail.
"""

import importlib
import subprocess
import sys

import pytest

from deeplab.__main__ import COMMANDS
from tests.deeplab import _eval_kit as kit

BAD_INPUT = 2


def _process(*args):
  return subprocess.run([sys.executable, "-m", "deeplab", *args], capture_output=True, text=True,
                        timeout=120)


def test_no_command_exits_2_with_the_usage():
  res = _process()
  assert res.returncode == BAD_INPUT, (res.returncode, res.stdout, res.stderr)
  assert "usage: python -m deeplab" in res.stdout + res.stderr
  for command in COMMANDS:
    assert command in res.stdout + res.stderr


def test_a_command_without_its_flags_exits_2_as_a_process():
  # build-tfrecords does not import TensorFlow: the whole process path stays fast.
  res = _process("build-tfrecords")
  assert res.returncode == BAD_INPUT, (res.returncode, res.stdout, res.stderr)
  assert "required" in res.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_without_flags_exits_2_naming_a_flag(command, capsys):
  code = kit.run_cli(importlib.import_module(COMMANDS[command]), [])
  err = capsys.readouterr().err
  assert code == BAD_INPUT, f"`python -m deeplab {command}` without flags exited {code}: {err}"
  # One "error:" line that names the flag to pass.
  assert any(line.startswith("error:") and "--" in line for line in err.splitlines()), err
