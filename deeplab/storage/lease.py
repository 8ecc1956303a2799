"""One writer per output folder: a lease taken before a job writes and released when it ends.

Two jobs on one folder (an orphaned trainer and its retry, two runs started by hand) would
interleave checkpoints and prune each other's files. A job therefore holds a lease on its output
folder; a second job waits up to `wait_seconds`, then fails with FolderBusyError (a transient
exit code: the operator retries later) naming the holder. It never writes alongside.

The lease is the file `.deeplab-lease.json` in the folder, holding the holder's pid, host,
command and start time:

* Local folder: the file is locked with flock(2), which the kernel releases when the holder
  dies, however it dies; a job that finds the file unlocked but not empty takes it over and
  logs the previous holder. flock works on local disks and NFSv4; not on every network file
  system.
* gs:// folder: an object created only if absent (if_generation_match=0) and renewed every
  HEARTBEAT_SECONDS by rewriting it with if_generation_match=<its generation>. A lease not
  renewed for TTL_SECONDS (by the object's server-side update time), or whose holder is a dead
  pid on this same host, is taken over, with a log line. A holder that cannot renew (the lease
  was taken over, or storage unreachable for longer than the TTL) stops at once with
  EXIT_FOLDER_BUSY rather than write beside the new holder.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional

from deeplab.contract import EXIT_FOLDER_BUSY
from deeplab.storage import gcs

log = logging.getLogger("deeplab.lease")

LEASE_NAME = ".deeplab-lease.json"
WAIT_SECONDS = 120.0
WAIT_ENV = "DEEPLAB_LEASE_WAIT_SECONDS"  # overrides WAIT_SECONDS (tests, impatient operators)
TTL_SECONDS = 60.0
HEARTBEAT_SECONDS = 15.0
POLL_SECONDS = 0.5


class FolderBusyError(RuntimeError):
  """Another live job holds the folder's lease (transient: retry once it is done)."""

  exit_code = EXIT_FOLDER_BUSY


def wait_seconds_default() -> float:
  value = os.environ.get(WAIT_ENV)
  if not value:
    return WAIT_SECONDS
  try:
    return max(0.0, float(value))
  except ValueError:
    from deeplab.errors import UserInputError
    raise UserInputError(f"{WAIT_ENV}={value!r} is not a number of seconds; unset it or "
                         f"set e.g. {WAIT_ENV}=120") from None


def folder_of(path: Optional[str]) -> Optional[str]:
  """The folder a path flag writes: itself, or the parent of a file path such as `…/x.pb`."""
  if not path:
    return None
  path = path.rstrip("/")
  if path.endswith(".pb"):  # export --export_path=…/frozen_inference_graph.pb
    return path.rsplit("/", 1)[0] if "/" in path else "."
  return path


def _holder_info(command: str) -> dict:
  return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "ttl_seconds": TTL_SECONDS}


def describe(holder: Optional[dict]) -> str:
  """'pid 123 on host-a (train, since 2026-…)' for messages; tolerant of partial content."""
  if not holder:
    return "an unknown job"
  return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
          f"({holder.get('command', '?')}, since {holder.get('started', '?')})")


def _parse(data: bytes) -> Optional[dict]:
  try:
    value = json.loads(data.decode("utf-8"))
    return value if isinstance(value, dict) else None
  except (UnicodeDecodeError, json.JSONDecodeError):
    return None


def _dead_on_this_host(holder: Optional[dict]) -> bool:
  """True when the holder ran on this host and its pid no longer exists."""
  if not holder or holder.get("host") != socket.gethostname():
    return False
  try:
    os.kill(int(holder["pid"]), 0)
  except ProcessLookupError:
    return True
  except (PermissionError, KeyError, TypeError, ValueError):
    return False
  return False


def _busy(folder: str, holder: Optional[dict], waited: float) -> FolderBusyError:
  return FolderBusyError(
      f"{folder} is in use by {describe(holder)} (lease {LEASE_NAME}); waited {waited:.0f} s. "
      "Two jobs must not write one folder: this one stops and can be retried once the other "
      f"ends (a dead holder's lease is taken over; raise {WAIT_ENV} to wait longer)")


