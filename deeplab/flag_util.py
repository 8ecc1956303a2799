"""Defines absl flags once, so several command modules can be imported in one process.

Each command module (evaluate, vis, export) defines its flags at import; tests import more
than one of them, and absl refuses a second definition of e.g. --dataset_dir.
"""

from typing import Any, Callable

from absl import flags


def define(define_fn: Callable[..., Any], name: str, *args, **kwargs) -> None:
  """Calls `flags.DEFINE_*` unless a flag called `name` exists already."""
  if name not in flags.FLAGS:
    define_fn(name, *args, **kwargs)


def reset() -> None:
  """Forgets parsed values (in-process tests call main() several times)."""
  flags.FLAGS.unparse_flags()
