"""The Vertex AI target through the Google provider's real ModelServiceHook and
EndpointServiceHook, against a scripted Vertex AI at the GAPIC clients
(tests/operators/fake_vertex_ai.py): exactly the expected calls and requests, retries that
upload and deploy once, clear errors.

The scripted-API tests need the `[vertex]` extra (apache-airflow-providers-google), which the
default lock cannot hold (docs/deploy.md); without it they are skipped and only the settings
and the missing-extra error are tested.
"""

import sys

import pytest

from operators.serving_targets import TargetError, serve
from operators.serving_targets.settings import VertexAISettings, serving_target_settings
from operators.serving_targets.vertex_ai import VertexAITarget

MODEL_DIR = "gs://bucket/deeplab/serving/deeplab-voc"
LOCATION = "projects/proj/locations/europe-west4"
IMAGE = "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
SETTINGS = dict(project_id="proj", region="europe-west4", model_id="123", endpoint_id="456",
                serving_container_image_uri=IMAGE)
PUSHED = {"model_name": "deeplab-voc", "model_dir": MODEL_DIR, "version": 7,
          "push_id": "export-abc"}
PROVIDER_HOOK = "airflow.providers.google.cloud.hooks.vertex_ai.model_service"


@pytest.fixture
def vertex(monkeypatch):
  pytest.importorskip(PROVIDER_HOOK, reason="the [vertex] extra is not installed")
  from tests.operators import fake_vertex_ai
  # The hooks read their connection (as on a worker; no key: the fake clients need none).
  monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", '{"conn_type": "google_cloud_platform"}')
  fake = fake_vertex_ai.FakeVertex()
  fake.add_model("123", "deeplab-voc")
  fake.add_endpoint("456")
  with fake_vertex_ai.installed(monkeypatch, fake):
    yield fake


def _target(**overrides):
  return VertexAITarget(VertexAISettings(**{**SETTINGS, **overrides}), log=lambda _: None)


def _requests(vertex, method):
  return [r for m, r in vertex.requests if m == method]


def test_uploads_a_new_version_deploys_it_with_all_traffic_and_undeploys_the_previous(vertex):
  old = vertex.deploy_existing("456", f"{LOCATION}/models/123@1")
  result = _target().update(PUSHED)
  assert vertex.calls == ["list_model_versions", "upload_model", "get_endpoint", "deploy_model",
                          "undeploy_model"]
  (upload,) = _requests(vertex, "upload_model")
  assert upload.parent == LOCATION and upload.parent_model == f"{LOCATION}/models/123"
  assert upload.model.artifact_uri == MODEL_DIR + "/7"  # the SavedModel's own folder
  assert upload.model.container_spec.image_uri == IMAGE
  assert upload.model.display_name == "deeplab-voc"
  assert dict(upload.model.labels) == {"deeplab-serving-version": "7",
                                       "deeplab-push": result_label("export-abc")}
  (deploy,) = _requests(vertex, "deploy_model")
  assert deploy.endpoint == f"{LOCATION}/endpoints/456"
  assert deploy.deployed_model.model == f"{LOCATION}/models/123@2"
  assert dict(deploy.traffic_split) == {"0": 100}
  resources = deploy.deployed_model.dedicated_resources
  assert (resources.machine_spec.machine_type, resources.min_replica_count,
          resources.max_replica_count) == ("n1-standard-4", 1, 1)
  (undeploy,) = _requests(vertex, "undeploy_model")
  assert undeploy.deployed_model_id == old
  endpoint = vertex.endpoints["456"]
  assert [d.model for d in endpoint.deployed_models] == [f"{LOCATION}/models/123@2"]
  assert dict(endpoint.traffic_split) == {result["deployed_model_id"]: 100}
  assert result == {"target": "vertex_ai", "model_version": f"{LOCATION}/models/123@2",
                    "endpoint": "456", "deployed_model_id": "dm2", "undeployed": [old],
                    "version": 7, "artifact_uri": MODEL_DIR + "/7", "reused_upload": False}


def result_label(push_id):
  import hashlib
  return hashlib.sha256(push_id.encode()).hexdigest()[:16]


