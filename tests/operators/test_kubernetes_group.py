"""The JobSet of a training group, checked up to the API boundary (no cluster here)."""

import json

from deeplab.config.cluster import ClusterFlags, resolve_task
from operators.launchers.base import ClusterShape
from operators.launchers.kubernetes_group import build_jobset
from operators.settings import KubernetesSettings

SETTINGS = KubernetesSettings(image="img:1", namespace="ml", node_selector={"pool": "gpu"},
                              tolerations=({"key": "nvidia.com/gpu", "operator": "Exists"},),
                              requests={"cpu": "4"})
ARGV = ["train", "--config_json=gs://b/runs/r/config.json", "--num_replicas=2",
        "--num_ps_tasks=1"]


def _jobset():
  return build_jobset("deeplab-r-train", ARGV, ClusterShape(2, 1), num_gpus=2,
                      settings=SETTINGS)


def _jobs():
  return {j["name"]: j["template"]["spec"] for j in _jobset()["spec"]["replicatedJobs"]}


def test_every_pod_resolves_to_its_own_task_of_one_cluster():
  tasks = []
  for name, job in _jobs().items():
    container = job["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["args"] == ARGV
    for index in range(job["completions"]):
      env_of_pod = {**env, "JOB_COMPLETION_INDEX": str(index)}  # what Kubernetes adds
      tasks.append(resolve_task(ClusterFlags(), 2, 1, env_of_pod))
  assert sorted((t.job_name, t.task_index) for t in tasks) == [("ps", 0), ("worker", 0),
                                                               ("worker", 1)]
  assert len({(t.ps_hosts, t.worker_hosts) for t in tasks}) == 1
  hosts = tasks[0].ps_hosts + tasks[0].worker_hosts
  # JobSet's pod DNS names: <jobset>-<replicated job>-<job index>-<pod index>.<subdomain>
  assert hosts == ("deeplab-r-train-ps-0-0.deeplab-r-train:2222",
                   "deeplab-r-train-worker-0-0.deeplab-r-train:2222",
                   "deeplab-r-train-worker-0-1.deeplab-r-train:2222")
  assert _jobset()["spec"]["network"] == {"enableDNSHostnames": True,
                                          "subdomain": "deeplab-r-train"}


def test_only_the_workers_ask_for_gpus_and_the_gpu_pool():
  jobs = _jobs()
  ps = jobs["ps"]["template"]["spec"]
  worker = jobs["worker"]["template"]["spec"]
  assert worker["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
  assert worker["containers"][0]["resources"]["requests"] == {"cpu": "4", "nvidia.com/gpu": "2"}
  assert worker["nodeSelector"] == {"pool": "gpu"} and worker["tolerations"]
  assert "limits" not in ps["containers"][0]["resources"]
  assert "nodeSelector" not in ps and "tolerations" not in ps


def test_the_group_succeeds_with_its_workers_and_never_restarts_alone():
  spec = _jobset()["spec"]
  assert spec["successPolicy"] == {"operator": "All", "targetReplicatedJobs": ["worker"]}
  assert spec["failurePolicy"] == {"maxRestarts": 0}
  assert spec["ttlSecondsAfterFinished"] > 0  # a failed JobSet's object does not stay forever
  for job in _jobs().values():
    assert (job["completionMode"], job["backoffLimit"]) == ("Indexed", 0)
    assert job["template"]["spec"]["restartPolicy"] == "Never"
  json.dumps(_jobset())  # what the API receives: plain JSON


def test_ps_pods_take_their_own_resources_when_given():
  settings = KubernetesSettings(image="img:1", requests={"cpu": "8", "memory": "32Gi"},
                                ps_requests={"cpu": "2", "memory": "8Gi"},
                                ps_limits={"memory": "8Gi"})
  jobs = {j["name"]: j["template"]["spec"]["template"]["spec"]["containers"][0]["resources"]
          for j in build_jobset("g", ARGV, ClusterShape(2, 1), num_gpus=1,
                                settings=settings)["spec"]["replicatedJobs"]}
  assert jobs["ps"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
  assert jobs["worker"] == {"requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
                            "limits": {"nvidia.com/gpu": "1"}}
