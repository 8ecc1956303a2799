"""DeepLab v3 / v3+ meta-architecture: ASPP, decoder, logits and prediction.

Follows the original ``research/deeplab/model.py`` (reference §5.2, §6): the same scope
names (``image_pooling``, ``aspp0``, ``aspp{i}_depthwise``/``_pointwise``,
``concat_projection``, ``decoder/feature_projection0``, ``decoder/decoder_conv{0,1}_*``,
``logits/semantic``) so that model-zoo checkpoints load by name.

Differences from the original, on purpose:
* ``deeplab.config.ModelConfig`` replaces ``common.ModelOptions``; the crop size is an
  explicit argument (it is not a model property) and there is a single output type,
  'semantic', with ``model_options.num_classes`` classes.
* TPU sync batch norm is not supported. The NAS backbones live in ``core/nas_network.py``
  and ``core/nas_cell.py``; their training hyper-parameters (drop path) come in as
  ``nas_training_hyper_parameters``, as in the original. The dense prediction cell
  (``core/dense_prediction_cell.py``) replaces ASPP when its JSON file is given.
  The decoder (with MobileNet-v3's sum merge and decoder-as-logits) lives in
  ``core/decoder.py``, the squeeze-and-excitation image branch in
  ``core/squeeze_excitation.py``.
* ``predict_labels_multi_scale`` also returns ``semantic_prob`` (the averaged
  probabilities), like ``predict_labels``.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.core import dense_prediction_cell, feature_extractor, quantize, squeeze_excitation
from deeplab.core.decoder import DECODER_SCOPE, refine_by_decoder
from deeplab.core.layers import batch_norm_params as _batch_norm_params
from deeplab.core.layers import activation as _activation
from deeplab.core.layers import (resize_bilinear, scale_dimension,  # noqa: F401 (re-exported)
                                 split_separable_conv2d)
from deeplab.errors import ConfigError

OUTPUT_TYPE = "semantic"
LOGITS_SCOPE_NAME = "logits"
MERGED_LOGITS_SCOPE = "merged_logits"
IMAGE_POOLING_SCOPE = "image_pooling"
ASPP_SCOPE = "aspp"
CONCAT_PROJECTION_SCOPE = "concat_projection"
META_ARCHITECTURE_SCOPE = "meta_architecture"
PROB_SUFFIX = "_prob"


def get_extra_layer_scopes(last_layers_contain_logits_only: bool = False) -> list:
  """Scopes of the layers on top of the backbone (the "last layers" of fine-tuning)."""
  if last_layers_contain_logits_only:
    return [LOGITS_SCOPE_NAME]
  return [LOGITS_SCOPE_NAME, IMAGE_POOLING_SCOPE, ASPP_SCOPE, CONCAT_PROJECTION_SCOPE,
          DECODER_SCOPE, META_ARCHITECTURE_SCOPE]


def _static_or_dynamic(images, crop_size):
  """(height, width) from crop_size, else the images' dynamic shape."""
  if crop_size:
    return int(crop_size[0]), int(crop_size[1])
  shape = tf.shape(images)
  return shape[1], shape[2]


def _pool_valid_region(features, valid_size, output_stride: int):
  """Mean of the feature cells that lie on the image, never on its padding.

  A cell i of a stride-s map sits on input pixel i*s, so an image of h valid rows covers
  scale_dimension(h, 1/s) rows (the whole map for an unpadded output_stride*k+1 input).
  Without `valid_size` (the original's dynamic-size path) it is the global mean.
  """
  if valid_size is None:
    return tf.reduce_mean(features, axis=[1, 2], keepdims=True)
  shape = tf.shape(features)
  cells = scale_dimension(tf.cast(valid_size, tf.int32), 1.0 / output_stride)  # [B, 2]
  rows = tf.range(shape[1])[tf.newaxis, :, tf.newaxis] < cells[:, 0, tf.newaxis, tf.newaxis]
  cols = tf.range(shape[2])[tf.newaxis, tf.newaxis, :] < cells[:, 1, tf.newaxis, tf.newaxis]
  # expand_dims, not [..., tf.newaxis]: TFLite has no kernel for a slice adding an axis.
  mask = tf.expand_dims(tf.cast(tf.logical_and(rows, cols), features.dtype), -1)
  total = tf.reduce_sum(features * mask, axis=[1, 2], keepdims=True)
  return total / tf.reduce_sum(mask, axis=[1, 2], keepdims=True)


