"""A stand-in for one task of a `python -m deeplab train` group (tests of local_group).

    fake_task.py <argv…>

Writes its pid and TF_CONFIG to <DIR>/<job>-<index>.json (DIR from --task_dir=), prints a line,
then: a ps task serves forever (sleeps); worker 0 (the chief) waits for the file <DIR>/finish,
writes --result_json and exits with --chief_exit; other workers sleep until stopped. Stopped with
SIGTERM, a task prints a last line ("<job> <index> stopping"), as the trainer does.
"""

import json
import os
import signal
import sys
import time


def main(argv):
  opts = dict(a[2:].partition("=")[::2] for a in argv[1:] if a.startswith("--"))
  config = json.loads(os.environ["TF_CONFIG"])
  job, index = config["task"]["type"], config["task"]["index"]
  folder = opts["task_dir"]
  with open(os.path.join(folder, f"{job}-{index}.json"), "w") as f:
    json.dump({"pid": os.getpid(), "tf_config": config, "argv": argv[1:]}, f)
  signal.signal(signal.SIGTERM, lambda *_: _stop(job, index))
  print(f"{job} {index} started", flush=True)
  if job == "worker" and index == 0:
    while not os.path.exists(os.path.join(folder, "finish")):
      time.sleep(0.05)
    with open(opts["result_json"], "w") as f:
      json.dump({"final_step": 7}, f)
    print("chief done", flush=True)
    sys.exit(int(opts.get("chief_exit", 0)))
  while True:
    time.sleep(1)


def _stop(job, index):
  try:
    print(f"{job} {index} stopping", flush=True)
  except OSError:
    pass  # nobody reads any more (the supervisor is gone)
  sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
  main(sys.argv)
