"""The trigger form: DAG Params grouped in sections, JSON-schema validated.

Training defaults are the original DeepLab defaults (deeplab.config) with the embedded demo's
overrides (deeplab.config.recipes.DEMO: synthetic data, mobilenet_v2, 2 CPU clones, about a
minute); every one can be overridden from the form or a run conf.
"""

from __future__ import annotations

from airflow.sdk import Param

from deeplab.config import OUTPUT_STRIDES, SUPPORTED_VARIANTS, ModelConfig, TrainConfig
from deeplab.config.recipes import DEMO
from deeplab.contract import FORMATS, LAUNCHERS, NAME_PATTERN
from deeplab.exporting.formats import DEFAULT_FORMATS
from deeplab.exporting.formats import FORMATS as EXPORT_FORMATS
from deeplab_pipeline.gate import APPROVALS, GATE_MODES
from deeplab_pipeline.resolve import TRAIN_PARAMS

INIT_FROM = ("scratch", "model_zoo", "champion")
def _setting_default(name):
  """The recipe's value, else the original default declared in the config dataclasses."""
  if name in DEMO:
    value = DEMO[name]
  else:
    cls = ModelConfig if name in ModelConfig.__dataclass_fields__ else TrainConfig
    value = cls.__dataclass_fields__[name].default
  return list(value) if isinstance(value, tuple) else value


# Values of the embedded default; tests and the demo use these names.
DEFAULTS = {
    "dataset_name": "synthetic",
    "dataset_format": "synthetic",
    "source_uri": "",
    "converter_options": {},
    "class_mapping": {},
    "eval_split": "val",
    "model_name": "deeplab-synthetic",
    "init_from": "scratch",
    "tf_initial_checkpoint": "",
    **{name: _setting_default(name) for name in TRAIN_PARAMS},
    "extra_train_flags": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in DEMO.items() if k not in TRAIN_PARAMS},
    "min_miou": 0.3,
    "miou_tolerance": 0.01,
    "gate_mode": "not_worse",
    "max_class_iou_drop": 0.05,
    "drift_factor": 2.0,
    "approval": "auto",
    "approval_timeout_minutes": 1440,
    "export_formats": list(DEFAULT_FORMATS),
    "launcher": "local",
    "force": False,
}


# The trigger form sends an empty text field as null: optional text must accept it, or the
# form refuses its own defaults.
OPTIONAL_STRING = ["null", "string"]


def _p(name, *, section, title, description, **schema):
  return Param(DEFAULTS[name], section=section, title=title, description=description, **schema)


