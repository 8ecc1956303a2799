"""Backbone dispatch: one entry point from ``model_variant`` to (features, end_points).

Mirrors the original ``research/deeplab/core/feature_extractor.py`` (reference §6.3):
the variable scope of each variant (``NAME_SCOPE``), its input normalisation, the arg
scope with DeepLab's batch-norm settings, and the low-level end points the v3+ decoder
reads (``DECODER_END_POINTS``, keyed by output stride).

Backbone modules are imported lazily, so a variant whose module is missing or broken
only fails when that variant is asked for.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Optional, Sequence

from deeplab.compat import slim, tf
from deeplab.config import MEAN_RGB, MEAN_SUBTRACTED_VARIANTS
from deeplab.errors import ConfigError

# The normalised image the backbone reads (after `preprocess`): the mobile form's input.
BACKBONE_INPUT = "backbone_input"
# Variant -> variable scope of the ImageNet / model-zoo checkpoints.
NAME_SCOPE: Dict[str, str] = {
    "mobilenet_v2": "MobilenetV2",
    "mobilenet_v3_large_seg": "MobilenetV3",
    "mobilenet_v3_small_seg": "MobilenetV3",
    "resnet_v1_18": "resnet_v1_18",
    "resnet_v1_18_beta": "resnet_v1_18",
    "resnet_v1_50": "resnet_v1_50",
    "resnet_v1_50_beta": "resnet_v1_50",
    "resnet_v1_101": "resnet_v1_101",
    "resnet_v1_101_beta": "resnet_v1_101",
    "xception_41": "xception_41",
    "xception_65": "xception_65",
    "xception_71": "xception_71",
    "nas_pnasnet": "pnasnet",
    "nas_hnasnet": "hnasnet",
}

_XCEPTION_OS4 = "entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"
_XCEPTION_OS8 = "entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise"
_XCEPTION_OS16 = "exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise"
_RESNET_OS4 = "block1/unit_2/bottleneck_v1/conv3"
_RESNET_OS8 = "block2/unit_3/bottleneck_v1/conv3"
# ResNet-18 feeds the decoder from the first unit's second conv (before the residual add).
_RESNET_18 = {os: [f"block{i}/unit_1/lite_bottleneck_v1/conv2"]
              for i, os in enumerate((4, 8, 16), 1)}

# Variant -> {decoder output stride: [end point names]}. As in the original, names are
# relative to the network scope; ``decoder_end_point_keys`` adds the scope where the
# backbone's end_points dict has it (every family except MobileNet).
DECODER_END_POINTS: Dict[str, Dict[int, List[str]]] = {
    "mobilenet_v2": {
        4: ["layer_4/depthwise_output"],
        8: ["layer_7/depthwise_output"],
        16: ["layer_14/depthwise_output"],
    },
    "mobilenet_v3_large_seg": {
        4: ["layer_4/depthwise_output"],
        8: ["layer_7/depthwise_output"],
        16: ["layer_13/depthwise_output"],
    },
    "mobilenet_v3_small_seg": {
        4: ["layer_2/depthwise_output"],
        8: ["layer_4/depthwise_output"],
        16: ["layer_9/depthwise_output"],
    },
    "resnet_v1_18": _RESNET_18,
    "resnet_v1_18_beta": _RESNET_18,
    "resnet_v1_50": {4: [_RESNET_OS4], 8: [_RESNET_OS8],
                     16: ["block3/unit_5/bottleneck_v1/conv3"]},
    "resnet_v1_50_beta": {4: [_RESNET_OS4], 8: [_RESNET_OS8],
                          16: ["block3/unit_5/bottleneck_v1/conv3"]},
    "resnet_v1_101": {4: [_RESNET_OS4], 8: [_RESNET_OS8],
                      16: ["block3/unit_22/bottleneck_v1/conv3"]},
    "resnet_v1_101_beta": {4: [_RESNET_OS4], 8: [_RESNET_OS8],
                           16: ["block3/unit_22/bottleneck_v1/conv3"]},
    "xception_41": {4: [_XCEPTION_OS4], 8: [_XCEPTION_OS8], 16: [_XCEPTION_OS16]},
    "xception_65": {4: [_XCEPTION_OS4], 8: [_XCEPTION_OS8], 16: [_XCEPTION_OS16]},
    "xception_71": {
        4: ["entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise"],
        8: ["entry_flow/block5/unit_1/xception_module/separable_conv2_pointwise"],
        16: [_XCEPTION_OS16],
    },
    # NAS end points are cell outputs, keyed without the network scope.
    "nas_pnasnet": {4: ["Stem"], 8: ["Cell_3"], 16: ["Cell_7"]},
    "nas_hnasnet": {4: ["Cell_2"], 8: ["Cell_5"], 16: ["Cell_7"]},
}

# Variant -> (module under deeplab.core, builder function name).
_NETWORKS = {
    "mobilenet_v2": ("mobilenet_v2", "mobilenet_v2"),
    "mobilenet_v3_large_seg": ("mobilenet_v3", "mobilenet_v3_large_seg"),
    "mobilenet_v3_small_seg": ("mobilenet_v3", "mobilenet_v3_small_seg"),
    "resnet_v1_18": ("resnet_v1_beta", "resnet_v1_18"),
    "resnet_v1_18_beta": ("resnet_v1_beta", "resnet_v1_18_beta"),
    "resnet_v1_50": ("resnet_v1_beta", "resnet_v1_50"),
    "resnet_v1_50_beta": ("resnet_v1_beta", "resnet_v1_50_beta"),
    "resnet_v1_101": ("resnet_v1_beta", "resnet_v1_101"),
    "resnet_v1_101_beta": ("resnet_v1_beta", "resnet_v1_101_beta"),
    "xception_41": ("xception", "xception_41"),
    "xception_65": ("xception", "xception_65"),
    "xception_71": ("xception", "xception_71"),
    "nas_pnasnet": ("nas_network", "pnasnet"),
    "nas_hnasnet": ("nas_network", "hnasnet"),
}


def preprocess_zero_mean_unit_range(inputs, dtype=tf.float32):
  """Maps [0, 255] pixels to [-1, 1]: (2/255)·x − 1."""
  return tf.cast((2.0 / 255.0) * tf.cast(inputs, tf.float32) - 1.0, dtype)


def preprocess_subtract_imagenet_mean(inputs, dtype=tf.float32):
  """Subtracts the ImageNet mean RGB (0 for channels beyond the third); no std division."""
  inputs = tf.cast(inputs, tf.float32)
  mean = tf.reshape(tf.constant(MEAN_RGB, tf.float32), [1, 1, 1, 3])
  extra = tf.shape(inputs)[-1] - 3
  mean = tf.concat([mean, tf.zeros(tf.stack([1, 1, 1, extra]), tf.float32)], axis=3)
  return tf.cast(inputs - mean, dtype)


# The non-beta ResNets were trained on mean-subtracted inputs; every other variant on [-1, 1].
PREPROCESS_FN: Dict[str, Callable] = {
    v: (preprocess_subtract_imagenet_mean if v in MEAN_SUBTRACTED_VARIANTS
        else preprocess_zero_mean_unit_range)
    for v in NAME_SCOPE
}


def _check_variant(model_variant: Optional[str]) -> str:
  if model_variant not in NAME_SCOPE:
    raise ConfigError(f"unknown model_variant {model_variant!r}; supported variants: "
                     f"{', '.join(sorted(NAME_SCOPE))}")
  return model_variant


def preprocess(images, model_variant: str, dtype=tf.float32):
  """Applies the input normalisation ``model_variant`` was trained with."""
  return PREPROCESS_FN[_check_variant(model_variant)](images, dtype)


def decoder_end_point_keys(model_variant: str, output_stride: int) -> List[str]:
  """Keys of the backbone's end_points dict that feed the decoder at ``output_stride``.

  Raises:
    ValueError: for an unknown variant or a stride without decoder end points.
  """
  by_stride = DECODER_END_POINTS[_check_variant(model_variant)]
  if output_stride not in by_stride:
    raise ConfigError(f"{model_variant} has no decoder end point at output stride "
                     f"{output_stride}; use one of {sorted(by_stride)}")
  names = by_stride[output_stride]
  if model_variant.startswith(("mobilenet", "nas")):
    return list(names)
  return [f"{NAME_SCOPE[model_variant]}/{name}" for name in names]


def _builder(model_variant: str):
  module_name, fn_name = _NETWORKS[model_variant]
  module = importlib.import_module(f"deeplab.core.{module_name}")
  try:
    return module, getattr(module, fn_name)
  except AttributeError:
    raise ValueError(f"model_variant {model_variant!r} needs deeplab.core.{module_name}."
                     f"{fn_name}, which does not exist") from None


def extract_features(images, output_stride: int = 8, multi_grid: Optional[Sequence[int]] = None,
                     depth_multiplier: float = 1.0, divisible_by: Optional[int] = None,
                     final_endpoint: Optional[str] = None, model_variant: Optional[str] = None,
                     weight_decay: float = 0.0001, reuse=None, is_training: bool = False,
                     fine_tune_batch_norm: bool = False, regularize_depthwise: bool = False,
                     preprocess_images: bool = True, use_bounded_activation: bool = False,
                     batch_norm_decay: Optional[float] = None,
                     nas_architecture_options: Optional[Dict] = None,
                     nas_training_hyper_parameters: Optional[Dict] = None):
  """Extracts backbone features for ``model_variant``.

  Batch norm uses batch statistics (and updates its moving averages) only when
  ``is_training and fine_tune_batch_norm``, as in the original.

  Args:
    images: [batch, height, width, 3] tensor of raw pixels in [0, 255] (or already
      normalised when ``preprocess_images`` is False).
    output_stride: Input/feature resolution ratio (atrous convolution beyond it).
    multi_grid: Atrous-rate multipliers of the last ResNet/Xception block.
    depth_multiplier: MobileNet channel multiplier.
    divisible_by: MobileNet channel rounding (None: 8 at multiplier 1, else 1).
    final_endpoint: MobileNet end point to stop at (default 'layer_18').
    model_variant: One of ``NAME_SCOPE``.
    weight_decay: L2 weight decay of the backbone weights.
    reuse: Variable reuse (True / None / tf.AUTO_REUSE).
    is_training: Training graph or not.
    fine_tune_batch_norm: Train the batch-norm statistics and parameters.
    regularize_depthwise: L2 on Xception's depthwise weights.
    preprocess_images: Apply the variant's input normalisation.
    use_bounded_activation: ReLU6 in Xception (for quantisation).
    batch_norm_decay: Backbone batch-norm moving-average decay; None keeps the original's
      per-family value (ResNet 0.95, Xception 0.9997, MobileNet-v2 0.997). Short runs from
      scratch need a lower one, or the moving averages still hold their initial values.
    nas_architecture_options: NAS variants: {'nas_stem_output_num_conv_filters',
      'nas_use_classification_head', 'nas_remove_os32_stride'} (the original's dict).
    nas_training_hyper_parameters: NAS variants when training: {'drop_path_keep_prob',
      'total_training_steps'}; None keeps every path.

  Returns:
    (features, end_points): features [batch, h/OS, w/OS, channels]; end_points maps
    names (e.g. 'layer_4/depthwise_output', 'xception_65/entry_flow/…') to tensors.

  Raises:
    ValueError: for an unknown model variant.
  """
  _check_variant(model_variant)
  module, network = _builder(model_variant)
  bn_training = bool(is_training and fine_tune_batch_norm)
  scope = NAME_SCOPE[model_variant]
  if preprocess_images:
    images = preprocess(images, model_variant)
  else:
    images = tf.cast(images, tf.float32)
  # Named so that the export's mobile form (deeplab/exporting/mobile.py) can start its graph
  # here, like the original's "MobilenetV2/MobilenetV2/input"; an identity computes nothing.
  images = tf.identity(images, name=BACKBONE_INPUT)

  if model_variant.startswith("resnet"):
    arg_scope = module.resnet_arg_scope(
        weight_decay=weight_decay, batch_norm_decay=batch_norm_decay or 0.95,
        batch_norm_epsilon=1e-5,
        batch_norm_scale=True)
    with slim.arg_scope(arg_scope):
      return network(images, num_classes=None, is_training=bn_training, global_pool=False,
                     output_stride=output_stride, multi_grid=multi_grid, reuse=reuse,
                     scope=scope)
  if model_variant.startswith("xception"):
    arg_scope = module.xception_arg_scope(
        weight_decay=weight_decay, batch_norm_decay=batch_norm_decay or 0.9997,
        batch_norm_epsilon=1e-3,
        batch_norm_scale=True, regularize_depthwise=regularize_depthwise,
        use_bounded_activation=use_bounded_activation)
    with slim.arg_scope(arg_scope):
      return network(images, num_classes=None, is_training=bn_training, global_pool=False,
                     output_stride=output_stride, regularize_depthwise=regularize_depthwise,
                     multi_grid=multi_grid, reuse=reuse, scope=scope)
  if model_variant.startswith("nas"):
    with slim.arg_scope(module.nas_arg_scope(weight_decay=weight_decay,
                                             batch_norm_decay=batch_norm_decay or 0.9997,
                                             batch_norm_epsilon=1e-3)):
      return network(images, is_training=bn_training, output_stride=output_stride,
                     reuse=reuse, scope=scope, **(nas_architecture_options or {}),
                     **(nas_training_hyper_parameters or {}))
  if model_variant.startswith("mobilenet_v3"):
    scope_fn = module.arg_scope
  else:  # MobileNet-v2: slim's training_scope, with the model's weight decay.
    scope_fn = module.training_scope
  with slim.arg_scope(scope_fn(is_training=bn_training, weight_decay=weight_decay,
                               bn_decay=batch_norm_decay or 0.997)):
    return network(images, depth_multiplier=depth_multiplier, output_stride=output_stride,
                   divisible_by=divisible_by, reuse=reuse, scope=scope,
                   final_endpoint=final_endpoint)
