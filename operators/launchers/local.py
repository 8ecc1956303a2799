"""LocalLauncher: the job as a child process group on the worker (the embedded default)."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import select
import shlex
import signal
import subprocess
import tempfile
import time
from typing import Any, Mapping, Optional, Sequence

from operators import settings
from operators.launchers import job_record
from operators.launchers.base import ClusterShape, JobResult, Launcher
from operators.launchers.processes import group_members

TAIL_LINES = 30
_DRAIN_READS = 64  # reads of up to 64 KiB after the job ended
# Started in front of every job: it ends the job's group when this process dies (even SIGKILL).
JOB_GUARD = str(pathlib.Path(__file__).with_name("job_guard.py"))


class LocalLauncher(Launcher):
  """`<python> -m deeplab …` in its own session; output streamed line by line into the log.

  The job gets its own session (start_new_session) so that killing its process group reaches
  every process it started (input-pipeline workers, converters' pools) and nothing else. The
  session leader is job_guard.py, which ends the group within seconds if the process running
  this launcher dies without calling kill() (SIGKILL, OOM killer): no job outlives its
  supervisor, so a retry never trains beside an orphan.

  A retry does not adopt a job of an earlier try (Airflow's ResumableJobMixin): the job's
  output pipe and result file belonged to the dead process, and the retry may run on another
  worker. The guard stops the orphan instead, the job's folder lease makes the retry wait until
  it is gone, and a retry on the same host stops a job recorded in the task_state_store whose
  guard is gone too (job_record).
  """

  # Kubernetes' default grace period: room for the trainer's 20 s SIGTERM budget (save + upload).
  def __init__(self, log=None, *, python: Optional[str] = None, kill_grace_seconds: float = 30.0,
               env: Optional[Mapping[str, str]] = None, command_prefix: Optional[Sequence[str]] = None):
    super().__init__(log)
    self.python = python or settings.python_executable()
    self.kill_grace_seconds = kill_grace_seconds
    self.env = env
    # Tests replace `python -m deeplab` with a fake job script.
    self.command_prefix = list(command_prefix) if command_prefix else [self.python, "-m", "deeplab"]
    self.job_guard = JOB_GUARD
    self.tail_lines = TAIL_LINES
    self._proc: Optional[subprocess.Popen] = None
    self._group: list = []  # (job, guard process) of each task of a group job (local_group)

  def _child_env(self) -> dict:
    env = dict(os.environ if self.env is None else self.env)
    # The job must import this repo's deeplab/ whatever the worker's cwd is.
    paths = [str(settings.REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env

  def run(self, argv: Sequence[str], *, context: Any = None, num_gpus: int = 0,
          cluster: Optional[ClusterShape] = None) -> JobResult:
    if cluster is not None and cluster.is_group:
      from operators.launchers import local_group
      return local_group.run_group(self, argv, cluster, context)
    with tempfile.TemporaryDirectory(prefix="deeplab-job-") as tmp:
      result_path = pathlib.Path(tmp) / "result.json"
      cmd = [*self.command_prefix, *argv, f"--result_json={result_path}"]
      self.log.info("Running: %s", shlex.join(cmd))
      cmd = [self.python, JOB_GUARD, str(os.getpid()),
             f"--stop-grace={self.kill_grace_seconds:g}", "--", *cmd]
      tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
      job_record.stop_previous(context, self._stop_group, self.log)
      # No shell: argv goes to exec as is. New session: the job and everything it starts share
      # one process group that kill() can end as a whole.
      proc = self._proc = subprocess.Popen(
          cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
          env=self._child_env(), start_new_session=True)
      try:
        job_record.record(context, proc.pid, self.log)
        self._stream(proc, tail)
        code = proc.wait()
      finally:
        # Normal end, on_kill from another thread, or AirflowTaskTimeout raised in this thread:
        # in every case nothing the job started may outlive it.
        self.kill()
        proc.stdout.close()
      job_record.forget(context, self.log)
      result = None
      if result_path.exists():
        try:
          result = json.loads(result_path.read_text())
        except json.JSONDecodeError:
          self.log.warning("The job's result JSON %s is not valid JSON", result_path)
      self.log.info("Job exited with code %d", code)
      return JobResult(exit_code=code, tail=tuple(tail), result=result)

  def _stream(self, proc: subprocess.Popen, tail: collections.deque) -> None:
    """Logs the job's output line by line until EOF or until the job's leader has exited.

    select() with a short timeout instead of iterating the pipe: a leftover grandchild that
    inherited stdout would otherwise keep the loop waiting after the job itself is done.
    """
    fd = proc.stdout.fileno()
    pending = [b""]

    def emit(raw: bytes) -> None:
      line = raw.decode("utf-8", errors="replace").rstrip("\r")
      tail.append(line)
      self.log.info("%s", line)

    def take(timeout: float) -> Optional[bool]:
      """Logs what arrives within `timeout`: True if something did, False if not, None at EOF."""
      if not select.select([fd], [], [], timeout)[0]:
        return False
      chunk = os.read(fd, 65536)
      if not chunk:
        return None
      *lines, pending[0] = (pending[0] + chunk).split(b"\n")
      for raw in lines:
        emit(raw)
      return True

    while True:
      got = take(0.5)
      if got is None:
        break
      if got or proc.poll() is None:
        continue
      # The job is over. Read what it wrote before it ended: select() comes back empty, without
      # looking, when a signal handler (on_kill stopping the job) outlasted its timeout, and the
      # job's last lines ("stopped at step N") are still in the pipe. Bounded: a grandchild that
      # inherited the pipe may write on.
      for _ in range(_DRAIN_READS):
        if not take(0):
          break
      break
    if pending[0]:
      emit(pending[0])

  def kill(self) -> None:
    """SIGTERM to the whole process group, SIGKILL after the grace period."""
    if self._group:
      from operators.launchers import local_group
      local_group.stop_all(self._group, self.kill_grace_seconds, self.log)
      return
    proc = self._proc
    if proc is None:
      return
    self._stop_group(proc.pid, proc)  # start_new_session: the leader's pid is the group id

  def _stop_group(self, pgid: int, proc: Optional[subprocess.Popen] = None) -> None:
    """SIGTERM to process group `pgid`, SIGKILL after the grace period; reaps `proc`."""
    reap = proc.poll if proc is not None else (lambda: None)
    if not group_members(pgid):
      reap()
      return
    self.log.info("Stopping process group %d (SIGTERM)", pgid)
    try:
      os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
      return
    deadline = time.monotonic() + self.kill_grace_seconds
    while time.monotonic() < deadline:
      reap()  # reap the leader so that it does not linger as a zombie
      if not group_members(pgid):
        return
      time.sleep(0.05)
    self.log.warning("Process group %d still alive after %.0f s: SIGKILL", pgid,
                     self.kill_grace_seconds)
    try:
      os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    if proc is not None:
      try:
        proc.wait(timeout=5)
      except subprocess.TimeoutExpired:
        pass
