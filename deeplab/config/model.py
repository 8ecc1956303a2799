"""ModelConfig: the original common.py model flags, each declared once with its help text."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab.config import dense_prediction_cell
from deeplab.config.fields import coerce_tuples, setting
from deeplab.errors import ConfigError

SUPPORTED_VARIANTS = (
    "mobilenet_v2",
    "mobilenet_v3_large_seg",
    "mobilenet_v3_small_seg",
    "xception_41",
    "xception_65",
    "xception_71",
    "resnet_v1_18",
    "resnet_v1_18_beta",
    "resnet_v1_50",
    "resnet_v1_50_beta",
    "resnet_v1_101",
    "resnet_v1_101_beta",
    "nas_pnasnet",
    "nas_hnasnet",
)
# Variants whose every conv goes through deeplab/core/quantize.py (quantization-aware training).
QUANTIZABLE_VARIANTS = ("mobilenet_v2",)
# The plain (non-beta) ResNets were trained on mean-subtracted pixels, the rest on [-1, 1].
MEAN_SUBTRACTED_VARIANTS = ("resnet_v1_18", "resnet_v1_50", "resnet_v1_101")
MERGE_METHODS = ("max", "avg")
OUTPUT_STRIDES = (4, 8, 16, 32)
# Output strides each NAS backbone's cell path can end at (nas_network.py): PNASNet's path
# follows the stride; Auto-DeepLab's searched path always ends at 8 (without the ImageNet
# classification head, which can stride or dilate it to 16 or 32).
NAS_OUTPUT_STRIDES = {"nas_pnasnet": (8, 16, 32), "nas_hnasnet": (8,)}
NAS_HEAD_OUTPUT_STRIDES = {"nas_pnasnet": (8, 16, 32), "nas_hnasnet": (8, 16, 32)}

# The original feature_extractor._MEAN_RGB; used only to pad images (zero after normalisation).
MEAN_RGB = (123.15, 115.90, 103.06)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Model architecture and input resizing (the original common.py flags)."""

  model_variant: str = setting("mobilenet_v2", "DeepLab model variant.",
                               choices=SUPPORTED_VARIANTS)
  # None until the dataset's manifest.json is read (the trainer fills it in).
  num_classes: Optional[int] = setting(None, "Number of classes (from the dataset).",
                                       kind="integer", flag=False)
  atrous_rates: Optional[Tuple[int, ...]] = setting(
      None, "Atrous rates for ASPP (e.g. 6 12 18 at OS 16).", kind="multi_integer")
  output_stride: int = setting(16, "Ratio of input to output spatial resolution.")
  decoder_output_stride: Optional[Tuple[int, ...]] = setting(
      None, "Decoder output strides, descending.", kind="multi_integer")
  multi_grid: Optional[Tuple[int, ...]] = setting(
      None, "Multi-grid rates for the last ResNet block.", kind="multi_integer")
  depth_multiplier: float = setting(1.0, "MobileNet depth multiplier.")
  divisible_by: Optional[int] = setting(None, "MobileNet channel rounding.", kind="integer")
  add_image_level_feature: bool = setting(True, "Add image level feature.")
  image_pooling_crop_size: Optional[Tuple[int, int]] = setting(
      None, "Image pooling crop size [height, width].", kind="list")
  image_pooling_stride: Tuple[int, int] = setting(
      (1, 1), "Image pooling stride [height, width].", kind="list")
  aspp_with_batch_norm: bool = setting(True, "Use batch norm in ASPP.")
  aspp_with_separable_conv: bool = setting(True, "Use separable convs in ASPP.")
  aspp_with_concat_projection: bool = setting(True, "ASPP with concat projection.")
  aspp_with_squeeze_and_excitation: bool = setting(
      False, "ASPP with squeeze and excitation.")
  aspp_convs_filters: int = setting(256, "ASPP convolution filters.")
  decoder_use_separable_conv: bool = setting(True, "Use separable convs in the decoder.")
  decoder_use_sum_merge: bool = setting(False, "Decoder uses simply sum merge.")
  decoder_filters: int = setting(256, "Decoder filters.")
  decoder_output_is_logits: bool = setting(False, "Use decoder output as logits or not.")
  image_se_uses_qsigmoid: bool = setting(False, "Use q-sigmoid.")
  logits_kernel_size: int = setting(1, "Kernel size of the logits conv.")
  merge_method: str = setting("max", "Image-pyramid merge method.", choices=MERGE_METHODS)
  prediction_with_upsampled_logits: bool = setting(True, "Upsample logits before argmax.")
  dense_prediction_cell_json: str = setting(
      "", "A JSON file that specifies the dense prediction cell.", kind="string", path=True)
  nas_stem_output_num_conv_filters: int = setting(
      20, "Number of filters of the stem output tensor in NAS models.")
  nas_use_classification_head: bool = setting(
      False, "Use image classification head for NAS model variants.")
  nas_remove_os32_stride: bool = setting(
      False, "Remove the stride in the output stride 32 branch.")
  use_bounded_activation: bool = setting(
      False, "Whether or not to use bounded activations. Bounded activations better lend "
      "themselves to quantized inference.")
  quantize_delay_step: int = setting(
      -1, "Steps to start quantized training (fake-quant ops from this step on; eval, vis "
      "and export then build the quantized graph). If < 0, will not quantize model.")
  image_pyramid: Optional[Tuple[float, ...]] = setting(
      None, "Input scales for multi-scale features.", kind="multi_float")
  batch_norm_decay: float = setting(0.9997, "Batch norm decay of the DeepLab head.")
  # Not in the original (it fixes the backbone's decay per family): None keeps those values.
  backbone_batch_norm_decay: Optional[float] = setting(
      None, "Backbone batch-norm decay (default: the original's per-family value). Lower it "
      "(e.g. 0.9) for short runs from scratch.", kind="float")
  label_weights: Optional[Tuple[float, ...]] = setting(
      None, "Per-class loss weights (one per class).", kind="multi_float")
  min_resize_value: Optional[int] = setting(
      None, "Desired size of the smaller image side.", kind="integer")
  max_resize_value: Optional[int] = setting(
      None, "Maximum allowed size of the larger side.", kind="integer")
  resize_factor: Optional[int] = setting(
      None, "Resized dimensions are multiple of factor plus one.", kind="integer")
  keep_aspect_ratio: bool = setting(True, "Keep the aspect ratio when resizing.")

  def __post_init__(self):
    coerce_tuples(self, {
        "atrous_rates": int, "decoder_output_stride": int, "multi_grid": int,
        "image_pooling_crop_size": int, "image_pooling_stride": int,
        "image_pyramid": float, "label_weights": float})
    if self.image_pooling_stride is None:
      object.__setattr__(self, "image_pooling_stride", (1, 1))

  def problems(self) -> list:
    """Every invalid setting, each with its fix; [] when valid. num_classes may be None."""
    out = []
    if self.model_variant not in SUPPORTED_VARIANTS:
      out.append(f"model_variant {self.model_variant!r} is not supported; "
                 f"choose one of {', '.join(SUPPORTED_VARIANTS)}")
    if self.num_classes is not None and (not isinstance(self.num_classes, int)
                                         or self.num_classes < 2):
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
    units = multi_grid_units(self.model_variant)
    if self.multi_grid and len(self.multi_grid) != units:
      example = ",".join(str(2 ** i) for i in range(units))
      out.append(f"multi_grid for {self.model_variant} needs {units} values (one per unit "
                 f"of the last block, e.g. {example}), got {list(self.multi_grid)}")
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
    if (self.label_weights and self.num_classes is not None
        and len(self.label_weights) not in (1, self.num_classes)):
      out.append(f"label_weights has {len(self.label_weights)} values but the dataset has "
                 f"{self.num_classes} classes; give one weight per class")
    out += self._head_problems()
    out += self.quantization_problems()
    out += self._nas_problems()
    bbd = self.backbone_batch_norm_decay
    if bbd is not None and not 0 < bbd < 1:
      out.append(f"backbone_batch_norm_decay must be in (0, 1), got {bbd}")
    if self.image_pyramid and any(s <= 0 for s in self.image_pyramid):
      out.append(f"image_pyramid scales must be > 0, got {list(self.image_pyramid)}")
    for name in ("min_resize_value", "max_resize_value", "resize_factor", "divisible_by"):
      value = getattr(self, name)
      if value is not None and value < 1:
        out.append(f"{name} must be >= 1 when given, got {value}")
    return out


  def quantization_problems(self) -> list:
    """Why quantize_delay_step cannot be honoured for this model ([] when it can)."""
    if self.quantize_delay_step < 0:
      return []
    if self.model_variant not in QUANTIZABLE_VARIANTS:
      return [f"quantize_delay_step {self.quantize_delay_step} (quantization-aware training) "
              f"supports model_variant {', '.join(QUANTIZABLE_VARIANTS)}, not "
              f"{self.model_variant}; change the variant or leave quantize_delay_step at -1"]
    if self.dense_prediction_cell_json:
      return ["quantize_delay_step >= 0 (quantization-aware training) does not support the "
              "dense prediction cell (dense_prediction_cell_json); use ASPP or leave "
              "quantize_delay_step at -1"]
    return []

  def input_file_problems(self) -> list:
    """Problems of the files the model reads (the DPC cell), for the job to check before any
    work. Not part of problems(): the Airflow side validates configurations it must not read
    files for."""
    if not self.dense_prediction_cell_json:
      return []
    try:
      dense_prediction_cell.load(self.dense_prediction_cell_json)
    except ConfigError as e:
      return [str(e)]
    return []

  def _nas_problems(self) -> list:
    """Output strides the NAS backbones cannot produce (the original fails inside the graph)."""
    variant = self.model_variant
    if variant not in NAS_OUTPUT_STRIDES:
      return []
    out = []
    allowed = (NAS_HEAD_OUTPUT_STRIDES if self.nas_use_classification_head
               else NAS_OUTPUT_STRIDES)[variant]
    if self.output_stride not in allowed:
      why = (" (its searched backbone ends at stride 8)" if variant == "nas_hnasnet"
             and not self.nas_use_classification_head else "")
      out.append(f"{variant} runs at output_stride {' or '.join(map(str, allowed))}{why}; "
                 f"got {self.output_stride}: set --output_stride={allowed[0]}")
    if (variant == "nas_pnasnet" and self.nas_remove_os32_stride and self.output_stride == 32
        and not self.nas_use_classification_head):
      out.append("nas_remove_os32_stride keeps nas_pnasnet's features at stride 16, so "
                 "output_stride 32 would mis-size the head; use --output_stride=16")
    if self.nas_stem_output_num_conv_filters < 1:
      out.append("nas_stem_output_num_conv_filters must be >= 1, got "
                 f"{self.nas_stem_output_num_conv_filters}")
    return out

  def _head_problems(self) -> list:
    """Combinations of the MobileNet-v3 head options the original builds wrongly or not at all."""
    out = []
    if self.decoder_output_is_logits and not self.decoder_output_stride:
      out.append("decoder_output_is_logits needs a decoder: set decoder_output_stride "
                 "(the model zoo's MobileNet-v3 uses 8)")
    if (self.decoder_output_is_logits and self.num_classes is not None
        and self.decoder_filters != self.num_classes):
      out.append(f"decoder_output_is_logits makes the decoder's last conv the logits, so "
                 f"decoder_filters ({self.decoder_filters}) must equal the dataset's "
                 f"{self.num_classes} classes; set --decoder_filters={self.num_classes}")
    if self.decoder_use_sum_merge and not self.decoder_output_stride:
      out.append("decoder_use_sum_merge needs a decoder: set decoder_output_stride")
    for name in ("aspp_convs_filters", "decoder_filters"):
      if getattr(self, name) < 1:
        out.append(f"{name} must be >= 1, got {getattr(self, name)}")
    return out


def default_atrous_rates(variant: str, output_stride: int) -> Optional[Tuple[int, ...]]:
  """The original's recommended rates: none for MobileNet, 6/12/18 at OS16, 12/24/36 at OS8."""
  if variant.startswith("mobilenet"):
    return None
  return {16: (6, 12, 18), 8: (12, 24, 36)}.get(output_stride)


def multi_grid_units(variant: str) -> int:
  """Units in the last block that multi_grid scales: 2 for ResNet-18, else 3."""
  return 2 if variant.startswith("resnet_v1_18") else 3


def mean_pixel(model_variant: Optional[str] = None) -> Tuple[float, float, float]:
  """Padding value that normalises to 0: the ImageNet mean for the mean-subtracted variants.

  The original returns 127.5 for resnet_v1_18 although it subtracts the mean there too;
  here the padding follows the preprocessing for every variant.
  """
  if model_variant is None or model_variant in MEAN_SUBTRACTED_VARIANTS:
    return MEAN_RGB
  return (127.5, 127.5, 127.5)
