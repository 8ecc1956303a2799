"""Runs one command's `main(argv)` under absl flag parsing and maps errors to exit codes."""

import contextlib
import logging
import sys
import traceback
from typing import Callable, Optional

from absl import flags

from deeplab.errors import EXIT_BAD_INPUT, EXIT_OK, NonFiniteLossError, UserInputError
from deeplab.storage import lease

log = logging.getLogger("deeplab")


def _setup_logging() -> None:
  # One line per record, flushed at once: operators stream this into the Airflow task log.
  handler = logging.StreamHandler(sys.stdout)
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  root = logging.getLogger()
  root.handlers[:] = [handler]
  root.setLevel(logging.INFO)
  try:
    sys.stdout.reconfigure(line_buffering=True)
  except AttributeError:
    pass


def run_main(main: Callable[[list], int | None], argv: list,
             lease_flag: Optional[str] = None) -> int:
  """Parses absl flags from argv, calls main(argv) and returns the exit code.

  With `lease_flag`, main runs while holding the lease on the folder that flag names.
  """
  _setup_logging()
  if any(a in ("--help", "--helpfull", "-h") for a in argv[1:]):
    # absl defines its help flags only through absl.app, which we do not use.
    print(f"usage: python -m {argv[0]} [--flags…]\n")
    print(flags.FLAGS.get_help())
    return EXIT_OK
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}\nPass --helpfull to list the flags.", file=sys.stderr)
    return EXIT_BAD_INPUT
  try:
    folder = lease.folder_of(getattr(flags.FLAGS, lease_flag)) if lease_flag else None
    with lease.hold(folder, argv[0]) if folder else contextlib.nullcontext():
      code = main(rest)
    return EXIT_OK if code is None else int(code)
  except lease.FolderBusyError as e:
    log.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except UserInputError as e:
    log.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT
  except NonFiniteLossError as e:
    log.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    return 130
  except Exception:  # transient by contract: the operator retries
    traceback.print_exc()
    return 1
