"""feature_extractor: variant tables, preprocessing and dispatch to the backbones.

Tables are checked against the original research/deeplab/core/feature_extractor.py
(docs/compatibility.md). Xception/ResNet dispatch is tested with stand-in modules so
these tests do not depend on (or pay for building) the big backbones.
"""

import types

import numpy as np
import pytest

from deeplab import config
from deeplab.compat import slim, tf
from deeplab.core import feature_extractor as fe


def test_tables_cover_every_supported_variant():
  for variant in config.SUPPORTED_VARIANTS:
    assert variant in fe.NAME_SCOPE
    assert sorted(fe.DECODER_END_POINTS[variant]) == [4, 8, 16]
  assert fe.NAME_SCOPE["mobilenet_v2"] == "MobilenetV2"
  assert fe.NAME_SCOPE["resnet_v1_101_beta"] == "resnet_v1_101"


def test_decoder_end_point_keys():
  assert fe.decoder_end_point_keys("mobilenet_v2", 4) == ["layer_4/depthwise_output"]
  assert fe.decoder_end_point_keys("mobilenet_v2", 16) == ["layer_14/depthwise_output"]
  assert fe.decoder_end_point_keys("xception_65", 4) == [
      "xception_65/entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"]
  assert fe.decoder_end_point_keys("xception_71", 8) == [
      "xception_71/entry_flow/block5/unit_1/xception_module/separable_conv2_pointwise"]
  assert fe.decoder_end_point_keys("resnet_v1_50_beta", 4) == [
      "resnet_v1_50/block1/unit_2/bottleneck_v1/conv3"]
  assert fe.decoder_end_point_keys("resnet_v1_101_beta", 16) == [
      "resnet_v1_101/block3/unit_22/bottleneck_v1/conv3"]
  with pytest.raises(ValueError, match="output stride 2"):
    fe.decoder_end_point_keys("mobilenet_v2", 2)


def test_preprocessing():
  with tf.Graph().as_default(), tf.Session() as sess:
    pixels = tf.constant([[[[0.0, 127.5, 255.0]]]])
    unit, beta, mean = sess.run([fe.preprocess(pixels, "mobilenet_v2"),
                                 fe.preprocess(pixels, "resnet_v1_50_beta"),
                                 fe.preprocess(pixels, "resnet_v1_50")])
  np.testing.assert_allclose(unit.ravel(), [-1.0, 0.0, 1.0], atol=1e-6)
  np.testing.assert_allclose(beta.ravel(), [-1.0, 0.0, 1.0], atol=1e-6)
  np.testing.assert_allclose(mean.ravel(), np.array([0.0, 127.5, 255.0]) - config.MEAN_RGB,
                             atol=1e-4)


# The original's _PREPROCESS_FN: the plain ResNets subtract the ImageNet mean, the rest map
# [0, 255] to [-1, 1]; the padding value (mean_pixel) normalises to 0 either way.
@pytest.mark.parametrize("variant, mean_subtracted", [
    ("resnet_v1_18", True), ("resnet_v1_18_beta", False), ("resnet_v1_50", True),
    ("resnet_v1_101", True), ("resnet_v1_101_beta", False), ("xception_65", False)])
def test_each_variant_normalises_like_the_original_and_pads_to_zero(variant, mean_subtracted):
  pixels = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
  mean = np.array([123.15, 115.90, 103.06], np.float32)
  want = pixels - mean if mean_subtracted else pixels / 127.5 - 1.0
  pad = np.array(config.mean_pixel(variant), np.float32).reshape(1, 1, 1, 3)
  with tf.Graph().as_default(), tf.Session() as sess:
    got, padded = sess.run([fe.preprocess(pixels, variant), fe.preprocess(pad, variant)])
  np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(padded, 0.0, atol=1e-4)


def test_unknown_variant():
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="supported variants"):
      fe.extract_features(tf.zeros([1, 33, 33, 3]), model_variant="vgg_16")


@pytest.mark.parametrize("is_training, fine_tune, updates", [
    (True, True, 12), (True, False, 0), (False, True, 0)])
def test_mobilenet_batch_norm_trains_only_when_fine_tuning(is_training, fine_tune, updates):
  # Stopping at layer_3 keeps the graph small: 6 batch norms (stem 1, blocks 2 + 3).
  with tf.Graph().as_default():
    features, end_points = fe.extract_features(
        tf.zeros([1, 33, 33, 3]), output_stride=16, model_variant="mobilenet_v2",
        final_endpoint="layer_3", is_training=is_training, fine_tune_batch_norm=fine_tune)
    assert features.shape.as_list() == [1, 9, 9, 24]
    assert "layer_3/depthwise_output" in end_points
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == updates


