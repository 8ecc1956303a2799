"""Settings of the commands that read a trained model: evaluate, vis and export.

Like TrainConfig, each setting is declared once with its original flag name and default;
`deeplab.cli_flags` turns these classes into each command's flags.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab.config.fields import coerce_tuples, setting
from deeplab.exporting.formats import DEFAULT_FORMATS

# Names of the label colour maps (deeplab.evaluation.colormap draws them).
COLORMAPS = ("pascal", "cityscapes", "ade20k")


@dataclasses.dataclass(frozen=True)
class ModelInput:
  """Which checkpoint, and the run configuration that describes its model."""

  checkpoint_dir: Optional[str] = setting(
      None, "train_logdir: its latest checkpoint is used.", kind="string", path=True)
  checkpoint_path: Optional[str] = setting(
      None, "A model.ckpt-N prefix (wins over --checkpoint_dir).", kind="string", path=True)
  config_json: Optional[str] = setting(
      None, "The run's config.json (default: next to the checkpoint or one folder up).",
      kind="string", path=True)
  add_flipped_images: bool = setting(False, "Also average left-right flipped inputs.")
  inference_max_size: Optional[int] = setting(
      None, "Without a fixed crop, each image runs at its own size; an image whose long side "
      "exceeds this is resized into range and its prediction resized back (0: no bound; "
      "default: max_resize_value, else 2049; export: evaluate's recorded value).",
      kind="integer")


@dataclasses.dataclass(frozen=True)
class SplitInput(ModelInput):
  """A split of a converted dataset, read in its stored order."""

  dataset: str = setting("pascal_voc_seg", "Dataset name (used without a manifest).")
  dataset_dir: Optional[str] = setting(
      None, "Folder (or gs://) with the TFRecords.", kind="string", path=True, required=True)
  eval_scales: Tuple[float, ...] = setting((1.0,), "Scales for multi-scale inference.",
                                           kind="multi_float")

  def __post_init__(self):
    coerce_tuples(self, {"eval_scales": float})


@dataclasses.dataclass(frozen=True)
class EvalConfig(SplitInput):
  """The original eval.py flags (one pass, never waits for checkpoints)."""

  eval_logdir: Optional[str] = setting(
      None, "Where metrics.json and the report go (or gs://).", kind="string", path=True,
      required=True)
  eval_split: str = setting("val", "Split to evaluate.")
  eval_batch_size: int = setting(1, "Images per batch.")
  eval_crop_size: Optional[Tuple[int, int]] = setting(
      None, "A fixed crop 'height,width' for every image (the original's model-zoo mode); "
      "default: each image at its own size (padded to its own output_stride*k+1).",
      kind="list")
  num_overlays: int = setting(4, "Examples drawn as image | truth | prediction.")
  colormap_type: Optional[str] = setting(
      None, "Report colours (default: by dataset name, else pascal).", choices=COLORMAPS)

  def __post_init__(self):
    super().__post_init__()
    coerce_tuples(self, {"eval_crop_size": int})


@dataclasses.dataclass(frozen=True)
class VisConfig(SplitInput):
  """The original vis.py flags (one pass)."""

  vis_logdir: Optional[str] = setting(
      None, "Where the images go (or gs://).", kind="string", path=True, required=True)
  vis_split: str = setting("val", "Split to visualise.")
  vis_batch_size: int = setting(1, "Images per batch.")
  vis_crop_size: Optional[Tuple[int, int]] = setting(
      None, "A fixed crop 'height,width' for every image; default: each image at its own "
      "size (padded to its own output_stride*k+1).", kind="list")
  colormap_type: str = setting("pascal", "Colormap.", choices=COLORMAPS)
  also_save_raw_predictions: bool = setting(False, "Also write class-id PNGs.")

  def __post_init__(self):
    super().__post_init__()
    coerce_tuples(self, {"vis_crop_size": int})


@dataclasses.dataclass(frozen=True)
class ExportConfig(ModelInput):
  """The original export_model.py flags plus the self-check."""

  export_path: Optional[str] = setting(
      None, "Output folder (or gs://). A path ending in .pb (the original form) names the "
      "frozen graph.", kind="string", path=True, required=True)
  crop_size: Optional[Tuple[str, ...]] = setting(
      None, "A fixed input crop 'height,width' (or --crop_size=H --crop_size=W), for graphs "
      "that must match the model zoo's fixed input; larger images are refused. Default: "
      "evaluate's policy (--eval_metrics_json), else any height and width.",
      kind="multi_string")
  eval_metrics_json: Optional[str] = setting(
      None, "evaluate's metrics.json: export with exactly its inference policy (own size or "
      "crop, size bound, resize, scales and flips).", kind="string", path=True)
  inference_scales: Tuple[float, ...] = setting((1.0,), "Scales for multi-scale inference.",
                                                kind="multi_float")
  save_inference_graph: bool = setting(False, "Also write inference_graph.pbtxt.")
  dataset_dir: Optional[str] = setting(
      None, "Dataset whose images the self-check uses.", kind="string", path=True)
  check_split: str = setting("val", "Split the self-check takes images from.")
  num_check_images: int = setting(3, "Images the self-check runs (>= 1).")
  check_only: bool = setting(False, "Only re-run the self-check on an existing export.")
  # The device formats (deeplab/exporting/formats.py, docs/export.md).
  formats: Tuple[str, ...] = setting(
      DEFAULT_FORMATS, "Formats to write, comma separated: frozen (always), "
      "saved_model, tflite (float32), tflite_float16, tflite_int8, onnx, tflite_mobile (the "
      "original's mobile form: normalised input to logits at the fixed --crop_size, default "
      "513,513). Every device format is scored on --check_split against the frozen graph "
      "(needs --dataset_dir).",
      kind="list")
  max_quantized_miou_drop: float = setting(
      0.01, "A quantized format (tflite_float16, tflite_int8) or the mobile form "
      "(tflite_mobile) whose mIoU on --check_split is "
      "lower than the frozen graph's by more than this fails the export (exit 2).")
  num_score_images: int = setting(
      0, "Images of --check_split each device format is scored on (0: all of them).")
  calibration_split: str = setting(
      "train", "Split whose images calibrate tflite_int8's ranges (never the check split).")
  num_calibration_images: int = setting(
      200, "Images of --calibration_split used to calibrate tflite_int8 (the first ones).")

  def __post_init__(self):
    coerce_tuples(self, {"inference_scales": float, "crop_size": str, "formats": str})
