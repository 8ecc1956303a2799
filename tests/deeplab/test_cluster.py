"""Which task a `python -m deeplab train` process is: TF_CONFIG or host lists (pure Python)."""

import json

import pytest

from deeplab.config.cluster import ClusterFlags, TaskSpec, resolve_task, tf_config
from deeplab.errors import ConfigError

PS = ["10.0.0.1:2222"]
WORKERS = ["10.0.0.2:2222", "10.0.0.3:2222"]


def _env(job, index, cluster=None):
  return {"TF_CONFIG": json.dumps({"cluster": cluster or {"ps": PS, "worker": WORKERS},
                                   "task": {"type": job, "index": index}})}


def test_one_replica_and_no_ps_is_the_single_process_mode_whatever_the_environment():
  assert resolve_task(ClusterFlags(), 1, 0, _env("worker", 1)) is None


def test_tf_config_gives_the_cluster_and_the_task():
  task = resolve_task(ClusterFlags(), 2, 1, _env("worker", 1))
  assert task == TaskSpec(tuple(PS), tuple(WORKERS), "worker", 1)
  assert not task.is_chief and not task.is_ps
  assert task.cluster == {"ps": PS, "worker": WORKERS}
  assert resolve_task(ClusterFlags(), 2, 1, _env("worker", 0)).is_chief
  assert resolve_task(ClusterFlags(), 2, 1, _env("ps", 0)).is_ps


def test_host_lists_win_over_tf_config():
  flags = ClusterFlags(ps_hosts="h:1", worker_hosts="h:2,h:3", job_name="ps", task=0)
  task = resolve_task(flags, 2, 1, _env("worker", 1))
  assert (task.ps_hosts, task.worker_hosts, str(task)) == (("h:1",), ("h:2", "h:3"),
                                                           "/job:ps/task:0")


def test_tf_config_written_by_the_launchers_reads_back():
  for job, index in (("ps", 0), ("worker", 0), ("worker", 1)):
    env = {"TF_CONFIG": tf_config(PS, WORKERS, job, index)}
    assert resolve_task(ClusterFlags(), 2, 1, env) == TaskSpec(tuple(PS), tuple(WORKERS), job,
                                                              index)


@pytest.mark.parametrize("flags, replicas, ps, env, words", [
    (ClusterFlags(), 2, 1, {}, ["TF_CONFIG", "--ps_hosts"]),
    (ClusterFlags(), 3, 1, _env("worker", 0), ["2 worker", "--num_replicas=3"]),
    (ClusterFlags(), 2, 2, _env("worker", 0), ["1 ps", "--num_ps_tasks=2"]),
    (ClusterFlags(), 2, 1, _env("worker", 2), ["task index 2", "'worker'"]),
    (ClusterFlags(), 2, 1, _env("ps", 1), ["task index 1", "'ps'"]),
    (ClusterFlags(), 2, 1, _env("chief", 0, {"chief": PS, "ps": PS, "worker": WORKERS[:1]}),
     ["chief", "'ps' and 'worker'"]),
    (ClusterFlags(), 2, 1, {"TF_CONFIG": "{not json"}, ["TF_CONFIG is not valid"]),
    (ClusterFlags(), 2, 1, {"TF_CONFIG": '{"cluster": {}}'}, ["TF_CONFIG is not valid", "task"]),
    (ClusterFlags(ps_hosts="h:1"), 2, 1, {}, ["both --ps_hosts and --worker_hosts"]),
    (ClusterFlags(ps_hosts="h:1", worker_hosts="h:2"), 1, 0, {}, ["--num_replicas is 1"]),
])
def test_a_cluster_that_cannot_be_this_run_is_refused_with_its_fix(flags, replicas, ps, env,
                                                                  words):
  with pytest.raises(ConfigError) as e:
    resolve_task(flags, replicas, ps, env)
  for word in words:
    assert word in str(e.value)


def test_replicas_without_parameter_servers_are_refused_by_the_configuration():
  from deeplab.config import TrainConfig
  assert TrainConfig(num_replicas=2, num_ps_tasks=1).problems() == []
  assert TrainConfig(num_ps_tasks=2).problems() == []  # one worker, variables on 2 ps
  problems = TrainConfig(num_replicas=2).problems()
  assert len(problems) == 1 and "num_ps_tasks >= 1" in problems[0]


def test_an_indexed_job_pod_takes_its_task_from_its_index():
  shared = json.dumps({"cluster": {"ps": PS, "worker": WORKERS}})  # the same for every pod
  tasks = [resolve_task(ClusterFlags(), 2, 1, {"TF_CONFIG": shared, "JOB_COMPLETION_INDEX": i})
           for i in ("0", "1", "2")]
  assert [(t.job_name, t.task_index) for t in tasks] == [("ps", 0), ("worker", 0), ("worker", 1)]


def test_a_jobset_pod_takes_its_type_from_its_replicated_job_and_its_index_from_the_pod():
  shared = json.dumps({"cluster": {"ps": PS, "worker": WORKERS}, "task": {"type": "worker"}})
  task = resolve_task(ClusterFlags(), 2, 1, {"TF_CONFIG": shared, "JOB_COMPLETION_INDEX": "1"})
  assert (task.job_name, task.task_index) == ("worker", 1)
