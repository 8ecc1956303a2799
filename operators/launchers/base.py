"""The launcher interface: run one `python -m deeplab …` job, return its exit code and result.

A launcher owns one job at a time; the operator keeps the launcher so that `on_kill` can stop
the job.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Any, Optional, Sequence

from deeplab.config.cluster import PS_JOB, WORKER_JOB
from deeplab.contract import LAUNCHERS


@dataclasses.dataclass(frozen=True)
class JobResult:
  """How a job ended: its exit code, the last lines it printed and its result JSON (or None)."""

  exit_code: int
  tail: tuple = ()
  result: Optional[dict] = None


@dataclasses.dataclass(frozen=True)
class ClusterShape:
  """The tasks of a distributed training job (the original's --num_replicas/--num_ps_tasks).

  One replica and no ps is the single-process job every launcher runs by default.
  """

  num_replicas: int = 1
  num_ps_tasks: int = 0

  @property
  def is_group(self) -> bool:
    return self.num_replicas > 1 or self.num_ps_tasks > 0

  def tasks(self) -> list:
    """(job, index) of every task, the ps tasks first (workers wait for them anyway)."""
    return ([(PS_JOB, i) for i in range(self.num_ps_tasks)] +
            [(WORKER_JOB, i) for i in range(self.num_replicas)])


def task_name(job: str, index: int) -> str:
  return f"{job}-{index}"


class Launcher(abc.ABC):
  """Runs `python -m deeplab <argv…> --result_json=<where the launcher reads it>`."""

  def __init__(self, log: Optional[logging.Logger] = None):
    self.log = log or logging.getLogger(__name__)

  @abc.abstractmethod
  def run(self, argv: Sequence[str], *, context: Any = None, num_gpus: int = 0,
          cluster: Optional[ClusterShape] = None) -> JobResult:
    """Starts the job, streams its output into the task log and waits for it.

    With a `cluster` that is a group, the job runs as that many ps and worker tasks (each
    given its TF_CONFIG); the chief's (worker 0's) exit ends the group, any other task lost
    ends it too, with that task's exit code and last lines.
    """

  def resume(self, argv: Sequence[str], event: Any, *, context: Any = None,
             num_gpus: int = 0, cluster: Optional[ClusterShape] = None) -> JobResult:
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
