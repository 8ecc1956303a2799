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

Exactly N steps with asynchronous replicas: every step first takes a token from a queue on the
ps that holds one token per remaining step (`StepTokens`); without a token it does nothing. So
the global step ends at exactly N (a retry resumes from the chief's checkpoint at a known
step), whatever the replicas' race. The queue lives only as long as its ps task: the group is
always restarted as a whole (the launchers do), never the chief alone.
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


class StepTokens:
  """One token per remaining step in a queue on the first ps task; a step runs only with one.

  A shared counter does not do: a variable's assign_add hands back a reference that is read
  later, after other replicas' increments (two replicas then see the same claim). Dequeuing is
  atomic: each token goes to exactly one step, so the global step ends at exactly N. The chief
  fills the queue from the (restored) global step and closes it; once it is empty, a dequeue
  fails with OutOfRangeError and the replica stops. Not part of any checkpoint.
  """

  SHARED_NAME = "deeplab_step_tokens"

  def __init__(self, global_step, total: int, ps_device: str):
    with tf.device(ps_device):
      self.queue = tf.FIFOQueue(total, [tf.int64], shapes=[[]], shared_name=self.SHARED_NAME,
                                name="step_tokens")
      first = tf.cast(global_step, tf.int64) + 1
      self.fill = self.queue.enqueue_many([tf.range(first, total + 1, dtype=tf.int64)])
      self.close = self.queue.close()
      self.token = self.queue.dequeue(name="step_token")

  def start(self, sess) -> None:
    """The chief, after initialising or restoring: one token per step still to train."""
    sess.run(self.fill)
    sess.run(self.close)


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