def build_params() -> dict:
  int_list = {"type": ["null", "array"], "items": {"type": "integer", "minimum": 1}}
  return {
      # Data
      "dataset_name": _p(
          "dataset_name", section="Data", title="Dataset name", type="string",
          pattern=NAME_PATTERN,
          description="Converted data goes to datasets/<name>/<fingerprint>/ under the storage root."),
      "dataset_format": _p(
          "dataset_format", section="Data", title="Dataset format", type="string",
          enum=list(FORMATS),
          description="Layout of the raw data: voc, cityscapes, ade20k, folder, or synthetic "
          "(generated shapes; needs no source)."),
      "source_uri": _p(
          "source_uri", section="Data", title="Source URI", type=OPTIONAL_STRING,
          description="Raw dataset folder (local path or gs://), inside the storage root. "
          "Leave empty for the synthetic format."),
      "converter_options": _p(
          "converter_options", section="Data", title="Converter options", type="object",
          description="Extra build-tfrecords flags, e.g. {\"num_classes\": 5} for the folder "
          "format. They are part of the dataset fingerprint."),
      "class_mapping": _p(
          "class_mapping", section="Data", title="Class mapping", type="object",
          description="Old class name -> new class name, when this dataset version renamed "
          "classes: without it a champion trained on other classes is not compared or "
          "warm-started from."),
      "eval_split": _p(
          "eval_split", section="Data", title="Evaluation split", type="string",
          pattern=NAME_PATTERN, description="Split evaluated by the gate (e.g. val)."),
      # Model
      "model_name": _p(
          "model_name", section="Model", title="Model name", type="string", pattern=NAME_PATTERN,
          description="The champion pointer is models/<name>/champion.json."),
      "model_variant": _p(
          "model_variant", section="Model", title="Backbone (model_variant)", type="string",
          enum=list(SUPPORTED_VARIANTS), description="DeepLab backbone, as the original flag."),
      "atrous_rates": _p(
          "atrous_rates", section="Model", title="ASPP atrous rates", **int_list,
          description="e.g. [6, 12, 18] for xception_65 at output stride 16; empty for "
          "mobilenet_v2."),
      "output_stride": _p(
          "output_stride", section="Model", title="Output stride", type="integer",
          enum=list(OUTPUT_STRIDES), description="Ratio of input to feature-map size."),
      "decoder_output_stride": _p(
          "decoder_output_stride", section="Model", title="Decoder output stride", **int_list,
          description="e.g. [4] to enable the DeepLabv3+ decoder; empty for none."),
      "init_from": _p(
          "init_from", section="Model", title="Initialise from", type="string",
          enum=list(INIT_FROM),
          description="scratch, model_zoo (the checkpoint below) or champion (fine-tune the "
          "current champion's checkpoint)."),
      "tf_initial_checkpoint": _p(
          "tf_initial_checkpoint", section="Model", title="Model-zoo checkpoint",
          type=OPTIONAL_STRING,
          description="model.ckpt prefix inside the storage root; used with init_from=model_zoo."),
      "initialize_last_layer": _p(
          "initialize_last_layer", section="Model", title="Initialise last layer", type="boolean",
          description="Off when the checkpoint was trained on a different number of classes."),
      # Training
      "num_clones": _p(
          "num_clones", section="Training", title="Clones (GPUs)", type="integer", minimum=1,
          maximum=16, description="One model clone per GPU; on CPU, logical CPU devices."),
      "train_batch_size": _p(
          "train_batch_size", section="Training", title="Batch size", type="integer", minimum=1,
          description="Global batch; must divide evenly over the clones."),
      "training_number_of_steps": _p(
          "training_number_of_steps", section="Training", title="Training steps", type="integer",
          minimum=1, description="Number of optimiser steps."),
      "base_learning_rate": _p(
          "base_learning_rate", section="Training", title="Base learning rate", type="number",
          exclusiveMinimum=0, description="Poly schedule start value."),
      "train_crop_size": _p(
          "train_crop_size", section="Training", title="Crop size [h, w]", type="array",
          items={"type": "integer", "minimum": 1}, minItems=2, maxItems=2,
          description="Training crop, e.g. [513, 513]."),
      # Distributed training (the original's --num_replicas/--num_ps_tasks), kept together.
      "num_replicas": _p(
          "num_replicas", section="Training", title="Worker replicas", type="integer",
          minimum=1, maximum=64,
          description="Training processes (each with its num_clones clones and the whole batch "
          "per step), updating shared variables asynchronously; > 1 needs num_ps_tasks >= 1. "
          "local: processes on the worker; kubernetes: one GPU pod each (a JobSet)."),
      "num_ps_tasks": _p(
          "num_ps_tasks", section="Training", title="Parameter servers", type="integer",
          minimum=0, maximum=32,
          description="Parameter-server tasks holding the variables (0 for one replica)."),
      "extra_train_flags": _p(
          "extra_train_flags", section="Training", title="Other train flags", type="object",
          description="Any other train.py flag, e.g. {\"fine_tune_batch_norm\": false}."),
      # Gate
      "min_miou": _p(
          "min_miou", section="Gate", title="Minimum mIoU", type="number", minimum=0, maximum=1,
          description="Export and promote only at or above this mIoU."),
      "miou_tolerance": _p(
          "miou_tolerance", section="Gate", title="Tolerance vs champion", type="number",
          minimum=0, maximum=1,
          description="With a champion: the 95% interval of ΔmIoU (candidate − champion, "
          "both on this run's split) must have its lower bound >= −tolerance (mode not_worse). "
          "Against a champion not evaluated here: mIoU >= its recorded mIoU − tolerance."),
      "gate_mode": _p(
          "gate_mode", section="Gate", title="Gate mode", type="string", enum=list(GATE_MODES),
          description="not_worse: the interval's lower bound >= −tolerance; "
          "significantly_better: the lower bound > 0."),
      "max_class_iou_drop": _p(
          "max_class_iou_drop", section="Gate", title="Largest per-class IoU drop",
          type="number", minimum=0, maximum=1,
          description="Refuse a candidate that loses more than this IoU on any class against "
          "the champion on this run's split."),
      "drift_factor": _p(
          "drift_factor", section="Gate", title="Drift warning factor", type="number",
          exclusiveMinimum=1,
          description="The drift report (runs/<run_id>/drift.md) warns, and the gate's reason "
          "says so, when a class's pixel share, a split's size or the median image area "
          "changes by more than this factor against the champion's dataset."),
      "approval": _p(
          "approval", section="Gate", title="Approval", type="string", enum=list(APPROVALS),
          description="auto: the gate decides; human: a person approves or rejects a model "
          "that passed the gate (Airflow's Required actions), after reading the comparison."),
      "approval_timeout_minutes": _p(
          "approval_timeout_minutes", section="Gate", title="Approval timeout (minutes)",
          type="number", exclusiveMinimum=0,
          description="Without an answer in this time the champion stays."),
      # Export
      "export_formats": _p(
          "export_formats", section="Export", title="Export formats", type="array",
          items={"type": "string", "enum": list(EXPORT_FORMATS)}, minItems=1, uniqueItems=True,
          description="What the export writes: frozen (always), saved_model, tflite (float32), "
          "tflite_float16, tflite_int8 (calibrated on the train split), onnx, tflite_mobile "
          "(fixed-size normalised input to logits, for apps). Every device "
          "format is scored on the evaluation split against the frozen graph; a quantized one "
          "losing more than 0.01 mIoU fails the export (docs/export.md)."),
      # Runtime
      "launcher": _p(
          "launcher", section="Runtime", title="Launcher", type="string", enum=list(LAUNCHERS),
          description="local: a process on the worker; kubernetes: a pod on a GPU node."),
      "force": _p(
          "force", section="Runtime", title="Force training", type="boolean",
          description="Train even when data and config equal the champion's."),
  }
