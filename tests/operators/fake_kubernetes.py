"""A scripted Kubernetes API for KubernetesPodOperator, at the client boundary (no cluster here).

`FakeCluster` plays the API server: the synchronous `CoreV1Api` that KPO and its PodManager use
on the worker, and the `AsyncKubernetesHook` that KubernetesPodTrigger uses in the triggerer.
Pods are real `kubernetes.client` models; the base container's states are scripted. Every call
is recorded by method name, and a call missing from API_CALLS fails the test: that table is the
one list of what the launcher asks the API server, which the Role in
deploy/k8s/launcher-rbac.yaml must grant exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Iterator, Optional

from kubernetes.client import ApiClient, ApiException
from kubernetes.client import models as k8s

# Client method -> (resource, verbs) in the core API group, read from KPO 10.25.0:
# operators/pod.py, utils/pod_manager.py, triggers/pod.py and hooks/kubernetes.py.
API_CALLS = {
    "create_namespaced_pod": ("pods", ("create",)),            # PodManager.create_pod
    "read_namespaced_pod": ("pods", ("get",)),                 # hook.get_pod, read_pod, trigger
    "list_namespaced_pod": ("pods", ("list",)),                # find_pod (reattach by labels)
    "patch_namespaced_pod": ("pods", ("patch",)),              # patch_already_checked
    "delete_namespaced_pod": ("pods", ("delete",)),            # cleanup, on_kill, trigger.on_kill
    "read_namespaced_pod_log": ("pods/log", ("get",)),         # log streaming (worker, trigger)
    # The XCom sidecar is read and stopped through exec. The websocket upgrade is a GET, which
    # Kubernetes >= 1.30 authorises as `create` (KEP-4006); older servers check `get`.
    "connect_get_namespaced_pod_exec": ("pods/exec", ("create", "get")),
    "list_namespaced_event": ("events", ("list",)),            # read_pod_events on failure/startup
    "watch_namespaced_event": ("events", ("watch",)),          # trigger's startup event watch
}
# A training group (kubernetes_jobset): the JobSet through the custom-objects API, then the
# chief's pod through the calls above. Client method -> (API group, resource, verbs).
GROUP_API_CALLS = {
    "create_namespaced_custom_object": ("jobset.x-k8s.io", "jobsets", ("create",)),
    "get_namespaced_custom_object": ("jobset.x-k8s.io", "jobsets", ("get",)),    # reattach
    "delete_namespaced_custom_object": ("jobset.x-k8s.io", "jobsets", ("delete",)),
    "list_namespaced_pod": ("", "pods", ("list",)),          # find the chief's pod by labels
    "read_namespaced_pod": ("", "pods", ("get",)),           # its exit code (worker, trigger)
    "delete_namespaced_pod": ("", "pods", ("delete",)),      # trigger.on_kill (task killed)
    "watch_namespaced_event": ("", "events", ("watch",)),    # the trigger, while it starts
}
SIDECAR = "airflow-xcom-sidecar"


def needed_rules() -> set:
  """{(API group, resource, verb)} the pod launcher and the group launcher use together."""
  rules = {("", resource, verb) for resource, verbs in API_CALLS.values() for verb in verbs}
  return rules | {(g, resource, verb) for g, resource, verbs in GROUP_API_CALLS.values()
                  for verb in verbs}


def _as_pod(body) -> k8s.V1Pod:
  """PodManager sends the pod as a sanitised dict; the API server answers with a V1Pod."""
  if isinstance(body, k8s.V1Pod):
    return body

  class _Response:
    data = json.dumps(body)

  return ApiClient().deserialize(_Response, "V1Pod")


class _LogResponse(list):
  """A log response read with _preload_content=False: iterable lines, or urllib3's stream()."""

  def stream(self, amt=None, decode_content=True):
    yield from self

  def release_conn(self):
    pass

  def close(self):
    pass


def _running():
  return k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())


def _terminated(code: int, message: Optional[str] = None):
  return k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
      exit_code=code, message=message, reason="Completed" if code == 0 else "Error"))


