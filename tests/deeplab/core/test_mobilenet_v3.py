"""MobileNet-v3 seg backbones: decoder end points, strides and atrous rates.

Expected channel counts are the expansions of slim's V3_LARGE / V3_SMALL at those layers
(e.g. large layer_7: 40 x 3 = 120), end point names and strides are the original
feature_extractor's networks_to_feature_maps (docs/compatibility.md).
"""

import pytest

from deeplab import config
from deeplab.compat import tf
from deeplab.core import feature_extractor as fe
from tests.deeplab.core._graph_inspect import dilation_rate

_INPUT = 65


@pytest.mark.parametrize("variant, channels, out_depth", [
    ("mobilenet_v3_large_seg", {4: 72, 8: 120, 16: 672}, 480),
    ("mobilenet_v3_small_seg", {4: 16, 8: 88, 16: 144}, 288),
])
def test_decoder_end_points_and_output(variant, channels, out_depth):
  with tf.Graph().as_default():
    features, end_points = fe.extract_features(tf.zeros([1, _INPUT, _INPUT, 3]),
                                               output_stride=32, model_variant=variant)
    assert features.shape.as_list() == [1, 3, 3, out_depth]
    for stride, depth in channels.items():
      (key,) = fe.decoder_end_point_keys(variant, stride)
      size = (_INPUT - 1) // stride + 1
      assert end_points[key].shape.as_list() == [1, size, size, depth], key
    assert all(v.op.name.startswith("MobilenetV3/") for v in tf.global_variables())


def test_output_stride_16_turns_the_last_stride_into_a_rate():
  graph = tf.Graph()
  with graph.as_default():
    features, _ = fe.extract_features(tf.zeros([1, _INPUT, _INPUT, 3]), output_stride=16,
                                      model_variant="mobilenet_v3_large_seg")
  assert features.shape.as_list() == [1, 5, 5, 480]
  # expanded_conv_12 (layer_14) is the stride-2 block: stride 1 there, rate 2 after it.
  assert dilation_rate(graph, "MobilenetV3/expanded_conv_12/depthwise") == 1
  assert dilation_rate(graph, "MobilenetV3/expanded_conv_13/depthwise") == 2


def test_mobilenet_v3_inputs_are_in_minus_one_one_and_pad_with_127_5():
  assert "mobilenet_v3_large_seg" not in config.MEAN_SUBTRACTED_VARIANTS
  assert config.mean_pixel("mobilenet_v3_small_seg") == (127.5, 127.5, 127.5)
  assert fe.PREPROCESS_FN["mobilenet_v3_small_seg"] is fe.preprocess_zero_mean_unit_range
