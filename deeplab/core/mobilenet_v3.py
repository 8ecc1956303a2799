"""MobileNet-v3 backbones for segmentation (mobilenet_v3_large_seg, mobilenet_v3_small_seg).

Built the way the original DeepLab builds them: slim's ``nets/mobilenet/mobilenet_v3``
definitions (``V3_LARGE``, ``V3_SMALL``) run through ``mobilenet_base`` in the scope
``MobilenetV3``, with the "seg" change of DeepLab's feature_extractor: the last block's
filters are halved (its expansions re-derived from the original widths) and the network stops
before the classification head (``layer_17`` large, ``layer_13`` small).

Scopes equal slim's, so the model zoo's Cityscapes checkpoints load by name:
``MobilenetV3/Conv`` (3x3 stem), ``MobilenetV3/expanded_conv[_k]/{expand,depthwise,project}``
each with a ``BatchNorm``, ``.../squeeze_excite/Conv`` and ``/Conv_1`` (1x1 convs with biases,
no batch norm) in the blocks that squeeze and excite, and ``MobilenetV3/Conv_1`` (the last
1x1 conv). End points are ``layer_<n>`` and ``layer_<n>/depthwise_output`` as slim names them.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple

from deeplab.compat import slim, tf
from deeplab.core.mobilenet_v2 import make_divisible
from deeplab.errors import ConfigError

SCOPE = "MobilenetV3"
# Every channel count is rounded to a multiple of this (slim's depth_multiplier defaults).
_DIVISOR = 8
# The squeeze of squeeze-and-excite: a quarter of the expansion, rounded to the divisor.
_SQUEEZE_FACTOR = 4


def hard_swish(x):
  """x · relu6(x + 3) / 6 (slim's mobilenet_v3.hard_swish)."""
  with tf.name_scope("hard_swish"):
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def hard_sigmoid(x):
  """relu6(x + 3) · 0.16667: the gate of squeeze-and-excite (and DeepLab's q-sigmoid)."""
  return tf.nn.relu6(x + 3.0) * 0.16667


_RELU, _HSWISH = tf.nn.relu, hard_swish


class Conv(NamedTuple):
  """A plain conv layer: ``Conv`` / ``Conv_1`` in slim's auto-numbering."""
  kernel: int
  stride: int
  filters: int
  activation: object


class Block(NamedTuple):
  """An expanded_conv: expansion factor (of its input depth), output filters, depthwise kernel."""
  expansion: float
  filters: int
  kernel: int
  stride: int
  activation: object
  squeeze_excite: bool


# slim's V3_LARGE up to layer_17 with DeepLab's mobilenet_v3_large_seg change: layers 13-16
# (0-based) at half width, their expansions 336, 480, 480 taken from the original widths.
LARGE_SEG = (
    Conv(3, 2, 16, _HSWISH),
    Block(1, 16, 3, 1, _RELU, False),
    Block(4, 24, 3, 2, _RELU, False),
    Block(3, 24, 3, 1, _RELU, False),
    Block(3, 40, 5, 2, _RELU, True),
    Block(3, 40, 5, 1, _RELU, True),
    Block(3, 40, 5, 1, _RELU, True),
    Block(6, 80, 3, 2, _HSWISH, False),
    Block(2.5, 80, 3, 1, _HSWISH, False),
    Block(184 / 80., 80, 3, 1, _HSWISH, False),
    Block(184 / 80., 80, 3, 1, _HSWISH, False),
    Block(6, 112, 3, 1, _HSWISH, True),
    Block(6, 112, 3, 1, _HSWISH, True),
    Block(336 / 112., 80, 5, 2, _HSWISH, True),
    Block(480 / 80., 80, 5, 1, _HSWISH, True),
    Block(480 / 80., 80, 5, 1, _HSWISH, True),
    Conv(1, 1, 480, _HSWISH),
)

# slim's V3_SMALL up to layer_13 with mobilenet_v3_small_seg's change: layers 9-12 at half
# width, expansions 144, 288, 288.
SMALL_SEG = (
    Conv(3, 2, 16, _HSWISH),
    Block(1, 16, 3, 2, _RELU, True),
    Block(72 / 16., 24, 3, 2, _RELU, False),
    Block(88 / 24., 24, 3, 1, _RELU, False),
    Block(4, 40, 5, 2, _HSWISH, True),
    Block(6, 40, 5, 1, _HSWISH, True),
    Block(6, 40, 5, 1, _HSWISH, True),
    Block(3, 48, 5, 1, _HSWISH, True),
    Block(3, 48, 5, 1, _HSWISH, True),
    Block(144 / 48., 48, 5, 2, _HSWISH, True),
    Block(288 / 48., 48, 5, 1, _HSWISH, True),
    Block(288 / 48., 48, 5, 1, _HSWISH, True),
    Conv(1, 1, 288, _HSWISH),
)


def arg_scope(is_training: bool = True, weight_decay: float = 0.00004, stddev: float = 0.09,
              bn_decay: float = 0.997):
  """DeepLab's ``mobilenet_v2_arg_scope`` as used for MobileNet-v3.

  Truncated-normal init (stddev 0.09), batch norm (center, scale, decay 0.997, epsilon 1e-3)
  after every conv, L2 on regular convs only, SAME padding.
  """
  init = tf.truncated_normal_initializer(stddev=stddev)
  with slim.arg_scope([slim.conv2d, slim.separable_conv2d], weights_initializer=init,
                      normalizer_fn=slim.batch_norm, padding="SAME"), \
      slim.arg_scope([slim.batch_norm], is_training=is_training, decay=bn_decay,
                     center=True, scale=True), \
      slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
      slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as scope:
    return scope


def _squeeze_excite(net):
  """Gates the channels by a 1x1-conv bottleneck of their spatial mean (slim's squeeze_excite)."""
  with tf.variable_scope("squeeze_excite"):
    channels = net.get_shape().as_list()[3]
    height, width = net.get_shape().as_list()[1:3]
    if height is not None and width is not None:
      pooled = tf.nn.avg_pool(net, (1, height, width, 1), (1, 1, 1, 1), padding="VALID")
    else:  # the same mean, for inputs whose size is only known at run time
      pooled = tf.reduce_mean(net, axis=[1, 2], keepdims=True)
    squeeze = slim.conv2d(pooled, make_divisible(channels / _SQUEEZE_FACTOR, _DIVISOR), 1,
                          normalizer_fn=None, activation_fn=tf.nn.relu, scope="Conv")
    excite = slim.conv2d(squeeze, channels, 1, normalizer_fn=None,
                         activation_fn=hard_sigmoid, scope="Conv_1")
    return net * excite


def _expanded_conv(net, block: Block, filters: int, stride: int, rate: int, scope: str,
                   end_points: Dict[str, tf.Tensor], layer: str):
  """expand 1x1 -> depthwise kxk (-> squeeze-excite) -> linear project 1x1 (+ residual)."""
  with tf.variable_scope(scope):
    inputs = net
    in_depth = net.get_shape().as_list()[3]
    inner = make_divisible(in_depth * block.expansion, _DIVISOR)
    if inner > in_depth:
      net = slim.conv2d(net, inner, 1, activation_fn=block.activation, scope="expand")
      net = tf.identity(net, name="expansion_output")
      end_points[layer + "/expansion_output"] = net
    net = slim.separable_conv2d(net, None, block.kernel, depth_multiplier=1, stride=stride,
                                rate=rate, activation_fn=block.activation, scope="depthwise")
    net = tf.identity(net, name="depthwise_output")
    end_points[layer + "/depthwise_output"] = net
    if block.squeeze_excite:
      net = _squeeze_excite(net)
    net = slim.conv2d(net, filters, 1, activation_fn=None, scope="project")
    if stride == 1 and filters == in_depth:
      net = net + inputs
    net = tf.identity(net, name="output")
    end_points[layer + "/output"] = net
  return net


def mobilenet_v3_base(inputs, layers: Tuple, depth_multiplier: float = 1.0,
                      output_stride: Optional[int] = None, reuse=None,
                      scope: str = SCOPE) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
  """Builds ``layers`` (LARGE_SEG or SMALL_SEG) on normalised [-1, 1] inputs.

  Batch-norm mode, initialisers and regularisers come from the surrounding arg scope
  (``arg_scope``). Once the running stride reaches ``output_stride``, later strides become
  atrous rates, as in slim's mobilenet_base.

  Returns:
    (features, end_points) with 'layer_<n>' and 'layer_<n>/depthwise_output' keys.

  Raises:
    ConfigError: on a non-positive depth multiplier or an odd output stride.
  """
  if depth_multiplier <= 0:
    raise ConfigError(f"depth_multiplier must be > 0, got {depth_multiplier}")
  if output_stride is not None and (output_stride == 0 or
                                    (output_stride > 1 and output_stride % 2)):
    raise ConfigError(f"output_stride must be None, 1 or a multiple of 2, got {output_stride}")
  end_points: Dict[str, tf.Tensor] = {}
  with tf.variable_scope(scope, SCOPE, [inputs], reuse=reuse):
    current_stride, rate = 1, 1
    net, blocks, convs = inputs, 0, 0
    for i, spec in enumerate(layers):
      if output_stride is not None and current_stride == output_stride:
        layer_stride, layer_rate = 1, rate
        rate *= spec.stride
      else:
        layer_stride, layer_rate = spec.stride, 1
        current_stride *= spec.stride
      filters = make_divisible(spec.filters * depth_multiplier, _DIVISOR)
      layer = f"layer_{i + 1}"
      if isinstance(spec, Conv):
        net = slim.conv2d(net, filters, spec.kernel, stride=layer_stride, rate=layer_rate,
                          activation_fn=spec.activation,
                          scope="Conv" + (f"_{convs}" if convs else ""))
        convs += 1
      else:
        net = _expanded_conv(net, spec, filters, layer_stride, layer_rate,
                             "expanded_conv" + (f"_{blocks}" if blocks else ""),
                             end_points, layer)
        blocks += 1
      end_points[layer] = net
  return net, end_points


def _variant(layers: Tuple, name: str):
  def build(inputs, depth_multiplier: float = 1.0, output_stride: Optional[int] = None,
            divisible_by: Optional[int] = None, reuse=None, scope: Optional[str] = None,
            final_endpoint: Optional[str] = None):
    del divisible_by, final_endpoint  # fixed by the variant, as in the original
    return mobilenet_v3_base(inputs, layers, depth_multiplier=depth_multiplier,
                             output_stride=output_stride, reuse=reuse, scope=scope or SCOPE)

  build.__name__ = build.__qualname__ = name
  build.__doc__ = (f"DeepLab's {name}: MobileNet-v3 to layer_{len(layers)}, last block at half "
                   "width; see mobilenet_v3_base.")
  return build


mobilenet_v3_large_seg = _variant(LARGE_SEG, "mobilenet_v3_large_seg")
mobilenet_v3_small_seg = _variant(SMALL_SEG, "mobilenet_v3_small_seg")
