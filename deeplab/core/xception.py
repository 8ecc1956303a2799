"""Aligned Xception-41/65/71 backbones, as DeepLab builds them.

This is the modified Xception of Dai et al. (MSRA, COCO 2017) with DeepLab's two
changes: every max pooling is a stride-2 separable conv (so output_stride can be
reached by atrous convs), and batch norm follows each depthwise conv. The layout,
scope names and variable shapes equal `research/deeplab/core/xception.py`, so the
model-zoo checkpoints (xception_65 ImageNet, deeplabv3_pascal_train_aug, ...) load
by name. Scopes look like
`xception_65/entry_flow/block1/unit_1/xception_module/separable_conv1_depthwise`.
"""

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from deeplab.compat import slim, tf
from deeplab.core import resnet_utils

# relu6 works on features clipped to this range when bounded activations are on.
_CLIP_CAP = 6.0
# Every Xception variant starts with two 3x3 convs, the first one strided.
_ROOT_STRIDE = 2

# (depth_list, stride) of each entry-flow block; all use a 1x1 conv shortcut.
_ENTRY_FLOW = {
    "xception_41": ((128, 2), (256, 2), (728, 2)),
    "xception_65": ((128, 2), (256, 2), (728, 2)),
    "xception_71": ((128, 2), (256, 1), (256, 2), (728, 1), (728, 2)),
}
# Number of 728-deep 'sum' units in middle_flow/block1.
_MIDDLE_FLOW_UNITS = {"xception_41": 8, "xception_65": 16, "xception_71": 16}

Tensor = Any
EndPoints = Dict[str, Tensor]


def _fixed_padding(inputs: Tensor, kernel_size: int, rate: int = 1) -> Tensor:
  """Zero-pads height and width so a VALID strided conv behaves like an aligned SAME one."""
  effective = kernel_size + (kernel_size - 1) * (rate - 1)
  total = effective - 1
  before = total // 2
  return tf.pad(inputs, [[0, 0], [before, total - before], [before, total - before], [0, 0]])


@slim.add_arg_scope
def separable_conv2d_same(inputs: Tensor, num_outputs: int, kernel_size: int,
                          depth_multiplier: int, stride: int, rate: int = 1,
                          use_explicit_padding: bool = True, regularize_depthwise: bool = False,
                          scope: Optional[str] = None, **kwargs: Any) -> Tensor:
  """Separable conv with 'SAME' semantics that stay aligned for strided, even-sized inputs.

  With `regularize_depthwise` the conv is one `slim.separable_conv2d` (scope `scope`);
  otherwise it is split into `<scope>_depthwise` (depthwise only, so the arg scope's
  normalizer runs after it) and `<scope>_pointwise` (a 1x1 `slim.conv2d`), which is
  the layout of the DeepLab checkpoints.

  Args:
    inputs: [batch, height, width, channels].
    num_outputs: Output depth.
    kernel_size: Depthwise kernel size.
    depth_multiplier: Depthwise channel multiplier.
    stride: Spatial stride.
    rate: Atrous rate.
    use_explicit_padding: Pad explicitly and use VALID when strided (the original
      alignment); False uses TensorFlow's SAME padding.
    regularize_depthwise: Use a single separable conv (L2 on the depthwise weights).
    scope: Base scope name.
    **kwargs: Passed to the slim layers (e.g. activation_fn).

  Returns:
    The output tensor.
  """
  padding = "SAME"
  if stride > 1 and use_explicit_padding:
    inputs = _fixed_padding(inputs, kernel_size, rate)
    padding = "VALID"
  common = dict(depth_multiplier=depth_multiplier, stride=stride, rate=rate,
                padding=padding, **kwargs)
  if regularize_depthwise:
    return slim.separable_conv2d(inputs, num_outputs, kernel_size, scope=scope, **common)
  depthwise = slim.separable_conv2d(inputs, None, kernel_size, scope=scope + "_depthwise",
                                    **common)
  return slim.conv2d(depthwise, num_outputs, 1, scope=scope + "_pointwise", **kwargs)


