"""What /proc says about processes and process groups (Linux; a portable fallback elsewhere)."""

from __future__ import annotations

import os
import pathlib
from typing import List, Optional

_PROC = pathlib.Path("/proc")


def _stat_fields(pid: int) -> Optional[list]:
  """Fields of /proc/<pid>/stat after the parenthesised command name (state is [0]), or None."""
  try:
    stat = (_PROC / str(pid) / "stat").read_text()
  except OSError:
    return None
  return stat[stat.rfind(")") + 2:].split()


def start_ticks(pid: int) -> Optional[int]:
  """The process's start time in clock ticks since boot, or None (gone, or not Linux)."""
  fields = _stat_fields(pid)
  try:
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
  except (TypeError, IndexError, ValueError):
    return None


def group_members(pgid: int) -> List[int]:
  """Live (non-zombie) processes of a process group; [] when none are left."""
  if not _PROC.is_dir():  # not Linux: fall back to "does the group still exist"
    try:
      os.killpg(pgid, 0)
      return [pgid]
    except (ProcessLookupError, PermissionError):
      return []
  members = []
  for entry in _PROC.iterdir():
    if entry.name.isdigit():
      fields = _stat_fields(int(entry.name))
      if fields and len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
        members.append(int(entry.name))
  return members


def group_started_at(pgid: int, ticks: int) -> bool:
  """Is the live group `pgid` the one whose leader started at `ticks`?

  Yes when its leader is that process, or when the leader has exited but members remain that
  started no earlier (the job of a guard killed on its own): while the group has members its id
  cannot be given to a new process, so a reused pid is not mistaken for it.
  """
  leader = start_ticks(pgid)
  if leader is not None:
    return leader == ticks and bool(group_members(pgid))
  members = group_members(pgid)
  return bool(members) and all((start_ticks(m) or ticks) >= ticks for m in members)
