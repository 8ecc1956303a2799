"""Quantization-aware training: fake-quant ops placed while the model is built.

The original called `tf.contrib.quantize.create_training_graph(quant_delay=...)` after building
the training graph and `create_eval_graph()` in eval, vis and export: a graph rewrite that
folded batch norm into the convolution weights and inserted fake-quant ops. contrib (and its
graph_editor) is gone from TensorFlow 2.21, and tfmot's QAT is Keras-only; the model is ours,
so the same ops are placed at construction instead. Inside `scope(...)` the model's convs
(`conv2d`, `separable_conv2d` below, which otherwise are exactly slim's) compute:

  folded weights = weights * gamma / sqrt(moving_variance + eps)    (batch norm folded)
  y = conv(x, fake_quant_per_channel(folded weights)) [* correction] + folded bias
  out = fake_quant(activation(y))  with moving-average ranges `<layer>/act_quant/min|max`

When batch norm trains (fine_tune_batch_norm), the correction sqrt(moving_var + eps) /
sqrt(batch_var + eps) and the bias beta - gamma * batch_mean / sqrt(batch_var + eps) make y
exactly batch norm with batch statistics (a float conv on the unfolded weights gives the batch
moments, as contrib's fold did); the moving statistics are updated as slim's batch norm does.
In eval and export graphs batch norm is folded with the moving statistics and every fake-quant
is on. In training the fake-quant ops are switched on at `global_step >= quant_delay` (a
cond, as contrib); the activation ranges are collected from step 0. Only the variants in
deeplab.config.model.QUANTIZABLE_VARIANTS build every conv through this module.

Weights: symmetric per output channel (regular convs) or per tensor (depthwise: its output
channel is the input channel, which FakeQuantWithMinMaxVarsPerChannel cannot address), range
[-max|w|, max|w|] of the folded weights, recomputed from the weights in every graph (contrib's
last-value rule; no variables). Symmetric, narrow range, as TFLite's int8 kernels require.
Activations and residual sums: `act_quant/min|max`, `add_quant/min|max` (contrib's names),
moving averages with decay 0.999 of the batch min (<= 0) and max (>= 0); they start at 0 and
take the first batch's values (contrib started at -6/6, which a short fine-tune never leaves).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import List, Optional

from deeplab.compat import slim, tf

EMA_DECAY = 0.999
NUM_BITS = 8
_BN_KEYS = {"decay", "epsilon", "center", "scale", "is_training", "scope", "fused"}


@dataclasses.dataclass(frozen=True)
class _Quant:
  is_training: bool
  quant_delay: int
  global_step: Optional[tf.Tensor]


_ACTIVE: List[_Quant] = []


@contextlib.contextmanager
def scope(is_training: bool, quant_delay: int):
  """Builds the model inside with fake-quant ops (quant_delay < 0: a no-op, the float model)."""
  if quant_delay < 0:
    yield
    return
  step = None
  if is_training and quant_delay > 0:
    step = tf.train.get_global_step()
    if step is None:
      raise ValueError("quantization-aware training with a delay needs the global step")
  _ACTIVE.append(_Quant(bool(is_training), int(quant_delay), step))
  try:
    yield
  finally:
    _ACTIVE.pop()


def active() -> bool:
  return bool(_ACTIVE)


def _scoped_args(op) -> dict:
  """The kwargs slim.arg_scope currently gives `op`."""
  from tf_slim.ops import arg_scope as arg_scope_lib
  key = arg_scope_lib.arg_scope_func_key(op)
  return dict(arg_scope_lib.current_arg_scope().get(key, {}))


def _switch(quantized, float_value):
  """quantized once the delay is reached (training); always quantized otherwise."""
  q = _ACTIVE[-1]
  if q.global_step is None:
    return quantized
  on = tf.greater_equal(q.global_step, tf.cast(q.quant_delay, q.global_step.dtype),
                        name="quant_on")
  return tf.cond(on, lambda: quantized, lambda: float_value, name="delayed_quant")


def _moving_range_quant(x, name: str, reuse=None):
  """fake_quant(x) with moving-average ranges `<name>/min`, `<name>/max`."""
  q = _ACTIVE[-1]
  with tf.variable_scope(name, values=[x], reuse=reuse):
    init = tf.zeros_initializer()
    min_var = slim.model_variable("min", shape=[], initializer=init, trainable=False)
    max_var = slim.model_variable("max", shape=[], initializer=init, trainable=False)
    if q.is_training:
      batch_min = tf.minimum(tf.reduce_min(x), 0.0)
      batch_max = tf.maximum(tf.reduce_max(x), 0.0)
      # The first batch seen (both still 0) sets the range; then the moving average.
      first = tf.logical_and(tf.equal(min_var, 0.0), tf.equal(max_var, 0.0))
      new_min = tf.where(first, batch_min, EMA_DECAY * min_var + (1 - EMA_DECAY) * batch_min)
      new_max = tf.where(first, batch_max, EMA_DECAY * max_var + (1 - EMA_DECAY) * batch_max)
      lo = tf.assign(min_var, new_min, name="AssignMinEma")
      hi = tf.assign(max_var, new_max, name="AssignMaxEma")
    else:
      lo, hi = min_var, max_var
    quantized = tf.quantization.fake_quant_with_min_max_vars(
        x, lo, hi, num_bits=NUM_BITS, narrow_range=False, name="FakeQuant")
  return _switch(quantized, x)


def _weights_quant(weights, per_channel: bool):
  """Symmetric narrow-range fake-quant of the (folded) weights, from their own extremes."""
  with tf.name_scope("weights_quant"):
    axes = [0, 1, 2] if per_channel else None
    bound = tf.maximum(tf.reduce_max(tf.abs(weights), axis=axes), 1e-8)
    if per_channel:
      quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
          weights, -bound, bound, num_bits=NUM_BITS, narrow_range=True, name="FakeQuant")
    else:
      quantized = tf.quantization.fake_quant_with_min_max_vars(
          weights, -bound, bound, num_bits=NUM_BITS, narrow_range=True, name="FakeQuant")
  return _switch(quantized, weights)


def _pair(value):
  return (value, value) if isinstance(value, int) else tuple(value)


def _batch_norm_fold(raw_conv, channels: int, params: dict):
  """(scale of the weights per output channel, correction or None, bias) of the BN fold."""
  unknown = set(params) - _BN_KEYS
  if unknown:
    raise ValueError(f"quantization-aware training cannot fold batch norm with {sorted(unknown)}")
  eps = params.get("epsilon", 0.001)
  decay = params.get("decay", 0.999)
  with tf.variable_scope("BatchNorm"):
    beta = (slim.model_variable("beta", shape=[channels], initializer=tf.zeros_initializer())
            if params.get("center", True) else tf.zeros([channels]))
    gamma = (slim.model_variable("gamma", shape=[channels], initializer=tf.ones_initializer())
             if params.get("scale", False) else tf.ones([channels]))
    moving_mean = slim.model_variable("moving_mean", shape=[channels],
                                      initializer=tf.zeros_initializer(), trainable=False)
    moving_var = slim.model_variable("moving_variance", shape=[channels],
                                     initializer=tf.ones_initializer(), trainable=False)
    moving_std = tf.sqrt(moving_var + eps)
    if not params.get("is_training", True):
      return gamma / moving_std, None, beta - gamma * moving_mean / moving_std
    mean, variance = tf.nn.moments(raw_conv(), [0, 1, 2])
    for var, value in ((moving_mean, mean), (moving_var, variance)):
      tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, tf.assign_sub(
          var, (var - value) * (1 - decay)))
    batch_std = tf.sqrt(variance + eps)
    return gamma / moving_std, moving_std / batch_std, beta - gamma * mean / batch_std


def _quant_conv(inputs, kernel_shape, depthwise: bool, args: dict, default_name: str):
  """One conv (+ folded batch norm or biases) (+ activation), fake-quantized."""
  padding = args.get("padding", "SAME")
  normalizer_fn = args.get("normalizer_fn")
  activation_fn = args.get("activation_fn", tf.nn.relu)
  init = args.get("weights_initializer") or slim.initializers.xavier_initializer()
  strides = [1, *_pair(args.get("stride", 1)), 1]
  rate = args.get("rate", 1)
  with tf.variable_scope(args.get("scope"), default_name, [inputs], reuse=args.get("reuse")):
    weights = slim.model_variable(
        "depthwise_weights" if depthwise else "weights", shape=kernel_shape, initializer=init,
        regularizer=args.get("weights_regularizer"), trainable=args.get("trainable", True))
    channels = kernel_shape[2] * kernel_shape[3] if depthwise else kernel_shape[3]

    dilations = [1, *_pair(rate), 1]

    def conv(w):  # native dilations: a space-to-batch rewrite would leave the conv float in TFLite
      if depthwise:
        return tf.nn.depthwise_conv2d_native(inputs, w, strides, padding, dilations=dilations)
      return tf.nn.conv2d(inputs, w, strides, padding, dilations=dilations)

    correction = None
    if normalizer_fn is slim.batch_norm:
      params = {**_scoped_args(slim.batch_norm), **(args.get("normalizer_params") or {})}
      scale, correction, bias = _batch_norm_fold(lambda: conv(weights), channels, params)
      folded = weights * tf.reshape(scale, [1, 1, kernel_shape[2], -1] if depthwise else [-1])
    elif normalizer_fn is None:
      folded = weights
      bias_init = args.get("biases_initializer", tf.zeros_initializer())
      bias = None if bias_init is None else slim.model_variable(
          "biases", shape=[channels], initializer=bias_init,
          regularizer=args.get("biases_regularizer"), trainable=args.get("trainable", True))
    else:
      raise ValueError(f"quantization-aware training cannot fold normalizer {normalizer_fn}")
    net = conv(_weights_quant(folded, per_channel=not depthwise))
    if correction is not None:
      net = net * correction
    if bias is not None:
      net = tf.nn.bias_add(net, bias)
    if activation_fn is not None:
      net = activation_fn(net)
    return _moving_range_quant(net, "act_quant")


def conv2d(inputs, num_outputs, kernel_size, **kwargs):
  """slim.conv2d; inside `scope(...)` with folded batch norm and fake-quant ops."""
  if not _ACTIVE:
    return slim.conv2d(inputs, num_outputs, kernel_size, **kwargs)
  args = {**_scoped_args(slim.conv2d), **kwargs}
  kh, kw = _pair(kernel_size)
  shape = [kh, kw, inputs.get_shape().as_list()[-1], num_outputs]
  return _quant_conv(inputs, shape, False, args, "Conv")


def separable_conv2d(inputs, num_outputs, kernel_size, **kwargs):
  """slim.separable_conv2d (depthwise only: num_outputs None under quantization)."""
  if not _ACTIVE:
    return slim.separable_conv2d(inputs, num_outputs, kernel_size, **kwargs)
  if num_outputs is not None:
    raise ValueError("quantization-aware training supports depthwise separable_conv2d only "
                     "(num_outputs=None)")
  args = {**_scoped_args(slim.separable_conv2d), **kwargs}
  kh, kw = _pair(kernel_size)
  shape = [kh, kw, inputs.get_shape().as_list()[-1], args.get("depth_multiplier", 1)]
  return _quant_conv(inputs, shape, True, args, "SeparableConv2d")


def activation(x, name: str, reuse=None):
  """x; inside `scope(...)` fake-quantized with moving ranges `<name>/min|max`. For conv inputs
  no conv produced (the network's input, the image pooling's mean), so that the conv is int8."""
  if not _ACTIVE:
    return x
  return _moving_range_quant(x, name, reuse)


def add(a, b):
  """a + b; inside `scope(...)` the sum is fake-quantized (`add_quant/min|max`)."""
  if not _ACTIVE:
    return a + b
  return _moving_range_quant(a + b, "add_quant")