@slim.add_arg_scope
def xception_module(inputs: Tensor, depth_list: Sequence[int], skip_connection_type: str,
                    stride: int, kernel_size: int = 3,
                    unit_rate_list: Optional[Sequence[int]] = None, rate: int = 1,
                    activation_fn_in_separable_conv: bool = False,
                    regularize_depthwise: bool = False, outputs_collections: Any = None,
                    scope: Optional[str] = None, use_bounded_activation: bool = False,
                    use_explicit_padding: bool = True) -> Tensor:
  """Three separable convs (the last one strided) plus a 'conv', 'sum' or 'none' shortcut.

  Args:
    inputs: [batch, height, width, channels].
    depth_list: Depths of the three separable convs.
    skip_connection_type: 'conv' (1x1 strided conv `shortcut`), 'sum' (identity) or 'none'.
    stride: Stride of the third separable conv and of the conv shortcut.
    kernel_size: Depthwise kernel size.
    unit_rate_list: Per-conv atrous rate multipliers (multi_grid); default (1, 1, 1).
    rate: Atrous rate set by `stack_blocks_dense` once output_stride is reached.
    activation_fn_in_separable_conv: Activation after the depthwise and the pointwise
      conv (exit_flow/block2) instead of a ReLU before each separable conv.
    regularize_depthwise: See `separable_conv2d_same`.
    outputs_collections: Collection receiving the module output.
    scope: Variable scope (default 'xception_module').
    use_bounded_activation: relu6 and clipping, for quantisation-friendly graphs.
    use_explicit_padding: See `separable_conv2d_same`.

  Returns:
    The module output.

  Raises:
    ValueError: A malformed depth_list / unit_rate_list or an unknown skip type.
  """
  if len(depth_list) != 3:
    raise ValueError(f"xception_module needs three depths, got {list(depth_list)}")
  unit_rate_list = tuple(unit_rate_list or resnet_utils.DEFAULT_MULTI_GRID)
  if len(unit_rate_list) != 3:
    raise ValueError(f"xception_module needs three unit rates, got {list(unit_rate_list)}")
  if skip_connection_type not in ("conv", "sum", "none"):
    raise ValueError(f"unsupported skip_connection_type {skip_connection_type!r}; "
                     "use 'conv', 'sum' or 'none'")

  def clip(x: Tensor) -> Tensor:
    return tf.clip_by_value(x, -_CLIP_CAP, _CLIP_CAP)

  with tf.variable_scope(scope, "xception_module", [inputs]) as sc:
    residual = inputs
    for i in range(3):
      if activation_fn_in_separable_conv:
        activation_fn: Optional[Callable] = tf.nn.relu6 if use_bounded_activation else tf.nn.relu
      elif use_bounded_activation:
        activation_fn = clip
        residual = tf.nn.relu6(residual)
      else:
        # The original design: ReLU before the separable conv, none inside it.
        activation_fn = None
        residual = tf.nn.relu(residual)
      residual = separable_conv2d_same(
          residual, depth_list[i], kernel_size, depth_multiplier=1,
          stride=stride if i == 2 else 1, rate=rate * unit_rate_list[i],
          activation_fn=activation_fn, use_explicit_padding=use_explicit_padding,
          regularize_depthwise=regularize_depthwise, scope=f"separable_conv{i + 1}")

    if skip_connection_type == "none":
      outputs = residual
    else:
      if skip_connection_type == "conv":
        shortcut = slim.conv2d(inputs, depth_list[-1], [1, 1], stride=stride,
                               activation_fn=None, scope="shortcut")
      else:
        shortcut = inputs
      if use_bounded_activation:
        outputs = tf.nn.relu6(clip(residual) + clip(shortcut))
      else:
        outputs = residual + shortcut
    return slim.utils.collect_named_outputs(outputs_collections, sc.name, outputs)


