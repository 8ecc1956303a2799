"""Tests for deeplab/core/resnet_v1_beta.py.

Golden names, shapes and end points come from tensorflow/models
research/deeplab/core/resnet_v1_beta.py: `root_block_fn_for_beta_variant`
(conv1_1 64 filters stride 2, conv1_2 64, conv1_3 128, all 3x3), 'pool1' (3x3
max pool, stride 2, SAME), `resnet_v1_beta_block` (depth = 4 x base_depth, only
the last unit strided), blocks (64, 3, 2), (128, 4, 2), (256, 6 or 23, 2) and
block4 = one {'depth': 2048, 'depth_bottleneck': 512, 'stride': 1,
'unit_rate': r} unit per multi_grid entry; `bottleneck` in scope 'bottleneck_v1'
with 'shortcut' (1x1 conv only when the depth changes), 'conv1', 'conv2'
(3x3, rate = rate * unit_rate), 'conv3'. The scope is 'resnet_v1_50' /
'resnet_v1_101' (no '_beta'). Decoder end points: docs/compatibility.md

Variable counts (every conv: weights + BatchNorm gamma/beta/moving_mean/
moving_variance = 5, no biases):
  stem 3 convs = 15; each unit 3 convs = 15; 4 conv shortcuts (first unit of each
  block, where the depth changes: 128->256, 256->512, 512->1024, 1024->2048) = 20.
  resnet_v1_50_beta: 15 + (3+4+6+3)*15 + 20 = 275
  resnet_v1_101_beta: 15 + (3+4+23+3)*15 + 20 = 530
"""

import numpy as np
import pytest

from deeplab.compat import slim, tf
from tests.deeplab.core._graph_inspect import dilation_rate, variable_shapes
from deeplab.core import resnet_utils, resnet_v1_beta
from deeplab.errors import UserInputError

_INPUT = 65  # (65 - 1) / output_stride + 1 is exact for 8, 16, 32.
_UNIT = "resnet_v1_50/{}/bottleneck_v1/{}"


def _build(fn, output_stride=16, multi_grid=None, is_training=False):
  """Builds `fn` on a 1x65x65x3 placeholder in a fresh graph (no session)."""
  graph = tf.Graph()
  with graph.as_default():
    images = tf.placeholder(tf.float32, [1, _INPUT, _INPUT, 3])
    with slim.arg_scope(resnet_v1_beta.resnet_arg_scope()):
      net, end_points = fn(images, is_training=is_training, global_pool=False,
                           output_stride=output_stride, multi_grid=multi_grid)
  return graph, net, end_points


def _block4_rates(graph, scope="resnet_v1_50"):
  return [dilation_rate(graph, f"{scope}/block4/unit_{i}/bottleneck_v1/conv2")
          for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def r50():
  return _build(resnet_v1_beta.resnet_v1_50_beta)


def test_resnet_v1_50_beta_variable_count(r50):
  graph = r50[0]
  with graph.as_default():
    assert len(tf.global_variables()) == 275
    assert len(tf.trainable_variables()) == 165
    assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)  # is_training=False
    # resnet_arg_scope: L2 on every conv: 3 stem + 16 units x 3 + 4 shortcuts.
    assert len(tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)) == 55


@pytest.mark.parametrize("name,shape", [
    ("resnet_v1_50/conv1_1/weights", [3, 3, 3, 64]),
    ("resnet_v1_50/conv1_1/BatchNorm/gamma", [64]),
    ("resnet_v1_50/conv1_2/weights", [3, 3, 64, 64]),
    ("resnet_v1_50/conv1_3/weights", [3, 3, 64, 128]),
    ("resnet_v1_50/conv1_3/BatchNorm/moving_mean", [128]),
    (_UNIT.format("block1/unit_1", "shortcut/weights"), [1, 1, 128, 256]),
    (_UNIT.format("block1/unit_1", "conv1/weights"), [1, 1, 128, 64]),
    (_UNIT.format("block1/unit_3", "conv2/weights"), [3, 3, 64, 64]),
    (_UNIT.format("block2/unit_1", "shortcut/weights"), [1, 1, 256, 512]),
    (_UNIT.format("block3/unit_6", "conv3/BatchNorm/beta"), [1024]),
    (_UNIT.format("block4/unit_1", "shortcut/weights"), [1, 1, 1024, 2048]),
    (_UNIT.format("block4/unit_3", "conv2/weights"), [3, 3, 512, 512]),
    (_UNIT.format("block4/unit_3", "conv3/weights"), [1, 1, 512, 2048]),
])
def test_resnet_v1_50_beta_checkpoint_names_and_shapes(r50, name, shape):
  assert variable_shapes(r50[0]).get(name) == shape