def nas_architecture_options(model_options: ModelConfig) -> dict:
  """The original's dict of the three nas_* settings (empty for the other variants)."""
  if not model_options.model_variant.startswith("nas"):
    return {}
  return {"nas_stem_output_num_conv_filters": model_options.nas_stem_output_num_conv_filters,
          "nas_use_classification_head": model_options.nas_use_classification_head,
          "nas_remove_os32_stride": model_options.nas_remove_os32_stride}


def extract_features(images, model_options: ModelConfig, crop_size=None,
                     weight_decay: float = 0.0001, reuse=None, is_training: bool = False,
                     fine_tune_batch_norm: bool = False, valid_size=None,
                     nas_training_hyper_parameters: Optional[dict] = None):
  """Backbone features followed by ASPP (when ``aspp_with_batch_norm``).

  Args:
    images: [batch, height, width, 3] raw pixels.
    model_options: The model configuration.
    crop_size: (height, width) of ``images`` when static, for the image-pooling kernel;
      None for a global mean.
    weight_decay: L2 weight decay.
    reuse: Variable reuse.
    is_training: Training graph (dropout on) or not.
    fine_tune_batch_norm: Train batch norm (only meaningful with is_training).
    valid_size: int [batch, 2], each image's (height, width) before padding; with a dynamic
      size (crop_size None) the image pooling then averages only over the image.
    nas_training_hyper_parameters: NAS only: {'drop_path_keep_prob', 'total_training_steps'}.

  Returns:
    (features, end_points) where features are the ASPP output (256 channels) or the raw
    backbone features without ``aspp_with_batch_norm``.
  """
  features, end_points = feature_extractor.extract_features(
      images, output_stride=model_options.output_stride, multi_grid=model_options.multi_grid,
      model_variant=model_options.model_variant,
      depth_multiplier=model_options.depth_multiplier,
      divisible_by=model_options.divisible_by, weight_decay=weight_decay, reuse=reuse,
      is_training=is_training, fine_tune_batch_norm=fine_tune_batch_norm,
      use_bounded_activation=model_options.use_bounded_activation,
      batch_norm_decay=model_options.backbone_batch_norm_decay,
      nas_architecture_options=nas_architecture_options(model_options),
      nas_training_hyper_parameters=(nas_training_hyper_parameters
                                     if is_training else None))
  if not model_options.aspp_with_batch_norm:
    return features, end_points
  if model_options.dense_prediction_cell_json:  # DPC replaces ASPP
    return dense_prediction_cell.build_cell(
        features, model_options, crop_size, weight_decay=weight_decay, reuse=reuse,
        is_training=is_training, fine_tune_batch_norm=fine_tune_batch_norm), end_points

  output_stride = model_options.output_stride
  depth = model_options.aspp_convs_filters
  with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                      weights_regularizer=slim.l2_regularizer(weight_decay),
                      activation_fn=_activation(model_options),
                      normalizer_fn=slim.batch_norm, padding="SAME", stride=1, reuse=reuse), \
      slim.arg_scope([slim.batch_norm],
                     **_batch_norm_params(model_options, is_training, fine_tune_batch_norm)):
    branches = []
    if model_options.add_image_level_feature:
      if crop_size:
        # A fixed kernel (not a global mean) keeps training and a larger eval crop
        # consistent; image_pooling_crop_size lets eval pool over the training crop.
        pool_crop = model_options.image_pooling_crop_size or crop_size
        pool_h = scale_dimension(pool_crop[0], 1.0 / output_stride)
        pool_w = scale_dimension(pool_crop[1], 1.0 / output_stride)
        image_feature = slim.avg_pool2d(features, [pool_h, pool_w],
                                        list(model_options.image_pooling_stride),
                                        padding="VALID")
        resize_h = scale_dimension(crop_size[0], 1.0 / output_stride)
        resize_w = scale_dimension(crop_size[1], 1.0 / output_stride)
      else:
        image_feature = _pool_valid_region(features, valid_size, output_stride)
        resize_h, resize_w = tf.shape(features)[1], tf.shape(features)[2]
      image_feature = quantize.activation(image_feature, IMAGE_POOLING_SCOPE + "_quant",
                                          reuse=reuse)
      image_feature = quantize.conv2d(image_feature, depth, 1, scope=IMAGE_POOLING_SCOPE,
                                      **squeeze_excitation.image_pooling_conv_args(model_options))
      image_feature = resize_bilinear(image_feature, [resize_h, resize_w], image_feature.dtype)
      image_feature.set_shape([None, resize_h if isinstance(resize_h, int) else None,
                               resize_w if isinstance(resize_w, int) else None, depth])
      if not squeeze_excitation.gates(model_options):
        branches.append(image_feature)

    branches.append(quantize.conv2d(features, depth, 1, scope=ASPP_SCOPE + "0"))
    for i, rate in enumerate(model_options.atrous_rates or (), 1):
      scope = ASPP_SCOPE + str(i)
      if model_options.aspp_with_separable_conv:
        branches.append(split_separable_conv2d(features, filters=depth, rate=rate,
                                               weight_decay=weight_decay, scope=scope))
      else:
        branches.append(quantize.conv2d(features, depth, 3, rate=rate, scope=scope))

    net = tf.concat(branches, 3)
    if model_options.aspp_with_concat_projection:
      net = quantize.conv2d(net, depth, 1, scope=CONCAT_PROJECTION_SCOPE)
      net = slim.dropout(net, keep_prob=0.9, is_training=is_training,
                         scope=CONCAT_PROJECTION_SCOPE + "_dropout")
    if squeeze_excitation.gates(model_options):
      net = net * image_feature
    return net, end_points


