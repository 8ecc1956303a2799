"""A distributed training job as a group of local processes: ps and workers on 127.0.0.1.

Each task (ps-0, worker-0 = the chief, worker-1, ...) runs as `python -m deeplab train …` with
its TF_CONFIG, under its own job guard in its own session, exactly as a single job does: none
outlives the supervising task, even a SIGKILLed one. The group is one job to the operator:

* the chief's exit ends the group: its exit code and result are the job's; the ps tasks (which
  serve forever) and any worker still finishing its last step are then stopped;
* any other task lost before that (a ps that exits, a worker killed or failing) stops the whole
  group at once, and the job fails with that task's exit code and last lines. The retry starts
  a fresh group; the chief resumes from its last checkpoint (it alone holds the folder's lease).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Optional, Sequence

from deeplab.config.cluster import PS_JOB, TF_CONFIG_ENV, WORKER_JOB, tf_config
from operators.launchers import job_record
from operators.launchers.base import ClusterShape, JobResult, task_name
from operators.launchers.processes import group_members

HOST = "127.0.0.1"
# Exit code reported for a ps task that ended on its own (it never should: it serves forever).
EXIT_TASK_LOST = 1


def free_ports(count: int) -> list:
  """`count` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
  socks = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind((HOST, 0))
      socks.append(s)
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


@dataclasses.dataclass
class _Member:
  name: str
  job: str
  index: int
  proc: subprocess.Popen
  tail: collections.deque
  pending: bytes = b""
  open: bool = True

  @property
  def is_chief(self) -> bool:
    return self.job == WORKER_JOB and self.index == 0


def run_group(launcher, argv: Sequence[str], cluster: ClusterShape, context: Any) -> JobResult:
  """Runs the tasks of `cluster`, streams their output (prefixed with the task) and ends them."""
  tasks = cluster.tasks()
  ports = free_ports(len(tasks))
  hosts = {job: [f"{HOST}:{p}" for (j, _), p in zip(tasks, ports) if j == job]
           for job in {j for j, _ in tasks}}
  log = launcher.log
  with tempfile.TemporaryDirectory(prefix="deeplab-job-") as tmp:
    result_path = pathlib.Path(tmp) / "result.json"
    job_record.stop_previous(context, launcher._stop_group, log)  # noqa: SLF001
    members = []
    try:
      for job, index in tasks:
        cmd = [*launcher.command_prefix, *argv]
        if job == WORKER_JOB and index == 0:
          cmd.append(f"--result_json={result_path}")
        env = launcher._child_env()  # noqa: SLF001
        env[TF_CONFIG_ENV] = tf_config(hosts.get("ps", []), hosts[WORKER_JOB], job, index)
        name = task_name(job, index)
        log.info("Running %s: %s=%s %s", name, TF_CONFIG_ENV, env[TF_CONFIG_ENV], shlex.join(cmd))
        proc = subprocess.Popen(
            [launcher.python, launcher.job_guard, str(os.getpid()),
             f"--stop-grace={launcher.kill_grace_seconds:g}", "--", *cmd],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        members.append(_Member(name, job, index, proc,
                               collections.deque(maxlen=launcher.tail_lines)))
        launcher._group = [(m.job, m.proc) for m in members]  # noqa: SLF001 - for kill()
      job_record.record(context, [m.proc.pid for m in members], log)
      ender = _watch(members, log)
    finally:
      launcher.kill()
      for m in members:
        _drain(m, log)
        m.proc.stdout.close()
    job_record.forget(context, log)
    return _outcome(ender, members, result_path, log)


def _read(member: _Member, log, timeout: float = 0.0) -> Optional[bool]:
  """Logs what member wrote: True if something came, False if nothing, None at EOF."""
  fd = member.proc.stdout.fileno()
  if not select.select([fd], [], [], timeout)[0]:
    return False
  chunk = os.read(fd, 65536)
  if not chunk:
    member.open = False
    return None
  *lines, member.pending = (member.pending + chunk).split(b"\n")
  for raw in lines:
    line = raw.decode("utf-8", errors="replace").rstrip("\r")
    member.tail.append(line)
    log.info("[%s] %s", member.name, line)
  return True


def _drain(member: _Member, log, reads: int = 64) -> None:
  """What a member wrote before it ended (bounded: a leftover child may write on)."""
  for _ in range(reads):
    if not member.open or not _read(member, log):
      break
  if member.pending:
    member.tail.append(member.pending.decode("utf-8", errors="replace"))
    log.info("[%s] %s", member.name, member.tail[-1])
    member.pending = b""


def _watch(members: list, log) -> _Member:
  """Streams the members' output until the chief ends or another task is lost; returns it."""
  while True:
    fds = {m.proc.stdout.fileno(): m for m in members if m.open}
    ready = select.select(list(fds), [], [], 0.5)[0] if fds else time.sleep(0.5) or []
    for fd in ready:
      _read(fds[fd], log)
    for m in members:
      code = m.proc.poll()
      if code is None:
        continue
      if m.is_chief:
        return m
      if m.job == WORKER_JOB and code == 0:
        continue  # a worker whose last claimed step was the run's last: the chief finishes
      log.error("Task %s of the group exited with code %d before the chief finished: stopping "
                "the whole group", m.name, code)
      return m


def _outcome(ender: _Member, members: list, result_path: pathlib.Path, log) -> JobResult:
  code = ender.proc.returncode
  if not ender.is_chief and code == 0:
    code = EXIT_TASK_LOST
  result = None
  if ender.is_chief and result_path.exists():
    try:
      result = json.loads(result_path.read_text())
    except json.JSONDecodeError:
      log.warning("The chief's result JSON %s is not valid JSON", result_path)
  tail = tuple(ender.tail)
  if not ender.is_chief:
    tail = (f"task {ender.name} of the training group exited with code "
            f"{ender.proc.returncode}; the group was stopped. Its last lines:", *tail)
  log.info("Group ended by %s with code %d", ender.name, code)
  return JobResult(exit_code=code, tail=tail, result=result)


def stop_all(group: Sequence[tuple], grace_seconds: float, log) -> None:
  """Stops the workers first, then the ps tasks: a chief stopped by SIGTERM saves a checkpoint,
  which needs the variables on the ps (a ps stopped at the same time leaves it waiting)."""
  procs = [proc for _, proc in group]

  def reap():
    for proc in procs:
      proc.poll()
  for ps_tasks in (False, True):
    stop_groups([proc.pid for job, proc in group if (job == PS_JOB) == ps_tasks],
                grace_seconds, reap, log)


def stop_groups(pgids: Sequence[int], grace_seconds: float, reap, log) -> None:
  """SIGTERM to every process group at once, SIGKILL to what is left after the grace period."""
  live = [p for p in pgids if group_members(p)]
  if not live:
    reap()
    return
  log.info("Stopping process groups %s (SIGTERM)", live)
  for pgid in live:
    try:
      os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
      pass
  deadline = time.monotonic() + grace_seconds
  while time.monotonic() < deadline:
    reap()
    live = [p for p in live if group_members(p)]
    if not live:
      return
    time.sleep(0.05)
  log.warning("Process groups %s still alive after %.0f s: SIGKILL", live, grace_seconds)
  for pgid in live:
    try:
      os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
      pass
  deadline = time.monotonic() + 5.0  # SIGKILL is not instant: wait until the kernel is done
  while live and time.monotonic() < deadline:
    reap()
    live = [p for p in live if group_members(p)]
    time.sleep(0.05)
