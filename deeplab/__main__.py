"""`python -m deeplab <command> --flags…`: the CLI contract between operators and the library.

Exit codes: 0 done; 2 bad input or configuration; 3 non-finite loss; anything else transient.
"""

import importlib
import sys

from deeplab.errors import EXIT_BAD_INPUT

# command -> module with a `main(argv)` that returns an exit code or raises.
COMMANDS = {
    "build-tfrecords": "deeplab.datasets.build",
    "train": "deeplab.train",
    "evaluate": "deeplab.evaluate",
    "vis": "deeplab.vis",
    "export": "deeplab.export",
}

# command -> the flag naming the folder it writes; a job holds that folder's lease while it
# runs (deeplab.storage.lease: one writer per folder).
LEASED_FOLDER_FLAGS = {
    "train": "train_logdir",
    "evaluate": "eval_logdir",
    "vis": "vis_logdir",
    "export": "export_path",
}

USAGE = ("usage: python -m deeplab {" + ",".join(COMMANDS) + "} [--flags…]\n"
         "       python -m deeplab <command> --helpfull  lists a command's flags")


def run(argv: list) -> int:
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(USAGE)
    return 0 if len(argv) >= 2 else EXIT_BAD_INPUT
  command = argv[1]
  if command not in COMMANDS:
    print(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}\n{USAGE}",
          file=sys.stderr)
    return EXIT_BAD_INPUT
  module = importlib.import_module(COMMANDS[command])
  from deeplab.cli import run_main
  return run_main(module.main, [f"deeplab {command}"] + argv[2:],
                  lease_flag=LEASED_FOLDER_FLAGS.get(command))


if __name__ == "__main__":
  sys.exit(run(sys.argv))