# -- local folders ----------------------------------------------------------------------------
class _LocalLease:

  def __init__(self, folder: str, command: str):
    self.folder = folder
    self.path = os.path.join(folder, LEASE_NAME)
    self.command = command
    self.fd: Optional[int] = None
    self.created_folder = False

  def try_acquire(self) -> Optional[dict]:
    """Takes the lease and returns None, or returns the current holder's info."""
    if not os.path.isdir(self.folder):
      os.makedirs(self.folder, exist_ok=True)
      self.created_folder = True
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      with contextlib.suppress(OSError):
        with open(self.path, "rb") as f:
          return _parse(f.read()) or {}
      return {}
    try:
      # The previous holder unlinks the file on release: a lock on an unlinked file is no lease.
      if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
        os.close(fd)
        return {}
    except FileNotFoundError:
      os.close(fd)
      return {}
    previous = _parse(os.pread(fd, 1 << 16, 0))
    if previous:
      log.warning("taking over the lease on %s from %s, which is no longer running", self.folder,
                  describe(previous))
    data = json.dumps(_holder_info(self.command)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    self.fd = fd
    return None

  def release(self) -> None:
    if self.fd is None:
      return
    with contextlib.suppress(FileNotFoundError):
      os.remove(self.path)  # before unlocking: a waiter then finds its inode stale and retries
    os.close(self.fd)
    self.fd = None
    if self.created_folder:  # a job that wrote nothing (e.g. refused its input) leaves nothing
      with contextlib.suppress(OSError):
        os.rmdir(self.folder)


# -- gs:// folders ----------------------------------------------------------------------------
class _GcsLease:

  def __init__(self, folder: str, command: str, on_lost: Callable[[str], None]):
    self.folder = folder
    self.uri = folder.rstrip("/") + "/" + LEASE_NAME
    self.command = command
    self.on_lost = on_lost
    self.info = _holder_info(command)
    self.generation: Optional[int] = None
    self.last_renewal = 0.0
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def _write(self, if_generation_match: int) -> None:
    b = gcs.blob(self.uri)
    self.info["renewed"] = time.time()
    with gcs.errors_for(self.uri):
      b.upload_from_string(json.dumps(self.info), content_type="application/json",
                           if_generation_match=if_generation_match)
    self.generation = b.generation
    self.last_renewal = time.monotonic()

  def _current(self):
    bucket, name = gcs.split_gcs(self.uri)
    with gcs.errors_for(self.uri):
      return gcs.client().bucket(bucket).get_blob(name)

  def try_acquire(self) -> Optional[dict]:
    from google.api_core import exceptions as gexc
    current = self._current()
    try:
      if current is None:
        self._write(if_generation_match=0)  # create only if absent: atomic on GCS
        return None
      try:
        holder = _parse(current.download_as_bytes(if_generation_match=current.generation))
      except gexc.NotFound:
        return {}  # released between our two reads: look again
      age = time.time() - current.updated.timestamp() if current.updated else 0.0
      ttl = float((holder or {}).get("ttl_seconds", TTL_SECONDS))
      if _dead_on_this_host(holder) or age > ttl or holder is None:
        reason = ("its process is gone" if _dead_on_this_host(holder) else
                  f"not renewed for {age:.0f} s > {ttl:.0f} s" if holder else "unreadable")
        self._write(if_generation_match=current.generation)  # only if nobody renewed meanwhile
        log.warning("took over the lease on %s from %s: %s", self.folder, describe(holder),
                    reason)
        return None
      return holder
    except gexc.PreconditionFailed:
      return {}  # someone else created or renewed it between our read and write: look again

  def start_heartbeat(self) -> None:
    self._thread = threading.Thread(target=self._heartbeat, name="deeplab-lease-heartbeat",
                                    daemon=True)
    self._thread.start()

  def _heartbeat(self) -> None:
    from google.api_core import exceptions as gexc
    while not self._stop.wait(HEARTBEAT_SECONDS):
      try:
        current = self._current()
        if current is None or current.generation != self.generation:
          raise gexc.PreconditionFailed("the lease object changed")
        self._write(if_generation_match=self.generation)
      except gexc.PreconditionFailed:
        self.generation = None  # not ours any more: release() must leave it alone
        self.on_lost(f"the lease on {self.folder} was taken over by another job")
        return
      except Exception as e:  # noqa: BLE001 - storage hiccup: retry until the TTL runs out
        if time.monotonic() - self.last_renewal > TTL_SECONDS - HEARTBEAT_SECONDS:
          self.generation = None
          self.on_lost(f"the lease on {self.folder} could not be renewed for "
                       f"{time.monotonic() - self.last_renewal:.0f} s ({e})")
          return
        log.warning("could not renew the lease on %s (%s); retrying", self.folder, e)

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=30)
    if self.generation is None:
      return
    from google.api_core import exceptions as gexc
    with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
      current = self._current()  # the precondition decides on GCS; the look keeps emulators honest
      if current is not None and current.generation == self.generation:
        current.delete(if_generation_match=self.generation)
    self.generation = None


def _stop_process(reason: str) -> None:
  """Default on_lost: another job may write the folder now, so this one must not, at all."""
  log.error("%s; stopping at once (exit %d) so that two jobs never write one folder", reason,
            EXIT_FOLDER_BUSY)
  with contextlib.suppress(Exception):
    sys.stdout.flush()
  os._exit(EXIT_FOLDER_BUSY)


@contextlib.contextmanager
def hold(folder: str, command: str, wait_seconds: Optional[float] = None,
         on_lost: Callable[[str], None] = _stop_process) -> Iterator[Any]:
  """Holds the lease on `folder` (local or gs://) for the duration of the block.

  Args:
    folder: the job's output folder.
    command: what the holder runs, shown to jobs that find the folder busy.
    wait_seconds: how long to wait for a live holder; default $DEEPLAB_LEASE_WAIT_SECONDS or
      WAIT_SECONDS.
    on_lost: called from the heartbeat thread if a gs:// lease is lost; default: exit the
      process with EXIT_FOLDER_BUSY.

  Raises:
    FolderBusyError: another live job still held the lease after `wait_seconds`.
  """
  wait = wait_seconds_default() if wait_seconds is None else wait_seconds
  lease = (_GcsLease(folder, command, on_lost) if gcs.is_gcs(folder)
           else _LocalLease(folder, command))
  start = time.monotonic()
  logged = False
  while True:
    holder = lease.try_acquire()
    if holder is None:
      break
    waited = time.monotonic() - start
    if waited >= wait:
      raise _busy(folder, holder, waited)
    if holder and not logged:
      log.warning("%s is in use by %s; waiting up to %.0f s for it to end", folder,
                  describe(holder), wait)
      logged = True
    time.sleep(POLL_SECONDS)
  if isinstance(lease, _GcsLease):
    lease.start_heartbeat()
  try:
    yield lease
  finally:
    lease.release()
