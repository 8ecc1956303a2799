"""StepClaims: asynchronous replicas end at exactly training_number_of_steps (one session)."""

import numpy as np

from deeplab.compat import tf
from deeplab.training import distributed


def test_steps_without_a_token_change_neither_the_step_nor_the_weights():
  total, resumed_at = 4, 1
  with tf.Graph().as_default():
    global_step = tf.train.get_or_create_global_step()
    tokens = distributed.StepTokens(global_step, total, "/device:CPU:0")
    w = tf.Variable([1.0, -2.0], name="w")
    optimizer = tf.train.MomentumOptimizer(0.1, 0.9)
    with tf.control_dependencies([tokens.token]):
      train = optimizer.minimize(tf.reduce_sum(tf.square(w)), global_step=global_step)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(global_step.assign(resumed_at))  # what a restore leaves
      tokens.start(sess)
      taken, refused = [], 0
      for _ in range(6):
        try:
          taken.append(sess.run([train, tokens.token])[1])
        except tf.errors.OutOfRangeError:
          refused += 1
      final_w, final_step = sess.run([w, global_step])
  # Independent of the graph: plain momentum SGD for the 3 remaining steps from w0.
  w_ref, accum = np.array([1.0, -2.0]), np.zeros(2)
  for _ in range(total - resumed_at):
    accum = 0.9 * accum + 2 * w_ref
    w_ref = w_ref - 0.1 * accum
  assert (taken, refused, final_step) == ([2, 3, 4], 3, total)
  np.testing.assert_allclose(final_w, w_ref, rtol=1e-6)


def _graph_variables(task):
  from deeplab.config import ModelConfig, TrainConfig
  from deeplab.training import trainer
  replicas, ps = (2, 2) if task else (1, 0)
  cfg = TrainConfig(model=ModelConfig(num_classes=3, depth_multiplier=0.25,
                                      aspp_convs_filters=16),
                    dataset_dir="unused", train_logdir="unused", train_crop_size=(33, 33),
                    train_batch_size=2, num_replicas=replicas, num_ps_tasks=ps,
                    training_number_of_steps=5)

  def input_fn(batch):
    return tf.data.Dataset.from_tensors({"image": tf.zeros([batch, 33, 33, 3]),
                                         "label": tf.zeros([batch, 33, 33, 1], tf.int32)}).repeat()

  with tf.Graph().as_default():
    g = trainer._Graph(cfg, 255, input_fn, trainer.deployment_config(cfg, 0, task))
    saved = {v.op.name for v in g.saver._var_list}  # what the checkpoints hold
    if task:
      assert g.tokens.queue.queue_ref.device == "/job:ps/task:0/device:CPU:0"
    return {v.op.name: v.device for v in tf.global_variables()}, saved


def test_replica_graph_puts_every_variable_on_the_ps_tasks_and_saves_what_one_process_saves():
  from deeplab.config.cluster import TaskSpec
  task = TaskSpec(("ps0:1", "ps1:1"), ("w0:1", "w1:1"), "worker", 1)
  devices, saved = _graph_variables(task)
  assert {d.rsplit("/", 1)[0] for d in devices.values()} == {"/job:ps/task:0", "/job:ps/task:1"}
  single_devices, single_saved = _graph_variables(None)
  assert not any("job" in d for d in single_devices.values())
  # The checkpoint of a cluster run reads like a one-process run's (evaluate, export).
  assert saved == single_saved == set(single_devices)
  assert set(devices) == set(single_devices)
