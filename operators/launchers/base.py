"""The launcher interface: run one `python -m deeplab …` job, return its exit code and result.

A launcher owns one job at a time; the operator keeps the launcher so that `on_kill` can stop
the job.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Any, Optional, Sequence

from deeplab.contract import LAUNCHERS



@dataclasses.dataclass(frozen=True)
class JobResult:
  """How a job ended: its exit code, the last lines it printed and its result JSON (or None)."""

  exit_code: int
  tail: tuple = ()
  result: Optional[dict] = None


class Launcher(abc.ABC):
  """Runs `python -m deeplab <argv…> --result_json=<where the launcher reads it>`."""

  def __init__(self, log: Optional[logging.Logger] = None):
    self.log = log or logging.getLogger(__name__)

  @abc.abstractmethod
  def run(self, argv: Sequence[str], *, context: Any = None, num_gpus: int = 0) -> JobResult:
    """Starts the job, streams its output into the task log and waits for it."""

  def resume(self, argv: Sequence[str], event: Any, *, context: Any = None,
             num_gpus: int = 0) -> JobResult:
    """Finishes a job whose `run` deferred (raised TaskDeferred), given the trigger's event."""
    raise NotImplementedError(f"{type(self).__name__} never defers, so it cannot resume")

  @abc.abstractmethod
  def kill(self) -> None:
    """Stops the running job and everything it started; safe to call at any time."""


def make_launcher(name: str, *, task_id: str, log: Optional[logging.Logger] = None) -> Launcher:
  """'local' or 'kubernetes' -> a fresh launcher (imports the Kubernetes client only when asked)."""
  if name == "local":
    from operators.launchers.local import LocalLauncher
    return LocalLauncher(log=log)
  if name == "kubernetes":
    from operators.launchers.kubernetes import KubernetesLauncher
    return KubernetesLauncher(task_id=task_id, log=log)
  raise ValueError(f"unknown launcher {name!r}; choose one of {', '.join(LAUNCHERS)}")
