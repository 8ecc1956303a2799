"""A distributed training group on Kubernetes as one JobSet (jobset.x-k8s.io/v1alpha2).

Why a JobSet (docs/deploy.md): its two replicated jobs give the ps and worker pods different
resources (the ps tasks need no GPU; one Indexed Job has one pod template for all), it creates
the headless Service that gives every pod a stable DNS name, its success policy ends the group
when the chief's job completes (the ps tasks serve forever), and its failure policy restarts
*every* pod when any fails, which the step tokens on the ps require (docs/compatibility.md).

Every pod gets the same TF_CONFIG per replicated job: the cluster's DNS names and the task
type; the task index is the pod's JOB_COMPLETION_INDEX (deeplab.config.cluster).

This module builds the object; kubernetes_jobset creates, watches and deletes it.
"""

from __future__ import annotations

import json
from typing import Sequence

from deeplab.config.cluster import PS_JOB, TF_CONFIG_ENV, WORKER_JOB
from operators import settings as settings_mod
from operators.launchers.base import ClusterShape

JOBSET_API_VERSION = "jobset.x-k8s.io/v1alpha2"
PORT = 2222  # TensorFlow's conventional gRPC port inside every pod
# The JobSet controller labels every pod of a JobSet with its name.
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
# A finished JobSet (its pods already deleted by its controller) is removed after this long.
TTL_SECONDS_AFTER_FINISHED = 3600


def pod_host(jobset: str, job: str, index: int) -> str:
  """The DNS name JobSet gives pod `index` of replicated job `job` (network.subdomain)."""
  return f"{jobset}-{job}-0-{index}.{jobset}:{PORT}"


def cluster_hosts(jobset: str, cluster: ClusterShape) -> dict:
  return {PS_JOB: [pod_host(jobset, PS_JOB, i) for i in range(cluster.num_ps_tasks)],
          WORKER_JOB: [pod_host(jobset, WORKER_JOB, i) for i in range(cluster.num_replicas)]}


def build_jobset(name: str, argv: Sequence[str], cluster: ClusterShape, *, num_gpus: int,
                 settings: settings_mod.KubernetesSettings) -> dict:
  """The JobSet of one training group: `cluster.num_ps_tasks` CPU pods, `num_replicas` worker
  pods with `num_gpus` GPUs each, all running `python -m deeplab <argv…>` (the image's
  ENTRYPOINT)."""
  hosts = cluster_hosts(name, cluster)
  s = settings
  jobs = []
  for job, count, gpus in ((PS_JOB, cluster.num_ps_tasks, 0),
                           (WORKER_JOB, cluster.num_replicas, num_gpus)):
    if count == 0:
      continue
    if job == PS_JOB and (s.ps_requests or s.ps_limits):  # resources per role
      limits, requests = dict(s.ps_limits), dict(s.ps_requests)
    else:
      limits, requests = dict(s.limits), dict(s.requests)
    if gpus:
      limits[s.gpu_resource] = requests[s.gpu_resource] = str(int(gpus))
    env = {**dict(s.env), TF_CONFIG_ENV: json.dumps(
        {"cluster": hosts, "task": {"type": job}}, sort_keys=True)}
    container = {
        "name": "base", "image": s.image, "imagePullPolicy": s.image_pull_policy,
        "args": [str(a) for a in argv], "ports": [{"containerPort": PORT}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {k: v for k, v in (("limits", limits), ("requests", requests)) if v},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec = {"restartPolicy": "Never", "containers": [container],
                "terminationGracePeriodSeconds": s.termination_grace_period}
    if s.service_account_name:
      pod_spec["serviceAccountName"] = s.service_account_name
    if gpus and s.node_selector:  # the GPU node pool; ps pods run on any node
      pod_spec["nodeSelector"] = dict(s.node_selector)
    if gpus and s.tolerations:
      pod_spec["tolerations"] = [dict(t) for t in s.tolerations]
    jobs.append({"name": job, "replicas": 1, "template": {"spec": {
        "completionMode": "Indexed", "completions": count, "parallelism": count,
        "backoffLimit": 0,
        "template": {"metadata": {"labels": {"app": "deeplab", **dict(s.labels)}},
                     "spec": pod_spec}}}})
  return {
      "apiVersion": JOBSET_API_VERSION, "kind": "JobSet",
      "metadata": {"name": name, "namespace": s.namespace,
                   "labels": {"app": "deeplab", **dict(s.labels)}},
      "spec": {
          "network": {"enableDNSHostnames": True, "subdomain": name},
          # The chief is worker 0, but every worker ends once the step tokens run out.
          "successPolicy": {"operator": "All", "targetReplicatedJobs": [WORKER_JOB]},
          # No restart inside the JobSet: the Airflow retry starts a fresh group, whose chief
          # resumes from its checkpoint (the lease, the exit-code policy apply as for a pod).
          "failurePolicy": {"maxRestarts": 0},
          "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
          "replicatedJobs": jobs,
      },
  }
