"""Tests for deeplab/core/xception.py.

Golden names, shapes and end points come from tensorflow/models
research/deeplab/core/xception.py (final revision): root convs 'entry_flow/conv1_1'
(32 filters, stride 2) and 'entry_flow/conv1_2' (64); blocks built by
`xception_block(...)` with depth lists [128]*3, [256]*3, [728]*3 (entry),
[728]*3 x 16 'sum' units (middle; 8 for xception_41), [728, 1024, 1024] 'conv'
and [1536, 1536, 2048] 'none' with activation in the separable convs (exit);
`separable_conv2d_same` splits each separable conv into '<name>_depthwise'
(slim.separable_conv2d with num_outputs=None, so batch norm follows the depthwise
conv) and '<name>_pointwise' (1x1 slim.conv2d). Decoder end points:
docs/compatibility.md (feature_extractor.networks_to_feature_maps).

Variable counts, derived from that layout (every conv has weights + BatchNorm
gamma/beta/moving_mean/moving_variance = 5 variables, no biases):
  root 2 convs = 10; a 'conv' unit = 3 separable convs x (5 + 5) + shortcut 5 = 35;
  a 'sum'/'none' unit = 30.
  xception_41: 10 + 3*35 + 8*30 + 35 + 30 = 420
  xception_65: 10 + 3*35 + 16*30 + 35 + 30 = 660
  xception_71: 10 + 5*35 + 16*30 + 35 + 30 = 730
Trainable = 3/5 of these (weights, gamma, beta).
"""

import numpy as np
import pytest

from deeplab.compat import slim, tf
from tests.deeplab.core._graph_inspect import dilation_rate, variable_shapes
from deeplab.core import xception
from deeplab.errors import UserInputError

_INPUT = 65  # (65 - 1) / output_stride + 1 is exact for 8, 16, 32.
_MODULE = "xception_65/{}/xception_module/{}"


def _build(fn, output_stride=16, multi_grid=None, is_training=False, **arg_scope):
  """Builds `fn` on a 1x65x65x3 placeholder in a fresh graph (no session)."""
  graph = tf.Graph()
  with graph.as_default():
    images = tf.placeholder(tf.float32, [1, _INPUT, _INPUT, 3])
    with slim.arg_scope(xception.xception_arg_scope(**arg_scope)):
      net, end_points = fn(images, is_training=is_training, global_pool=False,
                           output_stride=output_stride, multi_grid=multi_grid)
  return graph, net, end_points


@pytest.fixture(scope="module")
def x65():
  return _build(xception.xception_65)


def test_xception_65_variable_count(x65):
  graph, _, _ = x65
  with graph.as_default():
    assert len(tf.global_variables()) == 660
    assert len(tf.trainable_variables()) == 396
    assert not tf.get_collection(tf.GraphKeys.UPDATE_OPS)  # is_training=False


@pytest.mark.parametrize("name,shape", [
    ("xception_65/entry_flow/conv1_1/weights", [3, 3, 3, 32]),
    ("xception_65/entry_flow/conv1_1/BatchNorm/gamma", [32]),
    ("xception_65/entry_flow/conv1_2/weights", [3, 3, 32, 64]),
    (_MODULE.format("entry_flow/block1/unit_1", "separable_conv1_depthwise/depthwise_weights"),
     [3, 3, 64, 1]),
    # The extra batch norm after the depthwise conv.
    (_MODULE.format("entry_flow/block1/unit_1", "separable_conv1_depthwise/BatchNorm/beta"),
     [64]),
    (_MODULE.format("entry_flow/block1/unit_1", "separable_conv1_pointwise/weights"),
     [1, 1, 64, 128]),
    (_MODULE.format("entry_flow/block1/unit_1", "shortcut/weights"), [1, 1, 64, 128]),
    (_MODULE.format("entry_flow/block3/unit_1", "shortcut/weights"), [1, 1, 256, 728]),
    (_MODULE.format("middle_flow/block1/unit_16",
                    "separable_conv3_pointwise/BatchNorm/moving_variance"), [728]),
    (_MODULE.format("exit_flow/block1/unit_1", "separable_conv2_pointwise/weights"),
     [1, 1, 728, 1024]),
    (_MODULE.format("exit_flow/block1/unit_1", "shortcut/weights"), [1, 1, 728, 1024]),
    (_MODULE.format("exit_flow/block2/unit_1", "separable_conv1_pointwise/weights"),
     [1, 1, 1024, 1536]),
    (_MODULE.format("exit_flow/block2/unit_1", "separable_conv2_pointwise/weights"),
     [1, 1, 1536, 1536]),
    (_MODULE.format("exit_flow/block2/unit_1", "separable_conv3_depthwise/depthwise_weights"),
     [3, 3, 1536, 1]),
    (_MODULE.format("exit_flow/block2/unit_1", "separable_conv3_pointwise/weights"),
     [1, 1, 1536, 2048]),
])
def test_xception_65_checkpoint_names_and_shapes(x65, name, shape):
  assert variable_shapes(x65[0]).get(name) == shape


