"""Builds `python -m deeplab <command> --flag=value …` argument lists.

Always a list of strings, never a shell string: values reach the job verbatim, so a value
containing spaces or `;` cannot turn into a second command.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from deeplab.config.commands import MULTI_FLAGS
from deeplab.contract import COMMANDS

# MULTI_FLAGS: the absl DEFINE_multi_* flags of the original scripts. A list is given as
# repeated flags (--atrous_rates=6 --atrous_rates=12 …); any other list flag as a comma list.


def _format(value: Any) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (list, tuple)):
    return ",".join(_format(v) for v in value)
  return str(value)


def flag_args(flags: Mapping[str, Any] | None) -> list[str]:
  """`{"num_clones": 2, "train_crop_size": [65, 65]}` -> `["--num_clones=2", "--train_crop_size=65,65"]`.

  None values are left out (the command's default applies); booleans become true/false, which
  absl accepts for boolean flags; sequences become comma lists (DEFINE_list) or repeated flags
  (MULTI_FLAGS).
  Keys are sorted so that the same flags always give the same argv (easy to diff in logs).
  """
  out = []
  for name in sorted(flags or {}):
    value = flags[name]
    if value is None:
      continue
    if not name.replace("_", "").isalnum():
      raise ValueError(f"flag name {name!r} must be letters, digits and '_'")
    if name in MULTI_FLAGS and isinstance(value, (list, tuple)):
      out.extend(f"--{name}={_format(v)}" for v in value)
    else:
      out.append(f"--{name}={_format(value)}")
  return out


def deeplab_argv(command: str, flags: Mapping[str, Any] | None,
                 extra_args: Sequence[str] = ()) -> list[str]:
  """`[command, --flag=value, …]`: what follows `python -m deeplab`."""
  if command not in COMMANDS:
    raise ValueError(f"unknown deeplab command {command!r}; choose one of {', '.join(COMMANDS)}")
  return [command, *flag_args(flags), *[str(a) for a in extra_args]]
