"""Stand-in for a task process: runs one job through a LocalLauncher and waits for it.

    supervisor.py [--fake | --fake_task] [--kill_grace=SECONDS] [--cluster=REPLICAS,PS] <argv…>

With --fake the job is tests/operators/fake_job.py, with --fake_task a group task stand-in
(fake_task.py), else `python -m deeplab`; --cluster runs the job as a ps/worker group. Tests and
benchmarks/bench_orphan.py SIGKILL this process to check that the job does not outlive it. On
SIGTERM it stops the job as Airflow's task runner does (the operator's on_kill, in the handler).
"""

import logging
import os
import pathlib
import signal
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from operators.launchers.base import ClusterShape  # noqa: E402
from operators.launchers.local import LocalLauncher  # noqa: E402

FAKE_JOB = str(pathlib.Path(__file__).with_name("fake_job.py"))
FAKE_TASK = str(pathlib.Path(__file__).with_name("fake_task.py"))


def main(argv: list) -> int:
  logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
  prefix, options = None, {}
  if argv and argv[0] == "--fake":
    prefix, argv = [sys.executable, FAKE_JOB], argv[1:]
  elif argv and argv[0] == "--fake_task":
    prefix, argv = [sys.executable, FAKE_TASK], argv[1:]
  if argv and argv[0].startswith("--kill_grace="):
    options["kill_grace_seconds"], argv = float(argv[0].split("=", 1)[1]), argv[1:]
  cluster = None
  if argv and argv[0].startswith("--cluster="):
    replicas, ps = argv[0].split("=", 1)[1].split(",")
    cluster, argv = ClusterShape(int(replicas), int(ps)), argv[1:]
  launcher = LocalLauncher(command_prefix=prefix, **options)
  signal.signal(signal.SIGTERM, lambda signum, frame: launcher.kill())
  print(f"supervisor pid {os.getpid()}", flush=True)
  return launcher.run(argv, cluster=cluster).exit_code


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]) & 0xFF)