def get_branch_logits(features, num_classes: int, atrous_rates: Optional[Sequence[int]] = None,
                      aspp_with_batch_norm: bool = False, kernel_size: int = 1,
                      weight_decay: float = 0.0001, reuse=None, scope_suffix: str = OUTPUT_TYPE):
  """Class logits, ``logits/semantic`` (1x1, no BN, no activation, stddev 0.01).

  Without ``aspp_with_batch_norm`` and with atrous rates (DeepLab v2), one atrous conv
  per rate (``semantic``, ``semantic_1`` …) is applied here and the results are summed.

  Raises:
    ValueError: when ``kernel_size`` is not 1 although ASPP already ran or there are no
      atrous rates.
  """
  if aspp_with_batch_norm or not atrous_rates:
    if kernel_size != 1:
      raise ConfigError("logits_kernel_size must be 1 when atrous_rates is empty or "
                       f"aspp_with_batch_norm is set; got {kernel_size}")
    atrous_rates = [1]
  with slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay),
                      weights_initializer=tf.truncated_normal_initializer(stddev=0.01),
                      reuse=reuse), \
      tf.variable_scope(LOGITS_SCOPE_NAME, LOGITS_SCOPE_NAME, [features]):
    branches = []
    for i, rate in enumerate(atrous_rates):
      scope = scope_suffix + (f"_{i}" if i else "")
      branches.append(quantize.conv2d(features, num_classes, kernel_size=kernel_size, rate=rate,
                                      activation_fn=None, normalizer_fn=None, scope=scope))
    return tf.add_n(branches)


def _get_logits(images, model_options: ModelConfig, crop_size, weight_decay: float, reuse,
                is_training: bool, fine_tune_batch_norm: bool, valid_size=None,
                nas_training_hyper_parameters=None):
  # Quantization-aware training (quantize_delay_step >= 0): every conv of the model carries
  # fake-quant ops (deeplab/core/quantize.py), switched on at the delay step in training.
  if model_options.quantize_delay_step >= 0:  # library callers skip ModelConfig.problems()
    problems = model_options.quantization_problems()
    if problems:
      raise ConfigError(problems[0])
  with quantize.scope(is_training, model_options.quantize_delay_step):
    return _get_float_or_quantized_logits(
        images, model_options, crop_size, weight_decay, reuse, is_training,
        fine_tune_batch_norm, valid_size, nas_training_hyper_parameters)


