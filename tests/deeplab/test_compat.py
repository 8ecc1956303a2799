"""deeplab.compat: tf-slim 1.1.0 conv + batch_norm trains on TensorFlow 2.21 (graph mode)."""

import numpy as np

from deeplab.compat import slim, tf


def test_slim_conv_batch_norm_training_step():
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    images = tf.constant(np.random.RandomState(0).rand(2, 9, 9, 3).astype(np.float32) * 4 + 1)
    with slim.arg_scope([slim.conv2d], normalizer_fn=slim.batch_norm,
                        normalizer_params={"is_training": True, "decay": 0.5}):
      net = slim.conv2d(images, 4, [3, 3], scope="conv1")
    loss = tf.reduce_mean(tf.square(net - 1.0))
    update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(update_ops) == 2  # Moving mean and moving variance.
    optimizer = tf.train.GradientDescentOptimizer(0.1)
    train_op = slim.learning.create_train_op(loss, optimizer)  # Runs UPDATE_OPS first.
    moving_mean = [v for v in tf.global_variables() if v.op.name == "conv1/BatchNorm/moving_mean"]
    assert len(moving_mean) == 1
    assert {v.op.name for v in tf.trainable_variables()} == {
        "conv1/weights", "conv1/BatchNorm/beta"}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      before = sess.run(moving_mean[0])
      first = sess.run(train_op)
      after = sess.run(moving_mean[0])
      second = sess.run(train_op)
    assert np.isfinite(first) and np.isfinite(second)
    assert not np.allclose(before, after)
