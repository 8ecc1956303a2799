"""A stand-in for `python -m deeplab <command>` used by the operator tests.

    fake_job.py <command> [--exit=N] [--lines=K] [--sleep=S] [--spawn=PIDFILE] [--ignore_term]
                [--stop_seconds=T --stop_marker=PATH] [--result_json=PATH] [other flags, echoed back]

Prints K numbered lines (flushed one by one), optionally starts a child that starts a
grandchild (both sleep; their pids go to PIDFILE), sleeps S seconds, writes {"argv": …} to
--result_json and exits with N. With --stop_seconds, SIGTERM makes it take T seconds to stop (as a
trainer saving its checkpoint): it prints (and writes to PATH) "stopping", then "stopped", and
exits 143.
"""

import json
import os
import signal
import subprocess
import sys
import time


def main(argv):
  opts = {}
  for a in argv[1:]:
    if a.startswith("--"):
      key, _, value = a[2:].partition("=")
      opts[key] = value
  if "ignore_term" in opts:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
  if "stop_seconds" in opts:
    def mark(word):
      if opts.get("stop_marker"):
        with open(opts["stop_marker"], "w") as f:
          f.write(word)
      try:  # The reader may be gone (a SIGKILLed supervisor): a trainer's logging shrugs too.
        print(word, flush=True)
      except OSError:
        pass

    def slow_stop(signum, frame):
      mark("stopping")
      time.sleep(float(opts["stop_seconds"]))
      mark("stopped")
      os._exit(143)
    signal.signal(signal.SIGTERM, slow_stop)
  for i in range(int(opts.get("lines", 3))):
    print(f"line {i}", flush=True)
  if "spawn" in opts:
    # child: python -c that starts a grandchild `sleep` and sleeps itself.
    code = ("import subprocess, sys, time, signal\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if "ignore_term" in opts else "")
            + "g = subprocess.Popen(['sleep', '300'])\n"
            "open(sys.argv[1], 'w').write(f'{g.pid}\\n')\n"
            "time.sleep(300)\n")
    child = subprocess.Popen([sys.executable, "-c", code, opts["spawn"] + ".g"])
    with open(opts["spawn"], "w") as f:
      f.write(f"{os.getpid()}\n{child.pid}\n")
    for _ in range(100):
      if os.path.exists(opts["spawn"] + ".g"):
        break
      time.sleep(0.05)
    print("spawned", flush=True)
  time.sleep(float(opts.get("sleep", 0)))
  if opts.get("result_json"):
    with open(opts["result_json"], "w") as f:
      json.dump({"argv": argv[1:], "command": argv[1]}, f)
  print(f"exiting with {opts.get('exit', 0)}", flush=True)
  return int(opts.get("exit", 0))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
