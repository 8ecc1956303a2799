"""resolve_config: a run conf -> a validated, frozen plan for every later task.

Checks what JSON schema cannot (batch divisible by clones, URIs inside the storage root, no
shell metacharacters or '..', TrainConfig.problems()), computes the dataset fingerprint, decides
what can be skipped, and writes runs/<run_id>/config.json (+ plan.json). Nothing here starts
a job: a bad conf fails before any work.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
from typing import Any, Mapping, Optional

from deeplab import config as dlconfig
from deeplab.config import fields as dlfields
from deeplab.contract import LAUNCHERS
from deeplab.datasets import class_mapping
from deeplab.datasets.converters.base import ConvertOptions
from deeplab.exporting.formats import DEFAULT_FORMATS, format_problems

# Characters a shell would interpret; URIs and names never need them.
_SHELL_CHARS = set(";|&$`<>\\\"'*?!{}()[]#~\n\r\t ")
_RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Settings the pipeline sets itself: a conf may not override them through extra flags.
_RESERVED_FLAGS = {"dataset_dir", "train_logdir", "num_clones", "result_json", "config_json",
                   "output_dir", "source", "format", "checkpoint_dir", "eval_logdir",
                   "export_path", "checkpoint_path"}
# Top-level Params that are training settings (the rest come through extra_train_flags).
# What a DAG run sets unless extra_train_flags says otherwise: a preempted node loses at most
# 10 minutes of training (the original default saves every 20).
PIPELINE_TRAIN_SETTINGS = {"save_interval_secs": 600}
TRAIN_PARAMS = ("model_variant", "atrous_rates", "output_stride", "decoder_output_stride",
                 "num_clones", "train_batch_size", "training_number_of_steps",
                 "base_learning_rate", "train_crop_size", "initialize_last_layer",
                 # The original's distributed mode (issue 19): worker tasks, ps tasks.
                 "num_replicas", "num_ps_tasks")
PIPELINE_VERSION = 1
# Gate Params the plan carries as they are (dags/deeplab_pipeline/gate.py applies them).
GATE_PARAMS = ("gate_mode", "max_class_iou_drop", "approval", "approval_timeout_minutes",
               "drift_factor")


def training_seed(fingerprint: str) -> int:
  """The seed of a scheduled or new-data run that sets none (manual runs keep theirs or none):
  derived from the dataset fingerprint, so two runs on the same data start alike and differ
  only where they should."""
  return int(hashlib.sha256(fingerprint.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


class ConfError(ValueError):
  """The run conf cannot run; the message lists every problem and how to fix it."""


def safe_run_id(run_id: str) -> str:
  """'manual__2026-11-26T02:00:00+00:00' -> 'manual__2026-11-26T02_00_00_00_00-<hash>'.

  Asset-triggered runs have no logical date, so artifacts are versioned by run_id, made
  filesystem- and URI-safe; the short hash keeps two ids that sanitise alike apart.
  """
  clean = _RUN_ID_UNSAFE.sub("_", run_id).strip("._-")[:100] or "run"
  if clean == run_id:
    return clean
  return f"{clean}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def _join(root: str, *parts: str) -> str:
  if root.startswith("gs://"):
    return "/".join([root.rstrip("/"), *parts])
  return os.path.join(root, *parts)


def check_uri(uri: str, what: str, root: str) -> str:
  """A local path or gs:// URI inside `root`, without shell metacharacters or '..'."""
  bad = sorted(set(uri) & _SHELL_CHARS)
  if bad:
    raise ConfError(f"{what} {uri!r} contains {''.join(bad)!r}: URIs may only use letters, "
                    "digits and / . _ - : (no shell metacharacters or spaces)")
  if ".." in uri.replace("\\", "/").split("/"):
    raise ConfError(f"{what} {uri!r} contains '..': give a path inside the storage root {root}")
  if root.startswith("gs://"):
    norm = uri.rstrip("/")
  elif uri.startswith("gs://"):
    norm = uri
  else:
    norm = os.path.abspath(uri if os.path.isabs(uri) else os.path.join(root, uri))
  if not (norm == root or norm.startswith(root.rstrip("/") + "/")):
    raise ConfError(f"{what} {uri!r} is outside the storage root {root}; copy the data under "
                    f"{root}/ (e.g. {root}/raw/<name>) or change DEEPLAB_STORAGE_ROOT")
  return norm


