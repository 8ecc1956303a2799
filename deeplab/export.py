"""`python -m deeplab export`: frozen graph + SavedModel from a run's config.json, self-checked.

The model is built only from the run's config.json (next to --checkpoint_path, one folder up,
or --config_json), never from model flags: the original's most common export bug was flags
that differed from training (reference/deeplab.md §8 item 6). Model flags are still accepted
so old command lines parse, and a differing value is reported as ignored.

Writes, into a temporary sibling folder first and then moved into --export_path (gs://:
uploaded with export_result.json last): frozen_inference_graph.pb, saved_model/,
export_result.json. Before publishing, both forms must reproduce the evaluation path's
predictions on a few images; otherwise the command exits 2 naming the image.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

from absl import flags

from deeplab import flag_util, model_flags, run_config, storage
from deeplab.config import ModelConfig, to_dict
from deeplab.errors import UserInputError

log = logging.getLogger(__name__)
FLAGS = flags.FLAGS
EXPORT_RESULT = "export_result.json"
DEFAULT_CROP = (513, 513)


def define_flags() -> None:
  d = flag_util.define
  d(flags.DEFINE_string, "checkpoint_path", None, "The model.ckpt-N prefix to export.")
  d(flags.DEFINE_string, "checkpoint_dir", None, "Or a train_logdir (its latest).")
  d(flags.DEFINE_string, "export_path", None,
    "Output folder (or gs://). A path ending in .pb (the original form) names the frozen graph.")
  d(flags.DEFINE_string, "config_json", None, "The run's config.json (default: next to it)")
  d(flags.DEFINE_integer, "num_classes", 21, "Ignored: the class count comes from config.json.")
  d(flags.DEFINE_multi_string, "crop_size", None,
    "Crop 'height,width' (or --crop_size=H --crop_size=W); default: the training crop.")
  d(flags.DEFINE_multi_float, "inference_scales", [1.0], "Scales for multi-scale inference.")
  d(flags.DEFINE_boolean, "add_flipped_images", False, "Also average left-right flipped inputs.")
  d(flags.DEFINE_integer, "quantize_delay_step", -1, "Quantisation is not supported (must be -1).")
  d(flags.DEFINE_boolean, "save_inference_graph", False, "Also write inference_graph.pbtxt.")
  d(flags.DEFINE_string, "dataset_dir", None, "Dataset whose images the self-check uses.")
  d(flags.DEFINE_string, "check_split", "val", "Split the self-check takes images from.")
  d(flags.DEFINE_integer, "num_check_images", 3, "Images the self-check runs (>= 1).")
  d(flags.DEFINE_boolean, "check_only", False, "Only re-run the self-check on an existing export.")
  d(flags.DEFINE_string, "result_json", None, "Where to write a small JSON summary.")
  model_flags.define_model_flags()


define_flags()


def split_export_path(export_path: str) -> Tuple[str, str]:
  """(folder, frozen graph file name): the original passed the .pb path itself."""
  from deeplab.exporting import graph as eg
  if export_path.endswith(".pb"):
    folder = export_path.rsplit("/", 1)[0] if "/" in export_path else "."
    return folder, export_path.rsplit("/", 1)[-1]
  return export_path.rstrip("/"), eg.FROZEN_GRAPH


def parse_multi_crop(values: Optional[Sequence[str]]) -> Optional[Tuple[int, int]]:
  if not values:
    return None
  parts = [p for v in values for p in str(v).split(",") if p.strip()]
  return run_config.parse_crop_size(parts, "crop_size")


def warn_ignored_model_flags(model_cfg: ModelConfig, source: str) -> List[str]:
  """Logs model flags given on the command line whose value differs from config.json."""
  from deeplab.model_flags import model_config_from_flags
  given = model_config_from_flags(FLAGS, model_cfg.num_classes)
  ignored = []
  for name in to_dict(model_cfg):
    if name in FLAGS and FLAGS[name].present and getattr(given, name) != getattr(model_cfg, name):
      ignored.append(f"--{name}={FLAGS[name].value} (config: {getattr(model_cfg, name)!r})")
  if FLAGS["num_classes"].present and FLAGS.num_classes != model_cfg.num_classes:
    ignored.append(f"--num_classes={FLAGS.num_classes} (config: {model_cfg.num_classes})")
  if ignored:
    log.warning("ignored model flags, export builds the model from %s: %s", source,
                ", ".join(ignored))
  return ignored


def check_images(dataset_dir: Optional[str], split: str, count: int,
                 crop_size: Tuple[int, int]):
  """(images, source): the first images of a split, else deterministic synthetic ones."""
  from deeplab.exporting import self_check
  from deeplab.evaluation import split_reader
  if dataset_dir:
    from deeplab.evaluation.eval_pass import stage_split
    local = stage_split(dataset_dir, split)
    examples = split_reader.read_examples(local, split, count, with_label=False)
    if examples:
      return [(name, img) for name, img, _ in examples], f"{dataset_dir} split {split}"
  return self_check.synthetic_images(crop_size, count), "synthetic"


def _publish(tmp: str, folder: str) -> None:
  """Moves the finished export into place; export_result.json goes last."""
  if storage.is_gcs(folder):
    storage.sync_dir(tmp, folder, commit_last=(EXPORT_RESULT,), replace=True)
    return
  if not os.path.exists(folder):
    os.rename(tmp, folder)  # atomic: the folder appears complete
    return
  entries = sorted(os.listdir(tmp), key=lambda e: e == EXPORT_RESULT)
  for entry in entries:
    src, dst = os.path.join(tmp, entry), os.path.join(folder, entry)
    old = f"{dst}.old-{os.getpid()}"
    if os.path.lexists(dst):
      os.rename(dst, old)
    os.rename(src, dst)
    if os.path.isdir(old):
      shutil.rmtree(old)
    elif os.path.lexists(old):
      os.remove(old)


def export(checkpoint: str, export_path: str, config_json: Optional[str] = None,
           crop_size: Optional[Tuple[int, int]] = None, scales: Sequence[float] = (1.0,),
           add_flipped_images: bool = False, dataset_dir: Optional[str] = None,
           check_split: str = "val", num_check_images: int = 3,
           check_only: bool = False, save_inference_graph: bool = False) -> dict:
  """Exports (or, with check_only, re-checks) a checkpoint; returns export_result.json's content.

  Raises:
    UserInputError: no config.json, checkpoint/config mismatch, or the self-check failed.
  """
  from deeplab.exporting import self_check
  from deeplab.exporting import graph as eg
  from deeplab.compat import tf

  cfg, cfg_uri = run_config.load_run_config(checkpoint, config_json, required=True)
  model_cfg = cfg.model
  crop = tuple(crop_size or cfg.train_crop_size or DEFAULT_CROP)
  local_ckpt = run_config.stage_checkpoint(checkpoint)
  folder, graph_name = split_export_path(export_path)
  images, source = check_images(dataset_dir, check_split, num_check_images, crop)

  if check_only:
    work, tmp = storage.stage_in(folder), None
  elif storage.is_gcs(folder):
    work = tmp = tempfile.mkdtemp(prefix="deeplab-export-")
  else:
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    work = tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.tmp-", dir=parent)
  try:
    graph_path = os.path.join(work, graph_name)
    saved_dir = os.path.join(work, eg.SAVED_MODEL_DIR)
    if not check_only:
      graph = eg.build_inference_graph(model_cfg, crop, scales, add_flipped_images)
      if save_inference_graph:
        tf.io.write_graph(graph.as_graph_def(), work, "inference_graph.pbtxt")
      frozen = eg.freeze(graph, local_ckpt)
      eg.write_frozen_graph(frozen, graph_path)
      eg.write_saved_model(frozen, saved_dir)
      log.info("froze %d nodes into %s", len(frozen.node), graph_name)
    check = self_check.check_export(graph_path, saved_dir, local_ckpt, model_cfg, crop, scales,
                                      add_flipped_images, images, source)
    result = {
        "format_version": 1, "checkpoint": checkpoint,
        "checkpoint_step": run_config.checkpoint_step(checkpoint), "config_json": cfg_uri,
        "export_path": folder, "frozen_graph": graph_name, "saved_model": eg.SAVED_MODEL_DIR,
        "input": eg.INPUT_NAME + ":0",
        "outputs": [n + ":0" for n in eg.OUTPUT_NODES],
        "saved_model_signature": {"key": "serving_default", "input": eg.SIGNATURE_INPUT,
                                  "outputs": sorted(eg.SIGNATURE_OUTPUTS)},
        "crop_size": list(crop), "inference_scales": [float(s) for s in scales],
        "add_flipped_images": bool(add_flipped_images), "model": to_dict(model_cfg),
        "check": check,
    }
    result["files"] = [f for f in eg.file_sizes(work) if f["path"] != EXPORT_RESULT]
    if not check["passed"]:
      raise UserInputError("export self-check failed: " + "; ".join(
          check["failures"] or ["no image could be checked"]))
    if check_only:
      return result
    storage.write_json(os.path.join(work, EXPORT_RESULT), result)
    _publish(tmp, folder)
    log.info("exported %s (%d files) to %s", checkpoint, len(result["files"]), folder)
    return result
  finally:
    if tmp and os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
  del argv
  if not FLAGS.export_path:
    raise UserInputError("--export_path is required")
  if FLAGS.quantize_delay_step >= 0:
    raise UserInputError("--quantize_delay_step is not supported; leave it at -1")
  if any(s <= 0 for s in FLAGS.inference_scales):
    raise UserInputError(f"--inference_scales must be > 0, got {FLAGS.inference_scales}")
  if FLAGS.num_check_images < 1:
    raise UserInputError("--num_check_images must be >= 1: the export always checks itself")
  checkpoint = run_config.resolve_checkpoint(FLAGS.checkpoint_dir, FLAGS.checkpoint_path)
  cfg, cfg_uri = run_config.load_run_config(checkpoint, FLAGS.config_json, required=True)
  warn_ignored_model_flags(cfg.model, cfg_uri)
  result = export(checkpoint, FLAGS.export_path, cfg_uri,
                  crop_size=parse_multi_crop(FLAGS.crop_size), scales=FLAGS.inference_scales,
                  add_flipped_images=FLAGS.add_flipped_images, dataset_dir=FLAGS.dataset_dir,
                  check_split=FLAGS.check_split,
                  num_check_images=FLAGS.num_check_images, check_only=FLAGS.check_only,
                  save_inference_graph=FLAGS.save_inference_graph)
  if FLAGS.result_json:
    folder = result["export_path"]
    storage.write_json(FLAGS.result_json, {
        "export_path": folder, "frozen_graph": storage.join(folder, result["frozen_graph"]),
        "saved_model": storage.join(folder, result["saved_model"]),
        "export_result": storage.join(folder, EXPORT_RESULT),
        "check_passed": result["check"]["passed"],
        "num_check_images": result["check"]["num_images"],
        "checkpoint": result["checkpoint"], "checkpoint_step": result["checkpoint_step"]})
  return 0
