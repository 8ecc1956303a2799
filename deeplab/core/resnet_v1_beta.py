"""ResNet-v1 backbones (resnet_v1_{18,50,101} and their "beta" stems), as DeepLab builds them.

The beta variants replace ResNet-v1's 7x7 stem with three 3x3 convs (conv1_1,
conv1_2, conv1_3: 64, 64, 128 filters) and let multi_grid scale the atrous rates
of block4's three units. Scope names and shapes equal
`research/deeplab/core/resnet_v1_beta.py`, so the model-zoo ImageNet checkpoints
load by name; the scope stays 'resnet_v1_50' / 'resnet_v1_101' as there, e.g.
`resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`. resnet_v1_50 and
resnet_v1_101 (the original 7x7 stem, 'conv1') are built here too, as upstream.

ResNet-18 uses `lite_bottleneck` units (two 3x3 convs, scope 'lite_bottleneck_v1'), two
units per block and a two-unit block4 (so its multi_grid has two entries); its beta stem
is the 3x3 one at a quarter of the width (16, 16, 32 filters), still in scope
'resnet_v1_18'.
"""

import functools
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from deeplab.compat import slim, tf
from deeplab.core import resnet_utils

# The stem (stride 2) and pool1 (stride 2) run before the blocks.
_ROOT_STRIDE = 4
# Units in block3: the only difference between ResNet-50 and ResNet-101.
_BLOCK3_UNITS = {"resnet_v1_50": 6, "resnet_v1_101": 23}
# resnet_v1_18_beta's stem runs at this fraction of the 64/64/128 widths.
_RESNET_18_ROOT_DEPTH_MULTIPLIER = 0.25

Tensor = Any
EndPoints = Dict[str, Tensor]


def _shortcut(inputs: Tensor, depth: int, stride: int) -> Tensor:
  """The unit's input, subsampled, or a 1x1 'shortcut' conv (no activation) when depth changes."""
  if depth == slim.utils.last_dimension(inputs.get_shape(), min_rank=4):
    return resnet_utils.subsample(inputs, stride, "shortcut")
  return slim.conv2d(inputs, depth, [1, 1], stride=stride, activation_fn=None, scope="shortcut")


@slim.add_arg_scope
def bottleneck(inputs: Tensor, depth: int, depth_bottleneck: int, stride: int,
               unit_rate: int = 1, rate: int = 1, outputs_collections: Any = None,
               scope: Optional[str] = None) -> Tensor:
  """ResNet-v1 bottleneck unit (1x1, 3x3, 1x1 convs, batch norm after each conv).

  Args:
    inputs: [batch, height, width, channels].
    depth: Output depth (4 x depth_bottleneck).
    depth_bottleneck: Depth of conv1 and conv2.
    stride: Stride of conv2 and of the shortcut.
    unit_rate: multi_grid factor of this unit.
    rate: Atrous rate set by `stack_blocks_dense` once output_stride is reached.
    outputs_collections: Collection receiving the unit output.
    scope: Variable scope (default 'bottleneck_v1').

  Returns:
    relu(shortcut + residual).
  """
  with tf.variable_scope(scope, "bottleneck_v1", [inputs]) as sc:
    shortcut = _shortcut(inputs, depth, stride)
    residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], stride=1, scope="conv1")
    residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride,
                                        rate=rate * unit_rate, scope="conv2")
    residual = slim.conv2d(residual, depth, [1, 1], stride=1, activation_fn=None,
                           scope="conv3")
    output = tf.nn.relu(shortcut + residual)
    return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


@slim.add_arg_scope
def lite_bottleneck(inputs: Tensor, depth: int, stride: int, unit_rate: int = 1, rate: int = 1,
                    outputs_collections: Any = None, scope: Optional[str] = None) -> Tensor:
  """ResNet-18's unit: two 3x3 convs of `depth` filters (the second strided, no activation).

  Arguments as `bottleneck`, with `depth` the output depth of both convs and the scope
  'lite_bottleneck_v1'. Returns relu(shortcut + residual).
  """
  with tf.variable_scope(scope, "lite_bottleneck_v1", [inputs]) as sc:
    shortcut = _shortcut(inputs, depth, stride)
    residual = resnet_utils.conv2d_same(inputs, depth, 3, 1, rate=rate * unit_rate,
                                        scope="conv1")
    with slim.arg_scope([slim.conv2d], activation_fn=None):
      residual = resnet_utils.conv2d_same(residual, depth, 3, stride, rate=rate * unit_rate,
                                          scope="conv2")
    output = tf.nn.relu(shortcut + residual)
    return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)


