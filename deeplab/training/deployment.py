"""Multi-clone deployment (slim's model_deploy, docs/compatibility.md).

A *clone* is one copy of the model that processes a slice of the global batch on one
device (normally one GPU). Clones share one set of variables, which live on the variables
device (CPU:0). Each clone's loss is scaled by 1/num_clones, the regularisation losses are
added once (to the first clone), and the gradients are summed, so the result is the
gradient of the average loss. Batch-norm moving averages are updated from the first clone
only, like the original.

Without a GPU the trainer asks for ``num_clones`` logical CPU devices
(``session_config``) and sets ``clone_on_cpu`` with ``spread_cpu_clones``, so the very
same multi-clone graph runs on a laptop or CI.

Example::

  config = DeploymentConfig(num_clones=2)
  clones = create_clones(config, model_fn, args=(iterator,))
  total_loss, grads_and_vars = optimize_clones(clones, optimizer)
  update_ops = first_clone_update_ops(config, clones)
"""

from __future__ import annotations

import collections
from typing import Callable, Optional, Sequence

from deeplab.compat import slim, tf
from deeplab.errors import ConfigError

__all__ = [
    "Clone", "DeployedModel", "DeploymentConfig", "create_clones", "optimize_clones",
    "first_clone_update_ops", "deploy", "session_config", "scalar_summary",
]

Clone = collections.namedtuple("Clone", ["outputs", "scope", "device"])
"""outputs: what model_fn returned; scope: the clone's name scope; device: its device."""

DeployedModel = collections.namedtuple(
    "DeployedModel", ["train_op", "summary_op", "total_loss", "clones"])


class DeploymentConfig:
  """Where clones, inputs, variables and the optimizer go; pure methods, no graph needed.

  Args:
    num_clones: model clones on this worker (normally one per GPU).
    clone_on_cpu: put the clones on CPU instead of GPU.
    replica_id: index of this worker replica (0 = chief).
    num_replicas: number of worker replicas.
    num_ps_tasks: number of parameter-server tasks (0 = variables stay local).
    worker_job_name: job name of the workers.
    ps_job_name: job name of the parameter servers.
    spread_cpu_clones: with clone_on_cpu, put clone i on /device:CPU:i (logical CPU devices,
      see session_config) instead of putting every clone on /device:CPU:0 as the original.

  Raises:
    ValueError: impossible combinations (as the original).
  """

  def __init__(self, num_clones: int = 1, clone_on_cpu: bool = False, replica_id: int = 0,
               num_replicas: int = 1, num_ps_tasks: int = 0, worker_job_name: str = "worker",
               ps_job_name: str = "ps", spread_cpu_clones: bool = False):
    if num_clones < 1:
      raise ConfigError(f"num_clones must be >= 1, got {num_clones}")
    if num_replicas > 1 and num_ps_tasks < 1:
      raise ValueError("When using replicas num_ps_tasks must be positive")
    if num_replicas > 1 or num_ps_tasks > 0:
      if not worker_job_name:
        raise ValueError("Must specify worker_job_name when using parameter servers")
      if not ps_job_name:
        raise ValueError("Must specify ps_job_name when using parameter servers")
    if replica_id >= num_replicas:
      raise ValueError(f"replica_id {replica_id} must be less than num_replicas {num_replicas}")
    self._num_clones = num_clones
    self._clone_on_cpu = clone_on_cpu
    self._replica_id = replica_id
    self._num_replicas = num_replicas
    self._num_ps_tasks = num_ps_tasks
    self._spread_cpu_clones = spread_cpu_clones
    self._ps_device = "/job:" + ps_job_name if num_ps_tasks > 0 else ""
    self._worker_device = "/job:" + worker_job_name if num_ps_tasks > 0 else ""

  num_clones = property(lambda self: self._num_clones)
  clone_on_cpu = property(lambda self: self._clone_on_cpu)
  replica_id = property(lambda self: self._replica_id)
  num_replicas = property(lambda self: self._num_replicas)
  num_ps_tasks = property(lambda self: self._num_ps_tasks)
  ps_device = property(lambda self: self._ps_device)
  worker_device = property(lambda self: self._worker_device)
  spread_cpu_clones = property(lambda self: self._spread_cpu_clones)

  @property
  def num_cpu_devices(self) -> int:
    """CPU devices the session must expose for this deployment."""
    return self._num_clones if self._clone_on_cpu and self._spread_cpu_clones else 1

  def caching_device(self) -> Optional[Callable]:
    """Caches remote variables on the reading device; None when variables are local."""
    if self._num_ps_tasks > 0:
      return lambda op: op.device
    return None

  def clone_device(self, clone_index: int) -> str:
    """Device of clone `clone_index`: /device:GPU:i, or a CPU device with clone_on_cpu."""
    if not 0 <= clone_index < self._num_clones:
      raise ValueError(f"clone_index {clone_index} must be in [0, {self._num_clones})")
    if self._clone_on_cpu:
      cpu = clone_index if self._spread_cpu_clones else 0
      return self._worker_device + "/device:CPU:%d" % cpu
    return self._worker_device + "/device:GPU:%d" % clone_index

  def clone_scope(self, clone_index: int) -> str:
    """Name scope of a clone: '' with one clone (names as a plain graph), else clone_%d."""
    if not 0 <= clone_index < self._num_clones:
      raise ValueError(f"clone_index {clone_index} must be in [0, {self._num_clones})")
    return "clone_%d" % clone_index if self._num_clones > 1 else ""

  def optimizer_device(self) -> str:
    # As the original: the optimizer always sits on the worker's CPU.
    return self._worker_device + "/device:CPU:0"

  def inputs_device(self) -> str:
    return self._worker_device + "/device:CPU:0"

  def variables_device(self):
    """CPU:0 of this worker, or a round-robin chooser over the ps tasks."""
    device = self._ps_device + "/device:CPU:0"
    if self._num_ps_tasks == 0:
      return device
    chooser = _PSDeviceChooser(device, self._num_ps_tasks)
    return chooser.choose


