"""Runs a job as a child and ends the job's whole process group when the supervisor dies.

    python job_guard.py <supervisor_pid> [--stop-grace=SECONDS] -- <command…>

The LocalLauncher starts this script (standard library only, so it starts in ~30 ms and its
main thread is never busy) as the leader of a new session; the job runs as its child in the same
process group and writes straight into the launcher's pipe. The guard exits with the job's exit
status (a job killed by signal N ends the guard with signal N too), so the launcher sees exactly
what the job did.

If the supervisor dies, even by SIGKILL (OOM killer, worker restart), the guard notices within
POLL_SECONDS: on Linux the kernel sends it a parent-death signal (prctl PR_SET_PDEATHSIG), and
everywhere its parent pid changes (the guard is re-parented). It then sends SIGTERM to the group
(a trainer saves a checkpoint if it can), waits ORPHAN_GRACE_SECONDS and SIGKILLs the group,
itself included. No job of a dead supervisor keeps training, holding GPUs or writing files.

SIGTERM sent to the group by a living supervisor (on_kill, timeout) is ignored by the guard,
which keeps waiting for the job and reports its status; the supervisor escalates on its own.
If the supervisor dies while such a stop is under way (Airflow SIGKILLs a task process 5 s after
its SIGTERM), the job keeps the rest of the supervisor's grace (--stop-grace, counted from that
SIGTERM) to finish stopping, e.g. a trainer saving its checkpoint, instead of ORPHAN_GRACE_SECONDS.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import Optional

POLL_SECONDS = 0.1
ORPHAN_GRACE_SECONDS = 3.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Delivered to the guard when its parent dies (Linux); only wakes the loop, which then checks.
_PDEATH_SIGNAL = signal.SIGUSR1


def _set_parent_death_signal(sig: int) -> bool:
  """prctl(PR_SET_PDEATHSIG, sig) on Linux; False elsewhere (the ppid poll still works)."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
  except (OSError, AttributeError):
    return False


def _say(message: str) -> None:
  try:  # Nobody may be reading any more: a closed pipe must not stop the cleanup.
    print(f"job_guard: {message}", file=sys.stderr, flush=True)
  except (OSError, ValueError):
    pass


def _end_group(child: subprocess.Popen, stop_deadline: Optional[float]) -> None:
  """Ends the whole group (the guard too): SIGTERM, then SIGKILL after the grace period.

  stop_deadline: when a stop the supervisor began must be over (monotonic), or None.
  """
  pgid = os.getpgrp()
  if stop_deadline is None:
    _say(f"supervisor is gone; stopping process group {pgid}")
    try:
      os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
      pass
    grace = ORPHAN_GRACE_SECONDS
  else:  # the job already has its SIGTERM: let it finish stopping
    grace = max(ORPHAN_GRACE_SECONDS, stop_deadline - time.monotonic())
    _say(f"supervisor is gone while the job was stopping; process group {pgid} ends within "
         f"{grace:.0f} s")
  try:
    child.wait(timeout=grace)
  except subprocess.TimeoutExpired:
    pass
  # Whatever the job left behind (input workers, pools), and the guard itself.
  os.killpg(pgid, signal.SIGKILL)


def _exit_like(returncode: int) -> None:
  """Ends the guard the way the job ended: same exit code, or killed by the same signal."""
  if returncode < 0:
    sig = -returncode
    if sig != signal.SIGKILL:  # SIGKILL's disposition cannot be set (EINVAL); it kills anyway
      signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(1)  # the signal is delivered before this returns; never reached in practice
  sys.exit(returncode)


def _parse(argv: list) -> tuple:
  """(supervisor pid, stop grace seconds, command) or exits 2 with the usage."""
  rest, stop_grace = argv[2:], 0.0
  if rest and rest[0].startswith("--stop-grace="):
    stop_grace, rest = float(rest[0].split("=", 1)[1]), rest[1:]
  if len(argv) < 2 or not argv[1].isdigit() or len(rest) < 2 or rest[0] != "--":
    print("usage: job_guard.py <supervisor_pid> [--stop-grace=SECONDS] -- <command…>",
          file=sys.stderr)
    sys.exit(2)
  return int(argv[1]), stop_grace, rest[1:]


def main(argv: list) -> None:
  supervisor, stop_grace, command = _parse(argv)
  stop_deadline: list = []  # set by the first SIGTERM from a living supervisor
  signal.signal(_PDEATH_SIGNAL, lambda signum, frame: None)
  _set_parent_death_signal(_PDEATH_SIGNAL)
  # The supervisor may have died before prctl took effect: the parent pid tells.
  orphaned = os.getppid() != supervisor
  child = subprocess.Popen(command)

  def stop_begun(signum, frame) -> None:  # the job got the same SIGTERM: note when
    if not stop_deadline:
      stop_deadline.append(time.monotonic() + stop_grace)

  # Set after the fork so that the job keeps the default SIGTERM behaviour.
  signal.signal(signal.SIGTERM, stop_begun)
  while True:
    try:
      code = child.wait(timeout=POLL_SECONDS)
    except subprocess.TimeoutExpired:
      code = None
    # Also when the job has just ended (e.g. on writing to the dead supervisor's pipe): what it
    # started may still run, and nobody else will stop it.
    if orphaned or os.getppid() != supervisor:
      _end_group(child, stop_deadline[0] if stop_deadline else None)
    if code is not None:
      _exit_like(code)


if __name__ == "__main__":
  main(sys.argv)
