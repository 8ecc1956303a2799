"""`python -m deeplab export`: frozen graph + SavedModel from a run's config.json, self-checked.

The model is built only from the run's config.json (next to --checkpoint_path, one folder up,
or --config_json), never from model flags: the original's most common export bug was flags
that differed from training (docs/compatibility.md). Model flags are still accepted
so old command lines parse, and a differing value is reported as ignored.

Writes, into a temporary sibling folder first and then moved into --export_path (gs://:
uploaded with export_result.json last): frozen_inference_graph.pb, saved_model/,
export_result.json, and the device formats --formats asks for (TFLite, ONNX:
deeplab/exporting/formats.py). Before publishing, both forms must reproduce the evaluation
path's predictions on real images of --check_split at their own size (always its largest),
and each device format is scored on the split against the frozen graph
(deeplab/exporting/scoring.py); otherwise the command exits 2 naming the image or format.

Inference policy (deeplab/evaluation/input_size.py, docs/export.md): with --eval_metrics_json,
exactly the policy evaluate scored with; else each image at its own size (any height and
width). --crop_size gives a fixed-size export (the model zoo's form) that refuses larger
images. --min_resize_value/--max_resize_value/--resize_factor and --inference_max_size
override the recorded values as in the original export_model.py: larger inputs are resized,
predictions resized back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple

from deeplab import run_config, storage
from deeplab.storage import checkpoints
from deeplab.cli_flags import ParsedFlags
from deeplab.config.commands import IgnoredExportFlags
from deeplab.config.io import raise_problems
from deeplab.config.stages import ExportConfig
from deeplab.config import ModelConfig, to_dict
from deeplab.errors import UserInputError
from deeplab.exporting import formats as fm
from deeplab.exporting.formats import DEFAULT_FORMATS

log = logging.getLogger(__name__)
EXPORT_RESULT = "export_result.json"
SYNTHETIC_SIZE = (97, 129)  # self-check images when no --dataset_dir is given (own size)


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


def warn_ignored_model_flags(parsed: ParsedFlags, model_cfg: ModelConfig,
                             source: str) -> List[str]:
  """Logs model flags given on the command line whose value differs from config.json.

  The resize_to_range flags are not model flags here: they shape the input, and export
  honours them as the original export_model.py does.
  """
  from deeplab.evaluation.input_size import RESIZE_KEYS
  given = parsed.settings(ModelConfig)
  ignored = [f"--{name}={parsed.values[name]} (config: {getattr(model_cfg, name)!r})"
             for name in sorted(parsed.given) if hasattr(model_cfg, name)
             and name not in RESIZE_KEYS and getattr(given, name) != getattr(model_cfg, name)]
  if "num_classes" in parsed.given and parsed.values["num_classes"] != model_cfg.num_classes:
    ignored.append(f"--num_classes={parsed.values['num_classes']} "
                   f"(config: {model_cfg.num_classes})")
  if ignored:
    log.warning("ignored model flags, export builds the model from %s: %s", source,
                ", ".join(ignored))
  return ignored


def check_images(dataset_dir: Optional[str], split: str, count: int):
  """(images, source, every image's size) of the check split; ([], 'synthetic', None) without."""
  from deeplab.exporting import self_check
  if dataset_dir:
    images, sizes = self_check.split_images(dataset_dir, split, count)
    if images:
      return images, f"{dataset_dir} split {split}", sizes
  return [], "synthetic", None


def size_settings(model_cfg: ModelConfig, crop_size: Optional[Tuple[int, int]],
                  scales: Optional[Sequence[float]], add_flipped_images: Optional[bool],
                  resize: Optional[dict], eval_metrics_json: Optional[str],
                  max_size: Optional[int] = None) -> dict:
  """The export's inference policy: explicit values, else evaluate's recorded policy.

  Args:
    model_cfg: the run's model.
    crop_size: a fixed crop (model-zoo mode), or None.
    scales, add_flipped_images, max_size: explicit values, or None.
    resize: explicit resize_to_range settings (RESIZE_KEYS subset), or None.
    eval_metrics_json: evaluate's metrics.json, whose recorded policy is the default.

  Returns:
    {'policy': input_size.InferencePolicy, 'source': why this policy}.
  """
  from deeplab.evaluation import input_size
  recorded = input_size.read_recorded(eval_metrics_json) if eval_metrics_json else {}
  model_cfg = input_size.with_resize(input_size.with_resize(model_cfg, recorded), resize or {})
  if crop_size:
    crop, why = tuple(crop_size), "--crop_size"
  elif recorded:
    crop, why = recorded["eval_crop_size"], f"evaluation ({eval_metrics_json})"
  else:
    crop, why = None, "default"
  if max_size is None and recorded.get("inference_size") == input_size.OWN_SIZE:
    max_size = recorded["inference_max_size"] or 0
  if scales is None:
    scales = recorded.get("eval_scales") or (1.0,)
  if add_flipped_images is None:
    add_flipped_images = bool(recorded.get("add_flipped_images", False))
  policy = input_size.make_policy(model_cfg, crop, max_size, scales, add_flipped_images)
  log.info("export policy: %s (%s)", policy.describe(), why)
  return {"policy": policy, "source": why}


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
           crop_size: Optional[Tuple[int, int]] = None,
           scales: Optional[Sequence[float]] = None,
           add_flipped_images: Optional[bool] = None, dataset_dir: Optional[str] = None,
           check_split: str = "val", num_check_images: int = 3,
           check_only: bool = False, save_inference_graph: bool = False,
           eval_metrics_json: Optional[str] = None, resize: Optional[dict] = None,
           inference_max_size: Optional[int] = None,
           formats: Sequence[str] = DEFAULT_FORMATS, device: Optional[DeviceSettings] = None
           ) -> dict:
  """Exports (or, with check_only, re-checks) a checkpoint; returns export_result.json's content.

  Input settings: see size_settings (None = evaluate's recorded value, else the default).
  formats: what to write (deeplab/exporting/formats.py); device formats are scored on
  check_split under `device` (default: DeviceSettings()).

  Raises:
    UserInputError: no config.json, checkpoint/config mismatch, an image of the check split
      the export cannot serve, or the self-check failed.
  """
  from deeplab.exporting import self_check
  from deeplab.exporting import graph as eg
  from deeplab.evaluation import input_size
  from deeplab.compat import tf

  cfg, cfg_uri = run_config.load_run_config(checkpoint, config_json, required=True)
  device = device or DeviceSettings()
  problems = device_problems(formats, device, dataset_dir, check_split)
  if cfg.model.quantize_delay_step >= 0:
    problems += fm.qat_format_problems(formats)
  raise_problems(problems, "export settings")
  images, source, _ = check_images(dataset_dir, check_split, num_check_images)
  settings = size_settings(cfg.model, crop_size, scales, add_flipped_images, resize,
                           eval_metrics_json, inference_max_size)
  policy = settings["policy"]
  if not images:  # no split given: deterministic synthetic images
    images = self_check.synthetic_images(policy.crop_size or SYNTHETIC_SIZE, num_check_images)
  unservable = self_check.too_large(images, policy)
  if unservable:  # before anything is written
    raise UserInputError(f"the export cannot serve {source} ({'; '.join(unservable)}): "
                         + self_check.CROP_ADVICE)
  local_ckpt = checkpoints.stage_checkpoint(checkpoint)
  folder, graph_name = split_export_path(export_path)

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
      graph = eg.build_inference_graph(policy)
      if save_inference_graph:
        tf.io.write_graph(graph.as_graph_def(), work, "inference_graph.pbtxt")
      frozen = eg.freeze(graph, local_ckpt)
      eg.write_frozen_graph(frozen, graph_path)
      if fm.SAVED_MODEL in formats:
        eg.write_saved_model(frozen, saved_dir)
      log.info("froze %d nodes into %s", len(frozen.node), graph_name)
    check = self_check.check_export(graph_path, saved_dir if fm.SAVED_MODEL in formats
                                    else None, local_ckpt, policy, images, source)
    if not check["passed"]:
      raise UserInputError("export self-check failed: " + "; ".join(
          check["failures"] or ["no image could be checked"]))
    scored = device_check(graph_path, work, formats, device, dataset_dir, check_split,
                          cfg.dataset, policy, write=not check_only, checkpoint_local=local_ckpt)
    result = {
        "format_version": 1, "checkpoint": checkpoint,
        "checkpoint_step": checkpoints.checkpoint_step(checkpoint), "config_json": cfg_uri,
        "export_path": folder, "frozen_graph": graph_name,
        "saved_model": eg.SAVED_MODEL_DIR if fm.SAVED_MODEL in formats else None,
        "formats": list(formats),
        "input": eg.INPUT_NAME + ":0",
        "outputs": [n + ":0" for n in eg.OUTPUT_NODES],
        "saved_model_signatures": {
            "serving_default": {"input": eg.SIGNATURE_INPUT, "dtype": "uint8",
                                "shape": [1, None, None, 3]},
            eg.BYTES_SIGNATURE: {"input": eg.BYTES_INPUT, "dtype": "string", "shape": [1]},
            eg.PROBABILITIES_SIGNATURE: {"input": eg.SIGNATURE_INPUT, "dtype": "uint8",
                                         "shape": [1, None, None, 3],
                                         "outputs": sorted(eg.PROBABILITIES_OUTPUTS)},
            "outputs": sorted(eg.SIGNATURE_OUTPUTS)},
        "crop_size": list(policy.crop_size) if policy.fixed else None,
        "inference_policy": input_size.record(policy), "policy_source": settings["source"],
        "inference_scales": [float(s) for s in policy.scales],
        "add_flipped_images": bool(policy.add_flipped_images),
        "eval_metrics_json": eval_metrics_json, "model": to_dict(policy.model),
        "check": check, "device_formats": scored,
    }
    result["files"] = [f for f in eg.file_sizes(work) if f["path"] != EXPORT_RESULT]
    _log_formats_table(result)  # also when a format fails: its row says why
    if scored and scored["failures"]:
      raise UserInputError("export self-check failed: " + "; ".join(scored["failures"]))
    if check_only:
      return result
    storage.write_json(os.path.join(work, EXPORT_RESULT), result)
    _publish(tmp, folder)
    log.info("exported %s (%d files) to %s", checkpoint, len(result["files"]), folder)
    return result
  finally:
    if tmp and os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def _log_formats_table(result: dict) -> None:
  """The device formats' scores as a table in the log (the Airflow export task's log)."""
  from deeplab.exporting import report
  table = report.markdown(report.rows(report.summary(result), result["files"],
                                      result["frozen_graph"]))
  if table:
    log.info("device formats on split %s:\n%s", result["device_formats"]["split"], table)


