"""SIGTERM handling ends within SIGTERM_BUDGET_SECONDS, inside Kubernetes' 30 s grace period."""

import os
import signal
import time

from deeplab.contract import EXIT_TERMINATED
from deeplab.training import trainer


def test_budget_fits_the_default_kubernetes_grace_period():
  assert trainer.SIGTERM_BUDGET_SECONDS <= 25  # 30 s grace minus time for the process to end


def test_sigterm_asks_to_stop_and_exits_if_saving_overruns_the_budget(monkeypatch):
  exits = []
  monkeypatch.setattr(trainer, "SIGTERM_BUDGET_SECONDS", 0.3)
  monkeypatch.setattr(trainer, "_exit_now", exits.append)
  with trainer._sigterm_flag() as state:
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while not exits and time.monotonic() < deadline:  # a save that never ends
      time.sleep(0.05)
    assert state["stop"]
  assert exits == [EXIT_TERMINATED]


def test_a_save_within_the_budget_disarms_the_timer(monkeypatch):
  exits = []
  monkeypatch.setattr(trainer, "SIGTERM_BUDGET_SECONDS", 0.5)
  monkeypatch.setattr(trainer, "_exit_now", exits.append)
  with trainer._sigterm_flag() as state:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    assert state["stop"]
  time.sleep(1.0)
  assert exits == []
