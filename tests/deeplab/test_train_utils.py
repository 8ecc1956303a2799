"""Gradient multipliers and checkpoint initialisation on tiny slim graphs."""

import logging
import os

import numpy as np
import pytest

from deeplab.training import checkpoint_init, train_utils
from deeplab.compat import slim, tf
from deeplab.errors import UserInputError


def _net(num_classes=3, backbone="backbone"):
  images = tf.zeros([1, 4, 4, 3])
  net = slim.conv2d(images, 4, [3, 3], scope=backbone + "/conv1")
  net = slim.conv2d(net, 4, [1, 1], scope="aspp0")
  return slim.conv2d(net, num_classes, [1, 1], activation_fn=None, scope="logits/semantic")


def test_gradient_multipliers_as_the_original():
  with tf.Graph().as_default():
    _net()
    mult = train_utils.get_model_gradient_multipliers(
        train_utils.extra_layer_scopes(False), 10.0)
  assert mult == {
      "backbone/conv1/biases": 2.0,
      "aspp0/weights": 10.0, "aspp0/biases": 20.0,
      "logits/semantic/weights": 10.0, "logits/semantic/biases": 20.0,
  }
  assert train_utils.extra_layer_scopes(True) == ["logits"]


def test_multiply_gradients():
  with tf.Graph().as_default():
    v = tf.Variable([1.0, 1.0], name="v")
    w = tf.Variable([1.0], name="w")
    out = train_utils.multiply_gradients(
        [(tf.constant([1.0, 2.0]), v), (tf.constant([3.0]), w), (None, w)], {"v": 3.0})
    with tf.Session() as sess:
      assert sess.run(out[0][0]).tolist() == [3.0, 6.0]
      assert sess.run(out[1][0]).tolist() == [3.0]
    assert out[2][0] is None


def _save(path, num_classes=3, backbone="backbone"):
  with tf.Graph().as_default():
    _net(num_classes, backbone)
    tf.train.get_or_create_global_step()
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      values = {v.op.name: sess.run(v) for v in tf.global_variables()}
      prefix = tf.train.Saver().save(sess, str(path / "model.ckpt"))
  return prefix, values


def _restore(prefix, num_classes=3, exclude=(), backbone="backbone"):
  with tf.Graph().as_default():
    _net(num_classes, backbone)
    init_fn = checkpoint_init.get_model_init_fn(prefix, exclude)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      init_fn(sess)
      return init_fn, {v.op.name: sess.run(v) for v in tf.global_variables()}


def test_init_restores_and_skips_mismatched_shapes(tmp_path, caplog):
  prefix, saved = _save(tmp_path, num_classes=21)
  caplog.set_level(logging.INFO, logger="deeplab.train")
  init_fn, got = _restore(prefix, num_classes=5)
  np.testing.assert_array_equal(got["backbone/conv1/weights"], saved["backbone/conv1/weights"])
  assert sorted(init_fn.skipped_shape) == ["logits/semantic/biases", "logits/semantic/weights"]
  warnings = [r.getMessage() for r in caplog.records
              if r.name == "deeplab.train" and r.levelno >= logging.WARNING]
  assert len(warnings) == 1
  assert "logits/semantic/weights model [1, 1, 4, 5] vs checkpoint [1, 1, 4, 21]" in warnings[0]


def test_init_excludes_last_layers(tmp_path):
  prefix, saved = _save(tmp_path)
  init_fn, got = _restore(prefix, exclude=train_utils.extra_layer_scopes(True))
  assert "logits/semantic/weights" not in init_fn.restored
  assert "aspp0/weights" in init_fn.restored
  assert not np.array_equal(got["logits/semantic/weights"], saved["logits/semantic/weights"])


def test_init_from_unrelated_checkpoint_is_a_user_error(tmp_path):
  prefix, _ = _save(tmp_path, backbone="other_net")
  with tf.Graph().as_default():
    images = tf.zeros([1, 4, 4, 3])
    slim.conv2d(images, 4, [3, 3], scope="MobilenetV2/Conv")
    with pytest.raises(UserInputError, match="shares no variable with the model"):
      checkpoint_init.get_model_init_fn(prefix)


def test_stage_initial_checkpoint_forms(tmp_path):
  prefix, _ = _save(tmp_path)
  assert checkpoint_init.stage_initial_checkpoint(prefix) == prefix
  assert checkpoint_init.stage_initial_checkpoint(prefix + ".index") == prefix
  assert checkpoint_init.stage_initial_checkpoint(str(tmp_path)) == prefix
  with pytest.raises(UserInputError, match="is not a TensorFlow checkpoint"):
    checkpoint_init.stage_initial_checkpoint(str(tmp_path / "nope.ckpt"))


def test_resolve_gcs_checkpoint(tmp_path, gcs_bucket, monkeypatch):
  from deeplab import storage

  prefix, _ = _save(tmp_path)
  for name in os.listdir(tmp_path):
    storage.upload_file(str(tmp_path / name), f"gs://{gcs_bucket}/zoo/{name}")
  monkeypatch.setenv("DEEPLAB_CACHE_DIR", str(tmp_path / "cache"))
  local = checkpoint_init.stage_initial_checkpoint(f"gs://{gcs_bucket}/zoo/model.ckpt")
  assert local.startswith(str(tmp_path / "cache")) and os.path.exists(local + ".index")
  folder = checkpoint_init.stage_initial_checkpoint(f"gs://{gcs_bucket}/zoo")
  assert os.path.exists(folder + ".index")
