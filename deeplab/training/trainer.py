"""Multi-clone DeepLab training: graph (model_deploy) and a plain tf.Session loop.

`train(cfg, ignore_label)` is what `python -m deeplab train` calls after turning its flags
into a TrainConfig. It resumes from train_logdir when that holds a checkpoint (whatever
--tf_initial_checkpoint says), stops exactly at training_number_of_steps, saves by time and
by steps (and at the end; on SIGTERM it saves and exits 143 for a retry), stops with
NonFiniteLossError (exit 3) on a NaN/inf loss and writes config.json and train_result.json
to train_logdir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from typing import Callable, Optional

import numpy as np

from deeplab import config as config_lib
from deeplab import storage
from deeplab.training import (cell_copy, deployment, distributed, learning_rate, losses,
                              train_utils)
from deeplab.training.checkpoint_init import get_model_init_fn, stage_initial_checkpoint
from deeplab.compat import tf
from deeplab.config.cluster import TaskSpec
from deeplab.contract import EXIT_TERMINATED
from deeplab.errors import NonFiniteLossError, UserInputError
from deeplab.storage.checkpoints import checkpoint_step
from deeplab.training.logdir import (CHECKPOINT_BASENAME, CONFIG_JSON, TRAIN_RESULT_JSON,
                                     TrainLogdir)

log = logging.getLogger("deeplab.train")

# input_fn(batch_size) -> tf.data.Dataset of dicts with 'image' [B,h,w,3] and 'label' [B,h,w,1].
InputFn = Callable[[int], "tf.data.Dataset"]


def deployment_config(cfg: config_lib.TrainConfig, num_gpus: Optional[int] = None,
                      task: Optional[TaskSpec] = None) -> deployment.DeploymentConfig:
  """GPU clones when there are enough GPUs; else one logical CPU device per clone.

  With a cluster (`task`), variables go round-robin to the ps tasks and the clones to this
  worker (model_deploy's replica settings).
  """
  if num_gpus is None:
    num_gpus = len(tf.config.list_physical_devices("GPU"))
  on_cpu = cfg.clone_on_cpu or num_gpus == 0
  if not on_cpu and num_gpus < cfg.num_clones:
    raise UserInputError(
        f"--num_clones={cfg.num_clones} needs {cfg.num_clones} GPUs but {num_gpus} are visible; "
        "lower --num_clones, request more GPUs, or pass --clone_on_cpu")
  if on_cpu and not cfg.clone_on_cpu:
    log.info("no GPU visible: running %d clone(s) on logical CPU devices", cfg.num_clones)
  return deployment.DeploymentConfig(
      num_clones=cfg.num_clones, clone_on_cpu=on_cpu, spread_cpu_clones=on_cpu,
      replica_id=task.task_index if task else 0, num_replicas=cfg.num_replicas,
      num_ps_tasks=cfg.num_ps_tasks)


def dataset_input_fn(cfg: config_lib.TrainConfig, ignore_label: int) -> InputFn:
  """The TFRecord input pipeline of cfg.dataset_dir / cfg.train_split."""
  from deeplab.datasets import input_pipeline

  def input_fn(batch_size: int):
    m = cfg.model
    return input_pipeline.build_dataset(
        cfg.dataset_dir, cfg.train_split, batch_size=batch_size, crop_size=cfg.train_crop_size,
        is_training=True, model_variant=m.model_variant, min_resize_value=m.min_resize_value,
        max_resize_value=m.max_resize_value, resize_factor=m.resize_factor,
        keep_aspect_ratio=m.keep_aspect_ratio, min_scale_factor=cfg.min_scale_factor,
        max_scale_factor=cfg.max_scale_factor, scale_factor_step_size=cfg.scale_factor_step_size,
        ignore_label=ignore_label, should_shuffle=True, should_repeat=True, seed=cfg.seed)
  return input_fn


def loss_weights(model_cfg: config_lib.ModelConfig):
  """The loss's label_weights: the config's per-class list, else the original's default 1.0.

  The loss refuses None (as the original does), so an unset --label_weights becomes 1.0 here.
  """
  return [float(w) for w in model_cfg.label_weights] if model_cfg.label_weights else 1.0


def _clone_batches(iterator, num_clones: int, inputs_device: str) -> list:
  """One get_next() for all clones, split in clone order: clone i trains on the i-th share.

  The original has every clone dequeue its own batch, so which clone trains on which images
  depends on thread timing; with batch norm in training mode that changes the weights, and two
  runs with the same --seed differed. With fixed shares a seeded run is reproducible with any
  number of clones.
  """
  with tf.device(inputs_device):
    batch = iterator.get_next()
    pieces = {key: tf.split(value, num_clones, axis=0) for key, value in batch.items()}
  return [{key: parts[i] for key, parts in pieces.items()} for i in range(num_clones)]


def _build_deeplab(batches, cfg: config_lib.TrainConfig, ignore_label: int, global_step) -> dict:
  """One clone: its share of the batch -> multi-scale logits -> one loss per scale (in LOSSES).

  `batches` iterates over the clones' shares; create_clones builds clone 0, 1, … in order.
  """
  from deeplab import model

  samples = next(batches)
  image = tf.identity(samples["image"], name="image")
  label = tf.identity(samples["label"], name="label")
  outputs = model.multi_scale_logits(
      image, cfg.model, crop_size=cfg.train_crop_size, image_pyramid=cfg.model.image_pyramid,
      weight_decay=cfg.weight_decay, is_training=True,
      fine_tune_batch_norm=cfg.fine_tune_batch_norm,
      nas_training_hyper_parameters={"drop_path_keep_prob": cfg.drop_path_keep_prob,
                                     "total_training_steps": cfg.training_number_of_steps})
  scales_to_logits = dict(outputs[model.OUTPUT_TYPE])
  merged = tf.identity(scales_to_logits[model.MERGED_LOGITS_SCOPE], name=model.OUTPUT_TYPE)
  scales_to_logits[model.MERGED_LOGITS_SCOPE] = merged
  losses.add_softmax_cross_entropy_loss_for_each_scale(
      scales_to_logits, label, cfg.model.num_classes, ignore_label,
      loss_weight=loss_weights(cfg.model),
      upsample_logits=cfg.upsample_logits, hard_example_mining_step=cfg.hard_example_mining_step,
      top_k_percent_pixels=cfg.top_k_percent_pixels, scope=model.OUTPUT_TYPE,
      global_step=global_step)
  return {"image": image, "label": label, "logits": merged}


class _Graph:
  """Every tensor and op the loop needs."""

  def __init__(self, cfg: config_lib.TrainConfig, ignore_label: int, input_fn: InputFn,
               deploy: deployment.DeploymentConfig):
    if cfg.seed is not None:
      tf.set_random_seed(cfg.seed)
    with tf.device(deploy.variables_device()):
      self.global_step = tf.train.get_or_create_global_step()
    # Replicas take step tokens so that asynchronous training ends at exactly N (distributed).
    self.tokens = (distributed.StepTokens(self.global_step, cfg.training_number_of_steps,
                                          deploy.ps_device + "/task:0/device:CPU:0")
                   if deploy.num_ps_tasks > 0 else None)
    with tf.device(deploy.inputs_device()):
      dataset = input_fn(cfg.clone_batch_size * deploy.num_clones)
      self.iterator = tf.data.make_initializable_iterator(dataset)
    batches = iter(_clone_batches(self.iterator, deploy.num_clones, deploy.inputs_device()))
    self.clones = deployment.create_clones(
        deploy, _build_deeplab, args=(batches, cfg, ignore_label, self.global_step))
    first_scope = deploy.clone_scope(0)
    update_ops = deployment.first_clone_update_ops(deploy, self.clones)
    with tf.device(deploy.optimizer_device()):
      self.learning_rate = learning_rate.learning_rate_from_config(cfg, self.global_step)
      if cfg.optimizer == "momentum":
        optimizer = tf.train.MomentumOptimizer(self.learning_rate, cfg.momentum)
      else:  # As the original, Adam ignores the schedule.
        self.learning_rate = tf.constant(cfg.adam_learning_rate, name="learning_rate")
        optimizer = tf.train.AdamOptimizer(cfg.adam_learning_rate, epsilon=cfg.adam_epsilon)
    with tf.device(deploy.variables_device()):
      self.total_loss, grads_and_vars = deployment.optimize_clones(self.clones, optimizer)
      last_layers = train_utils.extra_layer_scopes(cfg.last_layers_contain_logits_only)
      multipliers = train_utils.get_model_gradient_multipliers(
          last_layers, cfg.last_layer_gradient_multiplier)
      grads_and_vars = train_utils.multiply_gradients(grads_and_vars, multipliers)
      # A step without a token (distributed, past the end) fails before it applies anything.
      with tf.control_dependencies([self.tokens.token] if self.tokens else []):
        apply_op = optimizer.apply_gradients(grads_and_vars, global_step=self.global_step)
      update_ops.append(apply_op)
      with tf.control_dependencies([tf.group(*update_ops)]):
        self.train_op = tf.identity(self.total_loss, name="train_op")
      # This step's number: its token (unique), or the global step in one process.
      self.step_number = self.tokens.token if self.tokens else self.global_step
    first = self.clones[0].outputs
    images = labels = predictions = None
    if cfg.save_summaries_images:
      images, labels = first["image"], first["label"]
      logits = tf.image.resize_bilinear(first["logits"], tf.shape(labels)[1:3],
                                        align_corners=True)
      predictions = tf.argmax(logits, 3)
    with tf.device(deploy.optimizer_device()):
      self.summary_op = train_utils.add_model_summaries(
          first_scope, self.learning_rate, self.total_loss, images, labels, predictions,
          cfg.model.num_classes)
    saved = tf.global_variables()
    with tf.device(deploy.optimizer_device()):  # the chief writes its checkpoints itself
      self.saver = tf.train.Saver(saved, max_to_keep=cfg.max_to_keep, save_relative_paths=True)
    self.init_op = tf.group(tf.variables_initializer(saved), tf.local_variables_initializer())


def _write_config(logdir: TrainLogdir, cfg: config_lib.TrainConfig) -> None:
  """Writes config.json (pointing at the run folder's copy of a dense prediction cell); a run
  with a different model in the same folder is an error."""
  cfg = cell_copy.with_cell_copy(logdir, cfg)
  old = logdir.read_json(CONFIG_JSON)
  if old is not None and "model" in old:
    try:
      old_model = config_lib.from_dict(config_lib.ModelConfig, old["model"], "model")
    except UserInputError:
      old_model = None
    if old_model is not None and old_model != cfg.model:
      diff = {k: (getattr(old_model, k), getattr(cfg.model, k))
              for k in config_lib.to_dict(cfg.model)
              if getattr(old_model, k) != getattr(cfg.model, k)}
      raise UserInputError(
          f"{cfg.train_logdir} already holds a run with a different model ({diff}, as "
          "(saved, requested)); its checkpoints cannot be resumed with this model: use a fresh "
          "--train_logdir or the same model flags")
  logdir.write_text(CONFIG_JSON, config_lib.dumps(cfg))


def _json(obj) -> str:
  return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


# After SIGTERM the loop ends its step, saves and uploads; if that takes longer the process
# exits anyway (the previous checkpoint stays valid: saves are atomic). 20 s fits Kubernetes'
# default 30 s grace period (and the local launcher's) with room for the process to end.
SIGTERM_BUDGET_SECONDS = 20.0


def _exit_now(code: int) -> None:
  os._exit(code)


@contextlib.contextmanager
def _sigterm_flag():
  """Yields a dict whose 'stop' turns True on SIGTERM (preemption): save, then exit.

  The first SIGTERM also arms a timer that ends the process after SIGTERM_BUDGET_SECONDS.
  """
  state = {"stop": False}
  if threading.current_thread() is not threading.main_thread():
    yield state
    return
  timers = []

  def over_budget():
    log.error("no checkpoint saved within %.0f s of SIGTERM: exiting without it (the previous "
              "one is complete)", SIGTERM_BUDGET_SECONDS)
    _exit_now(EXIT_TERMINATED)

  def handler(signum, frame):
    del frame
    log.warning("signal %d received: saving a checkpoint and stopping (at most %.0f s)", signum,
                SIGTERM_BUDGET_SECONDS)
    state["stop"] = True
    if not timers:
      timers.append(threading.Timer(SIGTERM_BUDGET_SECONDS, over_budget))
      timers[0].daemon = True
      timers[0].start()
  old = signal.signal(signal.SIGTERM, handler)
  try:
    yield state
  finally:
    signal.signal(signal.SIGTERM, old)
    for t in timers:
      t.cancel()


def train(cfg: config_lib.TrainConfig, ignore_label: int = 255,
          input_fn: Optional[InputFn] = None, result_json: Optional[str] = None,
          num_gpus: Optional[int] = None, task: Optional[TaskSpec] = None,
          startup_delay_steps: int = 0) -> dict:
  """Trains (or resumes) and returns the train_result.json content.

  Args:
    cfg: validated training configuration with model.num_classes from the dataset.
    ignore_label: the dataset's ignore label.
    input_fn: batches source; default the TFRecords of cfg.dataset_dir/cfg.train_split.
    result_json: also write the result there (local or gs://).
    num_gpus: override GPU detection (tests).
    task: this process's task of a ps/worker cluster (None: one process). Only the chief
      (worker 0) writes to train_logdir and result_json; ps tasks go to distributed.serve_ps.
    startup_delay_steps: a non-chief worker i starts at global step i * startup_delay_steps.

  Raises:
    UserInputError: bad configuration or initial checkpoint (exit 2).
    NonFiniteLossError: the loss became NaN/inf (exit 3).
  """
  cfg.validate()
  if task is not None and not task.is_chief:
    from deeplab.training import replica
    return replica.run_worker(cfg, ignore_label, input_fn, task, num_gpus, startup_delay_steps)
  start_time = time.time()
  logdir = TrainLogdir(cfg.train_logdir)
  try:
    result = _train(cfg, ignore_label, input_fn, logdir, num_gpus, start_time, task)
  finally:
    logdir.cleanup()
  if result_json:
    storage.write_json(result_json, result)
  return result


def _result(cfg, logdir: TrainLogdir, step: int, loss, images_per_sec, prefix, start_time,
            start_step: int) -> dict:
  return {
      "final_step": int(step),
      "final_loss": None if loss is None else float(loss),
      "images_per_sec": None if images_per_sec is None else round(float(images_per_sec), 3),
      "checkpoint": logdir.uri_of(prefix) if prefix else None,
      "train_logdir": cfg.train_logdir,
      "num_clones": cfg.num_clones,
      "train_batch_size": cfg.train_batch_size,
      "start_step": int(start_step),
      "wall_seconds": round(time.time() - start_time, 3),
  }


def _train(cfg, ignore_label, input_fn, logdir: TrainLogdir, num_gpus, start_time,
           task: Optional[TaskSpec]) -> dict:
  resume = logdir.latest_checkpoint()
  start_step = (checkpoint_step(resume) or 0) if resume else 0
  if resume:
    log.info("resuming from %s (step %d); --tf_initial_checkpoint is not used",
             logdir.uri_of(resume), start_step)
  if resume and start_step >= cfg.training_number_of_steps:
    old = logdir.read_json(TRAIN_RESULT_JSON) or {}
    loss = old.get("final_loss") if old.get("final_step") == start_step else None
    result = _result(cfg, logdir, start_step, loss, old.get("images_per_sec"), resume,
                     start_time, start_step)
    log.info("already at step %d of %d: nothing to train", start_step,
             cfg.training_number_of_steps)
    logdir.write_text(TRAIN_RESULT_JSON, _json(result))
    return result
  _write_config(logdir, cfg)
  deploy = deployment_config(cfg, num_gpus, task)
  input_fn = input_fn or dataset_input_fn(cfg, ignore_label)

  graph = tf.Graph()
  with graph.as_default():
    g = _Graph(cfg, ignore_label, input_fn, deploy)
    init_fn = None
    if not resume and cfg.tf_initial_checkpoint:
      exclude = [] if cfg.initialize_last_layer else train_utils.extra_layer_scopes(
          cfg.last_layers_contain_logits_only)
      init_fn = get_model_init_fn(stage_initial_checkpoint(cfg.tf_initial_checkpoint), exclude)
    graph.finalize()
  writer = tf.summary.FileWriter(logdir.local, graph=graph)
  if task is None:
    sess = tf.Session(graph=graph, config=deployment.session_config(deploy))
  else:
    proto = distributed.server_config(deploy, task)
    server = distributed.start_server(task, proto)
    sess = tf.Session(server.target, graph=graph, config=proto)
  try:
    sess.run(g.init_op)
    sess.run(g.iterator.initializer)
    if resume:
      resume = _restore_newest(sess, g.saver, logdir, resume)
      start_step = checkpoint_step(resume) or 0
    elif init_fn is not None:
      init_fn(sess)
    if g.tokens:  # after the restore: the tokens count from the resumed step
      g.tokens.start(sess)
    return _loop(cfg, sess, g, writer, logdir, resume, start_step, start_time, ignore_label)
  finally:
    writer.close()
    sess.close()


def _restore_newest(sess, saver, logdir: TrainLogdir, prefix: str) -> str:
  """Restores `prefix`, or the newest complete checkpoint left if it vanished meanwhile.

  Raises:
    RuntimeError: no checkpoint of the folder restores any more (transient: a retry looks
      again).
  """
  failed = []
  while prefix:
    try:
      saver.restore(sess, prefix)
      return prefix
    except (ValueError, tf.errors.OpError) as e:  # missing, truncated or corrupt files
      failed.append(os.path.basename(prefix))
      log.warning("cannot restore %s (%s): it was pruned or half-written; re-reading the "
                  "checkpoint index and falling back to the newest complete checkpoint",
                  logdir.uri_of(prefix), str(e).splitlines()[0] if str(e) else type(e).__name__)
      prefix = logdir.latest_checkpoint(skip=failed)
  raise RuntimeError(f"no checkpoint in {logdir.uri} restores any more (tried {failed}); "
                     "a retry will look again")


def _loop(cfg, sess, g: _Graph, writer, logdir: TrainLogdir, resume, start_step, start_time,
          ignore_label) -> dict:
  total = cfg.training_number_of_steps
  step = int(sess.run(g.global_step))
  prefix = resume
  last_save, last_save_step = time.time(), step
  last_summary = -float("inf")
  loss = None
  timed, warmup = [], []
  window_start, window_steps = time.time(), 0

  def save(step: int) -> str:
    path = g.saver.save(sess, os.path.join(logdir.local, CHECKPOINT_BASENAME), global_step=step,
                        write_meta_graph=False)
    writer.flush()
    logdir.sync(keep=g.saver.last_checkpoints)
    log.info("saved checkpoint %s", logdir.uri_of(path))
    return path

  with _sigterm_flag() as signals:
    while step < total and not signals["stop"]:
      want_summary = (cfg.save_summaries_secs > 0 and
                      time.time() - last_summary >= cfg.save_summaries_secs)
      fetches = [g.train_op, g.learning_rate, g.step_number]
      if want_summary:
        fetches.append(g.summary_op)
      t0 = time.time()
      try:
        out = sess.run(fetches)
      except tf.errors.OutOfRangeError:
        if not g.tokens:
          raise
        break  # no token left: the other replicas are running the last steps
      dt = time.time() - t0
      loss, lr, step = float(out[0]), float(out[1]), int(out[2])
      if not np.isfinite(loss):
        raise NonFiniteLossError(
            f"the training loss became {loss} at step {step} (learning rate {lr:.6g}). Likely "
            f"causes: label values outside [0, {cfg.model.num_classes}) that are not the "
            f"ignore label {ignore_label} (e.g. colour-palette masks instead of class indices, "
            "or a --num_classes/dataset mismatch); a learning rate too high for this batch "
            "size (lower --base_learning_rate or add --slow_start_step); a broken initial "
            f"checkpoint. Last good checkpoint: {logdir.uri_of(prefix) if prefix else 'none'}")
      if want_summary:
        writer.add_summary(out[3], step)
        last_summary = time.time()
      # The first run of each fetch set optimises the graph (seconds): keep the first two
      # steps and the summary steps out of the rate, unless nothing else is timed.
      (timed if step > start_step + 2 and not want_summary else warmup).append(dt)
      window_steps += 1
      if step % cfg.log_steps == 0 or step == total:
        now = time.time()
        rate = window_steps * cfg.train_batch_size / max(now - window_start, 1e-9)
        steps_per_sec = window_steps / max(now - window_start, 1e-9)
        log.info("step %d/%d: loss %.4f, learning rate %.6g, %.2f images/s, ETA %s", step, total,
                 loss, lr, rate, _format_eta((total - step) / steps_per_sec))
        window_start, window_steps = now, 0
      # Crossing a multiple: other replicas may advance the step by more than one.
      due_steps = (cfg.save_interval_steps > 0 and step // cfg.save_interval_steps >
                   last_save_step // cfg.save_interval_steps)
      due_time = cfg.save_interval_secs > 0 and time.time() - last_save >= cfg.save_interval_secs
      if (due_steps or due_time) and step < total:
        prefix = save(step)
        last_save, last_save_step = time.time(), step
    if g.tokens and not signals["stop"]:
      step = distributed.wait_for_final_step(sess, g.global_step, total, max(
          distributed.FINAL_STEP_WAIT_SECONDS, 10 * max(timed + warmup, default=0)))
    if prefix is None or checkpoint_step(prefix) != step:
      prefix = save(step)
    if step < total and not signals["stop"]:
      raise RuntimeError(
          f"another replica claimed a step and never finished it: the global step stays at "
          f"{step} of {total}; checkpoint saved, a retry resumes from it")
    if signals["stop"]:
      # No train_result.json: the run is not finished; a retry resumes from this checkpoint.
      log.warning("stopped at step %d of %d by a signal; re-run to resume", step, total)
      raise SystemExit(EXIT_TERMINATED)
    times = timed or warmup
    images_per_sec = len(times) * cfg.train_batch_size / sum(times) if times else None
    result = _result(cfg, logdir, step, loss, images_per_sec, prefix, start_time, start_step)
    logdir.write_text(TRAIN_RESULT_JSON, _json(result))
  log.info("training done: step %d, loss %s, %s images/s, checkpoint %s", step,
           "?" if loss is None else "%.4f" % loss,
           "%.2f" % images_per_sec if images_per_sec else "?", result["checkpoint"])
  return result
