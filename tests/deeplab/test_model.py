"""deeplab.model: output sizes, checkpoint scope names, pyramid merge and prediction.

Scope names and the logits-size rule come from the original research/deeplab/model.py
(docs/compatibility.md). Tests of checkpoint names and shapes build the real
MobileNet-v2; tests of the head's behaviour (pyramid, pooling, prediction) use the
``tiny_backbone`` fixture, because building MobileNet-v2 costs about a second each time.
"""

import numpy as np
import pytest

from deeplab import model
from deeplab.compat import slim, tf
from deeplab.config import ModelConfig
from deeplab.core import feature_extractor

NUM_CLASSES = 3


def _tiny_extract_features(images, output_stride=16, reuse=None, **unused_kwargs):
  """Three convs with MobileNet-v2's decoder end point names at strides 4, 8 and 16."""
  with tf.variable_scope("MobilenetV2", reuse=reuse):
    net = feature_extractor.preprocess(images, "mobilenet_v2")
    end_points = {}
    net = slim.conv2d(net, 8, 3, stride=4, scope="s4")
    end_points["layer_4/depthwise_output"] = net
    for stride, name in ((8, "layer_7/depthwise_output"), (16, "layer_14/depthwise_output")):
      # Past the output stride, keep the resolution (as atrous convolution would).
      net = slim.conv2d(net, 8, 3, stride=2 if stride <= output_stride else 1,
                        scope=f"s{stride}")
      end_points[name] = net
    return slim.conv2d(net, 16, 1, scope="top"), end_points


@pytest.fixture
def tiny_backbone(monkeypatch):
  monkeypatch.setattr(model.feature_extractor, "extract_features", _tiny_extract_features)


def _config(**overrides):
  return ModelConfig(model_variant="mobilenet_v2", num_classes=NUM_CLASSES, **overrides)


def _names(prefix=""):
  return {v.op.name: v.shape.as_list() for v in tf.global_variables()
          if v.op.name.startswith(prefix)}


def _session():
  # Grappler's rewrites cost more than these tiny graphs take to run.
  config = tf.ConfigProto()
  config.graph_options.rewrite_options.disable_meta_optimizer = True
  return tf.Session(config=config)


def _run(fetches, feed_images):
  """Runs ``fetches`` with fresh variables.

  The untrained network in inference mode (moving variance 1) shrinks activations layer
  after layer, leaving logits ~1e-7 whose argmax is rounding noise; scaling the logits
  weights gives class scores with real margins without changing any code path.
  """
  with _session() as sess:
    sess.run(tf.global_variables_initializer())
    for var in tf.global_variables():
      if var.op.name.startswith("logits/"):
        sess.run(var.assign(var * 1e6))
    return sess.run(fetches, feed_images)


def test_scale_dimension():
  assert model.scale_dimension(513, 1.0 / 16) == 33
  assert model.scale_dimension(65, 0.5) == 33
  assert model.scale_dimension(65, 1.0 / 4) == 17
  with tf.Graph().as_default(), _session() as sess:
    assert sess.run(model.scale_dimension(tf.constant(513), 1.0 / 8)) == 65


def test_get_extra_layer_scopes():
  assert model.get_extra_layer_scopes(True) == ["logits"]
  assert model.get_extra_layer_scopes() == [
      "logits", "image_pooling", "aspp", "concat_projection", "decoder", "meta_architecture"]


@pytest.mark.parametrize("overrides, size", [
    ({}, 5),                                                      # OS16, ASPP without rates
    ({"atrous_rates": (6, 12, 18)}, 5),
    ({"decoder_output_stride": (4,)}, 17),                        # logits at the decoder stride
    ({"output_stride": 8, "atrous_rates": (12,), "decoder_output_stride": (4,)}, 17),
    ({"aspp_with_batch_norm": False}, 5),                         # DeepLab-v2 style head
])
def test_logits_shape(tiny_backbone, overrides, size):
  with tf.Graph().as_default():
    images = tf.zeros([1, 65, 65, 3])
    out = model.multi_scale_logits(images, _config(**overrides), (65, 65))
    assert list(out) == ["semantic"] and list(out["semantic"]) == ["merged_logits"]
    assert out["semantic"]["merged_logits"].shape.as_list() == [1, size, size, NUM_CLASSES]
    in_channels = 256 if overrides.get("aspp_with_batch_norm", True) else 16  # ASPP or backbone
    assert _names("logits") == {"logits/semantic/weights": [1, 1, in_channels, NUM_CLASSES],
                                "logits/semantic/biases": [3]}