def _get_float_or_quantized_logits(images, model_options: ModelConfig, crop_size,
                                   weight_decay: float, reuse, is_training: bool,
                                   fine_tune_batch_norm: bool, valid_size,
                                   nas_training_hyper_parameters):
  features, end_points = extract_features(
      images, model_options, crop_size=crop_size, weight_decay=weight_decay, reuse=reuse,
      is_training=is_training, fine_tune_batch_norm=fine_tune_batch_norm,
      valid_size=valid_size, nas_training_hyper_parameters=nas_training_hyper_parameters)
  if model_options.decoder_output_stride:
    decoder_crop = crop_size or [tf.shape(images)[1], tf.shape(images)[2]]
    features = refine_by_decoder(
        features, end_points, decoder_crop, model_options.decoder_output_stride,
        model_options, weight_decay=weight_decay, reuse=reuse, is_training=is_training,
        fine_tune_batch_norm=fine_tune_batch_norm)
  if model_options.decoder_output_is_logits:  # the decoder's last conv made the logits
    return tf.identity(features, name=OUTPUT_TYPE)
  return get_branch_logits(
      features, model_options.num_classes, model_options.atrous_rates,
      aspp_with_batch_norm=model_options.aspp_with_batch_norm,
      kernel_size=model_options.logits_kernel_size, weight_decay=weight_decay, reuse=reuse,
      scope_suffix=OUTPUT_TYPE)


def multi_scale_logits(images, model_options: ModelConfig, crop_size=None,
                       image_pyramid: Optional[Sequence[float]] = None,
                       weight_decay: float = 0.0001, is_training: bool = False,
                       fine_tune_batch_norm: bool = False, valid_size=None,
                       nas_training_hyper_parameters: Optional[dict] = None
                       ) -> Dict[str, Dict[str, tf.Tensor]]:
  """Logits for each scale of an image pyramid, and their max/avg merge.

  All logits are resized to crop · max(1, max(pyramid)) / logits_OS, where logits_OS is
  the smallest decoder stride (or the output stride without a decoder). Variables are
  shared between scales (tf.AUTO_REUSE).

  Args:
    images: [batch, height, width, 3] raw pixels.
    model_options: The model configuration.
    crop_size: (height, width) of ``images``; None means dynamic (global image pooling).
    image_pyramid: Input scales; None uses ``model_options.image_pyramid`` or [1.0].
    weight_decay: L2 weight decay.
    is_training: Training graph or not.
    fine_tune_batch_norm: Train batch norm.
    valid_size: int [batch, 2] unpadded image sizes (see extract_features), or None.
    nas_training_hyper_parameters: NAS drop path settings (see extract_features).

  Returns:
    {'semantic': {'merged_logits': T}} with one scale, else also 'logits_%.2f' per scale.
  """
  if image_pyramid is None:
    image_pyramid = model_options.image_pyramid
  image_pyramid = list(image_pyramid or [1.0])
  crop_h, crop_w = _static_or_dynamic(images, crop_size)
  crop_size = (crop_h, crop_w) if crop_size else None

  if model_options.decoder_output_stride:
    logits_output_stride = min(model_options.decoder_output_stride)
  else:
    logits_output_stride = model_options.output_stride
  logits_scale = max(1.0, max(image_pyramid)) / logits_output_stride
  logits_size = [scale_dimension(crop_h, logits_scale), scale_dimension(crop_w, logits_scale)]

  num_channels = images.get_shape().as_list()[-1]
  scales_to_logits: Dict[str, tf.Tensor] = {}
  for image_scale in image_pyramid:
    options = model_options
    if image_scale != 1.0:
      scaled_size = [scale_dimension(crop_h, image_scale), scale_dimension(crop_w, image_scale)]
      scaled_images = resize_bilinear(images, scaled_size, images.dtype)
      scaled_crop = None
      if crop_size:
        scaled_images.set_shape([None, scaled_size[0], scaled_size[1], num_channels])
        scaled_crop = tuple(scaled_size)
      if model_options.image_pooling_crop_size:
        options = dataclasses.replace(model_options, image_pooling_crop_size=tuple(
            scale_dimension(d, image_scale) for d in model_options.image_pooling_crop_size))
    else:
      scaled_images, scaled_crop = images, crop_size
    scaled_valid = None if valid_size is None else scale_dimension(
        tf.cast(valid_size, tf.int32), image_scale)
    logits = _get_logits(scaled_images, options, scaled_crop, weight_decay=weight_decay,
                         reuse=tf.AUTO_REUSE, is_training=is_training,
                         fine_tune_batch_norm=fine_tune_batch_norm, valid_size=scaled_valid,
                         nas_training_hyper_parameters=nas_training_hyper_parameters)
    logits = resize_bilinear(logits, logits_size, logits.dtype)
    if len(image_pyramid) == 1:
      return {OUTPUT_TYPE: {MERGED_LOGITS_SCOPE: logits}}
    scales_to_logits["logits_%.2f" % image_scale] = logits

  stacked = tf.stack(list(scales_to_logits.values()), axis=4)
  merge = tf.reduce_max if model_options.merge_method == "max" else tf.reduce_mean
  scales_to_logits[MERGED_LOGITS_SCOPE] = merge(stacked, axis=4)
  return {OUTPUT_TYPE: scales_to_logits}


