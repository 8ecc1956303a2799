"""`python -m deeplab evaluate`: one pass over a split on one checkpoint, then exit.

Unlike the original eval.py (reference/deeplab.md §5.1) it never waits for checkpoints:
it evaluates the latest checkpoint in --checkpoint_dir (or --checkpoint_path) once and
writes to --eval_logdir: metrics.json (written last), TensorBoard scalars with the original
tags (eval/miou_1.0_overall, eval/miou_1.0_class_<c>), report.md, confusion.png,
per_class_iou.png and overlays/. Model settings come from the run's config.json.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from typing import Optional, Sequence, Tuple

from absl import flags

from deeplab import flag_util, model_flags, run_config, storage
from deeplab.evaluation import colormap, eval_pass, metrics, report
from deeplab.config import ModelConfig
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS
METRICS_JSON = "metrics.json"


def define_flags() -> None:
  d = flag_util.define
  d(flags.DEFINE_string, "master", "", "Unused; accepted for compatibility.")
  d(flags.DEFINE_string, "eval_logdir", None, "Where metrics.json and the report go (or gs://).")
  d(flags.DEFINE_string, "checkpoint_dir", None, "train_logdir: its latest checkpoint is used.")
  d(flags.DEFINE_string, "checkpoint_path", None, "A model.ckpt-N prefix (wins).")
  d(flags.DEFINE_string, "config_json", None, "The run's config.json (default: next to it)")
  d(flags.DEFINE_integer, "eval_batch_size", 1, "Images per batch.")
  d(flags.DEFINE_list, "eval_crop_size", None,
    "Crop 'height,width'; default: smallest output_stride*k+1 fitting the split's largest image.")
  d(flags.DEFINE_integer, "eval_interval_secs", 300, "Unused: evaluation is one pass.")
  d(flags.DEFINE_multi_float, "eval_scales", [1.0], "Scales for multi-scale evaluation.")
  d(flags.DEFINE_boolean, "add_flipped_images", False, "Also average left-right flipped inputs.")
  d(flags.DEFINE_integer, "quantize_delay_step", -1, "Quantisation is not supported (must be -1).")
  d(flags.DEFINE_string, "dataset", "pascal_voc_seg", "Dataset name (used without a manifest).")
  d(flags.DEFINE_string, "eval_split", "val", "Split to evaluate.")
  d(flags.DEFINE_string, "dataset_dir", None, "Folder (or gs://) with the TFRecords.")
  d(flags.DEFINE_integer, "max_number_of_evaluations", 0, "Accepted; always one pass.")
  d(flags.DEFINE_integer, "num_overlays", 4, "Examples drawn as image | truth | prediction.")
  d(flags.DEFINE_enum, "colormap_type", None, list(colormap.COLORMAPS),
    "Report colours (default: by dataset name, else pascal).")
  d(flags.DEFINE_string, "result_json", None, "Where to write a small JSON summary.")
  model_flags.define_model_flags()


define_flags()


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
  crop = spec.eval_crop_size or eval_pass.choose_crop_size(info, spec.eval_split, local_data,
                                                          spec.model)
  local_ckpt = run_config.stage_checkpoint(spec.checkpoint)
  step = run_config.checkpoint_step(spec.checkpoint)
  class_names = list(info.class_names or [f"class_{i}" for i in range(info.num_classes)])
  cmap = spec.colormap_type or eval_pass.default_colormap(info.name)

  graph = eval_pass.EvalGraph(local_data, spec.eval_split, spec.eval_batch_size, spec.model,
                              crop, spec.eval_scales, spec.add_flipped_images, info.ignore_label)
  with graph.session(local_ckpt) as sess:
    matrix, examples, done, secs = eval_pass.run_pass(
        graph, sess, info.num_classes, info.ignore_label, num_examples, spec.num_overlays)
  if done == 0:
    raise UserInputError(f"split {spec.eval_split!r} of {spec.dataset_dir} yielded no images")
  result = metrics.compute_metrics(matrix, class_names)
  tag = metrics.metric_tag(spec.eval_scales, spec.add_flipped_images)
  doc = dict(
      result, format_version=1, checkpoint=spec.checkpoint, checkpoint_step=step,
      dataset=info.name, dataset_dir=spec.dataset_dir, dataset_fingerprint=info.fingerprint,
      eval_split=spec.eval_split, num_images=done, num_classes=info.num_classes,
      ignore_label=info.ignore_label,
      # The exact input settings, so that export serves what was scored (--eval_metrics_json).
      **input_size.record(crop, spec.model, spec.eval_scales, spec.add_flipped_images),
      model_variant=spec.model.model_variant,
      model_source=spec.model_source, images_per_sec=done / max(secs, 1e-9),
      tensorboard_scalars=metrics.tensorboard_scalars(result, tag))

  with storage.output_dir(spec.eval_logdir, commit_last=(METRICS_JSON,)) as out:
    shutil.rmtree(os.path.join(out, report.OVERLAY_DIR), ignore_errors=True)
    files = report.write_report(out, doc, examples, cmap, info.ignore_label)
    write_tensorboard(out, doc["tensorboard_scalars"], step or 0)
    doc["report_files"] = files
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


def main(argv: Sequence[str]) -> int:
  del argv
  for name in ("eval_logdir", "dataset_dir"):
    if not getattr(FLAGS, name):
      raise UserInputError(f"--{name} is required")
  if FLAGS.quantize_delay_step >= 0:
    raise UserInputError("--quantize_delay_step is not supported; leave it at -1")
  if FLAGS.eval_batch_size < 1:
    raise UserInputError(f"--eval_batch_size must be >= 1, got {FLAGS.eval_batch_size}")
  if FLAGS.max_number_of_evaluations not in (0, 1):
    log.info("--max_number_of_evaluations=%d: this command always runs exactly one pass",
             FLAGS.max_number_of_evaluations)
  if any(s <= 0 for s in FLAGS.eval_scales):
    raise UserInputError(f"--eval_scales must be > 0, got {FLAGS.eval_scales}")
  checkpoint, _, model_cfg, source = eval_pass.resolve_run(
      FLAGS, FLAGS.checkpoint_dir, FLAGS.checkpoint_path, FLAGS.dataset_dir, FLAGS.dataset,
      FLAGS.config_json)
  spec = EvalSpec(
      dataset_dir=FLAGS.dataset_dir, checkpoint=checkpoint, eval_logdir=FLAGS.eval_logdir,
      model=model_cfg, eval_split=FLAGS.eval_split, dataset=FLAGS.dataset,
      eval_crop_size=run_config.parse_crop_size(FLAGS.eval_crop_size, "eval_crop_size"),
      eval_batch_size=FLAGS.eval_batch_size, eval_scales=tuple(FLAGS.eval_scales),
      add_flipped_images=FLAGS.add_flipped_images, num_overlays=max(0, FLAGS.num_overlays),
      colormap_type=FLAGS.colormap_type, model_source=source, result_json=FLAGS.result_json)
  evaluate(spec)
  return 0
