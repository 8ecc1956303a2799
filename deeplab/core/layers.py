"""Layers shared by the DeepLab heads (ASPP, decoder, dense prediction cell).

The resize rule, the split separable conv and the head's batch-norm settings of the original
``research/deeplab/model.py`` and ``core/utils.py``, in one place for model.py and core/.
"""

from __future__ import annotations

from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.core import quantize


def scale_dimension(dim, scale):
  """int((dim - 1) * scale + 1), for a Python number or a scalar tensor."""
  if isinstance(dim, tf.Tensor):
    return tf.cast((tf.cast(dim, tf.float32) - 1.0) * scale + 1.0, tf.int32)
  return int((float(dim) - 1.0) * scale + 1.0)


def resize_bilinear(images, size, output_dtype=tf.float32):
  """Bilinear resize with align_corners=True (what every DeepLab resize uses)."""
  images = tf.image.resize_bilinear(images, size, align_corners=True)
  return tf.cast(images, output_dtype)


def split_separable_conv2d(inputs, filters: int, kernel_size=3, rate: int = 1,
                           weight_decay: float = 0.00004,
                           depthwise_weights_initializer_stddev: float = 0.33,
                           pointwise_weights_initializer_stddev: float = 0.06,
                           scope: str = "separable"):
  """Depthwise conv (BN + activation from the arg scope) then a 1x1 conv.

  Unlike ``slim.separable_conv2d`` the activation sits between the two convs; variables
  live in ``<scope>_depthwise`` (not regularised) and ``<scope>_pointwise`` (L2).
  """
  net = quantize.separable_conv2d(
      inputs, None, kernel_size=kernel_size, depth_multiplier=1, rate=rate,
      weights_initializer=tf.truncated_normal_initializer(
          stddev=depthwise_weights_initializer_stddev),
      weights_regularizer=None, scope=scope + "_depthwise")
  return quantize.conv2d(
      net, filters, 1,
      weights_initializer=tf.truncated_normal_initializer(
          stddev=pointwise_weights_initializer_stddev),
      weights_regularizer=slim.l2_regularizer(weight_decay), scope=scope + "_pointwise")


def batch_norm_params(model_options: ModelConfig, is_training: bool,
                      fine_tune_batch_norm: bool) -> dict:
  """The heads' batch norm: trains only when is_training and fine_tune_batch_norm."""
  return {"is_training": bool(is_training and fine_tune_batch_norm),
          "decay": model_options.batch_norm_decay, "epsilon": 1e-5,
          "scale": True, "center": True}


def activation(model_options: ModelConfig):
  """relu, or relu6 with use_bounded_activation."""
  return tf.nn.relu6 if model_options.use_bounded_activation else tf.nn.relu