def predict_labels(images, model_options: ModelConfig, crop_size=None,
                   image_pyramid: Optional[Sequence[float]] = None,
                   valid_size=None) -> Dict[str, tf.Tensor]:
  """Inference: {'semantic': int64 [B, H, W], 'semantic_prob': float [B, H, W, C]}.

  With ``prediction_with_upsampled_logits`` (default) the logits are bilinearly resized
  to the input size before argmax; otherwise argmax is taken at logits resolution and
  upsampled with nearest neighbour (faster, blockier).
  """
  logits = multi_scale_logits(images, model_options, crop_size, image_pyramid=image_pyramid,
                              is_training=False, fine_tune_batch_norm=False,
                              valid_size=valid_size)[OUTPUT_TYPE][MERGED_LOGITS_SCOPE]
  size = tf.shape(images)[1:3]
  if model_options.prediction_with_upsampled_logits:
    logits = resize_bilinear(logits, size, logits.dtype)
    return {OUTPUT_TYPE: tf.argmax(logits, 3),
            OUTPUT_TYPE + PROB_SUFFIX: tf.nn.softmax(logits)}
  labels = tf.image.resize_nearest_neighbor(tf.expand_dims(tf.argmax(logits, 3), 3), size,
                                            align_corners=True, name="resize_prediction")
  probs = tf.image.resize_bilinear(tf.nn.softmax(logits), size, align_corners=True,
                                   name="resize_prob")
  return {OUTPUT_TYPE: tf.squeeze(labels, 3), OUTPUT_TYPE + PROB_SUFFIX: probs}


def _flip_width(images, valid_size):
  """Left-right flip; with valid_size only each image's own columns, padding stays right."""
  if valid_size is None:
    return tf.reverse(images, [2])
  widths = tf.cast(valid_size, tf.int64)[:, 1]
  return tf.reverse_sequence(images, widths, seq_axis=2, batch_axis=0)


def predict_labels_multi_scale(images, model_options: ModelConfig, crop_size=None,
                               eval_scales: Sequence[float] = (1.0,),
                               add_flipped_images: bool = False,
                               valid_size=None) -> Dict[str, tf.Tensor]:
  """Inference averaged over scales and (optionally) left-right flips.

  For each scale (and flipped copy, whose logits are flipped back) the logits are
  resized to the input size and turned into probabilities; the probabilities are
  averaged and the argmax taken.

  Returns:
    {'semantic': int64 [B, H, W], 'semantic_prob': averaged probabilities [B, H, W, C]}.
  """
  size = tf.shape(images)[1:3]
  probabilities = []
  for image_scale in eval_scales:
    inputs = [(images, False)]
    if add_flipped_images:
      inputs.append((_flip_width(images, valid_size), True))
    for batch, flipped in inputs:
      logits = multi_scale_logits(batch, model_options, crop_size, image_pyramid=[image_scale],
                                  is_training=False, fine_tune_batch_norm=False,
                                  valid_size=valid_size)[OUTPUT_TYPE][MERGED_LOGITS_SCOPE]
      if flipped and valid_size is None:
        logits = tf.reverse(logits, [2])
      logits = resize_bilinear(logits, size, logits.dtype)
      if flipped and valid_size is not None:
        logits = _flip_width(logits, valid_size)
      probabilities.append(tf.nn.softmax(logits))
  mean_prob = tf.add_n(probabilities) / float(len(probabilities))
  return {OUTPUT_TYPE: tf.argmax(mean_prob, 3), OUTPUT_TYPE + PROB_SUFFIX: mean_prob}