def test_head_scopes_match_the_checkpoints():
  cfg = _config(atrous_rates=(6, 12, 18), decoder_output_stride=(4,))
  with tf.Graph().as_default():
    model.multi_scale_logits(tf.zeros([1, 65, 65, 3]), cfg, (65, 65), is_training=True,
                             fine_tune_batch_norm=True)
    names = _names()
    assert len(names) == 255 + 72  # backbone + head: 14 convs x 5 + logits weights/biases
    expected = {
        "image_pooling/weights": [1, 1, 320, 256],
        "image_pooling/BatchNorm/gamma": [256],
        "aspp0/weights": [1, 1, 320, 256],
        "aspp0/BatchNorm/moving_variance": [256],
        "aspp1_depthwise/depthwise_weights": [3, 3, 320, 1],
        "aspp1_depthwise/BatchNorm/beta": [320],
        "aspp3_pointwise/weights": [1, 1, 320, 256],
        "concat_projection/weights": [1, 1, 1280, 256],
        "decoder/feature_projection0/weights": [1, 1, 144, 48],   # layer_4/depthwise_output
        "decoder/decoder_conv0_depthwise/depthwise_weights": [3, 3, 304, 1],
        "decoder/decoder_conv0_pointwise/weights": [1, 1, 304, 256],
        "decoder/decoder_conv1_depthwise/depthwise_weights": [3, 3, 256, 1],
        "decoder/decoder_conv1_pointwise/BatchNorm/gamma": [256],
        "logits/semantic/weights": [1, 1, 256, NUM_CLASSES],
    }
    for name, shape in expected.items():
      assert names[name] == shape, name
    assert not any(n.endswith("biases") for n in names if not n.startswith("logits"))
    # Depthwise weights of the head are not regularised (backbone 34 + head 9 + logits 1).
    assert len(tf.losses.get_regularization_losses()) == 34 + 9 + 1
    graph = tf.get_default_graph()
    assert any(op.name.startswith("concat_projection_dropout") for op in graph.get_operations())


def test_two_decoder_stages_use_suffixes(tiny_backbone):
  cfg = _config(output_stride=16, decoder_output_stride=(8, 4))
  with tf.Graph().as_default():
    out = model.multi_scale_logits(tf.zeros([1, 33, 33, 3]), cfg, (33, 33))
    assert out["semantic"]["merged_logits"].shape.as_list() == [1, 9, 9, NUM_CLASSES]
    names = _names("decoder")
    assert names["decoder/feature_projection0/weights"] == [1, 1, 8, 48]
    assert names["decoder/feature_projection0_1/weights"] == [1, 1, 8, 48]
    assert "decoder/decoder_conv1_1_pointwise/weights" in names


def test_plain_conv_decoder_and_aspp(tiny_backbone):
  cfg = _config(atrous_rates=(6,), aspp_with_separable_conv=False,
                decoder_output_stride=(4,), decoder_use_separable_conv=False)
  with tf.Graph().as_default():
    model.multi_scale_logits(tf.zeros([1, 33, 33, 3]), cfg, (33, 33))
    names = _names()
    assert names["aspp1/weights"] == [3, 3, 16, 256]
    assert names["decoder/decoder_conv0/decoder_conv0_1/weights"] == [3, 3, 304, 256]
    assert names["decoder/decoder_conv0/decoder_conv0_2/weights"] == [3, 3, 256, 256]


