"""Runs one command: parse its flags, quiet TensorFlow, call `main(flags)`, map errors to exit codes."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from typing import Callable

from absl import flags

from deeplab import cli_flags
from deeplab.contract import (COMMANDS, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK,
                              EXIT_TRANSIENT)
from deeplab.errors import NonFiniteLossError, UserInputError
from deeplab.storage import lease

log = logging.getLogger("deeplab")
VERBOSE_ENV = "DEEPLAB_VERBOSE"


class _StdoutHandler(logging.StreamHandler):
  """Writes to whatever sys.stdout is now (tests swap it), one flushed line per record."""

  @property
  def stream(self):
    return sys.stdout

  @stream.setter
  def stream(self, value):
    del value


def _setup_logging() -> None:
  # One line per record, flushed at once: operators stream this into the Airflow task log.
  handler = _StdoutHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  root = logging.getLogger()
  root.handlers[:] = [handler]
  root.setLevel(logging.INFO)
  try:
    sys.stdout.reconfigure(line_buffering=True)
  except AttributeError:
    pass


# TensorFlow's C++ log lines (absl format) that carry no news for a user: info and warnings,
# and the "no CUDA driver" errors of a CPU-only machine. TF 2.21 prints some of them before
# TF_CPP_MIN_LOG_LEVEL takes effect, so they are filtered out of the stderr stream instead.
_NATIVE_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_\S+:\d+\] failed call to cuInit)")


def _filter_stderr() -> None:
  """Routes file descriptor 2 through a thread that drops _NATIVE_NOISE lines."""
  read_fd, write_fd = os.pipe()
  real_stderr = os.dup(2)
  os.dup2(write_fd, 2)
  os.close(write_fd)

  def pump() -> None:
    with os.fdopen(read_fd, "rb") as lines:
      for line in lines:
        if not _NATIVE_NOISE.match(line):
          os.write(real_stderr, line)

  thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
  thread.start()

  def restore() -> None:  # at exit: flush what is in the pipe, then give fd 2 back
    sys.stderr.flush()
    os.dup2(real_stderr, 2)  # closes the pipe's last writer: the pump sees EOF
    thread.join(timeout=5)
  atexit.register(restore)


def quiet_tensorflow(verbosity: int) -> None:
  """Hides TensorFlow's C++ banners and deprecation warnings unless asked for.

  Must run before TensorFlow is imported (the C++ log level is read once, at load).
  """
  if verbosity >= 1 or os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  _filter_stderr()
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  logging.getLogger("absl").setLevel(logging.ERROR)
  for category in (DeprecationWarning, FutureWarning, UserWarning):
    warnings.filterwarnings("ignore", category=category, module=r"(tensorflow|tf_keras|keras|"
                            r"tf_slim|google\.protobuf)(\.|$)")


def guarded(fn: Callable[[], int | None]) -> int:
  """Calls fn() and maps its outcome to the exit-code contract (deeplab.contract)."""
  try:
    code = fn()
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
    return EXIT_INTERRUPTED
  except Exception:  # transient by contract: the operator retries
    traceback.print_exc()
    return EXIT_TRANSIENT


def run_command(command: str, argv: list) -> int:
  """`python -m deeplab <command> <argv…>` in this process; returns the exit code."""
  _setup_logging()
  prog = f"deeplab {command}"
  if any(a in ("--help", "--helpfull", "-h") for a in argv):
    # absl defines its help flags only through absl.app, which we do not use.
    print(f"usage: python -m {prog} [--flags…]\n")
    print(cli_flags.help_text(command))
    return EXIT_OK
  try:
    parsed, rest = cli_flags.parse(command, [prog, *argv])
  except flags.Error as e:
    print(f"error: {e}\nPass --helpfull to list the flags.", file=sys.stderr)
    return EXIT_BAD_INPUT
  if len(rest) > 1:
    print(f"error: unexpected arguments {rest[1:]}; flags are written --name=value",
          file=sys.stderr)
    return EXIT_BAD_INPUT
  quiet_tensorflow(parsed.verbosity)
  module = importlib.import_module(COMMANDS[command])
  output_folder = getattr(module, "output_folder", None)

  def work():
    # One writer per output folder: the job holds its folder's lease while it runs.
    folder = lease.folder_of(output_folder(parsed)) if output_folder else None
    with lease.hold(folder, prog) if folder else contextlib.nullcontext():
      return module.main(parsed)
  return guarded(work)
