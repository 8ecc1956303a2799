"""DeepLabCommandOperator: runs one `python -m deeplab <command>` through a launcher."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import (AirflowException, AirflowFailException, AirflowSkipException,
                                    TaskDeferred)

from deeplab.contract import LAUNCHERS, NON_RETRYABLE, exit_meaning
from operators.argv import deeplab_argv
from operators.launchers.base import JobResult, make_launcher



def _is_templated(value: Any) -> bool:
  return not isinstance(value, (str, int, float, bool, type(None), Mapping, list, tuple)) or (
      isinstance(value, str) and "{{" in value)


class DeepLabCommandOperator(BaseOperator):
  """Runs `python -m deeplab <command> --flag=value…` and returns its result JSON (XCom).

  :param flags: the command's flags, e.g. ``{"num_clones": 2}``; None values are left out
      (templated).
  :param launcher: where the job runs: ``local`` (a process group on the worker) or
      ``kubernetes`` (a pod from the training image) (templated).
  :param skip_reason: when it renders non-empty, the task is skipped with this message instead of
      running, e.g. "dataset fingerprint … already converted" (templated).
  """

  command: str = ""
  template_fields: Sequence[str] = ("flags", "launcher", "skip_reason")
  template_fields_renderers = {"flags": "json"}
  ui_color = "#e8f0fe"

  def __init__(self, *, flags: Optional[Mapping[str, Any]] = None, launcher: str = "local",
               skip_reason: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.flags = flags
    self.launcher = launcher
    self.skip_reason = skip_reason
    if not _is_templated(launcher) and launcher not in LAUNCHERS:
      raise ValueError(f"launcher {launcher!r} is not one of {', '.join(LAUNCHERS)}")
    self._launcher = None

  # Subclasses add their named flags (the command's required ones) to `flags`.
  def command_flags(self) -> dict:
    return dict(self.flags or {})

  def num_gpus(self) -> int:
    """GPUs the job asks for when it runs on Kubernetes."""
    return 1

  def launch_options(self) -> dict:
    """Extra launcher arguments (the training cluster's shape)."""
    return {}

  def execute(self, context) -> dict:
    if self.skip_reason and str(self.skip_reason).strip() not in ("", "None"):
      self.log.info("Skipping: %s", self.skip_reason)
      raise AirflowSkipException(str(self.skip_reason))
    return self._run_job(lambda launcher, argv: launcher.run(
        argv, context=context, num_gpus=self.num_gpus(), **self.launch_options()))

  def execute_complete(self, context, event: Mapping[str, Any], **kwargs) -> dict:
    """Resumes on a worker once the triggerer saw the job end (deferrable launchers).

    :param event: the trigger's event (KubernetesPodTrigger: status, pod name and namespace).
    """
    return self._run_job(lambda launcher, argv: launcher.resume(
        argv, event, context=context, num_gpus=self.num_gpus(), **self.launch_options()))

  def _run_job(self, start) -> dict:
    argv = deeplab_argv(self.command, self.command_flags())
    self._launcher = make_launcher(str(self.launcher), task_id=self.task_id, log=self.log)
    deferred = False
    try:
      job = start(self._launcher, argv)
    except TaskDeferred as d:
      # The job runs on, watched by the triggerer; this worker slot is freed. Resuming comes
      # back here (execute_complete), so the exit-code policy below applies after the trigger.
      deferred = True
      self.defer(trigger=d.trigger, method_name="execute_complete", kwargs=d.kwargs,
                 timeout=d.timeout)
    finally:
      if not deferred:
        self._launcher.kill()  # no-op when the job is over; stops it on any exception
    return self._map_result(job)

  def _map_result(self, job: JobResult) -> dict:
    if job.exit_code == 0:
      return job.result if job.result is not None else {}
    tail = "\n".join(job.tail[-15:])
    meaning = exit_meaning(job.exit_code)
    message = (f"`python -m deeplab {self.command}` exited with code {job.exit_code} "
               f"({meaning}). Last lines of its output:\n{tail}")
    if job.exit_code in NON_RETRYABLE:
      raise AirflowFailException(message)
    raise AirflowException(message)

  def on_kill(self) -> None:
    if self._launcher is not None:
      self._launcher.kill()