def test_deeplab_v2_head_sums_atrous_logits(tiny_backbone):
  cfg = _config(aspp_with_batch_norm=False, atrous_rates=(6, 12), logits_kernel_size=3)
  with tf.Graph().as_default():
    model.multi_scale_logits(tf.zeros([1, 33, 33, 3]), cfg, (33, 33))
    assert _names("logits") == {
        "logits/semantic/weights": [3, 3, 16, NUM_CLASSES], "logits/semantic/biases": [3],
        "logits/semantic_1/weights": [3, 3, 16, NUM_CLASSES],
        "logits/semantic_1/biases": [3]}
  with tf.Graph().as_default(), pytest.raises(ValueError, match="logits_kernel_size"):
    model.multi_scale_logits(tf.zeros([1, 33, 33, 3]), _config(logits_kernel_size=3), (33, 33))


def _avg_pool_kernels():
  return [op.get_attr("ksize")[1:3] for op in tf.get_default_graph().get_operations()
          if op.type == "AvgPool"]


def test_image_pooling_kernel_follows_crop_size(tiny_backbone):
  with tf.Graph().as_default():
    model.multi_scale_logits(tf.zeros([1, 65, 65, 3]), _config(), (65, 65))
    assert _avg_pool_kernels() == [[5, 5]]
  # An eval crop larger than the training crop pools over the training crop's extent.
  with tf.Graph().as_default():
    cfg = _config(image_pooling_crop_size=(33, 33))
    out = model.multi_scale_logits(tf.zeros([1, 65, 65, 3]), cfg, (65, 65))
    assert _avg_pool_kernels() == [[3, 3]]
    assert out["semantic"]["merged_logits"].shape.as_list() == [1, 5, 5, NUM_CLASSES]
  # Unknown crop: a global mean, and any input size works.
  with tf.Graph().as_default():
    images = tf.placeholder(tf.float32, [1, None, None, 3])
    pred = model.predict_labels(images, _config(decoder_output_stride=(4,)), None)
    assert not _avg_pool_kernels()
    out = _run(pred, {images: np.zeros([1, 37, 45, 3])})
    assert out["semantic"].shape == (1, 37, 45)


@pytest.mark.parametrize("merge_method", ["max", "avg"])
def test_image_pyramid_merge(tiny_backbone, merge_method):
  cfg = _config(merge_method=merge_method, decoder_output_stride=(4,))
  with tf.Graph().as_default():
    tf.set_random_seed(1)
    images = tf.random_uniform([1, 33, 33, 3], maxval=255.0, seed=2)
    out = model.multi_scale_logits(images, cfg, (33, 33), image_pyramid=(0.5, 1.0))["semantic"]
    assert sorted(out) == ["logits_0.50", "logits_1.00", "merged_logits"]
    assert out["merged_logits"].shape.as_list() == [1, 9, 9, NUM_CLASSES]
    assert len(_names()) == len(_names("MobilenetV2")) + 42  # one set of variables
    res = _run(out, None)
  merge = np.maximum if merge_method == "max" else lambda a, b: (a + b) / 2
  np.testing.assert_allclose(res["merged_logits"], merge(res["logits_0.50"], res["logits_1.00"]),
                             rtol=1e-5, atol=1e-6)


def test_image_pyramid_from_config_and_upscaled_logits(tiny_backbone):
  cfg = _config(image_pyramid=(1.0, 1.5))
  with tf.Graph().as_default():
    out = model.multi_scale_logits(tf.zeros([1, 33, 33, 3]), cfg, (33, 33))["semantic"]
    # Logits size uses max(1, max(pyramid)): int(32 * 1.5 / 16 + 1) = 4.
    assert out["merged_logits"].shape.as_list() == [1, 4, 4, NUM_CLASSES]


