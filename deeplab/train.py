"""`python -m deeplab train`: the run's config.json and/or the original train.py flags -> train().

With `--config_json` (what the DAG passes) the run's resolved configuration is the base and any
flag given explicitly overrides it, each override logged. Without it, the original command
lines run unchanged: every flag keeps the original name and default.

The original's distributed mode works too: with --num_replicas > 1 or --num_ps_tasks > 0 this
process is one task of a ps/worker cluster given by TF_CONFIG or --ps_hosts/--worker_hosts
(deeplab.config.cluster, deeplab.training.distributed). Only the chief (worker 0) holds the
train_logdir's lease and writes there.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

from deeplab import storage
from deeplab.cli_flags import ParsedFlags
from deeplab.config import ModelConfig, TrainConfig, load_train_config
from deeplab.config.cluster import ClusterFlags, TaskSpec, resolve_task
from deeplab.config.commands import IgnoredTrainFlags, TrainJobFlags
from deeplab.config.fields import flag_fields
from deeplab.config.io import from_dict, raise_problems, to_dict
from deeplab.errors import UserInputError

log = logging.getLogger("deeplab.train")


def _override(base, explicit: dict, what: str):
  """`base` with the explicitly given flags applied; logs each value that changes."""
  if not explicit:
    return base
  data = to_dict(base)
  data.pop("config_version", None)
  data.update(explicit)
  if "model" in data and isinstance(base, TrainConfig):
    data["model"] = base.model
  new = from_dict(type(base), data, what)
  for name in sorted(explicit):
    if getattr(new, name) != getattr(base, name):
      log.info("flag --%s=%s overrides %s from config.json (%s)", name, getattr(new, name),
               what, getattr(base, name))
  return new


def config_from_flags(parsed: ParsedFlags, base: TrainConfig | None = None) -> TrainConfig:
  """The training configuration: `base` (the run's config.json) with explicit flags on top, or
  every flag's value when there is no base. Not validated; num_classes may still be None."""
  model_names = [f.name for f in flag_fields(ModelConfig)]
  train_names = [f.name for f in flag_fields(TrainConfig)]
  if base is None:
    return parsed.settings(TrainConfig, model=parsed.settings(ModelConfig))
  model = _override(base.model, parsed.explicit(model_names), "model setting")
  return _override(dataclasses.replace(base, model=model), parsed.explicit(train_names),
                   "training setting")


def with_dataset_classes(cfg: TrainConfig, num_classes: int, dataset_dir: str) -> TrainConfig:
  """Fills in num_classes from the dataset; a configuration that disagrees is an error."""
  if cfg.model.num_classes is None:
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=num_classes))
  if cfg.model.num_classes != num_classes:
    raise UserInputError(
        f"the configuration says num_classes {cfg.model.num_classes} but the dataset "
        f"{dataset_dir} has {num_classes} classes; set num_classes to null (from the dataset) "
        "or train on the dataset the configuration was written for")
  return cfg


def _base_config(parsed: ParsedFlags, quiet: bool = False) -> Optional[TrainConfig]:
  """The --config_json's configuration, or None without one."""
  uri = parsed.values["config_json"]
  if not uri:
    return None
  if not storage.exists(uri):
    raise UserInputError(f"--config_json {uri} does not exist; pass the run's "
                         "config.json (runs/<run_id>/config.json)")
  if not quiet:
    log.info("configuration from %s", uri)
  return load_train_config(storage.read_text(uri), source=uri)


def this_task(parsed: ParsedFlags, cfg: TrainConfig) -> Optional[TaskSpec]:
  """This process's task of the cluster, or None when training runs in one process."""
  return resolve_task(parsed.settings(ClusterFlags), cfg.num_replicas, cfg.num_ps_tasks,
                      os.environ)


def output_folder(parsed: ParsedFlags) -> Optional[str]:
  """The train_logdir (a flag, or the --config_json's) that the CLI leases; None for a ps task
  or a non-chief worker, which never write there (the chief holds the lease for the group)."""
  try:
    cfg = config_from_flags(parsed, _base_config(parsed, quiet=True))
    task = this_task(parsed, cfg)
  except UserInputError:
    return parsed.values["train_logdir"]  # main() reports the problem
  if task is not None and not task.is_chief:
    return None
  return cfg.train_logdir


def main(parsed: ParsedFlags) -> int:
  """Resolves the configuration and the dataset's classes, then trains."""
  ignored = parsed.settings(IgnoredTrainFlags)
  if ignored.profile_logdir:
    log.warning("--profile_logdir is not supported and is ignored")
  job = parsed.settings(TrainJobFlags)
  cluster_flags = parsed.settings(ClusterFlags)
  if cluster_flags.master:
    log.warning("--master=%s is not used: each task runs its own server (TF_CONFIG or "
                "--ps_hosts/--worker_hosts describe the cluster)", cluster_flags.master)
  cfg = config_from_flags(parsed, _base_config(parsed)).validate()  # num_classes may be None
  task = this_task(parsed, cfg)
  if task is not None and task.is_ps:
    from deeplab.training import distributed
    distributed.serve_ps(task)  # until the launcher stops the group
    return 0
  missing = [n for n in ("dataset_dir", "train_logdir") if not getattr(cfg, n)]
  if missing:
    raise UserInputError("missing required setting(s): " + ", ".join("--" + n for n in missing)
                         + " (as flags or in --config_json)")

  from deeplab.datasets.descriptors import get_dataset_info

  info = get_dataset_info(cfg.dataset_dir, cfg.dataset)
  info.num_examples(cfg.train_split)  # Unknown split: a clear error listing the splits.
  cfg = with_dataset_classes(cfg, info.num_classes, cfg.dataset_dir).validate()

  from deeplab.training import trainer

  if task is not None:
    log.info("training as %s of %d worker(s) and %d ps task(s)", task, cfg.num_replicas,
             cfg.num_ps_tasks)
  chief = task is None or task.is_chief
  trainer.train(cfg, ignore_label=info.ignore_label,
                result_json=job.result_json if chief else None, task=task,
                startup_delay_steps=cluster_flags.startup_delay_steps)
  return 0