def root_block_fn_for_beta_variant(net: Tensor, depth_multiplier: float = 1.0) -> Tensor:
  """The beta stem: three 3x3 convs (64, 64, 128 filters), the first one strided."""
  net = resnet_utils.conv2d_same(net, int(64 * depth_multiplier), 3, stride=2, scope="conv1_1")
  net = resnet_utils.conv2d_same(net, int(64 * depth_multiplier), 3, stride=1, scope="conv1_2")
  return resnet_utils.conv2d_same(net, int(128 * depth_multiplier), 3, stride=1,
                                  scope="conv1_3")


def resnet_v1_beta_block(scope: str, base_depth: int, num_units: int,
                         stride: int) -> resnet_utils.Block:
  """A block of bottleneck units; only the last one is strided."""
  unit = {"depth": base_depth * 4, "depth_bottleneck": base_depth, "unit_rate": 1}
  args = [dict(unit, stride=1) for _ in range(num_units - 1)] + [dict(unit, stride=stride)]
  return resnet_utils.Block(scope, bottleneck, args)


def resnet_v1_beta_blocks(block3_units: int,
                          multi_grid: Sequence[int]) -> Tuple[resnet_utils.Block, ...]:
  """Blocks 1-4; block4 has one unit per multi_grid entry, each with that unit_rate."""
  return (
      resnet_v1_beta_block("block1", base_depth=64, num_units=3, stride=2),
      resnet_v1_beta_block("block2", base_depth=128, num_units=4, stride=2),
      resnet_v1_beta_block("block3", base_depth=256, num_units=block3_units, stride=2),
      resnet_utils.Block("block4", bottleneck, [
          {"depth": 2048, "depth_bottleneck": 512, "stride": 1, "unit_rate": rate}
          for rate in multi_grid
      ]),
  )


def resnet_v1_small_beta_blocks(
    multi_grid: Sequence[int]) -> Tuple[resnet_utils.Block, ...]:
  """ResNet-18's blocks: two lite units each (64, 128, 256), block4 one 512 unit per rate."""
  def block(scope: str, depth: int, stride: int) -> resnet_utils.Block:
    return resnet_utils.Block(scope, lite_bottleneck, [
        {"depth": depth, "stride": 1, "unit_rate": 1},
        {"depth": depth, "stride": stride, "unit_rate": 1}])

  return (
      block("block1", 64, 2), block("block2", 128, 2), block("block3", 256, 2),
      resnet_utils.Block("block4", lite_bottleneck, [
          {"depth": 512, "stride": 1, "unit_rate": rate} for rate in multi_grid]),
  )


def resnet_v1_beta(inputs: Tensor, blocks: Sequence[resnet_utils.Block],
                   num_classes: Optional[int] = None, is_training: Optional[bool] = None,
                   global_pool: bool = True, output_stride: Optional[int] = None,
                   root_block_fn: Optional[Callable[[Tensor], Tensor]] = None,
                   reuse: Optional[bool] = None,
                   scope: Optional[str] = None) -> Tuple[Tensor, EndPoints]:
  """Builds a ResNet-v1 (beta) network from its blocks.

  Args:
    inputs: Float [batch, height, width, channels] (beta: normalised to [-1, 1]).
    blocks: From `resnet_v1_beta_blocks`.
    num_classes: Adds a 1x1 'logits' conv when set; None returns features.
    is_training: Batch norm mode; None leaves it to the enclosing arg scope.
    global_pool: Average the output spatially (classification). DeepLab uses False.
    output_stride: Input/output resolution ratio; None means the nominal 32.
    root_block_fn: The stem; None is ResNet-v1's 7x7 stride-2 'conv1'.
    reuse: Reuse the variables of `scope`.
    scope: Variable scope (default 'resnet_v1').

  Returns:
    (net, end_points): the last feature map (or logits) and a dict from the original
    end point names (e.g. 'resnet_v1_50/block1/unit_2/bottleneck_v1/conv3') to tensors.

  Raises:
    UserInputError: output_stride cannot be produced by these blocks.
  """
  name = scope or "resnet_v1"
  resnet_utils.check_output_stride(output_stride, _ROOT_STRIDE, blocks, name)
  if root_block_fn is None:
    root_block_fn = functools.partial(resnet_utils.conv2d_same, num_outputs=64, kernel_size=7,
                                      stride=2, scope="conv1")
  with tf.variable_scope(scope, "resnet_v1", [inputs], reuse=reuse) as sc:
    collection = sc.original_name_scope + "_end_points"
    bn_scope = {} if is_training is None else {"is_training": is_training}
    with slim.arg_scope([slim.conv2d, bottleneck, lite_bottleneck,
                         resnet_utils.stack_blocks_dense],
                        outputs_collections=collection), \
        slim.arg_scope([slim.batch_norm], **bn_scope):
      net = root_block_fn(inputs)
      net = slim.max_pool2d(net, 3, stride=2, padding="SAME", scope="pool1")
      blocks_stride = None if output_stride is None else output_stride // _ROOT_STRIDE
      net = resnet_utils.stack_blocks_dense(net, blocks, blocks_stride)
      if global_pool:
        net = tf.reduce_mean(net, [1, 2], name="pool5", keepdims=True)
      if num_classes is not None:
        net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None,
                          scope="logits")
      end_points = slim.utils.convert_collection_to_dict(collection, clear_collection=True)
      if num_classes is not None:
        end_points["predictions"] = slim.softmax(net, scope="predictions")
  return net, end_points