class _PSDeviceChooser:
  """Places variables round-robin over the ps tasks; other ops keep their device."""

  def __init__(self, device: str, tasks: int):
    self._device = device
    self._tasks = tasks
    self._task = 0

  def choose(self, op) -> str:
    if op.device:
      return op.device
    node_def = op if isinstance(op, tf.NodeDef) else op.node_def
    if node_def.op.startswith("Variable") or node_def.op == "VarHandleOp":
      task = self._task
      self._task = (self._task + 1) % self._tasks
      spec = tf.DeviceSpec.from_string(self._device).replace(task=task)
      return spec.to_string()
    return op.device


def scalar_summary(tag: str, tensor, collections=(tf.GraphKeys.SUMMARIES,)):
  """A scalar summary with exactly this tag.

  tf.summary.scalar derives the tag from a uniquified name scope, which inside a clone's
  scope or next to an op of the same name gives tags like 'clone_0/clone_0/clone_loss' or
  'learning_rate_1'.
  """
  with tf.name_scope(None):
    op = tf.raw_ops.ScalarSummary(tags=tag, values=tensor, name="summary")
  for key in collections:
    tf.add_to_collection(key, op)
  return op


def session_config(config: DeploymentConfig, **kwargs) -> "tf.ConfigProto":
  """A session config with soft placement and one logical CPU device per CPU clone."""
  proto = tf.ConfigProto(allow_soft_placement=True, **kwargs)
  if config.num_cpu_devices > 1:
    proto.device_count["CPU"] = config.num_cpu_devices
  return proto


def create_clones(config: DeploymentConfig, model_fn: Callable, args: Sequence = None,
                  kwargs: dict = None) -> list:
  """Builds model_fn once per clone, sharing variables (created by the first clone).

  Every clone runs under its name scope and on its device; slim variables go to the
  variables device. model_fn must add its losses to tf.GraphKeys.LOSSES (slim/tf.losses
  do); recover a clone's losses, summaries and update ops with
  tf.get_collection(KEY, clone.scope).

  Returns:
    A list of Clone(outputs, scope, device).
  """
  args = tuple(args or ())
  kwargs = dict(kwargs or {})
  clones = []
  with slim.arg_scope([slim.model_variable, slim.variable], device=config.variables_device()):
    for i in range(config.num_clones):
      with tf.name_scope(config.clone_scope(i)) as clone_scope:
        clone_device = config.clone_device(i)
        with tf.device(clone_device):
          with tf.variable_scope(tf.get_variable_scope(), reuse=True if i > 0 else None):
            outputs = model_fn(*args, **kwargs)
          clones.append(Clone(outputs, clone_scope, clone_device))
  return clones


def _gather_clone_loss(clone: Clone, num_clones: int, regularization_losses: list):
  """The clone's losses (scaled by 1/num_clones) plus the given regularisation losses."""
  sum_loss = None
  clone_loss = None
  regularization_loss = None
  with tf.device(clone.device):
    parts = []
    clone_losses = tf.get_collection(tf.GraphKeys.LOSSES, clone.scope)
    if clone_losses:
      clone_loss = tf.add_n(clone_losses, name="clone_loss")
      if num_clones > 1:
        clone_loss = tf.div(clone_loss, 1.0 * num_clones, name="scaled_clone_loss")
      parts.append(clone_loss)
    if regularization_losses:
      regularization_loss = tf.add_n(regularization_losses, name="regularization_loss")
      parts.append(regularization_loss)
    if parts:
      sum_loss = tf.add_n(parts)
  # Summaries live outside the device block: scalar summaries must run on CPU.
  if clone_loss is not None:
    scalar_summary("/".join(filter(None, [clone.scope.rstrip("/"), "clone_loss"])), clone_loss)
  if regularization_loss is not None:
    scalar_summary("regularization_loss", regularization_loss)
  return sum_loss