def test_xception_65_layout_has_no_extra_scopes(x65):
  shapes = variable_shapes(x65[0])
  assert not any("middle_flow/block1/unit_17" in n for n in shapes)
  assert not any("exit_flow/block2/unit_1/xception_module/shortcut" in n for n in shapes)
  assert not any(n.endswith("/biases") for n in shapes)  # batch norm replaces biases


def test_xception_65_decoder_end_points(x65):
  _, net, end_points = x65
  assert net.shape.as_list() == [1, 5, 5, 2048]
  # Decoder end points for decoder output strides 4 / 8 / 16 (reference §6.3).
  expected = {
      _MODULE.format("entry_flow/block2/unit_1", "separable_conv2_pointwise"): [1, 17, 17, 256],
      _MODULE.format("entry_flow/block3/unit_1", "separable_conv2_pointwise"): [1, 9, 9, 728],
      _MODULE.format("exit_flow/block1/unit_1", "separable_conv2_pointwise"): [1, 5, 5, 1024],
  }
  for name, shape in expected.items():
    assert end_points[name].shape.as_list() == shape, name
  assert "xception_65/exit_flow/block2" in end_points
  assert "xception_65/entry_flow/conv1_1" in end_points


def test_xception_65_output_stride_16_rates(x65):
  graph = x65[0]
  scope = _MODULE.format("exit_flow/block2/unit_1", "separable_conv{}_depthwise")
  assert [dilation_rate(graph, scope.format(i)) for i in (1, 2, 3)] == [2, 2, 2]
  # exit_flow/block1 keeps stride 1 once output stride 16 is reached ...
  assert dilation_rate(graph, _MODULE.format("exit_flow/block1/unit_1",
                                              "separable_conv1_depthwise")) == 1


@pytest.mark.parametrize("output_stride,multi_grid,size,rates", [
    (8, (1, 2, 4), 9, [4, 8, 16]),
    (32, None, 3, [1, 1, 1]),
])
def test_xception_65_output_stride_and_multi_grid(output_stride, multi_grid, size, rates):
  graph, net, _ = _build(xception.xception_65, output_stride, multi_grid)
  assert net.shape.as_list() == [1, size, size, 2048]
  scope = _MODULE.format("exit_flow/block2/unit_1", "separable_conv{}_depthwise")
  assert [dilation_rate(graph, scope.format(i)) for i in (1, 2, 3)] == rates


def test_xception_65_arg_scope_regularizes_pointwise_only(x65):
  graph = x65[0]
  with graph.as_default():
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
  # 2 root + entry 3 x (3 pointwise + shortcut) + middle 16 x 3 + exit (3 + 1) + 3.
  assert len(losses) == 2 + 12 + 48 + 4 + 3
  assert not any("depthwise" in t.op.name for t in losses)


# The decoder end point for decoder output stride 4 (reference §6.3): xception_71
# splits each strided entry block in two, so its stride-4 features are in block3.
@pytest.mark.parametrize("fn,count,present,absent,decoder_os4", [
    (xception.xception_41, 420,
     ("xception_41/middle_flow/block1/unit_8/xception_module/separable_conv3_pointwise/weights",
      [1, 1, 728, 728]),
     "middle_flow/block1/unit_9",
     "xception_41/entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"),
    (xception.xception_71, 730,
     ("xception_71/entry_flow/block5/unit_1/xception_module/shortcut/weights",
      [1, 1, 728, 728]),
     "entry_flow/block6",
     "xception_71/entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise"),
])
def test_other_variants(fn, count, present, absent, decoder_os4):
  graph, net, end_points = _build(fn)
  shapes = variable_shapes(graph)
  assert len(shapes) == count
  assert shapes[present[0]] == present[1]
  assert not any(absent in n for n in shapes)
  assert end_points[decoder_os4].shape.as_list() == [1, 17, 17, 256]
  assert net.shape.as_list() == [1, 5, 5, 2048]


