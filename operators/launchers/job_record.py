"""The local job of a try, recorded in Airflow's task_state_store so that a retry can stop it.

The job guard already ends a job whose supervisor died, and the folder lease keeps a retry
from writing beside it. This record covers what is left: a job whose guard is gone too (killed
on its own). A retry on the same host finds the earlier try's process group by pid *and* start
time (a reused pid is never mistaken for it) and stops it before starting its own job. A retry
on another host cannot reach it; the lease then makes it wait.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Sequence, Union

from operators.launchers.processes import group_started_at, start_ticks

KEY = "deeplab_local_job"


def state_store(context: Any):
  """The task's task_state_store accessor (Airflow 3.3), or None outside a task."""
  try:
    return context.get("task_state_store") if context is not None else None
  except AttributeError:
    return None


def stop_previous(context: Any, stop_group: Callable[[int], None], log) -> None:
  """Stops the process group a previous try of this task left running on this host, if any."""
  store = state_store(context)
  if store is None:
    return
  try:
    previous = store.get(KEY)
  except Exception as e:  # noqa: BLE001 - the store is an aid, never a reason to fail the task
    log.warning("Could not read the previous try's job from the task state store: %s", e)
    return
  if not isinstance(previous, dict) or previous.get("host") != socket.gethostname():
    return
  groups = [(previous.get("pgid", 0), previous.get("start_ticks"))]
  groups += [tuple(g) for g in previous.get("others", [])]  # the other tasks of a group job
  for pgid, ticks in groups:
    pgid = int(pgid or 0)
    if pgid > 0 and ticks is not None and group_started_at(pgid, ticks):
      log.warning("The job of an earlier try (process group %d) is still running: stopping it "
                  "before starting this try's", pgid)
      stop_group(pgid)
    else:
      log.info("The job of an earlier try (process group %d) has ended", pgid)


def record(context: Any, pgids: Union[int, Sequence[int]], log) -> None:
  """Remembers this try's job (host, process group(s), start times) for a later try."""
  store = state_store(context)
  if store is None:
    return
  first, *others = [pgids] if isinstance(pgids, int) else list(pgids)
  value = {"host": socket.gethostname(), "pgid": first, "start_ticks": start_ticks(first)}
  if others:
    value["others"] = [[p, start_ticks(p)] for p in others]
  try:
    store.set(KEY, value)
  except Exception as e:  # noqa: BLE001
    log.warning("Could not record the job in the task state store: %s", e)


def forget(context: Any, log) -> None:
  """The job is over: nothing for a retry to stop."""
  store = state_store(context)
  if store is None:
    return
  try:
    store.delete(KEY)
  except Exception as e:  # noqa: BLE001
    log.warning("Could not clear the job from the task state store: %s", e)