def _sum_clones_gradients(clone_grads: list) -> list:
  """Sums the gradients of each variable over the clones (None gradients dropped)."""
  sum_grads = []
  for grad_and_vars in zip(*clone_grads):
    var = grad_and_vars[0][1]
    grads = []
    for g, v in grad_and_vars:
      if v is not var:
        raise ValueError(f"clones disagree on variable order: {v.op.name} vs {var.op.name}")
      if g is not None:
        grads.append(g)
    if not grads:
      continue
    if len(grads) > 1:
      sum_grad = tf.add_n(grads, name=var.op.name + "/sum_grads")
    else:
      sum_grad = grads[0]
    sum_grads.append((sum_grad, var))
  return sum_grads


def optimize_clones(clones: list, optimizer, regularization_losses: list = None,
                    **kwargs) -> tuple:
  """Computes the total loss and the summed gradients of all clones.

  Args:
    clones: from create_clones.
    optimizer: a tf.train optimizer (only compute_gradients is called).
    regularization_losses: None collects tf.GraphKeys.REGULARIZATION_LOSSES; [] excludes
      them. They are added to the first clone only, so they count once.
    **kwargs: passed to optimizer.compute_gradients.

  Returns:
    (total_loss, grads_and_vars): total_loss is the average clone loss plus regularisation.
  """
  grads_and_vars = []
  clones_losses = []
  num_clones = len(clones)
  if regularization_losses is None:
    regularization_losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
  for clone in clones:
    with tf.name_scope(clone.scope):
      clone_loss = _gather_clone_loss(clone, num_clones, regularization_losses)
      if clone_loss is not None:
        with tf.device(clone.device):
          clones_losses.append(clone_loss)
          grads_and_vars.append(optimizer.compute_gradients(clone_loss, **kwargs))
      # Regularisation only on the first clone.
      regularization_losses = None
  if not clones_losses:
    raise ValueError("no losses found: model_fn must add its losses to tf.GraphKeys.LOSSES")
  total_loss = tf.add_n(clones_losses, name="total_loss")
  return total_loss, _sum_clones_gradients(grads_and_vars)


def first_clone_update_ops(config: DeploymentConfig, clones: list) -> list:
  """Batch-norm updates of the first clone only (the original's choice, §8.7)."""
  del config
  return tf.get_collection(tf.GraphKeys.UPDATE_OPS, clones[0].scope)


def deploy(config: DeploymentConfig, model_fn: Callable, args: Sequence = None,
           kwargs: dict = None, optimizer=None, summarize_gradients: bool = False
           ) -> DeployedModel:
  """create_clones + optimize_clones + apply_gradients in one call (model_deploy.deploy)."""
  summaries = set(tf.get_collection(tf.GraphKeys.SUMMARIES))
  clones = create_clones(config, model_fn, args, kwargs)
  first_clone = clones[0]
  update_ops = first_clone_update_ops(config, clones)
  train_op = None
  total_loss = None
  with tf.device(config.optimizer_device()):
    if optimizer is not None:
      with tf.device(config.variables_device()):
        global_step = tf.train.get_or_create_global_step()
      total_loss, grads = optimize_clones(clones, optimizer)
      if grads:
        if summarize_gradients:
          for grad, var in grads:
            summaries.add(tf.summary.histogram(var.op.name + "/gradient", grad))
          summaries.add(scalar_summary("gradient_norm", tf.global_norm([g for g, _ in grads])))
        update_ops.append(optimizer.apply_gradients(grads, global_step=global_step))
      with tf.control_dependencies([tf.group(*update_ops)]):
        train_op = tf.identity(total_loss, name="train_op")
    else:
      losses = []
      regularization_losses = tf.get_collection(tf.GraphKeys.REGULARIZATION_LOSSES)
      for clone in clones:
        with tf.name_scope(clone.scope):
          loss = _gather_clone_loss(clone, len(clones), regularization_losses)
          if loss is not None:
            losses.append(loss)
          regularization_losses = None
      if losses:
        total_loss = tf.add_n(losses, name="total_loss")
    summaries |= set(tf.get_collection(tf.GraphKeys.SUMMARIES, first_clone.scope))
    if total_loss is not None:
      summaries.add(scalar_summary("total_loss", total_loss))
    summary_op = tf.summary.merge(list(summaries), name="summary_op") if summaries else None
  return DeployedModel(train_op, summary_op, total_loss, clones)

