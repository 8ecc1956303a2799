"""Runs a job as a child and ends the job's whole process group when the supervisor dies.

    python job_guard.py <supervisor_pid> -- <command…>

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
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

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


def _end_group(child: subprocess.Popen) -> None:
  """SIGTERM to the whole group, then SIGKILL after the grace period (ends the guard too)."""
  pgid = os.getpgrp()
  try:  # Nobody may be reading any more: a closed pipe must not stop the cleanup.
    print(f"job_guard: supervisor is gone; stopping process group {pgid}", file=sys.stderr,
          flush=True)
  except (OSError, ValueError):
    pass
  try:
    os.killpg(pgid, signal.SIGTERM)
  except ProcessLookupError:
    pass
  try:
    child.wait(timeout=ORPHAN_GRACE_SECONDS)
  except subprocess.TimeoutExpired:
    pass
  # Whatever the job left behind (input workers, pools), and the guard itself.
  os.killpg(pgid, signal.SIGKILL)


def _exit_like(returncode: int) -> None:
  """Ends the guard the way the job ended: same exit code, or killed by the same signal."""
  if returncode < 0:
    sig = -returncode
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    time.sleep(1)  # the signal is delivered before this returns; never reached in practice
  sys.exit(returncode)


def main(argv: list) -> None:
  if len(argv) < 4 or argv[2] != "--":
    print("usage: job_guard.py <supervisor_pid> -- <command…>", file=sys.stderr)
    sys.exit(2)
  supervisor = int(argv[1])
  command = argv[3:]
  signal.signal(_PDEATH_SIGNAL, lambda signum, frame: None)
  _set_parent_death_signal(_PDEATH_SIGNAL)
  # The supervisor may have died before prctl took effect: the parent pid tells.
  orphaned = os.getppid() != supervisor
  child = subprocess.Popen(command)
  # Set after the fork so that the job keeps the default SIGTERM behaviour.
  signal.signal(signal.SIGTERM, lambda signum, frame: None)
  while True:
    try:
      code = child.wait(timeout=POLL_SECONDS)
    except subprocess.TimeoutExpired:
      code = None
    # Also when the job has just ended (e.g. on writing to the dead supervisor's pipe): what it
    # started may still run, and nobody else will stop it.
    if orphaned or os.getppid() != supervisor:
      _end_group(child)
    if code is not None:
      _exit_like(code)


if __name__ == "__main__":
  main(sys.argv)