@pytest.mark.parametrize("upsampled", [True, False])
def test_predict_labels_at_input_size(tiny_backbone, upsampled):
  cfg = _config(prediction_with_upsampled_logits=upsampled)
  with tf.Graph().as_default():
    images = tf.zeros([2, 33, 33, 3])
    pred = model.predict_labels(images, cfg, (33, 33))
    assert sorted(pred) == ["semantic", "semantic_prob"]
    out = _run(pred, None)
  assert out["semantic"].shape == (2, 33, 33)
  assert out["semantic_prob"].shape == (2, 33, 33, NUM_CLASSES)
  np.testing.assert_allclose(out["semantic_prob"].sum(-1), 1.0, rtol=1e-5)


def test_multi_scale_prediction(tiny_backbone):
  cfg = _config(decoder_output_stride=(4,))
  with tf.Graph().as_default():
    tf.set_random_seed(3)
    images = tf.random_uniform([1, 33, 33, 3], maxval=255.0, seed=4)
    single = model.predict_labels(images, cfg, (33, 33))
    same = model.predict_labels_multi_scale(images, cfg, (33, 33), eval_scales=(1.0,))
    multi = model.predict_labels_multi_scale(images, cfg, (33, 33), eval_scales=(0.75, 1.0),
                                             add_flipped_images=True)
    num_vars = len(_names())
    assert num_vars == len(_names("MobilenetV2")) + 42  # all calls share one model
    out = _run({"single": single, "same": same, "multi": multi}, None)
  np.testing.assert_array_equal(out["same"]["semantic"], out["single"]["semantic"])
  np.testing.assert_allclose(out["same"]["semantic_prob"], out["single"]["semantic_prob"],
                             rtol=1e-5, atol=1e-6)
  assert out["multi"]["semantic"].shape == (1, 33, 33)
  np.testing.assert_allclose(out["multi"]["semantic_prob"].sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(out["multi"]["semantic"],
                                out["multi"]["semantic_prob"].argmax(-1))


def test_flipped_prediction_of_a_symmetric_image_is_symmetric(tiny_backbone):
  cfg = _config()
  with tf.Graph().as_default():
    half = tf.random_uniform([1, 33, 17, 3], maxval=255.0, seed=5)
    images = tf.concat([half, tf.reverse(half[:, :, :16], [2])], axis=2)  # mirror image
    pred = model.predict_labels_multi_scale(images, cfg, (33, 33), add_flipped_images=True)
    out = _run(pred, None)
  prob = out["semantic_prob"]
  np.testing.assert_allclose(prob, prob[:, :, ::-1], rtol=1e-4, atol=1e-5)


def test_predict_labels_with_mobilenet_v2():
  cfg = _config(atrous_rates=(6,), decoder_output_stride=(4,))
  with tf.Graph().as_default():
    model.multi_scale_logits(tf.zeros([2, 33, 33, 3]), cfg, (33, 33), is_training=True,
                             fine_tune_batch_norm=True)
    train_variables = _names()
  with tf.Graph().as_default():
    images = tf.placeholder(tf.float32, [1, 33, 33, 3])
    pred = model.predict_labels(images, cfg, (33, 33))
    assert pred["semantic"].shape.as_list() == [1, 33, 33]
    # Evaluation restores exactly what training saved.
    assert _names() == train_variables
    out = _run(pred, {images: np.random.RandomState(0).uniform(0, 255, [1, 33, 33, 3])})
  assert out["semantic"].shape == (1, 33, 33)
  assert out["semantic"].min() >= 0 and out["semantic"].max() < NUM_CLASSES
  np.testing.assert_array_equal(out["semantic"], out["semantic_prob"].argmax(-1))


def test_uint8_images_as_exported_graphs_feed_them(tiny_backbone):
  with tf.Graph().as_default():
    images = tf.placeholder(tf.uint8, [1, 33, 33, 3])  # export's ImageTensor dtype
    pred = model.predict_labels_multi_scale(images, _config(), (33, 33), eval_scales=(0.5, 1.0))
    out = _run(pred, {images: np.random.RandomState(1).randint(0, 255, [1, 33, 33, 3])})
  assert out["semantic"].shape == (1, 33, 33)
