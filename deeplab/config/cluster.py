"""The training cluster of the original's distributed mode: which task this process is.

`python -m deeplab train --num_replicas=N --num_ps_tasks=P` runs as one of N worker tasks
(worker 0 is the chief, as the original's `--task=0`) or P parameter-server tasks. The cluster
comes from the `TF_CONFIG` environment variable (what Kubernetes engines and the launchers set):

    {"cluster": {"ps": ["host:port", ...], "worker": ["host:port", ...]},
     "task": {"type": "worker", "index": 1}}

or from explicit host lists, as TensorFlow's classic distributed examples take them:
`--ps_hosts=h:p,... --worker_hosts=h:p,... --job_name=worker --task=1`.

Pure Python (no TensorFlow): the launchers build TF_CONFIG with `tf_config` below.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Mapping, Optional, Tuple

from deeplab.config.fields import coerce_tuples, setting
from deeplab.errors import ConfigError

TF_CONFIG_ENV = "TF_CONFIG"
PS_JOB = "ps"
WORKER_JOB = "worker"
JOB_NAMES = (WORKER_JOB, PS_JOB)


@dataclasses.dataclass(frozen=True)
class ClusterFlags:
  """Per-process flags of the distributed mode (never saved in config.json)."""

  master: str = setting("", "Accepted for compatibility: each task runs its own in-process "
                        "server and its session uses it.")
  task: int = setting(0, "Index of this task in its job (worker 0 is the chief); with "
                      "TF_CONFIG its task.index is used.")
  startup_delay_steps: int = setting(
      15, "Non-chief worker i starts training once the global step reaches "
      "i * startup_delay_steps.")
  job_name: str = setting(WORKER_JOB, "This task's job with --ps_hosts/--worker_hosts.",
                          choices=JOB_NAMES)
  ps_hosts: Optional[Tuple[str, ...]] = setting(
      None, "Parameter-server tasks host:port,... (instead of TF_CONFIG).", kind="list")
  worker_hosts: Optional[Tuple[str, ...]] = setting(
      None, "Worker tasks host:port,... (instead of TF_CONFIG).", kind="list")

  def __post_init__(self):
    coerce_tuples(self, {"ps_hosts": str, "worker_hosts": str})


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One task of a ps/worker cluster."""

  ps_hosts: Tuple[str, ...]
  worker_hosts: Tuple[str, ...]
  job_name: str
  task_index: int

  @property
  def is_chief(self) -> bool:
    return self.job_name == WORKER_JOB and self.task_index == 0

  @property
  def is_ps(self) -> bool:
    return self.job_name == PS_JOB

  @property
  def cluster(self) -> dict:
    return {PS_JOB: list(self.ps_hosts), WORKER_JOB: list(self.worker_hosts)}

  def __str__(self) -> str:
    return f"/job:{self.job_name}/task:{self.task_index}"


def tf_config(ps_hosts, worker_hosts, job_name: str, task_index: int) -> str:
  """The TF_CONFIG value of one task (what the launchers put in each task's environment)."""
  return json.dumps({"cluster": {PS_JOB: list(ps_hosts), WORKER_JOB: list(worker_hosts)},
                     "task": {"type": job_name, "index": int(task_index)}}, sort_keys=True)


# Set by Kubernetes in every pod of an Indexed Job: the pod's index.
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"


def task_of_index(num_ps_tasks: int, index: int) -> dict:
  """The TF_CONFIG task of pod `index` of an Indexed Job: ps tasks first, then the workers."""
  if index < num_ps_tasks:
    return {"type": PS_JOB, "index": index}
  return {"type": WORKER_JOB, "index": index - num_ps_tasks}


