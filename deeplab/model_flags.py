"""absl definitions of the original common.py model flags, and their conversion.

Called from each command's module so that `python -m deeplab <command>` accepts the same
model flags as the original scripts. Flags are read only in `main()` (STYLE.md §6):
`model_config_from_flags` turns them into a ModelConfig at once.
"""

from absl import flags

from deeplab.config import MERGE_METHODS, SUPPORTED_VARIANTS, ModelConfig


def define_model_flags() -> None:
  """Defines the model flags once (safe to call from several modules)."""
  if "model_variant" in flags.FLAGS:
    return
  f = flags
  f.DEFINE_enum("model_variant", "mobilenet_v2", list(SUPPORTED_VARIANTS), "DeepLab model variant.")
  f.DEFINE_multi_integer("atrous_rates", None, "Atrous rates for ASPP (e.g. 6 12 18 at OS 16).")
  f.DEFINE_integer("output_stride", 16, "Ratio of input to output spatial resolution.")
  f.DEFINE_multi_integer("decoder_output_stride", None, "Decoder output strides, descending.")
  f.DEFINE_multi_integer("multi_grid", None, "Multi-grid rates for the last ResNet block.")
  f.DEFINE_float("depth_multiplier", 1.0, "MobileNet depth multiplier.")
  f.DEFINE_integer("divisible_by", None, "MobileNet channel rounding.")
  f.DEFINE_boolean("add_image_level_feature", True, "Add the image-pooling ASPP branch.")
  f.DEFINE_list("image_pooling_crop_size", None, "Image pooling crop size [height, width].")
  f.DEFINE_list("image_pooling_stride", "1,1", "Image pooling stride [height, width].")
  f.DEFINE_boolean("aspp_with_batch_norm", True, "Use batch norm in ASPP.")
  f.DEFINE_boolean("aspp_with_separable_conv", True, "Use separable convs in ASPP.")
  f.DEFINE_boolean("aspp_with_concat_projection", True, "Project the concatenated ASPP branches.")
  f.DEFINE_integer("aspp_convs_filters", 256, "ASPP conv filters.")
  f.DEFINE_boolean("decoder_use_separable_conv", True, "Use separable convs in the decoder.")
  f.DEFINE_integer("decoder_filters", 256, "Decoder conv filters.")
  f.DEFINE_integer("logits_kernel_size", 1, "Kernel size of the logits conv.")
  f.DEFINE_enum("merge_method", "max", list(MERGE_METHODS), "Image-pyramid merge method.")
  f.DEFINE_boolean("prediction_with_upsampled_logits", True, "Upsample logits before argmax.")
  f.DEFINE_boolean("use_bounded_activation", False, "Use relu6 instead of relu.")
  f.DEFINE_multi_float("image_pyramid", None, "Input scales for multi-scale features.")
  f.DEFINE_float("batch_norm_decay", 0.9997, "Batch norm decay of the DeepLab head.")
  f.DEFINE_float("backbone_batch_norm_decay", None,
                 "Backbone batch-norm decay (default: the original's per-family value). Lower it "
                 "(e.g. 0.9) for short runs from scratch.")
  f.DEFINE_multi_float("label_weights", None, "Per-class loss weights (one per class).")
  f.DEFINE_integer("min_resize_value", None, "Desired size of the smaller image side.")
  f.DEFINE_integer("max_resize_value", None, "Maximum allowed size of the larger side.")
  f.DEFINE_integer("resize_factor", None, "Resized dimensions are multiple of factor plus one.")
  f.DEFINE_boolean("keep_aspect_ratio", True, "Keep the aspect ratio when resizing.")


def model_config_from_flags(fl, num_classes: int) -> ModelConfig:
  """Builds a ModelConfig from parsed flags and the dataset's class count."""
  return ModelConfig(
      model_variant=fl.model_variant,
      num_classes=num_classes,
      atrous_rates=fl.atrous_rates,
      output_stride=fl.output_stride,
      decoder_output_stride=fl.decoder_output_stride,
      multi_grid=fl.multi_grid,
      depth_multiplier=fl.depth_multiplier,
      divisible_by=fl.divisible_by,
      add_image_level_feature=fl.add_image_level_feature,
      image_pooling_crop_size=fl.image_pooling_crop_size,
      image_pooling_stride=fl.image_pooling_stride,
      aspp_with_batch_norm=fl.aspp_with_batch_norm,
      aspp_with_separable_conv=fl.aspp_with_separable_conv,
      aspp_with_concat_projection=fl.aspp_with_concat_projection,
      aspp_convs_filters=fl.aspp_convs_filters,
      decoder_use_separable_conv=fl.decoder_use_separable_conv,
      decoder_filters=fl.decoder_filters,
      logits_kernel_size=fl.logits_kernel_size,
      merge_method=fl.merge_method,
      prediction_with_upsampled_logits=fl.prediction_with_upsampled_logits,
      use_bounded_activation=fl.use_bounded_activation,
      image_pyramid=fl.image_pyramid,
      batch_norm_decay=fl.batch_norm_decay,
      backbone_batch_norm_decay=fl.backbone_batch_norm_decay,
      label_weights=fl.label_weights,
      min_resize_value=fl.min_resize_value,
      max_resize_value=fl.max_resize_value,
      resize_factor=fl.resize_factor,
      keep_aspect_ratio=fl.keep_aspect_ratio,
  )
