"""Settings to and from JSON: the run's config.json is written and read only here."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

from deeplab.errors import ConfigError

CONFIG_VERSION = 1


def raise_problems(problems: Sequence[str], what: str) -> None:
  """Raises one ConfigError listing every problem (nothing when the list is empty)."""
  if problems:
    raise ConfigError(f"invalid {what}:\n  - " + "\n  - ".join(problems))


def from_dict(cls, data: Mapping[str, Any], where: str = ""):
  """`cls(**data)`, refusing unknown keys and turning type errors into ConfigError."""
  where = where or cls.__name__
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names)
  if unknown:
    raise ConfigError(f"unknown {where} setting(s) {unknown}; known settings: {sorted(names)}")
  try:
    return cls(**dict(data))
  except (TypeError, ValueError) as e:
    if isinstance(e, ConfigError):
      raise
    raise ConfigError(f"invalid {where} setting: {e}") from e


def to_dict(obj) -> dict:
  """JSON-ready dict (tuples become lists); a TrainConfig also records the config version."""
  def conv(v):
    if dataclasses.is_dataclass(v):
      return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (tuple, list)):
      return [conv(x) for x in v]
    if isinstance(v, Mapping):
      return {k: conv(x) for k, x in v.items()}
    return v
  out = conv(obj)
  if type(obj).__name__ == "TrainConfig":
    out["config_version"] = CONFIG_VERSION
  return out


def dumps(cfg) -> str:
  return json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n"


def train_config_from_dict(data: Mapping[str, Any]):
  from deeplab.config.training import TrainConfig
  data = dict(data)
  version = data.pop("config_version", CONFIG_VERSION)
  if version != CONFIG_VERSION:
    raise ConfigError(f"config.json has config_version {version!r}, this code reads "
                      f"{CONFIG_VERSION}; re-run resolve_config or training to rewrite it")
  return from_dict(TrainConfig, data, "training")


def load_train_config(text: str, source: str = "config.json"):
  """A TrainConfig from config.json text; errors name `source`."""
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{source} is not valid JSON ({e}); re-run training to rewrite it") from e
  if not isinstance(data, dict):
    raise ConfigError(f"{source} must hold a JSON object of settings")
  try:
    return train_config_from_dict(data)
  except ConfigError as e:
    raise ConfigError(f"{source}: {e}") from e
