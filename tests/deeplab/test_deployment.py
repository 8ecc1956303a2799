"""model_deploy on CPU: device strings, scopes, shared variables, gradient equivalence.

The multi-clone graphs run on logical CPU devices (session_config), so multi-GPU code is tested without GPUs.
"""

import numpy as np
import pytest

from deeplab.training import deployment
from deeplab.compat import slim, tf
from deeplab.training.losses import add_softmax_cross_entropy_loss_for_each_scale

NUM_CLASSES = 3


def _tiny_net(images, labels, is_training=False, weight_decay=1e-3):
  """conv+BN -> conv logits, with L2 regularisation and the DeepLab loss."""
  with slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(weight_decay)):
    net = slim.conv2d(images, 4, [3, 3], normalizer_fn=slim.batch_norm,
                      normalizer_params={"is_training": is_training, "decay": 0.9},
                      scope="conv1")
    logits = slim.conv2d(net, NUM_CLASSES, [1, 1], activation_fn=None, scope="logits")
  add_softmax_cross_entropy_loss_for_each_scale(
      {"merged_logits": logits}, labels, NUM_CLASSES, ignore_label=255, scope="semantic")
  return logits


def _slices(images, labels, n):
  """model_fn arguments: clone i gets the i-th of n equal slices of the batch."""
  parts = iter(list(zip(np.split(images, n), np.split(labels, n))))

  def model_fn(is_training=False):
    x, y = next(parts)
    return _tiny_net(tf.constant(x), tf.constant(y), is_training=is_training)
  return model_fn


def _data(batch=4, size=8, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  labels = rng.randint(0, NUM_CLASSES, (batch, size, size, 1)).astype(np.int32)
  return images, labels


# ---- DeploymentConfig: pure methods --------------------------------------------------------

def test_defaults_one_clone():
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig()
    assert cfg.clone_device(0) == "/device:GPU:0"
    assert cfg.clone_scope(0) == ""
    assert cfg.optimizer_device() == "/device:CPU:0"
    assert cfg.inputs_device() == "/device:CPU:0"
    assert cfg.variables_device() == "/device:CPU:0"
    assert cfg.caching_device() is None
    assert cfg.num_cpu_devices == 1


def test_multi_gpu_devices_and_scopes():
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=3)
    assert [cfg.clone_device(i) for i in range(3)] == [
        "/device:GPU:0", "/device:GPU:1", "/device:GPU:2"]
    assert [cfg.clone_scope(i) for i in range(3)] == ["clone_0", "clone_1", "clone_2"]
    with pytest.raises(ValueError):
      cfg.clone_device(3)
    with pytest.raises(ValueError):
      cfg.clone_scope(3)


def test_clone_on_cpu_original_and_spread():
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True)
    assert cfg.clone_device(1) == "/device:CPU:0"  # the original: all clones on CPU:0
    spread = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True, spread_cpu_clones=True)
    assert [spread.clone_device(i) for i in range(2)] == ["/device:CPU:0", "/device:CPU:1"]
    assert spread.num_cpu_devices == 2
    assert deployment.session_config(spread).device_count["CPU"] == 2
    assert deployment.session_config(spread).allow_soft_placement


def test_ps_tasks_devices():
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, num_replicas=2, num_ps_tasks=1, replica_id=1)
    assert cfg.ps_device == "/job:ps"
    assert cfg.worker_device == "/job:worker"
    assert cfg.clone_device(1) == "/job:worker/device:GPU:1"
    assert cfg.inputs_device() == "/job:worker/device:CPU:0"
    assert cfg.optimizer_device() == "/job:worker/device:CPU:0"
    assert callable(cfg.variables_device())
    assert cfg.caching_device() is not None


@pytest.mark.parametrize("kwargs", [
    {"num_replicas": 2, "num_ps_tasks": 0},
    {"num_replicas": 2, "num_ps_tasks": 1, "ps_job_name": ""},
    {"num_ps_tasks": 1, "worker_job_name": ""},
    {"replica_id": 1},
    {"num_clones": 0},
])
def test_invalid_configs(kwargs):
  with pytest.raises(ValueError):
    deployment.DeploymentConfig(**kwargs)


# ---- create_clones ---------------------------------------------------------------------------