def test_resnet_v1_50_beta_layout_has_no_extra_scopes(r50):
  shapes = variable_shapes(r50[0])
  assert "resnet_v1_50/conv1/weights" not in shapes  # the 7x7 stem is gone
  assert not any("block1/unit_2/bottleneck_v1/shortcut" in n for n in shapes)
  assert not any("block3/unit_7" in n for n in shapes)
  assert not any(n.endswith("/biases") for n in shapes)


def test_resnet_v1_50_beta_decoder_end_points(r50):
  _, net, end_points = r50
  assert net.shape.as_list() == [1, 5, 5, 2048]
  # Decoder end points for decoder output strides 4 / 8 / 16 (reference §6.3).
  expected = {
      _UNIT.format("block1/unit_2", "conv3"): [1, 17, 17, 256],
      _UNIT.format("block2/unit_3", "conv3"): [1, 9, 9, 512],
      _UNIT.format("block3/unit_5", "conv3"): [1, 5, 5, 1024],
  }
  for name, shape in expected.items():
    assert end_points[name].shape.as_list() == shape, name
  assert "resnet_v1_50/conv1_3" in end_points and "resnet_v1_50/block4" in end_points


def test_resnet_v1_50_beta_output_stride_16_rates(r50):
  assert _block4_rates(r50[0]) == [2, 2, 2]
  assert dilation_rate(r50[0], _UNIT.format("block3/unit_6", "conv2")) == 1


@pytest.mark.parametrize("output_stride,multi_grid,size,rates,is_training", [
    (8, (1, 2, 4), 9, [4, 8, 16], True),
    (32, None, 3, [1, 1, 1], False),
])
def test_resnet_v1_50_beta_output_stride_and_multi_grid(output_stride, multi_grid, size, rates,
                                                        is_training):
  graph, net, _ = _build(resnet_v1_beta.resnet_v1_50_beta, output_stride, multi_grid,
                         is_training)
  assert net.shape.as_list() == [1, size, size, 2048]
  assert _block4_rates(graph) == rates
  with graph.as_default():
    # One moving-average update pair per batch norm when training, none otherwise.
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == (2 * 275 // 5 if is_training
                                                               else 0)


def test_resnet_v1_101_beta():
  graph, net, end_points = _build(resnet_v1_beta.resnet_v1_101_beta, multi_grid=(1, 2, 4))
  shapes = variable_shapes(graph)
  assert len(shapes) == 530
  assert shapes["resnet_v1_101/conv1_1/weights"] == [3, 3, 3, 64]
  assert shapes["resnet_v1_101/block3/unit_23/bottleneck_v1/conv3/weights"] == [1, 1, 256, 1024]
  assert not any("block3/unit_24" in n for n in shapes)
  assert net.shape.as_list() == [1, 5, 5, 2048]
  # The OS 16 decoder end point of resnet_v1_101(_beta) (reference §6.3).
  ep = "resnet_v1_101/block3/unit_22/bottleneck_v1/conv3"
  assert end_points[ep].shape.as_list() == [1, 5, 5, 1024]
  assert _block4_rates(graph, "resnet_v1_101") == [2, 4, 8]


def test_plain_resnet_v1_50_has_the_7x7_stem():
  # slim's resnet_v1_50 stem 'conv1' (7x7, 64, stride 2); 5 + 16*15 + 20 = 265 variables.
  graph, net, _ = _build(resnet_v1_beta.resnet_v1_50)
  shapes = variable_shapes(graph)
  assert len(shapes) == 265
  assert shapes["resnet_v1_50/conv1/weights"] == [7, 7, 3, 64]
  assert shapes[_UNIT.format("block1/unit_1", "shortcut/weights")] == [1, 1, 64, 256]
  assert net.shape.as_list() == [1, 5, 5, 2048]


@pytest.mark.parametrize("kwargs,match", [
    ({"output_stride": 6}, "output_stride 6"),
    ({"output_stride": 64}, "output_stride 64"),
    ({"multi_grid": (1, 2, 4, 8)}, "multi_grid"),
    ({"multi_grid": (1, 0, 2)}, "multi_grid"),
])
def test_bad_configuration_is_user_input_error(kwargs, match):
  with tf.Graph().as_default():
    images = tf.placeholder(tf.float32, [1, 33, 33, 3])
    with pytest.raises(UserInputError, match=match):
      resnet_v1_beta.resnet_v1_50_beta(images, **kwargs)


