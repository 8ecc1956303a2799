"""How a setting is declared once: its default, its help text and the flag that sets it.

Every setting of every command is a dataclass field made with `setting()`. The field's
metadata is the single source for the absl flag (`deeplab.cli_flags`), the DAG's Params and
the path rule that keeps a run inside its storage root.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterator, Optional, Sequence

from deeplab.contract import NAME_PATTERN
from deeplab.errors import ConfigError

# absl flag kinds; "multi_*" flags repeat (--atrous_rates=6 --atrous_rates=12), "list" flags
# take one comma list (--train_crop_size=513,513), as in the original scripts.
KINDS = ("string", "integer", "float", "boolean", "enum", "list", "multi_integer", "multi_float",
         "multi_string")
MULTI_KINDS = frozenset(k for k in KINDS if k.startswith("multi_"))

_NAME_RE = re.compile(NAME_PATTERN)


def setting(default: Any, help: str, *, kind: Optional[str] = None,  # noqa: A002 (absl's name)
            choices: Optional[Sequence[str]] = None, path: bool = False, flag: bool = True,
            required: bool = False) -> Any:
  """A dataclass field that is also a command-line flag.

  Args:
    default: the default (immutable: tuples, not lists).
    help: the flag's help text.
    kind: one of KINDS; inferred from the default for bool/int/float/str.
    choices: allowed values (an enum flag).
    path: a local path or gs:// URI: a DAG run may only point inside its storage root.
    flag: False for a field that is configuration but never a flag (e.g. the nested model).
    required: the command refuses to run without it.
  """
  if kind is None:
    if choices is not None:
      kind = "enum"
    else:
      kind = {bool: "boolean", int: "integer", float: "float", str: "string"}.get(type(default))
  if flag and kind not in KINDS:
    raise TypeError(f"setting(default={default!r}) needs kind= (one of {KINDS})")
  meta = {"help": help, "kind": kind, "choices": tuple(choices) if choices else None,
          "path": path, "flag": flag, "required": required}
  return dataclasses.field(default=default, metadata=meta)


def flag_fields(cls) -> Iterator[dataclasses.Field]:
  """The fields of `cls` that are flags, in declaration order."""
  for f in dataclasses.fields(cls):
    if f.metadata.get("flag"):
      yield f


def path_fields(cls) -> Iterator[dataclasses.Field]:
  for f in flag_fields(cls):
    if f.metadata["path"]:
      yield f


def as_tuple(value: Any, cast=int) -> Optional[tuple]:
  """Accepts None, a scalar, a sequence or a comma string ('513,513')."""
  if value is None or value == "" or value == [] or value == ():
    return None
  if isinstance(value, str):
    value = [v for v in value.replace(" ", "").split(",") if v]
  if not isinstance(value, (list, tuple)):
    value = [value]
  try:
    return tuple(cast(v) for v in value)
  except (TypeError, ValueError):
    raise ConfigError(f"{list(value)!r} is not a list of {cast.__name__} values") from None


def coerce_tuples(obj, casts: dict) -> None:
  """Normalises a frozen dataclass's sequence fields to tuples (in __post_init__)."""
  for name, cast in casts.items():
    object.__setattr__(obj, name, as_tuple(getattr(obj, name), cast))


def check_name(value: str, what: str) -> str:
  """Rejects names that could escape a folder or reach a shell ('..', '/', ';', …)."""
  if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value:
    raise ConfigError(
        f"{what} {value!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, without '..'")
  return value
