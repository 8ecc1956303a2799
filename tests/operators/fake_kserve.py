"""A scripted KServe API at the client boundary: the InferenceServices of a namespace behind the
custom-objects client that KubernetesHook hands out (no cluster here).

Every call is recorded; a call missing from KSERVE_API_CALLS fails the test: that table is the
one list of what the KServe target asks the API server, which deploy/k8s/kserve-rbac.yaml's Role
must grant exactly. A patch is applied as a JSON merge patch (RFC 7386) and bumps
metadata.generation when the spec changes, as the API server does; the KServe controller's part
(observedGeneration, the Ready condition) is played after `ready_after_reads` reads.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Optional

from kubernetes.client import ApiException

# Client method -> (API group, resource, verbs).
KSERVE_API_CALLS = {
    "get_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", ("get",)),
    "patch_namespaced_custom_object": ("serving.kserve.io", "inferenceservices", ("patch",)),
}


def merge_patch(target, patch):
  """RFC 7386: objects merge key by key, null removes, anything else replaces."""
  if not isinstance(patch, dict):
    return copy.deepcopy(patch)
  result = dict(target) if isinstance(target, dict) else {}
  for key, value in patch.items():
    if value is None:
      result.pop(key, None)
    else:
      result[key] = merge_patch(result.get(key), value)
  return result


def inference_service(name: str, namespace: str, predictor: dict) -> dict:
  """An InferenceService as the API server returns it, Ready on its first generation."""
  return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
          "metadata": {"name": name, "namespace": namespace, "generation": 1,
                       "resourceVersion": "1"},
          "spec": {"predictor": predictor},
          "status": {"observedGeneration": 1, "url": f"http://{name}.{namespace}.example.com",
                     "conditions": [{"type": "Ready", "status": "True"}]}}


class FakeKServe:
  """InferenceServices keyed by (namespace, name).

  `ready_after_reads`: reads after a spec change until the controller reports the new
  generation Ready (None: never; the Ready condition then stays False with `failure`).
  `refuse`: an HTTP status every call gets (e.g. 403 without the Role).
  """

  def __init__(self, *, ready_after_reads: Optional[int] = 1, failure: str = "",
               refuse: Optional[int] = None):
    self.objects: dict = {}
    self.calls: list = []
    self.bodies: list = []
    self.ready_after_reads = ready_after_reads
    self.failure = failure
    self.refuse = refuse
    self._reads_since_change = 0

  def add(self, obj: dict) -> dict:
    self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    return obj

  def _record(self, method: str, group: str, version: str, plural: str) -> None:
    assert method in KSERVE_API_CALLS, f"the KServe target called {method}, not in KSERVE_API_CALLS"
    assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")
    self.calls.append(method)
    if self.refuse:
      raise ApiException(status=self.refuse, reason="Forbidden")

  def _get(self, namespace, name) -> dict:
    obj = self.objects.get((namespace, name))
    if obj is None:
      raise ApiException(status=404, reason=f'inferenceservices "{name}" not found')
    return obj

  def rules(self) -> set:
    """{(API group, resource, verb)} the recorded calls need."""
    return {(KSERVE_API_CALLS[m][0], KSERVE_API_CALLS[m][1], v) for m in self.calls
            for v in KSERVE_API_CALLS[m][2]}

  # -- CustomObjectsApi ------------------------------------------------------------------------
  def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
    self._record("get_namespaced_custom_object", group, version, plural)
    obj = self._get(namespace, name)
    status = obj["status"]
    settled = (status["observedGeneration"] == obj["metadata"]["generation"]
               and status["conditions"][0]["status"] == "True")
    if not settled:
      self._reads_since_change += 1
      if self.ready_after_reads is not None and self._reads_since_change > self.ready_after_reads:
        status["observedGeneration"] = obj["metadata"]["generation"]
        status["conditions"] = [{"type": "Ready", "status": "True"}]
      elif self._reads_since_change > 1:  # the controller saw it, the new pods do not start
        status["observedGeneration"] = obj["metadata"]["generation"]
        status["conditions"] = [{"type": "Ready", "status": "False",
                                 "reason": "RevisionFailed", "message": self.failure}]
    return copy.deepcopy(obj)

  def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body,
                                     **kwargs):
    self._record("patch_namespaced_custom_object", group, version, plural)
    self.bodies.append(copy.deepcopy(body))
    obj = self._get(namespace, name)
    patched = merge_patch(obj, body)
    if patched["spec"] != obj["spec"]:
      patched["metadata"]["generation"] += 1
      self._reads_since_change = 0
    patched["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
    self.objects[(namespace, name)] = patched
    return copy.deepcopy(patched)


@contextlib.contextmanager
def installed(monkeypatch, api: FakeKServe) -> Iterator[FakeKServe]:
  """Points KubernetesHook's custom-objects client at `api`."""
  from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

  monkeypatch.setattr(KubernetesHook, "custom_object_client", property(lambda self: api))
  monkeypatch.setattr(KubernetesHook, "is_in_cluster", property(lambda self: False))
  yield api