def unknown_keys(conf: Mapping[str, Any], params) -> list:
  """One problem per conf key that is no Param (Airflow passes such keys through unchecked, so
  a misspelt `trainig_number_of_steps` would train the default), naming the closest Param, or
  extra_train_flags when the key is a train setting without a Param of its own."""
  train_names = ({f.name for f in dlfields.flag_fields(dlconfig.ModelConfig)} |
                 {f.name for f in dlfields.flag_fields(dlconfig.TrainConfig)})
  problems = []
  for key in sorted(set(conf) - set(params), key=str):
    closest = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.6)
    if closest:
      hint = f"did you mean {closest[0]!r}?"
    elif key in train_names:
      hint = f'a train setting without its own Param goes into extra_train_flags: {{"{key}": ...}}'
    else:
      hint = "see the trigger form (or docs/operations.md) for the Params"
    problems.append(f"conf key {key!r} is not a Param of this DAG and would be ignored; {hint}")
  return problems


def _check_flags(flags: Any, what: str) -> dict:
  if not isinstance(flags, Mapping):
    raise ConfError(f"{what} must be a JSON object of flag: value, got {flags!r}")
  for name, value in flags.items():
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
      raise ConfError(f"{what}: {name!r} is not a flag name (lower-case letters, digits, _)")
    if name in _RESERVED_FLAGS:
      raise ConfError(f"{what}: --{name} is set by the pipeline; remove it from the conf")
    values = value if isinstance(value, list) else [value]
    for v in values:
      if isinstance(v, (dict, list)) or (isinstance(v, str) and set(v) & _SHELL_CHARS):
        raise ConfError(f"{what}: --{name}={v!r} must be a plain number, boolean or string "
                        "without shell metacharacters")
  return dict(flags)


def config_hash(run_config: Mapping[str, Any], fingerprint: str) -> str:
  """What makes two trainings the same: the run's configuration except where it writes, and
  the dataset it reads."""
  keep = {k: v for k, v in run_config.items() if k != "train_logdir"}
  keep["dataset_fingerprint"] = fingerprint
  return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def check_paths(settings, root: str, what: str):
  """(settings with every path made absolute, problems): each path setting must lie inside
  `root`. The one rule for paths, however the setting arrived (a Param, extra_train_flags,
  converter_options)."""
  problems, changes = [], {}
  for f in dlfields.path_fields(type(settings)):
    value = getattr(settings, f.name)
    if not value:
      continue
    try:
      if isinstance(value, Mapping):
        changes[f.name] = {k: check_uri(str(v), f"{what} {f.name}", root)
                           for k, v in value.items()}
      else:
        changes[f.name] = check_uri(str(value), f"{what} {f.name}", root)
    except ConfError as e:
      problems.append(str(e))
  return dataclasses.replace(settings, **changes), problems


def _train_config(conf: Mapping[str, Any], extra: Mapping[str, Any], checkpoint,
                  num_classes, dataset_dir: str, train_logdir: str) -> "dlconfig.TrainConfig":
  """The run's TrainConfig from the Params and extra_train_flags (not validated)."""
  settings = {**PIPELINE_TRAIN_SETTINGS, **{k: conf.get(k) for k in TRAIN_PARAMS}}
  settings["atrous_rates"] = settings["atrous_rates"] or None
  settings["decoder_output_stride"] = settings["decoder_output_stride"] or None
  settings.update(extra)
  settings["tf_initial_checkpoint"] = settings.get("tf_initial_checkpoint") or checkpoint
  model_names = {f.name for f in dlfields.flag_fields(dlconfig.ModelConfig)}
  train_names = {f.name for f in dlfields.flag_fields(dlconfig.TrainConfig)}
  unknown = sorted(set(settings) - model_names - train_names)
  if unknown:
    raise ConfError(f"extra_train_flags: unknown train setting(s) {unknown}; see "
                    "`python -m deeplab train --helpfull` for the known ones")
  model = dlconfig.from_dict(dlconfig.ModelConfig, {
      **{k: v for k, v in settings.items() if k in model_names}, "num_classes": num_classes})
  return dlconfig.from_dict(dlconfig.TrainConfig, {
      **{k: v for k, v in settings.items() if k in train_names}, "model": model,
      "dataset": conf["dataset_name"], "dataset_dir": dataset_dir,
      "train_logdir": train_logdir})