def xception_block(scope: str, depth_list: Sequence[int], skip_connection_type: str,
                   activation_fn_in_separable_conv: bool, regularize_depthwise: bool,
                   num_units: int, stride: int,
                   unit_rate_list: Optional[Sequence[int]] = None) -> resnet_utils.Block:
  """A block of `num_units` identical Xception modules, all with the given stride."""
  unit = {
      "depth_list": tuple(depth_list),
      "skip_connection_type": skip_connection_type,
      "activation_fn_in_separable_conv": activation_fn_in_separable_conv,
      "regularize_depthwise": regularize_depthwise,
      "stride": stride,
      "unit_rate_list": tuple(unit_rate_list or resnet_utils.DEFAULT_MULTI_GRID),
  }
  return resnet_utils.Block(scope, xception_module, [unit] * num_units)


def xception_blocks(variant: str, regularize_depthwise: bool = False,
                    multi_grid: Optional[Sequence[int]] = None) -> Tuple[resnet_utils.Block, ...]:
  """The blocks of 'xception_41', 'xception_65' or 'xception_71'.

  multi_grid multiplies the atrous rates of the three separable convs of
  exit_flow/block2, the last block.
  """
  blocks = [
      xception_block(f"entry_flow/block{i + 1}", [depth] * 3, "conv", False,
                     regularize_depthwise, 1, stride)
      for i, (depth, stride) in enumerate(_ENTRY_FLOW[variant])
  ]
  blocks += [
      xception_block("middle_flow/block1", [728] * 3, "sum", False, regularize_depthwise,
                     _MIDDLE_FLOW_UNITS[variant], 1),
      xception_block("exit_flow/block1", [728, 1024, 1024], "conv", False,
                     regularize_depthwise, 1, 2),
      xception_block("exit_flow/block2", [1536, 1536, 2048], "none", True,
                     regularize_depthwise, 1, 1, unit_rate_list=multi_grid),
  ]
  return tuple(blocks)


def xception(inputs: Tensor, blocks: Sequence[resnet_utils.Block],
             num_classes: Optional[int] = None, is_training: bool = True,
             global_pool: bool = True, keep_prob: float = 0.5,
             output_stride: Optional[int] = None, reuse: Optional[bool] = None,
             scope: Optional[str] = None) -> Tuple[Tensor, EndPoints]:
  """Builds an Xception network from its blocks.

  Args:
    inputs: Float [batch, height, width, channels], already normalised to [-1, 1].
    blocks: From `xception_blocks`.
    num_classes: Adds dropout + 1x1 'logits' when set; None/0 returns features.
    is_training: Batch norm mode (the caller passes is_training and fine_tune_batch_norm).
    global_pool: Average the output spatially (classification). DeepLab uses False.
    keep_prob: Dropout keep probability before the logits.
    output_stride: Input/output resolution ratio; None means the nominal 32.
    reuse: Reuse the variables of `scope`.
    scope: Variable scope (default 'xception').

  Returns:
    (net, end_points): the last feature map (or logits) and a dict from the
    original end point names (e.g. 'xception_65/entry_flow/block2/unit_1/
    xception_module/separable_conv2_pointwise') to tensors.

  Raises:
    UserInputError: output_stride cannot be produced by these blocks.
  """
  name = scope or "xception"
  resnet_utils.check_output_stride(output_stride, _ROOT_STRIDE, blocks, name)
  with tf.variable_scope(scope, "xception", [inputs], reuse=reuse) as sc:
    collection = sc.original_name_scope + "end_points"
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d, xception_module,
                         resnet_utils.stack_blocks_dense], outputs_collections=collection):
      with slim.arg_scope([slim.batch_norm], is_training=is_training):
        net = resnet_utils.conv2d_same(inputs, 32, 3, stride=2, scope="entry_flow/conv1_1")
        net = resnet_utils.conv2d_same(net, 64, 3, stride=1, scope="entry_flow/conv1_2")
        blocks_stride = None if output_stride is None else output_stride // _ROOT_STRIDE
        net = resnet_utils.stack_blocks_dense(net, blocks, blocks_stride)
        end_points = slim.utils.convert_collection_to_dict(collection, clear_collection=True)
        if global_pool:
          net = tf.reduce_mean(net, [1, 2], name="global_pool", keepdims=True)
          end_points["global_pool"] = net
        if num_classes:
          net = slim.dropout(net, keep_prob=keep_prob, is_training=is_training,
                             scope="prelogits_dropout")
          net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                            scope="logits")
          end_points[sc.name + "/logits"] = net
          end_points["predictions"] = slim.softmax(net, scope="predictions")
  return net, end_points


