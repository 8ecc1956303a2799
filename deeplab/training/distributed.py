"""The original's distributed training on TensorFlow's own runtime: ps tasks, async replicas.

Each task of the cluster (deeplab.config.cluster) starts an in-process gRPC server. Parameter
servers only serve (`serve_ps`). Workers build the same graph: model_deploy places the variables
round-robin on the ps tasks and the clones on the worker's own devices; every worker applies its
gradients to the shared variables without waiting for the others (asynchronous, as the
original). Worker 0, the chief, initialises or restores the variables and alone writes
checkpoints, summaries, config.json and the result; the other workers wait until the variables
are ready and never write anything.

Why `device_filters`: a session on TensorFlow's distributed master waits for *every* task of
the cluster to answer before its first step. A second worker that starts after the chief has
already finished (its server gone) therefore waits forever; filtered to the ps tasks and itself,
a worker depends only on what it really uses. With the filter, `/job:worker` without a task
index resolves to the worker's own devices, as the original's device strings expect.

Exactly N steps with asynchronous replicas: every step first claims a number from a shared
counter on the ps (`StepClaims`); a step whose claim is past training_number_of_steps runs with
learning rate 0 and does not advance the global step. So the global step ends at exactly N
(a retry resumes from the chief's checkpoint at a known step), whatever the replicas' race.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from deeplab.compat import tf
from deeplab.config.cluster import PS_JOB, WORKER_JOB, TaskSpec
from deeplab.training import deployment

log = logging.getLogger("deeplab.train")

POLL_SECONDS = 0.5
# The chief waits this long (at least) for the other replicas' last claimed steps to land.
FINAL_STEP_WAIT_SECONDS = 60.0


class StepClaims:
  """A counter on the ps that hands out step numbers; claims past `total` change nothing.

  Not saved in checkpoints: the chief initialises it from the (restored) global step, and the
  other workers wait until it is initialised, so a resumed run claims from where it stopped.
  """

  def __init__(self, global_step, total: int, device):
    with tf.device(device):
      self.counter = tf.Variable(tf.identity(global_step), trainable=False, name="step_claims",
                                 collections=[tf.GraphKeys.GLOBAL_VARIABLES])
    self._global_step = global_step
    self.claim = tf.assign_add(self.counter, tf.constant(1, self.counter.dtype.base_dtype),
                               use_locking=True, name="claim_step")
    self.accepted = tf.less_equal(self.claim, total, name="step_accepted")

  def owns(self, variable) -> bool:
    return variable is self.counter

  def gate(self, learning_rate):
    """The learning rate for this step: 0 when its claim is past the end."""
    return learning_rate * tf.cast(self.accepted, learning_rate.dtype)

  def advance(self):
    """Adds 1 to the global step for an accepted claim (0 otherwise); the new global step."""
    return tf.assign_add(self._global_step,
                         tf.cast(self.accepted, self._global_step.dtype.base_dtype),
                         use_locking=True, name="advance_global_step")


def server_config(deploy: deployment.DeploymentConfig, task: TaskSpec) -> "tf.ConfigProto":
  """The task's server and session config: the worker's logical CPUs, filtered devices."""
  proto = deployment.session_config(deploy)
  if task.is_ps:
    proto.device_filters.append(f"/job:{PS_JOB}/task:{task.task_index}")
  else:
    proto.device_filters.extend([f"/job:{PS_JOB}", f"/job:{WORKER_JOB}/task:{task.task_index}"])
  return proto


def start_server(task: TaskSpec, config: "tf.ConfigProto"):
  """This task's in-process gRPC server (it listens on its own host:port of the cluster)."""
  server = tf.train.Server(tf.train.ClusterSpec(task.cluster), job_name=task.job_name,
                           task_index=task.task_index, config=config, start=True)
  log.info("task %s serving at %s (cluster: %s)", task, server.target, task.cluster)
  return server


def serve_ps(task: TaskSpec) -> None:
  """Runs a parameter-server task until the process is stopped (the launcher stops the group
  once the chief is done)."""
  proto = tf.ConfigProto()
  proto.device_filters.append(f"/job:{PS_JOB}/task:{task.task_index}")
  start_server(task, proto).join()


def wait_until(check: Callable[[], bool], signals: dict, what: str) -> bool:
  """Polls `check` until it holds (True) or a signal asks to stop (False)."""
  logged = False
  while not signals["stop"]:
    if check():
      return True
    if not logged:
      log.info("waiting for %s", what)
      logged = True
    time.sleep(POLL_SECONDS)
  return False


def wait_for_final_step(sess, global_step, total: int, timeout: float) -> int:
  """The chief's end: waits until the other replicas' accepted steps landed (global step N).

  Raises:
    RuntimeError: a replica claimed a step and never finished it (it died mid-step): the
      chief has saved what there is; the retry resumes and ends at exactly N (transient).
  """
  deadline = time.monotonic() + timeout
  step = int(sess.run(global_step))
  while step < total and time.monotonic() < deadline:
    time.sleep(POLL_SECONDS)
    step = int(sess.run(global_step))
  return step