def _variant(name: str, beta: bool) -> Callable[..., Tuple[Tensor, EndPoints]]:
  """A builder with the original signature; `beta` selects the 3x3 stem over the 7x7 one."""
  full_name = name + ("_beta" if beta else "")
  small = name == "resnet_v1_18"
  root_block_fn = None
  if beta:
    root_block_fn = functools.partial(
        root_block_fn_for_beta_variant,
        depth_multiplier=_RESNET_18_ROOT_DEPTH_MULTIPLIER if small else 1.0)

  def build(inputs: Tensor, num_classes: Optional[int] = None,
            is_training: Optional[bool] = None, global_pool: bool = False,
            output_stride: Optional[int] = None, multi_grid: Optional[Sequence[int]] = None,
            reuse: Optional[bool] = None, scope: str = name) -> Tuple[Tensor, EndPoints]:
    grid = resnet_utils.check_multi_grid(multi_grid, full_name, units=2 if small else 3)
    if small:
      blocks = resnet_v1_small_beta_blocks(grid)
    else:
      blocks = resnet_v1_beta_blocks(_BLOCK3_UNITS[name], grid)
    return resnet_v1_beta(inputs, blocks, num_classes=num_classes, is_training=is_training,
                          global_pool=global_pool, output_stride=output_stride,
                          root_block_fn=root_block_fn, reuse=reuse, scope=scope)

  build.__name__ = build.__qualname__ = full_name
  stem = "three 3x3 convs conv1_1..conv1_3" if beta else "one 7x7 conv 'conv1'"
  build.__doc__ = (f"ResNet-v1-{name.split('_')[-1]} with {stem}, in scope '{name}': see "
                   "`resnet_v1_beta` for the arguments; multi_grid scales block4's rates.")
  return build


# The beta variants are the ones DeepLab's ImageNet checkpoints use; the plain ones
# (slim's resnet_v1 names, mean-subtracted inputs) are kept for completeness.
resnet_v1_18_beta = _variant("resnet_v1_18", beta=True)
resnet_v1_18 = _variant("resnet_v1_18", beta=False)
resnet_v1_50_beta = _variant("resnet_v1_50", beta=True)
resnet_v1_101_beta = _variant("resnet_v1_101", beta=True)
resnet_v1_50 = _variant("resnet_v1_50", beta=False)
resnet_v1_101 = _variant("resnet_v1_101", beta=False)


def resnet_arg_scope(weight_decay: float = 0.0001, batch_norm_decay: float = 0.997,
                     batch_norm_epsilon: float = 1e-5, batch_norm_scale: bool = True,
                     activation_fn: Callable = tf.nn.relu,
                     use_batch_norm: bool = True) -> Dict:
  """Default layer settings for the ResNet networks.

  Args:
    weight_decay: L2 factor for conv weights.
    batch_norm_decay: Moving-average decay of batch norm (DeepLab passes 0.95).
    batch_norm_epsilon: Batch norm epsilon.
    batch_norm_scale: Learn a gamma.
    activation_fn: Activation after each conv.
    use_batch_norm: Batch norm after convs (else no normaliser).

  Returns:
    An arg scope dict for `slim.arg_scope`.
  """
  with slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay),
                      weights_initializer=slim.variance_scaling_initializer(),
                      activation_fn=activation_fn,
                      normalizer_fn=slim.batch_norm if use_batch_norm else None):
    with slim.arg_scope([slim.batch_norm], decay=batch_norm_decay, epsilon=batch_norm_epsilon,
                        scale=batch_norm_scale):
      # SAME pool1 keeps features aligned for dense prediction.
      with slim.arg_scope([slim.max_pool2d], padding="SAME") as scope:
        return scope
