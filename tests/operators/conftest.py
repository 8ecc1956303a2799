"""Fixtures: run operators against tests/operators/fake_job.py instead of `python -m deeplab`."""

import os
import pathlib
import sys

import pytest

from operators.launchers.local import LocalLauncher

FAKE_JOB = str(pathlib.Path(__file__).with_name("fake_job.py"))


def pid_alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat") as f:
      state = f.read().rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")
  except FileNotFoundError:
    return False


@pytest.fixture
def fake_launcher(monkeypatch):
  """Makes every operator use a LocalLauncher that runs fake_job.py; yields the launchers made."""
  made = []

  def make(name, *, task_id, log=None):
    launcher = LocalLauncher(log=log, command_prefix=[sys.executable, FAKE_JOB],
                             kill_grace_seconds=1.0)
    made.append(launcher)
    return launcher

  monkeypatch.setattr("operators.base.make_launcher", make)
  return made


@pytest.fixture
def context():
  return {}