def _declared(name: str):
  return ExportConfig.__dataclass_fields__[name].default


@dataclasses.dataclass(frozen=True)
class DeviceSettings:
  """How device formats are calibrated and judged (ExportConfig's fields of the same names)."""

  max_quantized_miou_drop: float = _declared("max_quantized_miou_drop")
  num_score_images: int = _declared("num_score_images")
  calibration_split: str = _declared("calibration_split")
  num_calibration_images: int = _declared("num_calibration_images")

  @classmethod
  def from_config(cls, cfg: ExportConfig) -> "DeviceSettings":
    return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})


def device_problems(formats: Sequence[str], device: DeviceSettings, dataset_dir: Optional[str],
                    check_split: str) -> List[str]:
  """Why these formats cannot be exported and checked (nothing is written when any)."""
  out = fm.format_problems(formats)
  wanted = fm.device_formats(formats)
  if wanted and not dataset_dir:
    out.append(f"--formats={','.join(wanted)} needs --dataset_dir: every device format is "
               "scored on --check_split against the frozen graph")
  if fm.TFLITE_INT8 in formats and device.calibration_split == check_split:
    out.append(f"--calibration_split={device.calibration_split} is the check split: int8 "
               "ranges must come from other images (e.g. --calibration_split=train)")
  if device.num_calibration_images < 1:
    out.append(f"--num_calibration_images must be >= 1, got {device.num_calibration_images}")
  if device.num_score_images < 0:
    out.append(f"--num_score_images must be >= 0 (0: all), got {device.num_score_images}")
  if not 0 <= device.max_quantized_miou_drop <= 1:
    out.append("--max_quantized_miou_drop must be in [0, 1], got "
               f"{device.max_quantized_miou_drop}")
  return out