def _from_tf_config(text: str, job_index: Optional[str] = None) -> tuple:
  """(ps_hosts, worker_hosts, job_name, task_index) of a TF_CONFIG value.

  A TF_CONFIG without a task index (one value for many pods) takes it from the pod's
  JOB_COMPLETION_INDEX: with a task type (a JobSet's replicated job), the index in that job;
  without one (a single Indexed Job), ps tasks first, then the workers (`task_of_index`).
  """
  try:
    data = json.loads(text)
    task = data.get("task") or {}
    if "index" not in task and job_index is not None and str(job_index).isdigit():
      # One value for many pods: a JobSet's replicated job gives the type, its pods the index.
      data["task"] = ({**task, "index": int(job_index)} if "type" in task else
                      task_of_index(len(data["cluster"].get(PS_JOB) or ()), int(job_index)))
    cluster, task = data["cluster"], data["task"]
    job, index = task["type"], task["index"]
  except (ValueError, TypeError, KeyError) as e:
    raise ConfigError(
        f"{TF_CONFIG_ENV} is not valid ({type(e).__name__}: {e}); expected JSON like "
        '{"cluster": {"ps": ["host:port"], "worker": ["host:port", "host:port"]}, '
        '"task": {"type": "worker", "index": 0}}') from None
  extra = sorted(set(cluster) - set(JOB_NAMES))
  if extra or job not in JOB_NAMES:
    raise ConfigError(
        f"{TF_CONFIG_ENV} has job(s) {extra or [job]}; the original's distributed mode has only "
        f"'ps' and 'worker' jobs (worker 0 is the chief): describe the cluster with those")
  if not isinstance(index, int):
    raise ConfigError(f"{TF_CONFIG_ENV} task.index must be an integer, got {index!r}")
  return (tuple(cluster.get(PS_JOB) or ()), tuple(cluster.get(WORKER_JOB) or ()), job, index)


def resolve_task(flags: ClusterFlags, num_replicas: int, num_ps_tasks: int,
                 environ: Mapping[str, str]) -> Optional[TaskSpec]:
  """This process's task, or None for the single-process mode (one replica, no ps).

  Raises:
    ConfigError: no cluster, or one that disagrees with --num_replicas/--num_ps_tasks.
  """
  hosts_given = flags.ps_hosts is not None or flags.worker_hosts is not None
  if num_replicas == 1 and num_ps_tasks == 0:
    if hosts_given:
      raise ConfigError("--ps_hosts/--worker_hosts describe a cluster but --num_replicas is 1 "
                        "and --num_ps_tasks 0; set both to the cluster's size, or drop the "
                        "host lists")
    return None
  if hosts_given:
    if flags.ps_hosts is None or flags.worker_hosts is None:
      raise ConfigError("give both --ps_hosts and --worker_hosts (host:port lists), or "
                        f"neither and set {TF_CONFIG_ENV}")
    ps, workers, job, index = flags.ps_hosts, flags.worker_hosts, flags.job_name, flags.task
    source = "--ps_hosts/--worker_hosts"
  elif environ.get(TF_CONFIG_ENV):
    ps, workers, job, index = _from_tf_config(environ[TF_CONFIG_ENV],
                                              environ.get(JOB_INDEX_ENV))
    source = TF_CONFIG_ENV
  else:
    raise ConfigError(
        f"--num_replicas={num_replicas} --num_ps_tasks={num_ps_tasks} trains on a cluster, but "
        f"none is given: set {TF_CONFIG_ENV} (the launchers do) or pass --ps_hosts, "
        "--worker_hosts, --job_name and --task")
  if len(ps) != num_ps_tasks or len(workers) != num_replicas:
    raise ConfigError(
        f"{source} lists {len(ps)} ps and {len(workers)} worker task(s) but the configuration "
        f"says --num_ps_tasks={num_ps_tasks} --num_replicas={num_replicas}; make them agree")
  size = len(ps) if job == PS_JOB else len(workers)
  if not 0 <= index < size:
    raise ConfigError(f"task index {index} of job {job!r} is out of range: {source} has {size} "
                      f"{job} task(s)")
  return TaskSpec(tuple(ps), tuple(workers), job, index)
