"""MobileNet-v2 backbone: checkpoint names/shapes, end points, output stride, multiplier.

Golden names and shapes come from slim's ``nets/mobilenet/mobilenet_v2.py`` (V2_DEF) cut
at DeepLab's final end point 'layer_18', i.e. the variables of the model-zoo checkpoint
``deeplabv3_mnv2_pascal_train_aug`` under ``MobilenetV2/``: a stem conv (5 variables:
weights + BatchNorm gamma/beta/moving_mean/moving_variance), ``expanded_conv`` without
expansion (2 convs -> 10) and 16 blocks with expand/depthwise/project (15 each -> 240):
255 variables, 153 of them trainable (no biases: every conv has batch norm).
"""

import pytest

from deeplab.compat import slim, tf
from deeplab.core import mobilenet_v2

KNOWN_SHAPES = {
    "MobilenetV2/Conv/weights": [3, 3, 3, 32],
    "MobilenetV2/Conv/BatchNorm/gamma": [32],
    "MobilenetV2/Conv/BatchNorm/beta": [32],
    "MobilenetV2/Conv/BatchNorm/moving_mean": [32],
    "MobilenetV2/Conv/BatchNorm/moving_variance": [32],
    "MobilenetV2/expanded_conv/depthwise/depthwise_weights": [3, 3, 32, 1],
    "MobilenetV2/expanded_conv/project/weights": [1, 1, 32, 16],
    "MobilenetV2/expanded_conv_1/expand/weights": [1, 1, 16, 96],
    "MobilenetV2/expanded_conv_1/depthwise/depthwise_weights": [3, 3, 96, 1],
    "MobilenetV2/expanded_conv_1/project/weights": [1, 1, 96, 24],
    "MobilenetV2/expanded_conv_2/expand/BatchNorm/moving_variance": [144],
    "MobilenetV2/expanded_conv_12/depthwise/depthwise_weights": [3, 3, 576, 1],
    "MobilenetV2/expanded_conv_16/expand/weights": [1, 1, 160, 960],
    "MobilenetV2/expanded_conv_16/project/weights": [1, 1, 960, 320],
    "MobilenetV2/expanded_conv_16/project/BatchNorm/gamma": [320],
}


def _build(size=33, is_training=False, **kwargs):
  graph = tf.Graph()
  with graph.as_default():
    images = tf.placeholder(tf.float32, [1, size, size, 3])
    with slim.arg_scope(mobilenet_v2.training_scope(is_training=is_training)):
      net, end_points = mobilenet_v2.mobilenet_v2(images, **kwargs)
  return graph, net, end_points


def _variables(graph):
  with graph.as_default():
    return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def test_variables_match_the_official_checkpoint():
  graph, net, _ = _build(output_stride=16, is_training=True)
  variables = _variables(graph)
  assert len(variables) == 255
  with graph.as_default():
    assert len(tf.trainable_variables()) == 153
    # 51 batch norms in training mode, each updating its moving mean and variance.
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == 102
    # L2 on the 34 regular convs (stem, 16 expand, 17 project), never on depthwise weights.
    assert len(tf.losses.get_regularization_losses()) == 34
  for name, shape in KNOWN_SHAPES.items():
    assert variables[name] == shape, name
  assert "MobilenetV2/expanded_conv/expand/weights" not in variables
  assert not any(n.startswith("MobilenetV2/Conv_1") for n in variables)  # no 1280-d head
  assert not any(n.endswith("biases") for n in variables)
  assert net.shape.as_list() == [1, 3, 3, 320]


def test_end_points():
  graph, net, end_points = _build(output_stride=16)
  with graph.as_default():
    assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)  # inference-mode batch norm
  for i in range(1, 19):
    assert f"layer_{i}" in end_points
  assert "layer_19" not in end_points
  assert end_points["layer_18"] is net
  # The decoder end points of the original (OS 4 / 8 / 16) and their channels.
  assert end_points["layer_4/depthwise_output"].shape.as_list() == [1, 9, 9, 144]
  assert end_points["layer_7/depthwise_output"].shape.as_list() == [1, 5, 5, 192]
  assert end_points["layer_14/depthwise_output"].shape.as_list() == [1, 3, 3, 576]
  assert "layer_3/expansion_output" in end_points
  assert "layer_2/expansion_output" not in end_points  # the first block does not expand
  assert "layer_18/output" in end_points


@pytest.mark.parametrize("output_stride, size", [(8, 9), (16, 5), (None, 3)])
def test_output_stride(output_stride, size):
  graph, net, _ = _build(size=65, output_stride=output_stride)
  assert net.shape.as_list() == [1, size, size, 320]
  # Atrous convolution replaces strides without adding variables.
  assert len(_variables(graph)) == 255


def test_depth_multiplier_rounds_like_deeplab():
  graph, net, _ = _build(depth_multiplier=0.5, output_stride=16)
  variables = _variables(graph)
  assert variables["MobilenetV2/Conv/weights"] == [3, 3, 3, 16]
  assert variables["MobilenetV2/expanded_conv/project/weights"] == [1, 1, 16, 8]
  # Multiplier != 1 rounds outputs to multiples of 1 but expansions to multiples of 8.
  assert variables["MobilenetV2/expanded_conv_1/expand/weights"] == [1, 1, 8, 48]
  assert variables["MobilenetV2/expanded_conv_1/project/weights"] == [1, 1, 48, 12]
  assert net.shape.as_list()[-1] == 160


def test_make_divisible():
  assert mobilenet_v2.make_divisible(32, 8) == 32
  assert mobilenet_v2.make_divisible(16 * 6, 8) == 96
  assert mobilenet_v2.make_divisible(33.6, 8) == 32
  assert mobilenet_v2.make_divisible(11.2, 8) == 16  # rounding down 8 would lose > 10%
  assert mobilenet_v2.make_divisible(4, 1, 1) == 4


@pytest.mark.parametrize("kwargs", [{"output_stride": 3}, {"depth_multiplier": 0},
                                    {"final_endpoint": "layer_20"}])
def test_invalid_arguments(kwargs):
  with pytest.raises(ValueError):
    _build(**kwargs)


def _depthwise_rates(graph):
  """{block scope: atrous rate of its depthwise conv} (rates > 1 appear as SpaceToBatchND)."""
  rates = {}
  for op in graph.get_operations():
    if op.type == "DepthwiseConv2dNative":
      rates.setdefault(op.name.split("/")[1], 1)
    if op.type == "SpaceToBatchND" and "/depthwise/" in op.name:
      rates[op.name.split("/")[1]] = int(tf.get_static_value(op.inputs[1])[0])
  return rates


def test_atrous_rates_follow_slim_mobilenet_base():
  # OS 8: the stride-2 block expanded_conv_6 runs at stride 1 and rate 1, the blocks
  # after it at rate 2; the next stride-2 block (expanded_conv_13) keeps rate 2 and
  # multiplies it to 4 for the rest.
  graph, _, _ = _build(size=65, output_stride=8)
  rates = _depthwise_rates(graph)
  assert rates["expanded_conv_5"] == 1 and rates["expanded_conv_6"] == 1
  assert all(rates[f"expanded_conv_{i}"] == 2 for i in range(7, 14))
  assert all(rates[f"expanded_conv_{i}"] == 4 for i in range(14, 17))