@pytest.mark.parametrize("kwargs,match", [
    ({"output_stride": 12}, "output_stride 12"),
    ({"output_stride": 64}, "output_stride 64"),
    ({"multi_grid": (1, 2)}, "multi_grid"),
])
def test_bad_configuration_is_user_input_error(kwargs, match):
  with tf.Graph().as_default():
    images = tf.placeholder(tf.float32, [1, 33, 33, 3])
    with pytest.raises(UserInputError, match=match):
      xception.xception_65(images, global_pool=False, **kwargs)


def _tiny_blocks(regularize_depthwise=False):
  """A thin xception_65-shaped network (same strides, tiny depths) for runtime checks."""
  block = xception.xception_block
  return [
      block("entry_flow/block1", [2, 2, 2], "conv", False, regularize_depthwise, 1, 2),
      block("entry_flow/block2", [4, 4, 4], "conv", False, regularize_depthwise, 1, 2),
      block("middle_flow/block1", [4, 4, 4], "sum", False, regularize_depthwise, 2, 1),
      block("exit_flow/block1", [8, 8, 8], "conv", False, regularize_depthwise, 1, 2),
      block("exit_flow/block2", [8, 8, 16], "none", True, regularize_depthwise, 1, 1,
            unit_rate_list=(1, 2, 4)),
  ]


def test_atrous_output_equals_subsampled_nominal_output():
  """Dense (atrous) features subsampled to the nominal stride equal the nominal features."""
  rng = np.random.RandomState(0)
  images = rng.uniform(-1, 1, size=(1, 33, 33, 3)).astype(np.float32)
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    inputs = tf.constant(images)
    with slim.arg_scope(xception.xception_arg_scope()):
      nominal, _ = xception.xception(inputs, _tiny_blocks(), is_training=False,
                                     global_pool=False, scope="tiny")
      dense, _ = xception.xception(inputs, _tiny_blocks(), is_training=False,
                                   global_pool=False, output_stride=4, scope="tiny", reuse=True)
    subsampled = dense[:, ::4, ::4, :]  # nominal stride 16 / output stride 4
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      a, b = sess.run([nominal, subsampled])
  assert a.shape == (1, 3, 3, 16)
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("is_training", [True, False])
def test_is_training_controls_batch_norm(is_training):
  with tf.Graph().as_default():
    inputs = tf.placeholder(tf.float32, [1, 33, 33, 3])
    with slim.arg_scope(xception.xception_arg_scope()):
      xception.xception(inputs, _tiny_blocks(), is_training=is_training, global_pool=False,
                        scope="tiny")
    num_bn = len([v for v in tf.global_variables() if v.op.name.endswith("/gamma")])
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
  # Training: a moving mean and a moving variance update per batch norm; else none.
  assert len(updates) == (2 * num_bn if is_training else 0)


def test_regularize_depthwise_uses_single_separable_conv():
  with tf.Graph().as_default():
    inputs = tf.placeholder(tf.float32, [1, 33, 33, 3])
    with slim.arg_scope(xception.xception_arg_scope(regularize_depthwise=True)):
      xception.xception(inputs, _tiny_blocks(True), global_pool=False, scope="tiny")
    names = {v.op.name for v in tf.global_variables()}
    losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
  prefix = "tiny/entry_flow/block1/unit_1/xception_module/separable_conv1/"
  assert prefix + "depthwise_weights" in names
  assert prefix + "pointwise_weights" in names
  assert any("depthwise" in t.op.name for t in losses)


def test_classification_head_and_bounded_activation():
  with tf.Graph().as_default() as graph:
    inputs = tf.placeholder(tf.float32, [2, 33, 33, 3])
    with slim.arg_scope(xception.xception_arg_scope(use_bounded_activation=True)):
      logits, end_points = xception.xception(inputs, _tiny_blocks(), num_classes=10,
                                             scope="tiny")
  assert logits.shape.as_list() == [2, 1, 1, 10]
  assert end_points["predictions"].shape.as_list() == [2, 1, 1, 10]
  assert "tiny/logits" in end_points and "global_pool" in end_points
  assert any(op.type == "Relu6" for op in graph.get_operations())