def test_create_clones_devices_and_shared_variables():
  images, labels = _data()
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True, spread_cpu_clones=True)
    clones = deployment.create_clones(cfg, _slices(images, labels, 2))
    assert [c.scope for c in clones] == ["clone_0/", "clone_1/"]
    assert [c.device for c in clones] == ["/device:CPU:0", "/device:CPU:1"]
    assert clones[0].outputs.op.name.startswith("clone_0/")
    assert clones[1].outputs.device.endswith("CPU:1")
    names = [v.op.name for v in tf.global_variables()]
    assert len(names) == len(set(names))
    assert not any(n.startswith("clone_") for n in names)
    # conv1 weights + BN beta/mean/var + logits weights/biases: one set only.
    assert len(tf.model_variables()) == 6
    for v in tf.global_variables():
      assert v.device.endswith("CPU:0"), (v.op.name, v.device)
    assert len(tf.get_collection(tf.GraphKeys.LOSSES, clones[0].scope)) == 1
    assert len(tf.get_collection(tf.GraphKeys.LOSSES, clones[1].scope)) == 1
    with tf.Session(config=deployment.session_config(cfg)) as sess:
      sess.run(tf.global_variables_initializer())
      out = sess.run([c.outputs for c in clones])
    assert out[0].shape == (2, 8, 8, NUM_CLASSES)


def test_update_ops_from_first_clone_only():
  images, labels = _data()
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True, spread_cpu_clones=True)
    clones = deployment.create_clones(cfg, _slices(images, labels, 2),
                                      kwargs={"is_training": True})
    all_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    first = deployment.first_clone_update_ops(cfg, clones)
    assert len(all_updates) == 4  # moving mean + variance, per clone
    assert len(first) == 2
    assert all(op.name.startswith("clone_0/") for op in first)


def test_regularization_counted_once():
  images, labels = _data()
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True, spread_cpu_clones=True)
    clones = deployment.create_clones(cfg, _slices(images, labels, 2))
    reg = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(reg) == 2  # conv1 and logits weights, created by the first clone only
    opt = tf.train.GradientDescentOptimizer(0.1)
    total, grads = deployment.optimize_clones(clones, opt)
    losses = [tf.get_collection(tf.GraphKeys.LOSSES, c.scope)[0] for c in clones]
    with tf.Session(config=deployment.session_config(cfg)) as sess:
      sess.run(tf.global_variables_initializer())
      t, l0, l1, r = sess.run([total, losses[0], losses[1], tf.add_n(reg)])
    assert r > 0
    np.testing.assert_allclose(t, (l0 + l1) / 2 + r, rtol=1e-6)
    assert all(g is not None for g, _ in grads)


def _run_clones(num_clones, images, labels, values=None):
  """total loss and {var name: gradient} for num_clones slices; optional variable values."""
  with tf.Graph().as_default():
    tf.set_random_seed(1)
    cfg = deployment.DeploymentConfig(num_clones=num_clones, clone_on_cpu=True,
                                      spread_cpu_clones=True)
    clones = deployment.create_clones(cfg, _slices(images, labels, num_clones))
    total, grads = deployment.optimize_clones(clones, tf.train.GradientDescentOptimizer(1.0))
    with tf.Session(config=deployment.session_config(cfg)) as sess:
      sess.run(tf.global_variables_initializer())
      if values:
        for v in tf.global_variables():
          v.load(values[v.op.name], sess)
      var_values = {v.op.name: sess.run(v) for v in tf.global_variables()}
      out = sess.run([total, [g for g, _ in grads]])
    return out[0], {v.op.name: g for (_, v), g in zip(grads, out[1])}, var_values


def test_gradient_equivalence_one_vs_two_clones():
  images, labels = _data(batch=4)
  loss1, grads1, values = _run_clones(1, images, labels)
  loss2, grads2, _ = _run_clones(2, images, labels, values)
  np.testing.assert_allclose(loss1, loss2, atol=1e-5)
  assert sorted(grads1) == sorted(grads2)
  for name in grads1:
    np.testing.assert_allclose(grads1[name], grads2[name], atol=1e-5, err_msg=name)


def test_deploy_builds_train_op():
  images, labels = _data()
  with tf.Graph().as_default():
    cfg = deployment.DeploymentConfig(num_clones=2, clone_on_cpu=True, spread_cpu_clones=True)
    model = deployment.deploy(cfg, _slices(images, labels, 2), kwargs={"is_training": True},
                              optimizer=tf.train.GradientDescentOptimizer(0.1))
    with tf.Session(config=deployment.session_config(cfg)) as sess:
      sess.run(tf.global_variables_initializer())
      first = sess.run(model.train_op)
      second, _ = sess.run([model.train_op, model.summary_op])
      assert sess.run(tf.train.get_global_step()) == 2
    assert np.isfinite(first) and second < first
