"""MobileNet-v2 backbone, built the way DeepLab builds it, with tf-slim.

Layer layout, variable scopes and batch-norm settings follow slim's
``nets/mobilenet`` (``V2_DEF``, ``mobilenet_base``, ``training_scope``) so that the
model-zoo checkpoints (``deeplabv3_mnv2_*``, ImageNet ``mobilenet_v2_*``) load by
name: ``MobilenetV2/Conv``, ``MobilenetV2/expanded_conv``,
``MobilenetV2/expanded_conv_1`` … each with ``expand`` / ``depthwise`` / ``project``
sub-scopes and a ``BatchNorm`` (gamma, beta, moving mean/variance) instead of biases.

DeepLab stops the network at ``layer_18`` (the 320-channel bottleneck, no 1280-d
head) and replaces strides by atrous rates once ``output_stride`` is reached.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from deeplab.compat import slim, tf
from deeplab.core import quantize
from deeplab.errors import ConfigError

SCOPE = "MobilenetV2"
FINAL_ENDPOINT = "layer_18"

# The stem: 3x3 conv, stride 2, 32 filters (end point layer_1, scope 'Conv').
_STEM = (2, 32)
# Inverted-residual blocks (end points layer_2 … layer_18, scopes expanded_conv[_k]):
# (stride, output channels, expansion factor). The first block does not expand.
_BLOCKS = (
    (1, 16, 1),
    (2, 24, 6), (1, 24, 6),
    (2, 32, 6), (1, 32, 6), (1, 32, 6),
    (2, 64, 6), (1, 64, 6), (1, 64, 6), (1, 64, 6),
    (1, 96, 6), (1, 96, 6), (1, 96, 6),
    (2, 160, 6), (1, 160, 6), (1, 160, 6),
    (1, 320, 6),
)
# The classification head (layer_19, scope 'Conv_1'); only built when asked for.
_HEAD = (1, 1280)


def make_divisible(value: float, divisor: int, min_value: Optional[int] = None) -> int:
  """Rounds a channel count to a multiple of ``divisor`` (never more than 10% down)."""
  if min_value is None:
    min_value = divisor
  out = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if out < 0.9 * value:
    out += divisor
  return out


def training_scope(is_training: bool = True, weight_decay: float = 0.00004,
                   stddev: float = 0.09, bn_decay: float = 0.997,
                   bn_epsilon: float = 0.001):
  """The arg scope of slim's ``mobilenet.training_scope`` (what DeepLab uses).

  Truncated-normal init (stddev 0.09), L2 on regular convs only (depthwise weights are
  not regularised), batch norm with decay 0.997 and slim's default epsilon 1e-3.

  Args:
    is_training: Whether batch norm uses batch statistics and updates its moving averages.
    weight_decay: L2 weight decay of the (non-depthwise) conv weights.
    stddev: Stddev of the truncated-normal weight initialiser; < 0 means Xavier.
    bn_decay: Batch-norm moving-average decay.
    bn_epsilon: Batch-norm epsilon.

  Returns:
    An arg scope (dict) to enter with ``slim.arg_scope``.
  """
  if stddev < 0:
    init = slim.initializers.xavier_initializer()
  else:
    init = tf.truncated_normal_initializer(stddev=stddev)
  with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.separable_conv2d],
                      weights_initializer=init, normalizer_fn=slim.batch_norm), \
      slim.arg_scope([slim.batch_norm], is_training=is_training, decay=bn_decay,
                     epsilon=bn_epsilon), \
      slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)), \
      slim.arg_scope([slim.separable_conv2d], weights_regularizer=None) as scope:
    return scope


def _expanded_conv(net, num_outputs: int, expansion: int, stride: int, rate: int,
                   scope: str, end_points: Dict[str, tf.Tensor], layer: str):
  """Inverted residual: 1x1 expand -> 3x3 depthwise -> linear 1x1 project (+ residual)."""
  with tf.variable_scope(scope):
    inputs = net
    in_depth = net.get_shape().as_list()[3]
    # The expansion is always rounded to a multiple of 8, whatever the depth multiplier
    # (V2_DEF's expand_input_by_factor); the first block keeps its input depth.
    inner = make_divisible(in_depth * expansion, 8 if expansion != 1 else 1)
    if inner > in_depth:
      net = quantize.conv2d(net, inner, [1, 1], stride=1, scope="expand")
      net = tf.identity(net, name="expansion_output")
      end_points[layer + "/expansion_output"] = net
    net = quantize.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                    rate=rate, scope="depthwise")
    net = tf.identity(net, name="depthwise_output")
    end_points[layer + "/depthwise_output"] = net
    # Linear bottleneck: batch norm but no activation.
    net = quantize.conv2d(net, num_outputs, [1, 1], stride=1, activation_fn=None,
                          scope="project")
    if stride == 1 and num_outputs == in_depth:
      net = quantize.add(net, inputs)
    net = tf.identity(net, name="output")
    end_points[layer + "/output"] = net
  return net


def mobilenet_v2_base(inputs, depth_multiplier: float = 1.0,
                      output_stride: Optional[int] = None,
                      final_endpoint: str = FINAL_ENDPOINT, min_depth: int = 8,
                      divisible_by: int = 8, activation_fn=tf.nn.relu6,
                      reuse=None, scope: str = SCOPE) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
  """Builds MobileNet-v2 from the input to ``final_endpoint``.

  Batch-norm mode, initialisers and regularisers come from the surrounding arg scope
  (see ``training_scope``); without one the network is built in inference mode.

  Args:
    inputs: Float tensor [batch, height, width, 3], already normalised to [-1, 1].
    depth_multiplier: Multiplier of every layer's output channels (> 0).
    output_stride: Wanted input/output resolution ratio (None, 1 or even). Once the
      running stride reaches it, later strides become atrous rates.
    final_endpoint: Last layer to build, 'layer_1' … 'layer_19'.
    min_depth: Smallest channel count after the multiplier.
    divisible_by: Channel counts are rounded to a multiple of this.
    activation_fn: Activation after every batch norm but the projections (ReLU6).
    reuse: Variable reuse for the network scope.
    scope: Variable scope of the network.

  Returns:
    (features, end_points): end points are 'layer_<n>' for every layer and
    'layer_<n>/{expansion_output,depthwise_output,output}' for the blocks.

  Raises:
    ValueError: on a non-positive depth multiplier, an odd output stride or an unknown
      final end point.
  """
  if depth_multiplier <= 0:
    raise ConfigError(f"depth_multiplier must be > 0, got {depth_multiplier}")
  if output_stride is not None and (output_stride == 0 or
                                    (output_stride > 1 and output_stride % 2)):
    raise ConfigError(f"output_stride must be None, 1 or a multiple of 2, got {output_stride}")
  num_layers = 2 + len(_BLOCKS)
  valid = [f"layer_{i}" for i in range(1, num_layers + 1)]
  if final_endpoint not in valid:
    raise ValueError(f"final_endpoint {final_endpoint!r} is not one of {valid[0]} … {valid[-1]}")

  def depth(d):
    return make_divisible(d * depth_multiplier, divisible_by, min_depth)

  specs = [("conv", _STEM[0], _STEM[1], None)]
  specs += [("block", s, c, e) for s, c, e in _BLOCKS]
  specs.append(("head", _HEAD[0], _HEAD[1], None))

  end_points: Dict[str, tf.Tensor] = {}
  with tf.variable_scope(scope, SCOPE, [inputs], reuse=reuse), \
      slim.arg_scope([slim.batch_norm], center=True, scale=True), \
      slim.arg_scope([slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm,
                     activation_fn=activation_fn, padding="SAME"):
    # Atrous bookkeeping as slim's mobilenet_base: once the running stride equals
    # output_stride, a strided layer runs with stride 1 at the current rate and every
    # later layer uses a rate multiplied by that stride.
    current_stride, rate = 1, 1
    net = quantize.activation(inputs, "input_quant")
    for i, (kind, stride, channels, expansion) in enumerate(specs):
      if output_stride is not None and current_stride == output_stride:
        layer_stride, layer_rate = 1, rate
        rate *= stride
      else:
        layer_stride, layer_rate = stride, 1
        current_stride *= stride
      layer = f"layer_{i + 1}"
      if kind == "conv":
        net = quantize.conv2d(net, depth(channels), [3, 3], stride=layer_stride,
                              rate=layer_rate, scope="Conv")
      elif kind == "head":
        net = quantize.conv2d(net, depth(channels), [1, 1], stride=layer_stride,
                              scope="Conv_1")
      else:
        block = i - 1
        net = _expanded_conv(net, depth(channels), expansion, layer_stride, layer_rate,
                             "expanded_conv" + (f"_{block}" if block else ""),
                             end_points, layer)
      end_points[layer] = net
      if layer == final_endpoint:
        break
  return net, end_points


def mobilenet_v2(inputs, depth_multiplier: float = 1.0, output_stride: Optional[int] = None,
                 divisible_by: Optional[int] = None, reuse=None, scope: Optional[str] = None,
                 final_endpoint: Optional[str] = None):
  """DeepLab's ``_mobilenet_v2``: the base network to layer_18 with DeepLab's rounding.

  With depth_multiplier 1 channels are multiples of 8 (min 8); with any other
  multiplier DeepLab rounds to multiples of 1 (min 1) unless ``divisible_by`` is given.

  Returns:
    (features, end_points) as ``mobilenet_v2_base``.
  """
  if divisible_by is None:
    divisible_by = 8 if depth_multiplier == 1.0 else 1
  return mobilenet_v2_base(
      inputs, depth_multiplier=depth_multiplier, output_stride=output_stride,
      final_endpoint=final_endpoint or FINAL_ENDPOINT,
      min_depth=8 if depth_multiplier == 1.0 else 1, divisible_by=divisible_by,
      reuse=reuse, scope=scope or SCOPE)