def device_check(graph_path: str, work: str, formats: Sequence[str], device: DeviceSettings,
                 dataset_dir: Optional[str], check_split: str, dataset: str, policy,
                 write: bool, checkpoint_local: Optional[str] = None) -> Optional[dict]:
  """Writes (unless `write` is False) and scores the device formats; None when none is asked.

  checkpoint_local: the mobile form's weights (it is built from the checkpoint, not converted
  from the frozen graph).
  """
  from deeplab.datasets.descriptors import get_dataset_info
  from deeplab.evaluation.eval_pass import stage_split
  from deeplab.exporting import mobile, scoring, self_check
  wanted = fm.device_formats(formats)
  if not wanted:
    return None
  info = get_dataset_info(dataset_dir, dataset)
  # A quantization-aware-trained model's int8 ranges were learned: no calibration.
  qat = policy.model.quantize_delay_step >= 0
  calibrated = fm.TFLITE_INT8 in wanted and not qat
  if write:
    calibration = None
    if calibrated:  # the first images of the calibration split that fit
      split = device.calibration_split
      examples = scoring.iter_split(stage_split(dataset_dir, split), split,
                                    device.num_calibration_images, with_label=False)
      calibration = [(n, img) for n, img, _ in examples]
      calibration = [c for c in calibration if not self_check.too_large([c], policy)]
      if not calibration:
        raise UserInputError(f"--calibration_split={split} of {dataset_dir} has no image the "
                             "export can serve: int8 cannot be calibrated")
    mobile_source = ((policy.model, mobile.crop_for(policy), checkpoint_local)
                     if fm.TFLITE_MOBILE in wanted else None)
    fm.write_device_formats(graph_path, work, wanted, calibration, mobile_source)
  paths = {f: os.path.join(work, fm.DEVICE_FILES[f]) for f in wanted}
  missing = [p for p in paths.values() if not os.path.exists(p)]
  if missing:
    raise UserInputError(f"--check_only: {missing} not in the export; export these formats "
                         "first or leave them out of --formats")
  examples = scoring.iter_split(stage_split(dataset_dir, check_split), check_split,
                                device.num_score_images)
  scored = scoring.score(graph_path, paths, examples, info.num_classes, info.ignore_label,
                         device.max_quantized_miou_drop, policy.model.model_variant)
  scored.update(split=check_split,
                calibration_split=device.calibration_split if calibrated else None,
                int8_ranges=None if fm.TFLITE_INT8 not in wanted else
                "quantization-aware training" if qat else "calibration",
                files={f: fm.DEVICE_FILES[f] for f in wanted})
  if fm.TFLITE_MOBILE in wanted:  # the crop the file itself holds (--check_only included)
    crop = mobile.file_crop(paths[fm.TFLITE_MOBILE])
    scored["mobile_form"] = mobile.describe(policy.model, crop,
                                            fm.DEVICE_FILES[fm.TFLITE_MOBILE])
  log.info("device formats on %d images of %s: %s", scored["num_images"], check_split, {
      f: (r["agreement"], r["miou"]) for f, r in scored["formats"].items()})
  return scored


