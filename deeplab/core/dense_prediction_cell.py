"""The Dense Prediction Cell (DPC) head, which replaces ASPP when --dense_prediction_cell_json is set.

Follows the original ``research/deeplab/core/dense_prediction_cell.py``: in variable scope
``meta_architecture``, branch i (scope ``branch{i}``) runs on the backbone features (input
-1) or on an earlier branch's output, and is a 1x1 conv, a split separable 3x3 conv
(``branch{i}_depthwise`` / ``branch{i}_pointwise``, rates times 16 // output_stride) or a
pyramid pooling (average pool over a grid of the crop, 1x1 conv, bilinear resize back). All
branches have 256 filters with batch norm and ReLU; their concatenation goes through dropout
(keep 0.9, training only) and then ``concat_projection`` (1x1, 256). The ASPP's atrous rates
create nothing here.
"""

from __future__ import annotations

from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.config import dense_prediction_cell as cell_file
from deeplab.core.layers import batch_norm_params, resize_bilinear, scale_dimension
from deeplab.core.layers import split_separable_conv2d
from deeplab.errors import ConfigError

META_ARCHITECTURE_SCOPE = "meta_architecture"
CONCAT_PROJECTION_SCOPE = "concat_projection"
# The original's dense_prediction_cell_hparams (DeepLab only overrides conv_rate_multiplier).
REDUCTION_SIZE = 256
CONCAT_CHANNELS = 256
DROPOUT_KEEP_PROB = 0.9


def _pyramid_pooling(net, branch: dict, crop_size, pooling_crop_size, output_stride: int,
                     depth: int, scope: str):
  grid_h, grid_w = branch["grid_size"]
  if not crop_size or not all(isinstance(d, int) for d in crop_size):
    raise ConfigError(f"dense prediction cell {scope} (pyramid_pooling) needs a static crop "
                      "size: its pooling kernel is a fraction of the crop")
  pool_crop = pooling_crop_size or crop_size
  kernel = [scale_dimension(pool_crop[0], 1.0 / (output_stride * grid_h)),
            scale_dimension(pool_crop[1], 1.0 / (output_stride * grid_w))]
  target = [scale_dimension(crop_size[0], 1.0 / output_stride),
            scale_dimension(crop_size[1], 1.0 / output_stride)]
  net = slim.avg_pool2d(net, kernel, stride=[1, 1], padding="VALID")
  net = slim.conv2d(net, depth, 1, scope=scope)
  net = resize_bilinear(net, target, net.dtype)
  net.set_shape([None, target[0], target[1], depth])
  return net


def build_cell(features, model_options: ModelConfig, crop_size=None,
               weight_decay: float = 0.00004, reuse=None, is_training: bool = False,
               fine_tune_batch_norm: bool = False, cell=None):
  """Builds the cell of ``model_options.dense_prediction_cell_json`` on ``features``.

  Args:
    features: Backbone features [batch, h, w, c].
    model_options: The model configuration (the cell file, output stride, pooling crop).
    crop_size: (height, width) of the input when static (needed by pyramid pooling).
    weight_decay: L2 weight decay.
    reuse: Variable reuse.
    is_training: Training graph (dropout on) or not.
    fine_tune_batch_norm: Train batch norm (only meaningful with is_training).
    cell: The parsed cell; None reads the file.

  The scope is named (not a default name as in the original), so a second image scale or
  clone reuses ``meta_architecture`` instead of creating ``meta_architecture_1``.

  Returns:
    The projected cell output [batch, h, w, 256].

  Raises:
    ConfigError: the cell file is missing or malformed.
  """
  if cell is None:
    cell = cell_file.load(model_options.dense_prediction_cell_json)
  output_stride = model_options.output_stride
  rate_multiplier = 16 // output_stride
  if rate_multiplier < 1:
    raise ConfigError(f"the dense prediction cell needs output_stride <= 16, got "
                      f"{output_stride}")
  with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                      weights_regularizer=slim.l2_regularizer(weight_decay),
                      activation_fn=tf.nn.relu, normalizer_fn=slim.batch_norm,
                      padding="SAME", stride=1, reuse=reuse), \
      slim.arg_scope([slim.batch_norm],
                     **batch_norm_params(model_options, is_training, fine_tune_batch_norm)), \
      tf.variable_scope(META_ARCHITECTURE_SCOPE, values=[features]):
    branches = []
    for i, branch in enumerate(cell):
      scope = f"branch{i}"
      net = features if branch["input"] < 0 else branches[branch["input"]]
      if branch["op"] == "pyramid_pooling":
        branches.append(_pyramid_pooling(net, branch, crop_size,
                                         model_options.image_pooling_crop_size,
                                         output_stride, REDUCTION_SIZE, scope))
      elif branch["kernel"] in (1, [1, 1]):
        branches.append(slim.conv2d(net, REDUCTION_SIZE, 1, scope=scope))
      else:
        rate = [r * rate_multiplier for r in branch["rate"]]
        branches.append(split_separable_conv2d(net, filters=REDUCTION_SIZE,
                                               kernel_size=branch["kernel"], rate=rate,
                                               weight_decay=weight_decay, scope=scope))
    net = tf.concat(branches, 3)
    net = slim.dropout(net, keep_prob=DROPOUT_KEEP_PROB, is_training=is_training,
                       scope=CONCAT_PROJECTION_SCOPE + "_dropout")
    return slim.conv2d(net, CONCAT_CHANNELS, 1, scope=CONCAT_PROJECTION_SCOPE)
