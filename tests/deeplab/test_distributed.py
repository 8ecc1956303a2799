"""StepClaims: asynchronous replicas end at exactly training_number_of_steps (one session)."""

import numpy as np

from deeplab.compat import tf
from deeplab.training import distributed


def test_claims_past_the_end_change_neither_the_step_nor_the_weights():
  total, runs = 3, 6
  with tf.Graph().as_default():
    global_step = tf.train.get_or_create_global_step()
    claims = distributed.StepClaims(global_step, total, "/device:CPU:0")
    w = tf.Variable([1.0, -2.0], name="w")
    loss = tf.reduce_sum(tf.square(w))
    optimizer = tf.train.MomentumOptimizer(claims.gate(tf.constant(0.1)), 0.9)
    apply_op = optimizer.apply_gradients(optimizer.compute_gradients(loss))
    with tf.control_dependencies([apply_op]):
      step_after = claims.advance()
    with tf.Session() as sess:
      sess.run([v.initializer for v in tf.global_variables() if not claims.owns(v)])
      sess.run(claims.counter.initializer)
      seen = [sess.run([step_after, claims.claim]) for _ in range(runs)]
      final_w, final_step = sess.run([w, global_step])
  # Independent of the graph: plain momentum SGD for `total` steps from w0.
  w_ref, accum = np.array([1.0, -2.0]), np.zeros(2)
  for _ in range(total):
    accum = 0.9 * accum + 2 * w_ref
    w_ref = w_ref - 0.1 * accum
  assert final_step == total
  assert [s for s, _ in seen] == [1, 2, 3, 3, 3, 3]
  assert [c for _, c in seen] == [1, 2, 3, 4, 5, 6]
  np.testing.assert_allclose(final_w, w_ref, rtol=1e-6)


def test_claims_resume_from_the_restored_global_step():
  with tf.Graph().as_default():
    global_step = tf.train.get_or_create_global_step()
    claims = distributed.StepClaims(global_step, 10, "/device:CPU:0")
    with tf.Session() as sess:
      sess.run(global_step.initializer)
      sess.run(global_step.assign(7))  # what a restore leaves
      sess.run(claims.counter.initializer)
      assert sess.run([claims.claim, claims.advance()]) == [8, 8]


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
  assert set(devices) == set(single_devices) | {"step_claims"}