def _variant(variant: str) -> Callable[..., Tuple[Tensor, EndPoints]]:
  def build(inputs: Tensor, num_classes: Optional[int] = None, is_training: bool = True,
            global_pool: bool = True, keep_prob: float = 0.5,
            output_stride: Optional[int] = None, regularize_depthwise: bool = False,
            multi_grid: Optional[Sequence[int]] = None, reuse: Optional[bool] = None,
            scope: str = variant) -> Tuple[Tensor, EndPoints]:
    multi_grid = resnet_utils.check_multi_grid(multi_grid, variant)
    blocks = xception_blocks(variant, regularize_depthwise, multi_grid)
    return xception(inputs, blocks, num_classes=num_classes, is_training=is_training,
                    global_pool=global_pool, keep_prob=keep_prob, output_stride=output_stride,
                    reuse=reuse, scope=scope)

  build.__name__ = build.__qualname__ = variant
  build.__doc__ = (f"{variant.replace('_', '-').capitalize()}: see `xception` for the "
                   "arguments; multi_grid scales the rates of exit_flow/block2.")
  return build


xception_41 = _variant("xception_41")
xception_65 = _variant("xception_65")
xception_71 = _variant("xception_71")


def xception_arg_scope(weight_decay: float = 0.00004, batch_norm_decay: float = 0.9997,
                       batch_norm_epsilon: float = 0.001, batch_norm_scale: bool = True,
                       weights_initializer_stddev: float = 0.09,
                       regularize_depthwise: bool = False, use_batch_norm: bool = True,
                       use_bounded_activation: bool = False) -> Dict:
  """Default layer settings for the Xception networks.

  Args:
    weight_decay: L2 factor for conv weights (and depthwise weights if
      regularize_depthwise).
    batch_norm_decay: Moving-average decay of batch norm.
    batch_norm_epsilon: Batch norm epsilon.
    batch_norm_scale: Learn a gamma.
    weights_initializer_stddev: Stddev of the truncated-normal initializer.
    regularize_depthwise: Apply L2 to depthwise weights too.
    use_batch_norm: Batch norm after convs (else no normaliser).
    use_bounded_activation: relu6 + clipping instead of relu.

  Returns:
    An arg scope dict for `slim.arg_scope`.
  """
  depthwise_regularizer = slim.l2_regularizer(weight_decay) if regularize_depthwise else None
  with slim.arg_scope(
      [slim.conv2d, slim.separable_conv2d],
      weights_initializer=tf.truncated_normal_initializer(stddev=weights_initializer_stddev),
      activation_fn=tf.nn.relu6 if use_bounded_activation else tf.nn.relu,
      normalizer_fn=slim.batch_norm if use_batch_norm else None):
    with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay, epsilon=batch_norm_epsilon,
                        scale=batch_norm_scale):
      with slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)):
        with slim.arg_scope([slim.separable_conv2d], weights_regularizer=depthwise_regularizer):
          # Bounded activations pair with TF's SAME padding in the original.
          with slim.arg_scope([xception_module], use_bounded_activation=use_bounded_activation,
                              use_explicit_padding=not use_bounded_activation) as scope:
            return scope
