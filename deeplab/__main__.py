"""`python -m deeplab <command> --flags…`: the CLI contract between operators and the library.

Exit codes (deeplab.contract): 0 done; 2 bad input or configuration; 3 non-finite loss;
75 the output folder is busy; 130/143 interrupted/terminated; anything else transient.
"""

import sys

from deeplab.contract import COMMANDS, EXIT_BAD_INPUT, EXIT_OK

USAGE = ("usage: python -m deeplab {" + ",".join(COMMANDS) + "} [--flags…]\n"
         "       python -m deeplab <command> --helpfull  lists a command's flags")


def run(argv: list) -> int:
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(USAGE, file=sys.stdout if len(argv) >= 2 else sys.stderr)
    return EXIT_OK if len(argv) >= 2 else EXIT_BAD_INPUT
  command = argv[1]
  if command not in COMMANDS:
    print(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}\n{USAGE}",
          file=sys.stderr)
    return EXIT_BAD_INPUT
  from deeplab.cli import run_command
  return run_command(command, argv[2:])


if __name__ == "__main__":
  sys.exit(run(sys.argv))
