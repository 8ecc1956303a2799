"""The KServe target: point an InferenceService at the model folder the push wrote, and roll
its predictor out on the new version; wait until it is Ready.

Through the cncf-kubernetes provider's KubernetesHook (its custom-objects client), two calls on
`serving.kserve.io/v1beta1` `inferenceservices`, the InferenceService API KServe serves since
0.7 (v1alpha2 is gone; there is no v1): `get` (read, then wait for Ready) and `patch` (a JSON
merge patch). deploy/k8s/kserve-rbac.yaml grants exactly these; a test holds the two together.

What is patched, in the predictor form the InferenceService already uses (`model` with
`modelFormat: tensorflow`, the form of KServe >= 0.8, or the deprecated `tensorflow`):

* `storageUri` = the model folder `<serving base path>/<model name>`, NOT the version folder:
  KServe's TensorFlow runtime starts TF Serving with `--model_base_path=/mnt/models`, which
  must hold integer version folders; a storageUri ending in `/<version>` would give it a bare
  SavedModel and no version to serve. TF Serving then serves the newest complete version.
* the predictor's annotation `deeplab/served-version` = the pushed version. Predictor
  annotations go into its pod template, so a new value rolls out new pods, whose storage
  initializer downloads the folder again (storageUri alone does not change between pushes, and
  a running pod never re-reads gs://). The annotation also says which version was meant.

Ready: `status.observedGeneration` has reached the patch's generation (the controller saw the
patch) and the `Ready` condition is True (the new pods serve), within ready_timeout_seconds.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from operators.serving_targets.errors import TargetError, TargetNotReady
from operators.serving_targets.settings import KServeSettings
from operators.settings import KubernetesSettings

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VERSION_ANNOTATION = "deeplab/served-version"
TENSORFLOW = "tensorflow"
# The predictor forms that serve a TF Serving model folder, in the order they are looked for.
PREDICTOR_FORMS = ("model", TENSORFLOW)
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://")  # what KServe's storage initializer can fetch


def _ready(obj: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
  for condition in (obj.get("status") or {}).get("conditions") or []:
    if condition.get("type") == "Ready":
      return condition
  return None


def predictor_form(isvc: Mapping[str, Any], where: str) -> str:
  """Which predictor field holds the storageUri: `model` (modelFormat tensorflow) or the
  deprecated `tensorflow`."""
  predictor = (isvc.get("spec") or {}).get("predictor") or {}
  for form in PREDICTOR_FORMS:
    if form in predictor:
      spec = predictor[form] or {}
      if form == "model" and (spec.get("modelFormat") or {}).get("name") != TENSORFLOW:
        raise TargetError(
            f"InferenceService {where}: spec.predictor.model.modelFormat.name is "
            f"{(spec.get('modelFormat') or {}).get('name')!r}; the pushed folder is a TF "
            f"Serving model, so it must be {TENSORFLOW!r}")
      return form
  raise TargetError(f"InferenceService {where} has neither spec.predictor.model (modelFormat "
                    "tensorflow) nor spec.predictor.tensorflow: there is no storageUri to point "
                    "at the pushed model (docs/deploy.md shows one)")


def patch_body(form: str, model_dir: str, version: int) -> dict:
  """The JSON merge patch: the model folder, and the version as the rollout's annotation."""
  return {"spec": {"predictor": {
      "annotations": {VERSION_ANNOTATION: str(int(version))},
      form: {"storageUri": model_dir.rstrip("/")},
  }}}


class KServeTarget:
  """Updates one InferenceService; `update` returns what it did (the task's XCom)."""

  def __init__(self, settings: KServeSettings, kubernetes: KubernetesSettings, *,
               log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic):
    self.settings = settings
    self.kubernetes = kubernetes
    self.log = log
    self.sleep = sleep
    self.clock = clock
    self.where = f"{settings.namespace}/{settings.name}"

  def _api(self):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    k = self.kubernetes
    return KubernetesHook(conn_id=k.kubernetes_conn_id, in_cluster=k.in_cluster,
                          config_file=k.config_file).custom_object_client

  def _call(self, what: str, method, *args) -> dict:
    from kubernetes.client import ApiException
    try:
      return method(GROUP, VERSION, self.settings.namespace, PLURAL, self.settings.name, *args)
    except ApiException as e:
      if e.status == 404:
        raise TargetError(
            f"InferenceService {self.where} not found ({what}): create it first (docs/deploy.md "
            f'shows one) or fix DEEPLAB_SERVING_TARGET\'s "kserve" name/namespace') from e
      if e.status in (401, 403):
        raise TargetError(
            f"{what} InferenceService {self.where} was refused ({e.status} {e.reason}): the "
            "Airflow workers' account needs deploy/k8s/kserve-rbac.yaml's Role in namespace "
            f"{self.settings.namespace}") from e
      raise  # anything else (5xx, conflicts, network): the task's retry

  def update(self, model_dir: str, version: int) -> dict:
    if not model_dir.startswith(STORAGE_SCHEMES):
      raise TargetError(
          f"the serving base path {model_dir} is not storage KServe can fetch: its storage "
          f"initializer reads {', '.join(STORAGE_SCHEMES)} (set DEEPLAB_SERVING_BASE_PATH to "
          "e.g. gs://<bucket>/serving)")
    api = self._api()
    isvc = self._call("reading", api.get_namespaced_custom_object)
    form = predictor_form(isvc, self.where)
    body = patch_body(form, model_dir, version)
    patched = self._call("patching", api.patch_namespaced_custom_object, body)
    generation = int((patched.get("metadata") or {}).get("generation") or 0)
    self.log(f"InferenceService {self.where}: spec.predictor.{form}.storageUri={model_dir}, "
             f"{VERSION_ANNOTATION}={version} (generation {generation}); waiting for Ready")
    status = self._wait_ready(api, generation)
    return {"target": "kserve", "inference_service": self.where, "predictor": form,
            "storage_uri": body["spec"]["predictor"][form]["storageUri"],
            "version": int(version), "generation": generation, "url": status.get("url")}

  def _wait_ready(self, api, generation: int) -> dict:
    deadline = self.clock() + self.settings.ready_timeout_seconds
    while True:
      obj = self._call("reading", api.get_namespaced_custom_object)
      status = obj.get("status") or {}
      seen = int(status.get("observedGeneration") or 0)
      ready = _ready(obj)
      if seen >= generation and ready and ready.get("status") == "True":
        return status
      if self.clock() >= deadline:
        state = (f"Ready={ready.get('status')} ({ready.get('reason') or ''}: "
                 f"{ready.get('message') or ''})" if ready else "no Ready condition")
        raise TargetNotReady(
            f"InferenceService {self.where} is not Ready on generation {generation} after "
            f"{self.settings.ready_timeout_seconds:g} s (observed generation {seen}, {state}); "
            "see `kubectl describe isvc` and the predictor pods. The version stays pushed; "
            "a retry waits again without a new rollout")
      self.sleep(self.settings.poll_interval)
