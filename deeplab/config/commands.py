"""Which settings each command takes as flags, and the original flags it only tolerates.

`COMMAND_SETTINGS` is the one list of every flag of every command (tests walk it);
`deeplab.cli_flags` defines exactly these for the command being run.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

from deeplab.config.cluster import ClusterFlags
from deeplab.config.deploy import DeployConfig
from deeplab.config.fields import MULTI_KINDS, flag_fields, setting
from deeplab.config.model import ModelConfig
from deeplab.config.stages import EvalConfig, ExportConfig, VisConfig
from deeplab.config.training import TrainConfig
from deeplab.datasets.converters.base import BuildJob, ConvertOptions


@dataclasses.dataclass(frozen=True)
class JobFlags:
  """Flags every command takes."""

  result_json: Optional[str] = setting(
      None, "Also write a small JSON summary here (local or gs://).", kind="string", path=True)


@dataclasses.dataclass(frozen=True)
class TrainJobFlags(JobFlags):
  config_json: Optional[str] = setting(
      None, "The run's config.json (runs/<run_id>/config.json): train from it; flags given "
      "explicitly override its values.", kind="string", path=True)


@dataclasses.dataclass(frozen=True)
class IgnoredTrainFlags:
  """Original train.py flags of modes this port does not have: accepted, checked, unused."""

  profile_logdir: Optional[str] = setting(None, "Not supported; ignored with a warning.",
                                          kind="string")


@dataclasses.dataclass(frozen=True)
class IgnoredEvalFlags:
  """Original eval.py flags of the polling loop: evaluation is always one pass."""

  master: str = setting("", "Unused; accepted for compatibility.")
  eval_interval_secs: int = setting(300, "Unused: one pass, no polling.")
  max_number_of_evaluations: int = setting(0, "Accepted; always one pass.")


@dataclasses.dataclass(frozen=True)
class IgnoredVisFlags:
  """Original vis.py flags of the polling loop: vis is always one pass."""

  master: str = setting("", "Unused; accepted for compatibility.")
  eval_interval_secs: int = setting(300, "Unused: one pass, no polling.")
  max_number_of_iterations: int = setting(0, "Accepted; vis is always one pass.")


@dataclasses.dataclass(frozen=True)
class IgnoredExportFlags:
  num_classes: int = setting(21, "Ignored: the class count comes from config.json.")


# command -> the setting classes whose fields are its flags (no flag name twice per command).
COMMAND_SETTINGS: Dict[str, Tuple[type, ...]] = {
    "build-tfrecords": (ConvertOptions, BuildJob, JobFlags),
    "train": (ModelConfig, TrainConfig, ClusterFlags, IgnoredTrainFlags, TrainJobFlags),
    "evaluate": (ModelConfig, EvalConfig, IgnoredEvalFlags, JobFlags),
    "vis": (ModelConfig, VisConfig, IgnoredVisFlags, JobFlags),
    "export": (ModelConfig, ExportConfig, IgnoredExportFlags, JobFlags),
    "deploy": (DeployConfig, JobFlags),
}


def command_fields(command: str) -> Dict[str, dataclasses.Field]:
  """name -> field of every flag of `command`."""
  out: Dict[str, dataclasses.Field] = {}
  for cls in COMMAND_SETTINGS[command]:
    for f in flag_fields(cls):
      if f.name in out:
        raise TypeError(f"flag --{f.name} of {command} is declared twice")
      out[f.name] = f
  return out


# Flags given as repeated --name=value (absl DEFINE_multi_*); argv builders need the set.
MULTI_FLAGS = frozenset(
    name for command in COMMAND_SETTINGS
    for name, f in command_fields(command).items() if f.metadata["kind"] in MULTI_KINDS)
