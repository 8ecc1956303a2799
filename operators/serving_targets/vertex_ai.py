"""The Vertex AI target: the pushed version becomes a new version of one Model Registry model,
deployed to one endpoint with all the traffic.

Through the Google provider's Vertex AI hooks (apache-airflow-providers-google, the `[vertex]`
extra: it cannot share the default install's lock, docs/deploy.md says why):

1. ModelServiceHook.list_model_versions(model_id): a version labelled with this push's serving
   version and push id is reused (a retry after the upload never uploads twice).
2. ModelServiceHook.upload_model(parent_model=model_id), artifact_uri = the version folder
   `<serving base path>/<model name>/<version>` (Vertex AI's prebuilt TensorFlow containers load
   the SavedModel at the artifact URI's root), then wait for the operation.
3. EndpointServiceHook.get_endpoint: what is deployed now.
4. EndpointServiceHook.deploy_model(model@version, traffic_split {"0": 100}: all the traffic to
   the model being deployed), wait; skipped when that model version is already deployed there.
5. with undeploy_previous (default true), EndpointServiceHook.undeploy_model for every other
   deployed model (they carry no traffic any more), wait. False keeps them deployed at 0 %
   traffic (a rollback by traffic split, at the cost of their nodes).

The model and the endpoint are created once by hand (docs/deploy.md); a missing one or a
refused call fails at once (TargetError), anything else fails the task and is retried.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Mapping, Optional

from operators.serving_targets.errors import TargetError
from operators.serving_targets.settings import VertexAISettings

PROVIDER = "apache-airflow-providers-google"
VERSION_LABEL = "deeplab-serving-version"
PUSH_LABEL = "deeplab-push"  # a hash: label values allow 63 characters of [a-z0-9_-]
ALL_TRAFFIC_TO_THE_NEW_MODEL = {"0": 100}  # "0": the model this request deploys


def push_label(push_id: str) -> str:
  return hashlib.sha256(push_id.encode()).hexdigest()[:16]


def model_body(settings: VertexAISettings, model_name: str, model_dir: str, version: int,
               push_id: str) -> dict:
  """The Model the upload sends (google.cloud.aiplatform_v1.Model fields)."""
  return {
      "display_name": model_name,
      "artifact_uri": f"{model_dir.rstrip('/')}/{int(version)}",
      "container_spec": {"image_uri": settings.serving_container_image_uri},
      "labels": {VERSION_LABEL: str(int(version)), PUSH_LABEL: push_label(push_id)},
      "version_description": f"{model_dir.rstrip('/')}/{int(version)} (push {push_id})",
  }


def deployed_model_body(settings: VertexAISettings, model_version: str, model_name: str,
                        version: int) -> dict:
  """The DeployedModel the deploy sends: the model version on dedicated nodes."""
  return {
      "model": model_version,
      "display_name": re.sub(r"[^a-zA-Z0-9_-]", "-", f"{model_name}-v{int(version)}")[:128],
      "dedicated_resources": {
          "machine_spec": {"machine_type": settings.machine_type},
          "min_replica_count": settings.min_replica_count,
          "max_replica_count": settings.max_replica_count,
      },
  }


def _field(obj: Any, name: str) -> Any:
  return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name)


class VertexAITarget:
  """Uploads and deploys one pushed version; `update` returns what it did (the task's XCom)."""

  def __init__(self, settings: VertexAISettings, *, log: Callable[[str], None] = print):
    self.settings = settings
    self.log = log

  def _hooks(self):
    try:
      from airflow.providers.google.cloud.hooks.vertex_ai.endpoint_service import (
          EndpointServiceHook)
      from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook
    except ImportError as e:
      raise TargetError(
          f"the vertex_ai serving target needs {PROVIDER} ({e}): install the package with its "
          "[vertex] extra on the Airflow workers (docs/deploy.md)") from e
    conn = self.settings.gcp_conn_id
    return ModelServiceHook(gcp_conn_id=conn), EndpointServiceHook(gcp_conn_id=conn)

  def _call(self, what: str, fn, *args, **kwargs):
    from google.api_core import exceptions as gexc
    s = self.settings
    try:
      return fn(*args, **kwargs)
    except gexc.NotFound as e:
      raise TargetError(
          f"Vertex AI {what}: not found ({e.message}); create the model "
          f"{s.model_id!r} and the endpoint {s.endpoint_id!r} in {s.project_id}/{s.region} first "
          "(docs/deploy.md) or fix DEEPLAB_SERVING_TARGET's \"vertex_ai\" settings") from e
    except (gexc.PermissionDenied, gexc.Unauthenticated) as e:
      raise TargetError(
          f"Vertex AI {what}: refused ({e.message}); the Airflow workers' Google account needs "
          f"roles/aiplatform.user on project {s.project_id} (docs/deploy.md)") from e

  def _existing_version(self, models, push_id: str, version: int) -> Optional[Any]:
    s = self.settings
    wanted = {VERSION_LABEL: str(int(version)), PUSH_LABEL: push_label(push_id)}
    for model in self._call("listing the versions of the model", models.list_model_versions,
                            region=s.region, project_id=s.project_id, model_id=s.model_id):
      labels = dict(_field(model, "labels") or {})
      if all(labels.get(k) == v for k, v in wanted.items()):
        return model
    return None

  def update(self, pushed: Mapping[str, Any]) -> dict:
    s = self.settings
    model_dir, version = str(pushed["model_dir"]), int(pushed["version"])
    model_name, push_id = str(pushed["model_name"]), str(pushed["push_id"])
    if not model_dir.startswith("gs://"):
      raise TargetError(f"the serving base path {model_dir} is not on gs://: Vertex AI reads a "
                        "model's artifacts from Cloud Storage (set DEEPLAB_SERVING_BASE_PATH to "
                        "gs://<bucket>/serving)")
    models, endpoints = self._hooks()
    existing = self._existing_version(models, push_id, version)
    if existing is not None:
      model_version = f"{_field(existing, 'name')}@{_field(existing, 'version_id')}"
      self.log(f"Vertex AI: {model_version} already holds serving version {version} (a retry)")
    else:
      op = self._call("uploading the model", models.upload_model, project_id=s.project_id,
                      region=s.region, parent_model=s.model_id,
                      model=model_body(s, model_name, model_dir, version, push_id))
      uploaded = models.wait_for_operation(op, timeout=s.operation_timeout_seconds)
      model_version = f"{_field(uploaded, 'model')}@{_field(uploaded, 'model_version_id')}"
      self.log(f"Vertex AI: uploaded {model_dir}/{version} as {model_version}")

    endpoint = self._call("reading the endpoint", endpoints.get_endpoint,
                          project_id=s.project_id, region=s.region, endpoint=s.endpoint_id)
    deployed = list(_field(endpoint, "deployed_models") or [])
    traffic = dict(_field(endpoint, "traffic_split") or {})
    mine = [d for d in deployed if _field(d, "model") == model_version]
    if mine and traffic.get(_field(mine[0], "id")) == 100:
      deployed_id = _field(mine[0], "id")
      self.log(f"Vertex AI: {model_version} is already deployed with all the traffic")
    else:
      op = self._call("deploying to the endpoint", endpoints.deploy_model,
                      project_id=s.project_id, region=s.region, endpoint=s.endpoint_id,
                      deployed_model=deployed_model_body(s, model_version, model_name, version),
                      traffic_split=dict(ALL_TRAFFIC_TO_THE_NEW_MODEL))
      result = endpoints.wait_for_operation(op, timeout=s.operation_timeout_seconds)
      deployed_id = _field(_field(result, "deployed_model"), "id")
      self.log(f"Vertex AI: {model_version} deployed to endpoint {s.endpoint_id} as "
               f"{deployed_id}, 100 % of the traffic")
    undeployed = []
    if s.undeploy_previous:
      for other in deployed:
        other_id = _field(other, "id")
        if other_id == deployed_id:
          continue
        op = self._call("undeploying the previous model", endpoints.undeploy_model,
                        project_id=s.project_id, region=s.region, endpoint=s.endpoint_id,
                        deployed_model_id=other_id)
        endpoints.wait_for_operation(op, timeout=s.operation_timeout_seconds)
        undeployed.append(other_id)
        self.log(f"Vertex AI: undeployed {other_id} ({_field(other, 'model')})")
    return {"target": "vertex_ai", "model_version": model_version, "endpoint": s.endpoint_id,
            "deployed_model_id": deployed_id, "undeployed": undeployed, "version": version,
            "artifact_uri": f"{model_dir.rstrip('/')}/{version}",
            "reused_upload": existing is not None}
