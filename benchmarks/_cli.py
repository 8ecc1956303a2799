"""Running `python -m deeplab <command>` from a benchmark, as a user runs it."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_deeplab(*args, env=None):
  """Runs one deeplab command in the repository; exits naming it with its stderr's tail."""
  proc = subprocess.run([sys.executable, "-m", "deeplab", *args], cwd=REPO, env=env,
                        capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"deeplab {args[0]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
