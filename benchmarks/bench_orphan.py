"""How long a job outlives its supervisor after the supervisor is SIGKILLed. Prints one JSON object.

A stand-in task process (tests/operators/supervisor.py) runs a job through the LocalLauncher:
the job starts a child that starts a grandchild. The supervisor is SIGKILLed (as the OOM
killer or a worker restart would), then /proc is polled every 10 ms until no process of the
job's group is left. Two jobs: one that stops on SIGTERM (the trainer saves and exits), one that
ignores it (the guard's SIGKILL after its grace period is what ends it: the worst case).

    .venv/bin/python benchmarks/bench_orphan.py [--repeats 3]

Target (issue 11): every job's whole group is gone in under 5 s.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from operators.launchers.processes import group_members  # noqa: E402
SUPERVISOR = REPO / "tests" / "operators" / "supervisor.py"
TARGET_SECONDS = 5.0


def _one(tmp: pathlib.Path, ignore_term: bool) -> float:
  pids = tmp / "pids"
  for f in tmp.glob("pids*"):
    f.unlink()
  cmd = [sys.executable, str(SUPERVISOR), "--fake", "train", f"--spawn={pids}", "--sleep=300"]
  sup = subprocess.Popen(cmd + (["--ignore_term"] if ignore_term else []),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 60
  while not (pathlib.Path(f"{pids}.g").exists() and pathlib.Path(f"{pids}.g").read_text()):
    if time.monotonic() > deadline:
      sup.kill()
      raise RuntimeError("the job did not start its children within 60 s")
    time.sleep(0.02)
  time.sleep(0.5)  # let the job print its last line and sleep: a job busy at its work
  job = int(pids.read_text().split()[0])
  pgid = int((pathlib.Path("/proc") / str(job) / "stat").read_text().rsplit(")", 1)[1].split()[2])
  start = time.monotonic()
  sup.kill()
  sup.wait()
  while group_members(pgid):
    if time.monotonic() - start > 60:
      raise RuntimeError(f"process group {pgid} still alive 60 s after its supervisor died")
    time.sleep(0.01)
  return round(time.monotonic() - start, 3)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  import tempfile
  with tempfile.TemporaryDirectory(prefix="bench-orphan-") as tmp:
    seconds = {
        "job_stops_on_sigterm": [_one(pathlib.Path(tmp), False) for _ in range(args.repeats)],
        "job_ignores_sigterm": [_one(pathlib.Path(tmp), True) for _ in range(args.repeats)],
    }
  worst = max(max(v) for v in seconds.values())
  print(json.dumps({"orphan_survival_seconds": seconds, "worst_seconds": worst,
                    "target_seconds": TARGET_SECONDS, "target_met": worst < TARGET_SECONDS}))


if __name__ == "__main__":
  main()
