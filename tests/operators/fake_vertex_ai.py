"""A scripted Vertex AI at the client boundary: the GAPIC ModelServiceClient and
EndpointServiceClient that the Google provider's ModelServiceHook and EndpointServiceHook build
(no project here). Requests are converted to the real `google.cloud.aiplatform_v1` request
types, as the real clients do, so an unknown or misspelt field fails the test; answers are the
real response types. Every call is recorded by method name, with its request.

Needs the `[vertex]` extra (apache-airflow-providers-google, google-cloud-aiplatform).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from google.api_core import exceptions as gexc
from google.cloud import aiplatform_v1 as v1

# Client method -> the IAM permission Vertex AI checks for it (roles/aiplatform.user has all).
VERTEX_API_CALLS = {
    "list_model_versions": "aiplatform.models.list",
    "upload_model": "aiplatform.models.upload",
    "get_endpoint": "aiplatform.endpoints.get",
    "deploy_model": "aiplatform.endpoints.deploy",
    "undeploy_model": "aiplatform.endpoints.undeploy",
}


class FakeOperation:
  """A long-running operation that is already done (or failed with `error`)."""

  def __init__(self, response=None, error: Optional[Exception] = None):
    self.response, self.error = response, error

  def result(self, timeout=None, polling=None, retry=None):
    if self.error is not None:
      raise self.error
    return self.response

  def exception(self, timeout=None):
    return self.error


class FakeVertex:
  """One project/region: models (each a list of versions) and endpoints.

  `fail`: {method: exception} raised by that call; `fail_operation`: {method: exception} the
  call's operation ends with.
  """

  def __init__(self, project: str = "proj", region: str = "europe-west4"):
    self.project, self.region = project, region
    self.models: dict = {}  # model id -> [v1.Model, ...]
    self.endpoints: dict = {}  # endpoint id -> v1.Endpoint
    self.calls: list = []
    self.requests: list = []
    self.fail: dict = {}
    self.fail_operation: dict = {}
    self._deployed = 0

  # -- set-up ----------------------------------------------------------------------------------
  def location(self) -> str:
    return f"projects/{self.project}/locations/{self.region}"

  def add_model(self, model_id: str, display_name: str = "m") -> None:
    self.models[model_id] = [v1.Model(name=f"{self.location()}/models/{model_id}",
                                      display_name=display_name, version_id="1",
                                      artifact_uri="gs://b/first")]

  def add_endpoint(self, endpoint_id: str) -> None:
    self.endpoints[endpoint_id] = v1.Endpoint(name=f"{self.location()}/endpoints/{endpoint_id}")

  def deploy_existing(self, endpoint_id: str, model: str) -> str:
    """A model already deployed there, with all the traffic (what a previous push left)."""
    self._deployed += 1
    deployed_id = f"dm{self._deployed}"
    endpoint = self.endpoints[endpoint_id]
    endpoint.deployed_models.append(v1.DeployedModel(id=deployed_id, model=model))
    endpoint.traffic_split.clear()
    endpoint.traffic_split[deployed_id] = 100
    return deployed_id

  # -- bookkeeping -----------------------------------------------------------------------------
  def _record(self, method: str, request_type, request):
    assert method in VERTEX_API_CALLS, f"the Vertex AI target called {method}, not in the table"
    request = request_type(request)  # what the real client does with a dict: unknown -> error
    self.calls.append(method)
    self.requests.append((method, request))
    if method in self.fail:
      raise self.fail[method]
    return request

  def _operation(self, method: str, response) -> FakeOperation:
    return FakeOperation(response, self.fail_operation.get(method))

  def _id(self, path: str, kind: str) -> str:
    prefix = f"{self.location()}/{kind}/"
    if not path.startswith(prefix):
      raise gexc.NotFound(f"{path} is not in {self.location()}")
    return path[len(prefix):]

  def _endpoint(self, path: str) -> v1.Endpoint:
    endpoint = self.endpoints.get(self._id(path, "endpoints"))
    if endpoint is None:
      raise gexc.NotFound(f"Endpoint {path} not found")
    return endpoint

  def _model_versions(self, path: str) -> list:
    versions = self.models.get(self._id(path, "models"))
    if versions is None:
      raise gexc.NotFound(f"Model {path} not found")
    return versions

  # -- ModelServiceClient ----------------------------------------------------------------------
  def common_location_path(self, project, location):
    return f"projects/{project}/locations/{location}"

  def model_path(self, project, location, model):
    return f"projects/{project}/locations/{location}/models/{model}"

  def endpoint_path(self, project, location, endpoint):
    return f"projects/{project}/locations/{location}/endpoints/{endpoint}"

  def list_model_versions(self, request, **kwargs):
    request = self._record("list_model_versions", v1.ListModelVersionsRequest, request)
    return list(self._model_versions(request.name))

  def upload_model(self, request, **kwargs):
    request = self._record("upload_model", v1.UploadModelRequest, request)
    assert request.parent == self.location()
    versions = self._model_versions(request.parent_model)
    model = v1.Model(request.model)
    model.name = request.parent_model
    model.version_id = str(len(versions) + 1)
    versions.append(model)
    return self._operation("upload_model", v1.UploadModelResponse(
        model=model.name, model_version_id=model.version_id))

  # -- EndpointServiceClient -------------------------------------------------------------------
  def get_endpoint(self, request, **kwargs):
    request = self._record("get_endpoint", v1.GetEndpointRequest, request)
    return v1.Endpoint(self._endpoint(request.name))  # a copy, as a response is

  def deploy_model(self, request, **kwargs):
    request = self._record("deploy_model", v1.DeployModelRequest, request)
    endpoint = self._endpoint(request.endpoint)
    name, _, version = request.deployed_model.model.partition("@")
    assert any(m.version_id == version for m in self._model_versions(name)), (
        f"{request.deployed_model.model} is not a version of a model")
    if "deploy_model" in self.fail_operation:
      return self._operation("deploy_model", None)
    self._deployed += 1
    deployed = v1.DeployedModel(request.deployed_model)
    deployed.id = f"dm{self._deployed}"
    split = dict(request.traffic_split)
    assert sum(split.values()) == 100, f"traffic split {split} must add up to 100"
    endpoint.deployed_models.append(deployed)
    endpoint.traffic_split.clear()
    for key, percent in split.items():
      endpoint.traffic_split[deployed.id if key == "0" else key] = percent
    return self._operation("deploy_model", v1.DeployModelResponse(deployed_model=deployed))

  def undeploy_model(self, request, **kwargs):
    request = self._record("undeploy_model", v1.UndeployModelRequest, request)
    endpoint = self._endpoint(request.endpoint)
    gone = request.deployed_model_id
    if endpoint.traffic_split.get(gone, 0) > 0 and not request.traffic_split:
      # Vertex AI refuses to undeploy a model that still receives traffic.
      raise gexc.FailedPrecondition(f"deployed model {gone} still receives traffic")
    kept = [d for d in endpoint.deployed_models if d.id != gone]
    assert len(kept) < len(endpoint.deployed_models), f"{gone} is not deployed"
    del endpoint.deployed_models[:]
    endpoint.deployed_models.extend(kept)
    endpoint.traffic_split.pop(gone, None)
    return self._operation("undeploy_model", v1.UndeployModelResponse())


@contextlib.contextmanager
def installed(monkeypatch, vertex: FakeVertex) -> Iterator[FakeVertex]:
  """Points the provider hooks' GAPIC clients at `vertex`."""
  from airflow.providers.google.cloud.hooks.vertex_ai.endpoint_service import EndpointServiceHook
  from airflow.providers.google.cloud.hooks.vertex_ai.model_service import ModelServiceHook

  monkeypatch.setattr(ModelServiceHook, "get_model_service_client",
                      lambda self, region=None: vertex)
  monkeypatch.setattr(EndpointServiceHook, "get_endpoint_service_client",
                      lambda self, region=None: vertex)
  yield vertex
