"""Run configuration: frozen dataclasses, validation and JSON I/O.

Pure Python (no TensorFlow) so that Airflow operators can validate a run's configuration
at trigger time. Field names and defaults follow the original DeepLab flags (common.py and
train.py); see ../shared/reference/deeplab.md §2.1 and §3.1.

Resolution order (STYLE.md §5): defaults -> file -> explicit overrides -> validate() -> freeze
-> write config.json. Every later stage reads that file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping, Optional, Sequence, Tuple

from deeplab.errors import UserInputError

SUPPORTED_VARIANTS = (
    "mobilenet_v2",
    "xception_41",
    "xception_65",
    "xception_71",
    "resnet_v1_50_beta",
    "resnet_v1_101_beta",
)
OPTIMIZERS = ("momentum", "adam")
LEARNING_POLICIES = ("poly", "step", "cosine", "multi_steps")
BURNIN_TYPES = ("none", "linear")
MERGE_METHODS = ("max", "avg")
OUTPUT_STRIDES = (4, 8, 16, 32)

CONFIG_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ConfigError(UserInputError):
  """One or more configuration values are invalid; the message lists every problem."""


def _as_tuple(value: Any, cast=int) -> Optional[tuple]:
  """Accepts None, a scalar, a sequence or a comma string ('513,513')."""
  if value is None or value == "" or value == []:
    return None
  if isinstance(value, str):
    value = [v for v in value.replace(" ", "").split(",") if v]
  if not isinstance(value, (list, tuple)):
    value = [value]
  return tuple(cast(v) for v in value)


def check_name(value: str, what: str) -> str:
  """Rejects names that could escape a folder or reach a shell ('..', '/', ';', …)."""
  if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value:
    raise ConfigError(
        f"{what} {value!r} is not a safe name: use 1-128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit, without '..'")
  return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Model architecture and input resizing (the original common.py flags)."""

  model_variant: str = "mobilenet_v2"
  num_classes: int = 21
  atrous_rates: Optional[Tuple[int, ...]] = None
  output_stride: int = 16
  decoder_output_stride: Optional[Tuple[int, ...]] = None
  multi_grid: Optional[Tuple[int, ...]] = None
  depth_multiplier: float = 1.0
  divisible_by: Optional[int] = None
  add_image_level_feature: bool = True
  image_pooling_crop_size: Optional[Tuple[int, int]] = None
  image_pooling_stride: Tuple[int, int] = (1, 1)
  aspp_with_batch_norm: bool = True
  aspp_with_separable_conv: bool = True
  aspp_with_concat_projection: bool = True
  aspp_convs_filters: int = 256
  decoder_use_separable_conv: bool = True
  decoder_filters: int = 256
  logits_kernel_size: int = 1
  merge_method: str = "max"
  prediction_with_upsampled_logits: bool = True
  use_bounded_activation: bool = False
  image_pyramid: Optional[Tuple[float, ...]] = None
  batch_norm_decay: float = 0.9997
  # Not in the original (it fixes the backbone's decay per family): None keeps those values.
  backbone_batch_norm_decay: Optional[float] = None
  label_weights: Optional[Tuple[float, ...]] = None
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  keep_aspect_ratio: bool = True

  _TUPLES = {
      "atrous_rates": int, "decoder_output_stride": int, "multi_grid": int,
      "image_pooling_crop_size": int, "image_pooling_stride": int,
      "image_pyramid": float, "label_weights": float,
  }

  def __post_init__(self):
    for name, cast in self._TUPLES.items():
      object.__setattr__(self, name, _as_tuple(getattr(self, name), cast))
    if self.image_pooling_stride is None:
      object.__setattr__(self, "image_pooling_stride", (1, 1))

  def problems(self) -> list:
    out = []
    if self.model_variant not in SUPPORTED_VARIANTS:
      out.append(f"model_variant {self.model_variant!r} is not supported; "
                 f"choose one of {', '.join(SUPPORTED_VARIANTS)}")
    if not isinstance(self.num_classes, int) or self.num_classes < 2:
      out.append(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
    if self.output_stride not in OUTPUT_STRIDES:
      out.append(f"output_stride must be one of {OUTPUT_STRIDES}, got {self.output_stride!r}")
    if self.atrous_rates and any(r < 1 for r in self.atrous_rates):
      out.append(f"atrous_rates must be positive integers, got {list(self.atrous_rates)}")
    if self.decoder_output_stride:
      dos = list(self.decoder_output_stride)
      if dos != sorted(dos, reverse=True):
        out.append(f"decoder_output_stride must be sorted in descending order, got {dos}")
      if any(d not in (4, 8, 16) or d >= self.output_stride for d in dos):
        out.append(f"decoder_output_stride {dos} must be in (4, 8, 16) and below "
                   f"output_stride {self.output_stride}")
    if self.multi_grid and len(self.multi_grid) != 3:
      out.append(f"multi_grid needs 3 values (e.g. 1,2,4), got {list(self.multi_grid)}")
    if self.depth_multiplier <= 0:
      out.append(f"depth_multiplier must be > 0, got {self.depth_multiplier}")
    if self.merge_method not in MERGE_METHODS:
      out.append(f"merge_method must be one of {MERGE_METHODS}, got {self.merge_method!r}")
    if self.logits_kernel_size != 1 and (self.aspp_with_batch_norm or not self.atrous_rates):
      out.append("logits_kernel_size must be 1 when aspp_with_batch_norm is set or "
                 "atrous_rates is empty")
    if self.image_pooling_crop_size and len(self.image_pooling_crop_size) != 2:
      out.append("image_pooling_crop_size must be a 'height,width' pair")
    if len(self.image_pooling_stride) != 2:
      out.append("image_pooling_stride must be a 'height,width' pair")
    if self.label_weights and len(self.label_weights) not in (1, self.num_classes):
      out.append(f"label_weights has {len(self.label_weights)} values but the dataset has "
                 f"{self.num_classes} classes; give one weight per class")
    bbd = self.backbone_batch_norm_decay
    if bbd is not None and not 0 < bbd < 1:
      out.append(f"backbone_batch_norm_decay must be in (0, 1), got {bbd}")
    if self.image_pyramid and any(s <= 0 for s in self.image_pyramid):
      out.append(f"image_pyramid scales must be > 0, got {list(self.image_pyramid)}")
    return out


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Training settings (the original train.py flags) plus the resolved model."""

  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  dataset: str = "pascal_voc_seg"
  train_split: str = "train"
  dataset_dir: str = ""
  train_logdir: str = ""
  # Multi-GPU.
  num_clones: int = 1
  clone_on_cpu: bool = False
  num_replicas: int = 1
  num_ps_tasks: int = 0
  # Logging and checkpoints.
  log_steps: int = 10
  save_interval_secs: int = 1200
  save_interval_steps: int = 0
  save_summaries_secs: int = 600
  save_summaries_images: bool = False
  max_to_keep: int = 5
  # Optimizer and learning rate.
  optimizer: str = "momentum"
  learning_policy: str = "poly"
  base_learning_rate: float = 0.0001
  decay_steps: float = 0.0
  end_learning_rate: float = 0.0
  learning_rate_decay_factor: float = 0.1
  learning_rate_decay_step: int = 2000
  learning_power: float = 0.9
  training_number_of_steps: int = 30000
  momentum: float = 0.9
  adam_learning_rate: float = 0.001
  adam_epsilon: float = 1e-08
  slow_start_step: int = 0
  slow_start_learning_rate: float = 1e-4
  slow_start_burnin_type: str = "none"
  boundaries: Optional[Tuple[int, ...]] = None
  boundary_learning_rates: Optional[Tuple[float, ...]] = None
  # Batch, regularisation, crop, fine-tuning.
  train_batch_size: int = 8
  weight_decay: float = 0.00004
  train_crop_size: Tuple[int, int] = (513, 513)
  last_layer_gradient_multiplier: float = 1.0
  upsample_logits: bool = True
  tf_initial_checkpoint: Optional[str] = None
  initialize_last_layer: bool = True
  last_layers_contain_logits_only: bool = False
  fine_tune_batch_norm: bool = True
  # Augmentation.
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  # Hard example mining.
  hard_example_mining_step: int = 0
  top_k_percent_pixels: float = 1.0
  seed: Optional[int] = None

  def __post_init__(self):
    if isinstance(self.model, Mapping):
      object.__setattr__(self, "model", model_config_from_dict(self.model))
    object.__setattr__(self, "train_crop_size", _as_tuple(self.train_crop_size, int))
    object.__setattr__(self, "boundaries", _as_tuple(self.boundaries, int))
    object.__setattr__(self, "boundary_learning_rates",
                       _as_tuple(self.boundary_learning_rates, float))

  @property
  def clone_batch_size(self) -> int:
    return self.train_batch_size // self.num_clones

  def problems(self) -> list:
    out = list(self.model.problems())
    if not isinstance(self.num_clones, int) or self.num_clones < 1:
      out.append(f"num_clones must be an integer >= 1 (one clone per GPU), got {self.num_clones!r}")
    elif not isinstance(self.train_batch_size, int) or self.train_batch_size < 1:
      out.append(f"train_batch_size must be an integer >= 1, got {self.train_batch_size!r}")
    elif self.train_batch_size % self.num_clones:
      out.append(f"train_batch_size {self.train_batch_size} does not divide evenly over "
                 f"num_clones {self.num_clones}; use a multiple of {self.num_clones}")
    if self.num_replicas != 1 or self.num_ps_tasks != 0:
      out.append("num_replicas > 1 and num_ps_tasks > 0 are not supported: run one "
                 "multi-clone worker per training job")
    crop = self.train_crop_size
    if not crop or len(crop) != 2 or any(c < 1 for c in crop):
      out.append(f"train_crop_size must be a pair of positive integers like 513,513, got {crop!r}")
    if self.training_number_of_steps < 1:
      out.append(f"training_number_of_steps must be >= 1, got {self.training_number_of_steps}")
    if self.optimizer not in OPTIMIZERS:
      out.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
    if self.learning_policy not in LEARNING_POLICIES:
      out.append(f"learning_policy must be one of {LEARNING_POLICIES}, got {self.learning_policy!r}")
    if self.learning_policy == "multi_steps":
      b, r = self.boundaries or (), self.boundary_learning_rates or ()
      if not b or len(r) != len(b) + 1:
        out.append("learning_policy multi_steps needs boundaries and boundary_learning_rates "
                   "with one more rate than boundaries")
    if self.slow_start_burnin_type not in BURNIN_TYPES:
      out.append(f"slow_start_burnin_type must be one of {BURNIN_TYPES}")
    if self.base_learning_rate <= 0:
      out.append(f"base_learning_rate must be > 0, got {self.base_learning_rate}")
    if not 0 < self.top_k_percent_pixels <= 1:
      out.append(f"top_k_percent_pixels must be in (0, 1], got {self.top_k_percent_pixels}")
    if self.min_scale_factor <= 0 or self.max_scale_factor < self.min_scale_factor:
      out.append(f"scale factors must satisfy 0 < min_scale_factor <= max_scale_factor, got "
                 f"{self.min_scale_factor}, {self.max_scale_factor}")
    if self.log_steps < 1:
      out.append(f"log_steps must be >= 1, got {self.log_steps}")
    return out

  def validate(self) -> "TrainConfig":
    probs = self.problems()
    if probs:
      raise ConfigError("invalid training configuration:\n  - " + "\n  - ".join(probs))
    return self

  def to_dict(self) -> dict:
    return to_dict(self)


def _from_dict(cls, data: Mapping[str, Any], where: str):
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names)
  if unknown:
    raise ConfigError(f"unknown {where} setting(s) {unknown}; known settings: {sorted(names)}")
  try:
    return cls(**dict(data))
  except (TypeError, ValueError) as e:
    raise ConfigError(f"invalid {where} setting: {e}") from e


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
  return _from_dict(ModelConfig, data, "model")


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
  data = dict(data)
  data.pop("config_version", None)
  return _from_dict(TrainConfig, data, "training")


def to_dict(obj) -> dict:
  """JSON-ready dict (tuples become lists)."""
  def conv(v):
    if dataclasses.is_dataclass(v):
      return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (tuple, list)):
      return [conv(x) for x in v]
    return v
  out = conv(obj)
  if isinstance(obj, TrainConfig):
    out["config_version"] = CONFIG_VERSION
  return out


def replace(cfg, **overrides):
  """dataclasses.replace that re-runs the field coercions."""
  return dataclasses.replace(cfg, **overrides)


def dumps(cfg) -> str:
  return json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n"


def load_train_config(text: str, source: str = "config.json") -> TrainConfig:
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise ConfigError(f"{source} is not valid JSON ({e}); re-run training to rewrite it") from e
  return train_config_from_dict(data)


def default_atrous_rates(variant: str, output_stride: int) -> Optional[Tuple[int, ...]]:
  """The original's recommended rates: none for MobileNet, 6/12/18 at OS16, 12/24/36 at OS8."""
  if variant.startswith("mobilenet"):
    return None
  return {16: (6, 12, 18), 8: (12, 24, 36)}.get(output_stride)


def parse_int_list(value: Sequence | str | None) -> Optional[Tuple[int, ...]]:
  return _as_tuple(value, int)


# The original feature_extractor._MEAN_RGB; used only to pad images (zero after normalisation).
MEAN_RGB = (123.15, 115.90, 103.06)


def mean_pixel(model_variant: Optional[str] = None) -> Tuple[float, float, float]:
  """Padding value for a variant: ImageNet mean for resnet_v1_50/101 (non-beta) or None."""
  if model_variant in (None, "resnet_v1_50", "resnet_v1_101"):
    return MEAN_RGB
  return (127.5, 127.5, 127.5)
