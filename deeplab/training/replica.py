"""A non-chief worker of the distributed mode: trains on the shared variables, writes nothing.

It builds the chief's graph (the same code, so the variables land on the same ps tasks), waits
until the chief has initialised or restored them, waits for its start (`--startup_delay_steps`,
as the original: worker i begins at global step i * startup_delay_steps) and then runs its
clones until the step tokens run out. Checkpoints, summaries, config.json
and the result are the chief's alone (deeplab.training.distributed).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import numpy as np

from deeplab import config as config_lib
from deeplab.compat import tf
from deeplab.config.cluster import TaskSpec
from deeplab.contract import EXIT_TERMINATED
from deeplab.errors import NonFiniteLossError
from deeplab.training import distributed, trainer

log = logging.getLogger("deeplab.train")


def run_worker(cfg: config_lib.TrainConfig, ignore_label: int, input_fn: Optional[trainer.InputFn],
               task: TaskSpec, num_gpus: Optional[int], startup_delay_steps: int) -> dict:
  """Trains as worker `task` (not the chief) until no step token is left.

  Returns:
    {"task": ..., "final_step": ..., "steps": ...}: what this worker did (not written anywhere).

  Raises:
    NonFiniteLossError: the loss became NaN/inf (exit 3).
    SystemExit(EXIT_TERMINATED): stopped by SIGTERM before the end.
  """
  if cfg.seed is not None:  # each replica reads its own sequence of batches
    cfg = dataclasses.replace(cfg, seed=cfg.seed + task.task_index)
  deploy = trainer.deployment_config(cfg, num_gpus, task)
  input_fn = input_fn or trainer.dataset_input_fn(cfg, ignore_label)
  total = cfg.training_number_of_steps
  graph = tf.Graph()
  with graph.as_default():
    g = trainer._Graph(cfg, ignore_label, input_fn, deploy)  # noqa: SLF001 - the same graph
    local_init = tf.local_variables_initializer()
    ready_op = tf.report_uninitialized_variables()
    graph.finalize()
  proto = distributed.server_config(deploy, task)
  server = distributed.start_server(task, proto)
  step = steps = 0
  with trainer._sigterm_flag() as signals, tf.Session(  # noqa: SLF001
      server.target, graph=graph, config=proto) as sess:
    if not distributed.wait_until(lambda: sess.run(ready_op).size == 0, signals,
                                  "the chief to initialise the variables"):
      raise SystemExit(EXIT_TERMINATED)
    sess.run([local_init, g.iterator.initializer])
    begin = min(task.task_index * startup_delay_steps, total)
    if not distributed.wait_until(lambda: int(sess.run(g.global_step)) >= begin, signals,
                                  f"global step {begin} (startup delay)"):
      raise SystemExit(EXIT_TERMINATED)
    window_start, window_steps = time.time(), 0
    while not signals["stop"]:
      try:
        loss, step = sess.run([g.train_op, g.step_number])
      except tf.errors.OutOfRangeError:
        break  # no step token left: the run's steps are all taken
      steps += 1
      window_steps += 1
      if not np.isfinite(loss):
        raise NonFiniteLossError(
            f"the training loss became {loss} at step {step} on {task}; see the chief's log "
            "for the likely causes (labels, learning rate, initial checkpoint)")
      if steps % cfg.log_steps == 0:
        now = time.time()
        log.info("%s: step %d/%d, loss %.4f, %.2f images/s", task, step, total, loss,
                 window_steps * cfg.train_batch_size / max(now - window_start, 1e-9))
        window_start, window_steps = now, 0
    if signals["stop"]:
      log.warning("%s stopped by a signal at step %d", task, step)
      raise SystemExit(EXIT_TERMINATED)
  log.info("%s done: ran %d of the run's steps; the chief writes the checkpoint", task, steps)
  return {"task": str(task), "final_step": int(step), "steps": steps}