def test_mobilenet_reuse_and_weight_decay():
  with tf.Graph().as_default():
    images = tf.zeros([1, 33, 33, 3])
    for _ in range(2):
      fe.extract_features(images, output_stride=16, model_variant="mobilenet_v2",
                          final_endpoint="layer_3", weight_decay=0.5, reuse=tf.AUTO_REUSE)
    assert len(tf.global_variables()) == 30
    # One L2 loss per regular conv (stem, expand, 2 projections); reusing the variables
    # does not register them again, so multi-scale/multi-clone graphs count them once.
    losses = tf.losses.get_regularization_losses()
    assert len(losses) == 4
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      stem = [v for v in tf.global_variables() if v.op.name == "MobilenetV2/Conv/weights"][0]
      loss, weights = sess.run([losses[0], stem])
    np.testing.assert_allclose(loss, 0.5 * 0.5 * np.sum(weights ** 2), rtol=1e-4)


def _fake_backbone(monkeypatch, module_name, arg_scope_name, builders):
  """Installs deeplab.core.<module_name> recording how it is called."""
  calls = {}

  @slim.add_arg_scope
  def probe(**kwargs):
    return kwargs

  def arg_scope(**kwargs):
    calls["arg_scope"] = kwargs
    with slim.arg_scope([probe], marker=True) as scope:
      return scope

  def make(name):
    def network(inputs, **kwargs):
      calls["network"] = (name, kwargs)
      calls["inside_arg_scope"] = probe().get("marker", False)
      return inputs, {"inputs": inputs}
    return network

  module = types.ModuleType(f"deeplab.core.{module_name}")
  setattr(module, arg_scope_name, arg_scope)
  for name in builders:
    setattr(module, name, make(name))
  monkeypatch.setitem(__import__("sys").modules, f"deeplab.core.{module_name}", module)
  return calls


def test_xception_dispatch(monkeypatch):
  calls = _fake_backbone(monkeypatch, "xception", "xception_arg_scope",
                         ["xception_41", "xception_65", "xception_71"])
  with tf.Graph().as_default(), tf.Session() as sess:
    out, _ = fe.extract_features(
        tf.fill([1, 5, 5, 3], 255.0), output_stride=16, multi_grid=(1, 2, 4),
        model_variant="xception_65", weight_decay=0.5, is_training=True,
        fine_tune_batch_norm=True, use_bounded_activation=True)
    assert sess.run(out).max() == pytest.approx(1.0)  # normalised to [-1, 1]
  assert calls["arg_scope"] == {
      "weight_decay": 0.5, "batch_norm_decay": 0.9997, "batch_norm_epsilon": 1e-3,
      "batch_norm_scale": True, "regularize_depthwise": False,
      "use_bounded_activation": True}
  name, kwargs = calls["network"]
  assert name == "xception_65"
  assert kwargs["scope"] == "xception_65" and kwargs["is_training"] is True
  assert kwargs["output_stride"] == 16 and kwargs["multi_grid"] == (1, 2, 4)
  assert kwargs["global_pool"] is False and kwargs["num_classes"] is None
  assert calls["inside_arg_scope"]


def test_resnet_dispatch(monkeypatch):
  calls = _fake_backbone(monkeypatch, "resnet_v1_beta", "resnet_arg_scope",
                         ["resnet_v1_50_beta", "resnet_v1_101_beta"])
  with tf.Graph().as_default():
    fe.extract_features(tf.zeros([1, 5, 5, 3]), output_stride=8, multi_grid=(1, 2, 4),
                        model_variant="resnet_v1_101_beta", is_training=True,
                        fine_tune_batch_norm=False)
  assert calls["arg_scope"] == {"weight_decay": 0.0001, "batch_norm_decay": 0.95,
                                "batch_norm_epsilon": 1e-5, "batch_norm_scale": True}
  name, kwargs = calls["network"]
  assert name == "resnet_v1_101_beta"
  assert kwargs["scope"] == "resnet_v1_101"
  assert kwargs["is_training"] is False  # BN frozen without fine_tune_batch_norm
  assert kwargs["multi_grid"] == (1, 2, 4) and kwargs["output_stride"] == 8
  assert calls["inside_arg_scope"]


def test_missing_builder_names_the_module(monkeypatch):
  _fake_backbone(monkeypatch, "xception", "xception_arg_scope", ["xception_65"])
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match="xception_71"):
      fe.extract_features(tf.zeros([1, 5, 5, 3]), model_variant="xception_71")


def test_preprocess_images_false_passes_pixels_through(monkeypatch):
  _fake_backbone(monkeypatch, "xception", "xception_arg_scope", ["xception_65"])
  with tf.Graph().as_default(), tf.Session() as sess:
    out, _ = fe.extract_features(tf.fill([1, 5, 5, 3], 7), model_variant="xception_65",
                                 preprocess_images=False)
    assert out.dtype == tf.float32
    assert sess.run(out).max() == 7.0