class FakeCluster:
  """The pods of a cluster, and how their job ends.

  A created pod is Running; after `running_reads` reads its base container terminates with
  `exit_code` (and, when it failed, `message` as the termination message that Kubernetes keeps
  from its output); its logs are `log_lines`, its sidecar serves `result` as the XCom; once
  the sidecar has been stopped (exec) the pod reaches Succeeded/Failed.
  """

  def __init__(self, *, exit_code: int = 0, message: Optional[str] = None,
               result: Optional[dict] = None, log_lines=(), running_reads: int = 1):
    self.exit_code = exit_code
    self.message = message
    self.result = result
    self.log_lines = list(log_lines)
    self.running_reads = running_reads
    self.pods: dict = {}
    self.calls: list = []
    self.created = 0
    self.deleted: list = []
    self.api_client = ApiClient()  # PodManager serialises pods with it (no request is sent)
    self.cut_off = False
    self.cut_off_after_create = False
    self.jobsets: dict = {}
    self.jobsets_created = 0
    self.jobset_deletions: list = []  # (name, propagation policy)
    self.jobset_controller = True  # False: no JobSet controller installed, no pods appear

  # -- bookkeeping -------------------------------------------------------------------------
  def _record(self, method: str) -> None:
    assert method in API_CALLS or method in GROUP_API_CALLS, (
        f"the launcher called {method}, which neither API_CALLS nor GROUP_API_CALLS lists")
    if self.cut_off:
      self.calls.append(f"{method} (refused)")
      raise ApiException(status=403, reason="this worker is cut off from the API server")
    self.calls.append(method)

  def cut_off_worker(self) -> None:
    """From now on every call fails, as for a worker that lost the API server or died."""
    self.cut_off = True
    self.calls.append("--- worker cut off ---")

  def heal(self) -> None:
    self.cut_off = False
    self.calls.append("--- a new try on a healthy worker ---")

  def verbs(self) -> set:
    """{(resource, verb)} the recorded calls need."""
    return {(API_CALLS[m][0], v) for m in self.calls for v in API_CALLS[m][1]}

  def made(self) -> list:
    """The calls that reached the API server (not refused, no markers)."""
    return [c for c in self.calls if c in API_CALLS or c in GROUP_API_CALLS]

  def _pod(self, name: str, namespace: str) -> k8s.V1Pod:
    pod = self.pods.get((namespace, name))
    if pod is None:
      raise ApiException(status=404, reason=f"pods {name!r} not found")
    return pod

  def _advance(self, pod: k8s.V1Pod) -> None:
    base = next(s for s in pod.status.container_statuses if s.name == "base")
    if base.state.running is not None:
      pod._reads = getattr(pod, "_reads", 0) + 1
      if pod._reads > self.running_reads:
        # The job never writes /dev/termination-log: Kubernetes fills the message from the
        # end of its output only under FallbackToLogsOnError, and only when it failed.
        spec = next(c for c in pod.spec.containers if c.name == "base")
        keeps_tail = spec.termination_message_policy == "FallbackToLogsOnError"
        base.state = _terminated(self.exit_code, self.message
                                 if keeps_tail and self.exit_code != 0 else None)

  def add_running_pod(self, pod: k8s.V1Pod) -> k8s.V1Pod:
    """A pod as the API server returns it: Running, with the base and sidecar containers."""
    names = [c.name for c in pod.spec.containers]
    pod.status = k8s.V1PodStatus(phase="Running", container_statuses=[
        k8s.V1ContainerStatus(name=n, image="x", image_id="", ready=True, restart_count=0,
                              state=_running()) for n in names])
    pod.metadata.resource_version = "1"
    self.pods[(pod.metadata.namespace, pod.metadata.name)] = pod
    return pod

  # -- CoreV1Api (worker side) -------------------------------------------------------------
  def create_namespaced_pod(self, body, namespace, **kwargs):
    self._record("create_namespaced_pod")
    self.created += 1
    pod = self.add_running_pod(_as_pod(body))
    if self.cut_off_after_create:
      self.cut_off_after_create = False
      self.cut_off_worker()
    return pod

  def read_namespaced_pod(self, name, namespace, **kwargs):
    self._record("read_namespaced_pod")
    pod = self._pod(name, namespace)
    self._advance(pod)
    return pod

  def list_namespaced_pod(self, namespace, label_selector="", **kwargs):
    self._record("list_namespaced_pod")
    wanted = dict(kv.split("=", 1) for kv in label_selector.split(",") if "=" in kv
                  and "!=" not in kv)
    found = [p for (ns, _), p in self.pods.items() if ns == namespace
             and all((p.metadata.labels or {}).get(k) == v for k, v in wanted.items())
             and (p.metadata.labels or {}).get("already_checked") != "True"]
    return k8s.V1PodList(items=found)

  def patch_namespaced_pod(self, name, namespace, body, **kwargs):
    self._record("patch_namespaced_pod")
    pod = self._pod(name, namespace)
    pod.metadata.labels = {**(pod.metadata.labels or {}), **body["metadata"]["labels"]}
    return pod

  def delete_namespaced_pod(self, name, namespace, **kwargs):
    self._record("delete_namespaced_pod")
    self._pod(name, namespace)  # 404 when already gone
    del self.pods[(namespace, name)]
    self.deleted.append(name)

  def read_namespaced_pod_log(self, name, namespace, container=None, timestamps=False,
                              **kwargs):
    self._record("read_namespaced_pod_log")
    stamp = "2026-11-28T00:00:00.000000000Z " if timestamps else ""
    return _LogResponse(f"{stamp}{line}\n".encode() for line in self.log_lines)

  def list_namespaced_event(self, namespace, **kwargs):
    self._record("list_namespaced_event")
    return k8s.CoreV1EventList(items=[], metadata=k8s.V1ListMeta(resource_version="1"))

  def connect_get_namespaced_pod_exec(self, name, namespace, **kwargs):
    self._record("connect_get_namespaced_pod_exec")
    return _ExecSession(self, self._pod(name, namespace), kwargs.get("command") or [])

  # -- CustomObjectsApi: JobSets, with the controllers' part played at once -------------------
  def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs):
    self._record("create_namespaced_custom_object")
    assert (group, version, plural) == ("jobset.x-k8s.io", "v1alpha2", "jobsets")
    name = body["metadata"]["name"]
    if (namespace, name) in self.jobsets:
      raise ApiException(status=409, reason=f"jobsets {name!r} already exists")
    self.jobsets_created += 1
    obj = json.loads(json.dumps(body))  # what the server stores: plain JSON
    obj["metadata"]["uid"] = f"uid-{self.jobsets_created}"
    self.jobsets[(namespace, name)] = obj
    if self.jobset_controller:
      self._materialise(namespace, obj)
    return obj

  def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
    self._record("get_namespaced_custom_object")
    obj = self.jobsets.get((namespace, name))
    if obj is None:
      raise ApiException(status=404, reason=f"jobsets {name!r} not found")
    return obj

  def delete_namespaced_custom_object(self, group, version, namespace, plural, name, body=None,
                                      **kwargs):
    self._record("delete_namespaced_custom_object")
    if self.jobsets.pop((namespace, name), None) is None:
      raise ApiException(status=404, reason=f"jobsets {name!r} not found")
    self.jobset_deletions.append((name, getattr(body, "propagation_policy", None)))
    for key, pod in list(self.pods.items()):  # garbage collection: its Jobs, their pods
      if (pod.metadata.labels or {}).get("jobset.sigs.k8s.io/jobset-name") == name:
        del self.pods[key]
        self.deleted.append(key[1])

  def _materialise(self, namespace: str, jobset: dict) -> None:
    """What the JobSet and Job controllers create: one pod per index of each replicated job,
    labelled as they label them, with JOB_COMPLETION_INDEX in every container's env."""
    name = jobset["metadata"]["name"]
    for rjob in jobset["spec"]["replicatedJobs"]:
      job_spec = rjob["template"]["spec"]
      for index in range(job_spec["completions"]):
        template = json.loads(json.dumps(job_spec["template"]))
        labels = {**template.get("metadata", {}).get("labels", {}),
                  "jobset.sigs.k8s.io/jobset-name": name,
                  "jobset.sigs.k8s.io/replicatedjob-name": rjob["name"],
                  "batch.kubernetes.io/job-completion-index": str(index)}
        for container in template["spec"]["containers"]:
          container["env"] = [*container.get("env", []),
                              {"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
        pod = _as_pod({"metadata": {"name": f"{name}-{rjob['name']}-0-{index}-x{index}",
                                    "namespace": namespace, "labels": labels},
                       "spec": template["spec"]})
        self.add_running_pod(pod)

  # -- AsyncKubernetesHook (triggerer side) ---------------------------------------------------
  def async_hook(self) -> "FakeAsyncHook":
    return FakeAsyncHook(self)


class _ExecSession:
  """What `kubernetes.stream.stream(connect_get_namespaced_pod_exec, …)` returns (WSClient)."""

  def __init__(self, cluster: FakeCluster, pod: k8s.V1Pod, command):
    self.cluster, self.pod = cluster, pod
    self.reads_result = "cat" in " ".join(command)

  def run_forever(self, timeout=None):
    pass

  def peek_stderr(self):
    return False

  def read_all(self):
    return json.dumps(self.cluster.result) if self.cluster.result is not None else "__airflow_xcom_result_empty__"

  def is_open(self):
    return False  # the kill command: the sidecar exits at once

  def close(self):
    if not self.reads_result:  # the sidecar was stopped: the pod reaches its final phase
      base = next(s for s in self.pod.status.container_statuses if s.name == "base")
      code = base.state.terminated.exit_code if base.state.terminated else 1
      self.pod.status.phase = "Succeeded" if code == 0 else "Failed"
      for s in self.pod.status.container_statuses:
        if s.name == SIDECAR:
          s.state = _terminated(0)


def fake_stream(api_method, *args, **kwargs):
  """Stands in for kubernetes.stream.stream: calls the fake's exec method directly."""
  return api_method(*args, **kwargs)


class FakeAsyncHook:
  """The parts of AsyncKubernetesHook that KubernetesPodTrigger and AsyncPodManager call."""

  def __init__(self, cluster: FakeCluster):
    self.cluster = cluster

  async def get_pod(self, name, namespace):
    await asyncio.sleep(0)  # a real request yields to the event loop (the events watch runs)
    return self.cluster.read_namespaced_pod(name, namespace)

  async def delete_pod(self, name, namespace, grace_period_seconds=None):
    self.cluster.delete_namespaced_pod(name, namespace)

  async def get_pod_events(self, name, namespace, resource_version=None):
    return self.cluster.list_namespaced_event(namespace)

  async def watch_pod_events(self, name, namespace, resource_version=None, timeout_seconds=30):
    self.cluster._record("watch_namespaced_event")
    await asyncio.sleep(timeout_seconds)  # a watch without events holds until its timeout
    return
    yield  # an async generator with no events

  async def read_logs(self, name, namespace, container_name, since_seconds=None):
    return [line.decode() for line in self.cluster.read_namespaced_pod_log(name, namespace)]


@contextlib.contextmanager
def installed(monkeypatch, cluster: FakeCluster) -> Iterator[FakeCluster]:
  """Points KPO's sync client, its exec streams and the trigger's async hook at `cluster`."""
  from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
  from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

  monkeypatch.setattr(KubernetesHook, "core_v1_client", property(lambda self: cluster))
  monkeypatch.setattr(KubernetesHook, "custom_object_client", property(lambda self: cluster))
  monkeypatch.setattr(KubernetesHook, "is_in_cluster", property(lambda self: False))
  monkeypatch.setattr("airflow.providers.cncf.kubernetes.utils.pod_manager.kubernetes_stream",
                      fake_stream)
  monkeypatch.setattr(KubernetesPodTrigger, "hook", property(lambda self: cluster.async_hook()),
                      raising=False)
  yield cluster