def resolve(conf: Mapping[str, Any], *, run_id: str, run_type: str, storage_root: str,
            load_champion, fingerprint_fn, converted_fn) -> dict:
  """The plan for one run. Raises ConfError listing every problem.

  `load_champion(uri)` returns models/<name>/champion.json (or None); `fingerprint_fn(format,
  source, options)` is deeplab.datasets.fingerprint.compute_fingerprint; `converted_fn(folder)`
  is deeplab.datasets.converted.is_converted (manifest.json there and every shard whole). They
  are passed in so that this stays testable without storage.
  """
  problems = []

  def attempt(fn, *args):
    try:
      return fn(*args)
    except (ConfError, dlconfig.ConfigError) as e:
      problems.append(str(e))
      return None

  from deeplab_pipeline.params import DEFAULTS  # here: params imports this module

  problems.extend(unknown_keys(conf, DEFAULTS))
  root = storage_root
  attempt(dlconfig.check_name, conf["dataset_name"], "dataset_name")
  attempt(dlconfig.check_name, conf["model_name"], "model_name")
  attempt(dlconfig.check_name, conf["eval_split"], "eval_split")
  source = conf.get("source_uri") or ""
  fmt = conf["dataset_format"]
  if source:
    source = attempt(check_uri, source, "source_uri", root)
  elif fmt != "synthetic":
    problems.append(f"source_uri is empty but dataset_format {fmt!r} needs the raw data: give a "
                    f"folder inside {root}")
  options = attempt(_check_flags, conf.get("converter_options") or {}, "converter_options") or {}
  mapping = attempt(_class_mapping, conf.get("class_mapping")) or {}
  extra = attempt(_check_flags, conf.get("extra_train_flags") or {}, "extra_train_flags") or {}
  if conf["launcher"] not in LAUNCHERS:
    problems.append(f"launcher {conf['launcher']!r} must be one of {', '.join(LAUNCHERS)}")
  elif conf["launcher"] == "kubernetes" and not root.startswith("gs://"):
    # A GPU pod cannot see the Airflow worker's disk: its inputs and outputs must be shared.
    problems.append(f"launcher kubernetes needs a gs:// storage root, but it is {root}: set "
                    "DEEPLAB_STORAGE_ROOT=gs://bucket/prefix on the Airflow workers or use "
                    "launcher local")

  formats = list(conf.get("export_formats") or DEFAULT_FORMATS)
  problems.extend(f"export_formats: {p}" for p in format_problems(formats))

  # Initial checkpoint.
  init_from = conf["init_from"]
  checkpoint = None
  if init_from == "model_zoo":
    if not conf.get("tf_initial_checkpoint"):
      problems.append("init_from is model_zoo but tf_initial_checkpoint is empty: give the "
                      "model.ckpt prefix of a model-zoo checkpoint inside the storage root")
    else:
      checkpoint = conf["tf_initial_checkpoint"]
  champion_uri = _join(root, "models", conf["model_name"], "champion.json")
  champion = load_champion(champion_uri) if not problems else None
  if init_from == "champion":
    checkpoint = (champion or {}).get("checkpoint")  # first run: no champion yet -> scratch

  rid = safe_run_id(run_id)
  run_dir = _join(root, "runs", rid)
  train_logdir = _join(run_dir, "train")
  convert = attempt(dlconfig.from_dict, ConvertOptions,
                    {**options, "format": fmt, "source": source or None}, "converter_options")
  if convert is not None:
    convert, path_problems = check_paths(convert, root, "converter_options")
    problems.extend(path_problems)
    for f in dlfields.path_fields(ConvertOptions):  # the job gets the absolute paths
      if f.name in options and options[f.name]:
        value = getattr(convert, f.name)
        options[f.name] = ([f"{k}={v}" for k, v in value.items()]
                           if isinstance(value, Mapping) else value)
  num_classes = options.get("num_classes") or None
  cfg = attempt(_train_config, conf, extra, checkpoint, num_classes, None, train_logdir)
  if cfg is not None:
    # TrainConfig knows every rule of the trainer (batch vs clones, crop pair, strides, ...).
    problems.extend(p for p in cfg.problems() if p not in problems)
    cfg, path_problems = check_paths(cfg, root, "training setting")
    problems.extend(path_problems)
    model, path_problems = check_paths(cfg.model, root, "training setting")  # e.g. a DPC cell
    problems.extend(path_problems)
    cfg = dataclasses.replace(cfg, model=model)
  if problems:
    raise ConfError("the run conf was rejected before any work:\n  - " + "\n  - ".join(problems))

  fingerprint = fingerprint_fn(fmt, source or None, options)
  dataset_dir = _join(root, "datasets", conf["dataset_name"], fingerprint)
  cfg = dataclasses.replace(cfg, dataset_dir=dataset_dir)
  # The hash leaves out a derived seed: it follows from the fingerprint the hash already holds.
  chash = config_hash(dlconfig.to_dict(cfg), fingerprint)
  if cfg.seed is None and run_type != "manual":
    cfg = dataclasses.replace(cfg, seed=training_seed(fingerprint))
  run_config = dlconfig.to_dict(cfg)
  config_uri = _join(run_dir, "config.json")

  build_skip = ""
  # The class check against the champion waits for check_dataset (deeplab_pipeline.
  # dataset_check): only there do both datasets always exist.
  if converted_fn(dataset_dir):
    build_skip = (f"dataset fingerprint {fingerprint} is already converted at {dataset_dir} "
                  "(same source files and options): nothing to do")
  train_skip = ""
  if (champion and run_type != "manual" and not conf["force"]
      and champion.get("dataset_fingerprint") == fingerprint
      and champion.get("config_hash") == chash):
    train_skip = (f"the champion (run {champion.get('run_id')}) was trained on the same dataset "
                  f"fingerprint {fingerprint} with the same config {chash}: training again "
                  "would waste a GPU node. Trigger with force=true to retrain anyway.")

  return {
      "run_id": rid,
      "run_dir": run_dir,
      "config_uri": config_uri,
      # runs/<run_id>/config.json: the contract. num_classes null = from the dataset manifest.
      "train_config": run_config,
      "fingerprint": fingerprint,
      "dataset_dir": dataset_dir,
      "build_flags": options,
      "build_format": fmt,
      "build_source": source,
      "build_skip": build_skip,
      "train_flags": {"config_json": config_uri},
      "num_clones": cfg.num_clones,
      "num_replicas": cfg.num_replicas,
      "num_ps_tasks": cfg.num_ps_tasks,
      "train_logdir": train_logdir,
      "train_skip": train_skip,
      "config_hash": chash,
      "eval_flags": {"eval_split": conf["eval_split"]},
      "eval_logdir": _join(run_dir, "eval"),
      "export_path": _join(run_dir, "export"),
      # The export checks itself on a few images of the evaluated split, and scores each
      # device format on all of it.
      "export_flags": {"dataset_dir": dataset_dir, "check_split": conf["eval_split"],
                       "formats": formats},
      "launcher": conf["launcher"],
      "model_name": conf["model_name"],
      "champion_uri": champion_uri,
      "champion": dict(champion) if champion else None,
      "min_miou": conf["min_miou"],
      "miou_tolerance": conf["miou_tolerance"],
      # The gate's policy and where the champion is evaluated on this run's split.
      **{k: conf[k] for k in GATE_PARAMS},
      "champion_eval_logdir": _join(run_dir, "eval_champion"),
      "compare_dir": _join(run_dir, "compare"),
      "class_mapping": mapping,
      "init_from": init_from,
      "pipeline_version": PIPELINE_VERSION,
  }


def _class_mapping(value) -> dict:
  try:
    return class_mapping.parse_mapping(value)
  except ValueError as e:
    raise ConfError(str(e)) from None