def test_undeploy_previous_false_keeps_the_previous_model_at_no_traffic(vertex):
  old = vertex.deploy_existing("456", f"{LOCATION}/models/123@1")
  result = _target(undeploy_previous=False).update(PUSHED)
  assert "undeploy_model" not in vertex.calls and result["undeployed"] == []
  endpoint = vertex.endpoints["456"]
  assert {d.id for d in endpoint.deployed_models} == {old, result["deployed_model_id"]}
  assert dict(endpoint.traffic_split) == {result["deployed_model_id"]: 100}


def test_a_retry_after_a_failed_deploy_does_not_upload_again(vertex):
  from google.api_core import exceptions as gexc
  vertex.fail_operation["deploy_model"] = gexc.InternalServerError("the nodes did not start")
  with pytest.raises(Exception, match="Google API error on operation result call"):
    _target().update(PUSHED)  # the provider's wait_for_operation: a retried task failure
  assert vertex.calls == ["list_model_versions", "upload_model", "get_endpoint", "deploy_model"]
  del vertex.fail_operation["deploy_model"]
  vertex.calls.clear()
  result = _target().update(PUSHED)
  assert vertex.calls == ["list_model_versions", "get_endpoint", "deploy_model"]
  assert result["reused_upload"] is True and result["model_version"].endswith("/123@2")
  assert len(vertex.models["123"]) == 2  # the first version and this push: one upload
  vertex.calls.clear()
  # Run again once everything is done (e.g. the task killed after the deploy): nothing changes.
  again = _target().update(PUSHED)
  assert vertex.calls == ["list_model_versions", "get_endpoint"]
  assert again["deployed_model_id"] == result["deployed_model_id"]


@pytest.mark.parametrize("setting,value,match", [
    ("endpoint_id", "999", r"Vertex AI reading the endpoint: not found"),
    ("model_id", "999", r"Vertex AI listing the versions of the model: not found"),
])
def test_a_missing_model_or_endpoint_fails_naming_them(vertex, setting, value, match):
  with pytest.raises(TargetError, match=match) as e:
    _target(**{setting: value}).update(PUSHED)
  assert f"{value!r}" in str(e.value) and "proj/europe-west4" in str(e.value)


def test_a_refused_call_names_the_role(vertex):
  from google.api_core import exceptions as gexc
  vertex.fail["upload_model"] = gexc.PermissionDenied("aiplatform.models.upload denied")
  with pytest.raises(TargetError, match=r"uploading the model: refused .*roles/aiplatform.user "
                     r"on project proj"):
    _target().update(PUSHED)
  assert "deploy_model" not in vertex.calls


def test_a_folder_outside_cloud_storage_is_refused_without_calls(vertex):
  with pytest.raises(TargetError, match=r"/srv/serving/m is not on gs://"):
    _target().update({**PUSHED, "model_dir": "/srv/serving/m"})
  assert vertex.calls == []


def test_serve_with_the_vertex_ai_target_from_the_environment(vertex, monkeypatch):
  import json
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", json.dumps({"target": "vertex_ai",
                                                           "vertex_ai": SETTINGS}))
  result = serve(PUSHED, log=lambda _: None)
  assert result["target"] == "vertex_ai" and result["model_version"].endswith("/123@2")


def test_without_the_google_provider_the_target_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, PROVIDER_HOOK, None)  # import fails as if not installed
  with pytest.raises(TargetError, match=r"needs apache-airflow-providers-google .*\[vertex\] "
                     r"extra"):
    _target().update(PUSHED)


@pytest.mark.parametrize("change,match", [
    ({"model_id": ""}, r'needs "vertex_ai": \{"model_id": ...\}'),
    ({"serving_container_image_uri": None}, r'\{"serving_container_image_uri": ...\}'),
    ({"min_replica_count": 2, "max_replica_count": 1}, r"min_replica_count <= max_replica"),
    ({"machine": "x"}, r"unknown field\(s\) \['machine'\] in \"vertex_ai\""),
])
def test_bad_vertex_ai_settings_are_refused(change, match):
  import json
  raw = json.dumps({"target": "vertex_ai", "vertex_ai": {**SETTINGS, **change}})
  with pytest.raises(ValueError, match=match):
    serving_target_settings({"DEEPLAB_SERVING_TARGET": raw})
