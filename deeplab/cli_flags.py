"""absl flags generated from the settings dataclasses, for one command at a time.

Each run parses into its own `FlagValues`, holding exactly the flags of the command being
run (deeplab.config.commands.COMMAND_SETTINGS): importing several command modules in one
process cannot change any command's flags or defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterable, Tuple

from absl import flags

from deeplab.config.commands import command_fields
from deeplab.config.io import from_dict

# Not a setting: how much the job prints (TensorFlow's own banners and warnings at >= 1).
VERBOSITY_FLAG = "verbosity"


def _flag_default(f: dataclasses.Field) -> Any:
  value, kind = f.default, f.metadata["kind"]
  if value is None:
    return None
  if kind == "list":
    return ",".join(str(v) for v in value)
  if kind.startswith("multi_"):
    return list(value)
  return value


_DEFINE = {
    "string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
    "boolean": flags.DEFINE_boolean, "list": flags.DEFINE_list,
    "multi_integer": flags.DEFINE_multi_integer, "multi_float": flags.DEFINE_multi_float,
    "multi_string": flags.DEFINE_multi_string,
}


def define_field(f: dataclasses.Field, fv: flags.FlagValues) -> None:
  kind, default, help_text = f.metadata["kind"], _flag_default(f), f.metadata["help"]
  if kind == "enum":
    flags.DEFINE_enum(f.name, default, list(f.metadata["choices"]), help_text, flag_values=fv)
  else:
    _DEFINE[kind](f.name, default, help_text, flag_values=fv)


def flag_values(command: str) -> flags.FlagValues:
  """A fresh FlagValues with every flag of `command` (and --verbosity) defined."""
  fv = flags.FlagValues()
  for f in command_fields(command).values():
    define_field(f, fv)
  flags.DEFINE_integer(VERBOSITY_FLAG, 0, "0: the project's own lines only; 1 or more: also "
                       "TensorFlow's banners and deprecation warnings (or DEEPLAB_VERBOSE=1).",
                       flag_values=fv)
  return fv


@dataclasses.dataclass(frozen=True)
class ParsedFlags:
  """One command's parsed flags: values by name and which were given on the command line."""

  command: str
  values: Dict[str, Any]
  given: frozenset
  verbosity: int = 0

  def settings(self, cls, **fixed):
    """`cls` built from the flags of its fields (plus `fixed` values for non-flag fields)."""
    names = {f.name for f in dataclasses.fields(cls) if f.metadata.get("flag")}
    data = {n: self.values[n] for n in names}
    data.update(fixed)
    return from_dict(cls, data, f"--{self.command}")

  def explicit(self, names: Iterable[str]) -> Dict[str, Any]:
    """The flags among `names` that were given on the command line, with their values."""
    return {n: self.values[n] for n in names if n in self.given}


def parse(command: str, argv: list) -> Tuple[ParsedFlags, list]:
  """Parses `argv` (argv[0] is the program) with `command`'s flags.

  Raises:
    flags.Error: an unknown flag or a bad value (the CLI turns it into exit code 2).
  """
  fv = flag_values(command)
  rest = fv(argv)
  names = [n for n in command_fields(command)]
  given = frozenset(n for n in names if fv[n].present)
  values = {n: fv[n].value for n in names}
  return ParsedFlags(command, values, given, int(fv[VERBOSITY_FLAG].value)), rest


def help_text(command: str) -> str:
  return flag_values(command).get_help()