def _tiny(inputs, output_stride=None, reuse=None, num_classes=None, global_pool=False):
  """A thin resnet_v1_50_beta-shaped network (same strides, tiny depths), as upstream's test."""
  blocks = [
      resnet_v1_beta.resnet_v1_beta_block("block1", base_depth=1, num_units=1, stride=2),
      resnet_v1_beta.resnet_v1_beta_block("block2", base_depth=2, num_units=1, stride=2),
      resnet_v1_beta.resnet_v1_beta_block("block3", base_depth=4, num_units=1, stride=2),
      resnet_utils.Block("block4", resnet_v1_beta.bottleneck, [
          {"depth": 32, "depth_bottleneck": 8, "stride": 1, "unit_rate": r}
          for r in (1, 2, 4)]),
  ]
  return resnet_v1_beta.resnet_v1_beta(
      inputs, blocks, num_classes=num_classes, is_training=False, global_pool=global_pool,
      output_stride=output_stride, reuse=reuse, scope="tiny",
      root_block_fn=lambda net: resnet_v1_beta.root_block_fn_for_beta_variant(net, 0.25))


def test_atrous_output_equals_subsampled_nominal_output():
  """Dense (atrous) features subsampled to the nominal stride equal the nominal features."""
  images = np.random.RandomState(0).uniform(-1, 1, size=(1, 65, 65, 3)).astype(np.float32)
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    inputs = tf.constant(images)
    with slim.arg_scope(resnet_v1_beta.resnet_arg_scope()):
      nominal, _ = _tiny(inputs)
      dense, _ = _tiny(inputs, output_stride=8, reuse=True)
    subsampled = dense[:, ::4, ::4, :]  # nominal stride 32 / output stride 8
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      a, b = sess.run([nominal, subsampled])
  assert a.shape == (1, 3, 3, 32)
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_classification_head():
  with tf.Graph().as_default():
    inputs = tf.placeholder(tf.float32, [2, 65, 65, 3])
    with slim.arg_scope(resnet_v1_beta.resnet_arg_scope()):
      logits, end_points = _tiny(inputs, num_classes=10, global_pool=True)
    names = {v.op.name for v in tf.global_variables()}
  assert logits.shape.as_list() == [2, 1, 1, 10]
  assert end_points["predictions"].shape.as_list() == [2, 1, 1, 10]
  assert {"tiny/conv1_1/weights", "tiny/logits/weights", "tiny/logits/biases"} <= names


# ResNet-18 (the original's resnet_v1_18 / resnet_v1_18_beta): lite_bottleneck units, two per
# block, block4 with one unit per multi_grid entry (two), the beta stem at 0.25 width.

@pytest.mark.parametrize("variant", ["resnet_v1_18", "resnet_v1_18_beta"])
def test_resnet_v1_18_decoder_end_points_and_strides(variant):
  from deeplab.core import feature_extractor as fe
  graph = tf.Graph()
  with graph.as_default():
    features, end_points = fe.extract_features(tf.zeros([1, _INPUT, _INPUT, 3]),
                                               output_stride=8, model_variant=variant)
    assert features.shape.as_list() == [1, 9, 9, 512]
    for stride, size, depth in ((4, 17, 64), (8, 9, 128), (16, 9, 256)):
      (key,) = fe.decoder_end_point_keys(variant, stride)
      assert key == f"resnet_v1_18/block{stride.bit_length() - 2}/unit_1/lite_bottleneck_v1/conv2"
      assert end_points[key].shape.as_list() == [1, size, size, depth]
  # Output stride 8: block3 runs at rate 2 and block4 at rate 4 (times its multi_grid).
  assert dilation_rate(graph, "resnet_v1_18/block3/unit_2/lite_bottleneck_v1/conv1") == 2
  assert dilation_rate(graph, "resnet_v1_18/block4/unit_2/lite_bottleneck_v1/conv2") == 4


def test_resnet_v1_18_multi_grid_has_two_units():
  graph, _, _ = _build(resnet_v1_beta.resnet_v1_18, output_stride=16, multi_grid=(1, 2))
  assert [dilation_rate(graph, f"resnet_v1_18/block4/unit_{i}/lite_bottleneck_v1/conv1")
          for i in (1, 2)] == [2, 4]
  assert not any("block4/unit_3" in n for n in variable_shapes(graph))
  with tf.Graph().as_default():
    with pytest.raises(UserInputError, match="2 positive integers.*e.g. 1,2"):
      resnet_v1_beta.resnet_v1_18(tf.zeros([1, 33, 33, 3]), multi_grid=(1, 2, 4))
