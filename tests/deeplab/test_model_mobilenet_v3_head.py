"""The MobileNet-v3 Cityscapes head, recomputed in numpy from the graph's own weights.

Facts from the original research/deeplab/model.py (late 2020): with
aspp_with_squeeze_and_excitation the image_pooling 1x1 conv has a bias, no batch norm and a
sigmoid (q-sigmoid relu6(x + 3) * 0.16667 with image_se_uses_qsigmoid), and multiplies the
ASPP output instead of being one more concatenated branch; with decoder_use_sum_merge and
decoder_output_is_logits the decoder adds a 1x1 conv of the (upsampled) ASPP output to a 1x1
projection of the low-level end point, both linear with biases, and that sum is the logits.
The heads run on the small stand-in backbone of test_model.py (same end point names).
"""

import numpy as np
import pytest

from deeplab import model
from deeplab.compat import tf
from deeplab.config import ModelConfig
from tests.deeplab.test_model import _session, _tiny_extract_features

NUM_CLASSES = 5
CROP = 33
_BN_EPS = 1e-5  # the head's batch norm; fresh moving statistics are mean 0, variance 1


@pytest.fixture
def tiny_backbone(monkeypatch):
  monkeypatch.setattr(model.feature_extractor, "extract_features", _tiny_extract_features)


def _config(**overrides):
  options = dict(model_variant="mobilenet_v2", num_classes=NUM_CLASSES, output_stride=16,
                 aspp_convs_filters=8, aspp_with_concat_projection=False,
                 aspp_with_squeeze_and_excitation=True, image_se_uses_qsigmoid=True)
  options.update(overrides)
  return ModelConfig(**options)


def _variables():
  return {v.op.name: v for v in tf.global_variables()}


def _conv1x1(x, weights, biases=None):
  out = np.einsum("bhwc,cd->bhwd", x, weights[0, 0])
  return out if biases is None else out + biases


@pytest.mark.parametrize("qsigmoid", [True, False])
def test_image_feature_gates_the_aspp_output(tiny_backbone, qsigmoid):
  cfg = _config(image_se_uses_qsigmoid=qsigmoid)
  images = np.random.RandomState(0).uniform(0, 255, (1, CROP, CROP, 3)).astype(np.float32)
  with tf.Graph().as_default():
    placeholder = tf.placeholder(tf.float32, [1, CROP, CROP, 3])
    net, _ = model.extract_features(placeholder, cfg, crop_size=None)
    backbone = tf.get_default_graph().get_tensor_by_name("MobilenetV2/top/Relu:0")
    v = _variables()
    assert "image_pooling/biases" in v and "image_pooling/BatchNorm/gamma" not in v
    assert net.shape.as_list()[-1] == 8  # gated, not concatenated
    with _session() as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(v["image_pooling/biases"].assign(np.linspace(-4, 4, 8)))
      got, feats, w_pool, b_pool, w0 = sess.run(
          [net, backbone, v["image_pooling/weights"], v["image_pooling/biases"],
           v["aspp0/weights"]], {placeholder: images})
  pooled = _conv1x1(feats.mean(axis=(1, 2), keepdims=True), w_pool, b_pool)
  gate = (np.clip(pooled + 3, 0, 6) * 0.16667 if qsigmoid else 1 / (1 + np.exp(-pooled)))
  aspp0 = np.maximum(_conv1x1(feats, w0) / np.sqrt(1 + _BN_EPS), 0)
  np.testing.assert_allclose(got, aspp0 * gate, rtol=1e-4, atol=1e-5)


def test_sum_merge_decoder_output_is_the_logits(tiny_backbone):
  cfg = _config(decoder_output_stride=(8,), decoder_use_sum_merge=True,
                decoder_filters=NUM_CLASSES, decoder_output_is_logits=True)
  images = np.random.RandomState(1).uniform(0, 255, (1, CROP, CROP, 3)).astype(np.float32)
  with tf.Graph().as_default():
    placeholder = tf.placeholder(tf.float32, [1, CROP, CROP, 3])
    logits = model.multi_scale_logits(placeholder, cfg, (CROP, CROP))["semantic"][
        "merged_logits"]
    graph = tf.get_default_graph()
    aspp = graph.get_tensor_by_name("mul:0")  # the gated ASPP output
    low = graph.get_tensor_by_name("MobilenetV2/s8/Relu:0")  # layer_7/depthwise_output
    v = _variables()
    assert not any(n.startswith("logits/") for n in v)
    assert "decoder/decoder_conv0/biases" in v and "decoder/feature_projection0/biases" in v
    with _session() as sess:
      sess.run(tf.global_variables_initializer())
      for name in ("decoder/decoder_conv0/biases", "decoder/feature_projection0/biases"):
        sess.run(v[name].assign(np.arange(NUM_CLASSES, dtype=np.float32)))
      got, aspp_v, low_v, wd, bd, wp, bp = sess.run(
          [logits, aspp, low, v["decoder/decoder_conv0/weights"],
           v["decoder/decoder_conv0/biases"], v["decoder/feature_projection0/weights"],
           v["decoder/feature_projection0/biases"]], {placeholder: images})
  size = (CROP - 1) // 8 + 1
  with tf.Graph().as_default(), tf.Session() as sess:
    # A 1x1 conv and an align-corners bilinear resize commute (weights sum to 1).
    upper = sess.run(tf.image.resize_bilinear(_conv1x1(aspp_v, wd, bd), [size, size],
                                              align_corners=True))
  want = upper + _conv1x1(low_v, wp, bp)
  assert got.shape == (1, size, size, NUM_CLASSES)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_decoder_output_is_logits_needs_matching_filters():
  problems = " ".join(_config(decoder_output_stride=(8,), decoder_output_is_logits=True,
                              decoder_filters=19).problems())
  assert f"decoder_filters (19) must equal the dataset's {NUM_CLASSES} classes" in problems
  assert "needs a decoder" in " ".join(_config(decoder_output_is_logits=True).problems())
