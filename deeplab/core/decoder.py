"""The DeepLab v3+ decoder, with the MobileNet-v3 options (sum merge, decoder output as logits).

Follows the original ``research/deeplab/model.py`` ``refine_by_decoder``: in variable scope
``decoder``, each low-level end point is projected by a 1x1 conv ``feature_projection{i}``
(48 filters; ``decoder_filters`` with sum merge), both tensors are resized to crop/stride, then
merged:

* concat merge (v3+): two 3x3 convs ``decoder_conv0``/``decoder_conv1`` (split separable by
  default, scopes ``_depthwise``/``_pointwise``; plain ``decoder_conv{i}/decoder_conv{i}_{1,2}``
  otherwise);
* sum merge (MobileNet-v3): one conv on the upper features (``decoder_split_sep_conv0``
  separable, else ``decoder_conv0``) added to the projection.

With ``decoder_output_is_logits`` every conv is 1x1 without batch norm or activation (so
carries biases) and not separable: the decoder's output is the logits (the model zoo's
MobileNet-v3 Cityscapes head). Stages after the first add ``_1``, ``_2``… to their scopes.
"""

from __future__ import annotations

from typing import Sequence

from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.core import feature_extractor
from deeplab.core import quantize
from deeplab.core.layers import (activation, batch_norm_params, resize_bilinear,
                                 scale_dimension, split_separable_conv2d)

DECODER_SCOPE = "decoder"
# Projection width of each low-level decoder feature (DeepLab v3+ paper).
DECODER_PROJECTION_FILTERS = 48


def _sum_merge(upper, projected, depth: int, kernel: int, separable: bool,
               weight_decay: float, suffix: str):
  if separable:
    upper = split_separable_conv2d(upper, filters=depth, rate=1, weight_decay=weight_decay,
                                   scope="decoder_split_sep_conv0" + suffix)
  else:
    upper = quantize.conv2d(upper, depth, kernel, scope="decoder_conv0" + suffix)
  return quantize.add(upper, projected)


def _concat_merge(features, depth: int, separable: bool, weight_decay: float, suffix: str):
  net = tf.concat(features, 3)
  if separable:
    net = split_separable_conv2d(net, filters=depth, rate=1, weight_decay=weight_decay,
                                 scope="decoder_conv0" + suffix)
    return split_separable_conv2d(net, filters=depth, rate=1, weight_decay=weight_decay,
                                  scope="decoder_conv1" + suffix)
  return slim.repeat(net, 2, quantize.conv2d, depth, 3, scope="decoder_conv" + suffix)


def refine_by_decoder(features, end_points, crop_size, decoder_output_stride: Sequence[int],
                      model_options: ModelConfig, weight_decay: float = 0.0001, reuse=None,
                      is_training: bool = False, fine_tune_batch_norm: bool = False):
  """Fuses the low-level end points at each decoder output stride (descending).

  Args:
    features: ASPP (or DPC) output.
    end_points: Backbone end points.
    crop_size: (height, width), Python ints or scalar tensors.
    decoder_output_stride: Strides, in descending order.
    model_options: The model configuration (decoder_* options, model_variant).
    weight_decay: L2 weight decay.
    reuse: Variable reuse.
    is_training: Training graph or not.
    fine_tune_batch_norm: Train batch norm (only meaningful with is_training).

  Returns:
    Decoder features [batch, crop/min(stride), …, decoder_filters] (the logits when
    ``decoder_output_is_logits``).
  """
  depth = model_options.decoder_filters
  sum_merge = model_options.decoder_use_sum_merge
  projected_filters = depth if sum_merge else DECODER_PROJECTION_FILTERS
  separable = model_options.decoder_use_separable_conv
  if model_options.decoder_output_is_logits:
    activation_fn, normalizer_fn, kernel, separable = None, None, 1, False
  else:
    activation_fn, normalizer_fn, kernel = activation(model_options), slim.batch_norm, 3
  with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                      weights_regularizer=slim.l2_regularizer(weight_decay),
                      activation_fn=activation_fn, normalizer_fn=normalizer_fn,
                      padding="SAME", stride=1, reuse=reuse), \
      slim.arg_scope([slim.batch_norm],
                     **batch_norm_params(model_options, is_training, fine_tune_batch_norm)), \
      tf.variable_scope(DECODER_SCOPE, DECODER_SCOPE, [features]):
    net = features
    for stage, output_stride in enumerate(decoder_output_stride):
      # A single stage keeps the original's unsuffixed names (checkpoint compatibility).
      suffix = f"_{stage}" if stage else ""
      keys = feature_extractor.decoder_end_point_keys(model_options.model_variant,
                                                      output_stride)
      height = scale_dimension(crop_size[0], 1.0 / output_stride)
      width = scale_dimension(crop_size[1], 1.0 / output_stride)
      static_h = height if isinstance(height, int) else None
      static_w = width if isinstance(width, int) else None
      for i, key in enumerate(keys):
        projected = quantize.conv2d(end_points[key], projected_filters, 1,
                                    scope=f"feature_projection{i}{suffix}")
        merged = []
        for tensor in (net, projected):
          tensor = resize_bilinear(tensor, [height, width], tensor.dtype)
          tensor.set_shape([None, static_h, static_w, None])
          merged.append(tensor)
        if sum_merge:
          net = _sum_merge(merged[0], merged[1], depth, kernel, separable, weight_decay,
                           suffix)
        else:
          net = _concat_merge(merged, depth, separable, weight_decay,
                              suffix if separable else f"{i}{suffix}")
    return net
