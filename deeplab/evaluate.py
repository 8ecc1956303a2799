"""`python -m deeplab evaluate`: one pass over a split on one checkpoint, then exit.

Unlike the original eval.py (docs/compatibility.md) it never waits for checkpoints:
it evaluates the latest checkpoint in --checkpoint_dir (or --checkpoint_path) once and
writes to --eval_logdir: metrics.json (written last), TensorBoard scalars with the original
tags (eval/miou_1.0_overall, eval/miou_1.0_class_<c>), report.md, confusion.png,
per_class_iou.png, overlays/ and per_image_confusion.npz (what the gate's paired comparison of
two models reads). Model settings come from the run's config.json.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from typing import Optional, Sequence, Tuple

from deeplab import run_config, storage
from deeplab.storage import checkpoints
from deeplab.cli_flags import ParsedFlags
from deeplab.evaluation import colormap, eval_pass, metrics, per_image, report
from deeplab.config import ModelConfig
from deeplab.config.commands import IgnoredEvalFlags
from deeplab.config.io import raise_problems
from deeplab.config.stages import EvalConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
METRICS_JSON = "metrics.json"


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """Everything one evaluation needs (flags are turned into this in main())."""

  dataset_dir: str
  checkpoint: str
  eval_logdir: str
  model: ModelConfig
  eval_split: str = "val"
  dataset: Optional[str] = None
  eval_crop_size: Optional[Tuple[int, int]] = None
  inference_max_size: Optional[int] = None
  eval_batch_size: int = 1
  eval_scales: Tuple[float, ...] = (1.0,)
  add_flipped_images: bool = False
  num_overlays: int = 4
  colormap_type: Optional[str] = None
  model_source: str = "model flags"
  result_json: Optional[str] = None


def write_tensorboard(folder: str, scalars: dict, step: int) -> None:
  from deeplab.compat import tf
  summary = tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v))
                              for k, v in sorted(scalars.items())])
  writer = tf.summary.FileWriter(folder)
  writer.add_summary(summary, global_step=step)
  writer.close()


def evaluate(spec: EvalSpec) -> dict:
  """Runs one evaluation and writes its outputs; returns the result summary.

  Raises:
    UserInputError: unknown split, mismatching classes, checkpoint/model mismatch, bad labels.
  """
  from deeplab.datasets.descriptors import get_dataset_info
  from deeplab.evaluation import input_size

  info = get_dataset_info(spec.dataset_dir, spec.dataset)
  num_examples = info.num_examples(spec.eval_split)
  if spec.model.num_classes != info.num_classes:
    raise UserInputError(f"model has {spec.model.num_classes} classes, dataset "
                         f"{info.name} has {info.num_classes}")
  local_data = eval_pass.stage_split(spec.dataset_dir, spec.eval_split)
  policy = input_size.make_policy(spec.model, spec.eval_crop_size, spec.inference_max_size,
                                  spec.eval_scales, spec.add_flipped_images)
  log.info("inference policy: %s", policy.describe())
  local_ckpt = checkpoints.stage_checkpoint(spec.checkpoint)
  step = checkpoints.checkpoint_step(spec.checkpoint)
  class_names = list(info.class_names or [f"class_{i}" for i in range(info.num_classes)])
  cmap = spec.colormap_type or eval_pass.default_colormap(info.name)

  graph = eval_pass.EvalGraph(local_data, spec.eval_split, spec.eval_batch_size, policy,
                              info.ignore_label)
  images = per_image.PerImageConfusion(info.num_classes, info.ignore_label)
  with graph.session(local_ckpt) as sess:
    matrix, examples, done, secs = eval_pass.run_pass(
        graph, sess, info.num_classes, info.ignore_label, num_examples, spec.num_overlays,
        per_image=images)
  if done == 0:
    raise UserInputError(f"split {spec.eval_split!r} of {spec.dataset_dir} yielded no images")
  result = metrics.compute_metrics(matrix, class_names)
  tag = metrics.metric_tag(spec.eval_scales, spec.add_flipped_images)
  doc = dict(
      result, format_version=1, checkpoint=spec.checkpoint, checkpoint_step=step,
      dataset=info.name, dataset_dir=spec.dataset_dir, dataset_fingerprint=info.fingerprint,
      eval_split=spec.eval_split, num_images=done, num_classes=info.num_classes,
      ignore_label=info.ignore_label,
      # The inference policy, so that export serves exactly what was scored.
      **input_size.record(policy),
      model_variant=spec.model.model_variant,
      model_source=spec.model_source, images_per_sec=done / max(secs, 1e-9),
      tensorboard_scalars=metrics.tensorboard_scalars(result, tag))

  with storage.output_dir(spec.eval_logdir, commit_last=(METRICS_JSON,)) as out:
    shutil.rmtree(os.path.join(out, report.OVERLAY_DIR), ignore_errors=True)
    files = report.write_report(out, doc, examples, cmap, info.ignore_label)
    write_tensorboard(out, doc["tensorboard_scalars"], step or 0)
    images.save(os.path.join(out, per_image.PER_IMAGE_NPZ))
    doc["report_files"] = files
    doc["per_image_confusion"] = per_image.PER_IMAGE_NPZ
    storage.write_json(os.path.join(out, METRICS_JSON), doc)
  log.info("mIoU %s, pixel accuracy %s (%s)", _pct(doc["miou"]), _pct(doc["pixel_accuracy"]),
           storage.join(spec.eval_logdir, METRICS_JSON))
  summary = {k: doc[k] for k in ("miou", "pixel_accuracy", "mean_class_accuracy", "checkpoint",
                                 "checkpoint_step", "num_images", "images_per_sec",
                                 "dataset_fingerprint", "eval_split", *input_size.SIZE_KEYS)}
  summary.update(metrics_json=storage.join(spec.eval_logdir, METRICS_JSON),
                 report=storage.join(spec.eval_logdir, report.REPORT_MD))
  if spec.result_json:
    storage.write_json(spec.result_json, summary)
  return summary


def _pct(v: Optional[float]) -> str:
  return "n/a" if v is None else f"{100 * v:.2f}%"


def output_folder(parsed: ParsedFlags) -> Optional[str]:
  """The folder this command writes (the CLI holds its lease while it runs)."""
  return parsed.values["eval_logdir"]


def main(parsed: ParsedFlags) -> int:
  ignored = parsed.settings(IgnoredEvalFlags)
  cfg = parsed.settings(EvalConfig)
  for name in ("eval_logdir", "dataset_dir"):
    if not getattr(cfg, name):
      raise UserInputError(f"--{name} is required")
  if cfg.eval_batch_size < 1:
    raise UserInputError(f"--eval_batch_size must be >= 1, got {cfg.eval_batch_size}")
  if ignored.max_number_of_evaluations not in (0, 1):
    log.info("--max_number_of_evaluations=%d: this command always runs exactly one pass",
             ignored.max_number_of_evaluations)
  if any(s <= 0 for s in cfg.eval_scales):
    raise UserInputError(f"--eval_scales must be > 0, got {list(cfg.eval_scales)}")
  checkpoint, _, model_cfg, source = eval_pass.resolve_run(cfg, parsed.settings(ModelConfig))
  spec = EvalSpec(
      dataset_dir=cfg.dataset_dir, checkpoint=checkpoint, eval_logdir=cfg.eval_logdir,
      model=model_cfg, eval_split=cfg.eval_split, dataset=cfg.dataset,
      eval_crop_size=run_config.parse_crop_size(cfg.eval_crop_size, "eval_crop_size"),
      inference_max_size=cfg.inference_max_size,
      eval_batch_size=cfg.eval_batch_size, eval_scales=cfg.eval_scales,
      add_flipped_images=cfg.add_flipped_images, num_overlays=max(0, cfg.num_overlays),
      colormap_type=cfg.colormap_type, model_source=source,
      result_json=parsed.values["result_json"])
  evaluate(spec)
  return 0