def device_summary(result: dict) -> Optional[dict]:
  """The result JSON's device_formats (promotion, the run summary): exporting.report.summary."""
  from deeplab.exporting import report
  return report.summary(result)


def output_folder(parsed: ParsedFlags) -> Optional[str]:
  """The folder this command writes (the CLI holds its lease while it runs)."""
  return parsed.values["export_path"]


def main(parsed: ParsedFlags) -> int:
  cfg = parsed.settings(ExportConfig)
  if not cfg.export_path:
    raise UserInputError("--export_path is required")
  if any(s <= 0 for s in cfg.inference_scales):
    raise UserInputError(f"--inference_scales must be > 0, got {list(cfg.inference_scales)}")
  if cfg.num_check_images < 1:
    raise UserInputError("--num_check_images must be >= 1: the export always checks itself")
  # Before any checkpoint or dataset is read (export() checks again, for library callers).
  raise_problems(device_problems(cfg.formats, DeviceSettings.from_config(cfg), cfg.dataset_dir,
                                 cfg.check_split), "export settings")
  checkpoint = checkpoints.find_checkpoint(cfg.checkpoint_dir, cfg.checkpoint_path)
  run_cfg, cfg_uri = run_config.load_run_config(checkpoint, cfg.config_json, required=True)
  warn_ignored_model_flags(parsed, run_cfg.model, cfg_uri)
  from deeplab.evaluation.input_size import RESIZE_KEYS

  def given(name):  # None = not on the command line: evaluate's recorded value or the default
    return parsed.values[name] if name in parsed.given else None

  result = export(checkpoint, cfg.export_path, cfg_uri,
                  crop_size=parse_multi_crop(cfg.crop_size), scales=given("inference_scales"),
                  add_flipped_images=given("add_flipped_images"), dataset_dir=cfg.dataset_dir,
                  check_split=cfg.check_split, num_check_images=cfg.num_check_images,
                  check_only=cfg.check_only, save_inference_graph=cfg.save_inference_graph,
                  eval_metrics_json=cfg.eval_metrics_json,
                  resize={k: parsed.values[k] for k in RESIZE_KEYS if k in parsed.given},
                  inference_max_size=given("inference_max_size"), formats=cfg.formats,
                  device=DeviceSettings.from_config(cfg))
  result_json = parsed.values["result_json"]
  if result_json:
    folder = result["export_path"]
    storage.write_json(result_json, {
        "export_path": folder, "frozen_graph": storage.join(folder, result["frozen_graph"]),
        "saved_model": storage.join(folder, result["saved_model"])
        if result["saved_model"] else None,
        "export_result": storage.join(folder, EXPORT_RESULT),
        "check_passed": result["check"]["passed"],
        "num_check_images": result["check"]["num_images"],
        "checkpoint": result["checkpoint"], "checkpoint_step": result["checkpoint_step"],
        "crop_size": result["crop_size"], "formats": result["formats"],
        "files": result["files"], "device_formats": device_summary(result)})
  return 0
