"""The deploy and rollback DAGs' `serve` task: the installation's serving target updated with
the push's result; a bad setting or a missing InferenceService fails the task without retry."""

import pytest

from tests.dags.test_dag_integrity import SERVING_DAGS
from tests.operators import fake_kserve

PUSHED = {"model_name": "m", "model_dir": "gs://bucket/serving/m", "version": 4, "push_id": "p"}


@pytest.fixture(params=SERVING_DAGS)
def serve_callable(request, dagbag):
  return dagbag.dags[request.param].get_task("serve").python_callable


def test_serve_task_updates_the_configured_inference_service(serve_callable, monkeypatch):
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", '{"target": "kserve", "kserve": {"name": "m", '
                     '"namespace": "serving", "poll_interval": 0}}')
  with fake_kserve.installed(monkeypatch, fake_kserve.FakeKServe()) as api:
    api.add(fake_kserve.inference_service("m", "serving", {
        "model": {"modelFormat": {"name": "tensorflow"}, "storageUri": "gs://bucket/old"}}))
    result = serve_callable(PUSHED)
  assert (result["inference_service"], result["storage_uri"], result["version"]) == (
      "serving/m", "gs://bucket/serving/m", 4)
  assert api.calls.count("patch_namespaced_custom_object") == 1


def test_serve_task_fails_without_retry_on_what_a_retry_cannot_fix(serve_callable, monkeypatch):
  from airflow.sdk.exceptions import AirflowFailException
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", '{"target": "kserve", "kserve": {"name": "m", '
                     '"namespace": "serving"}}')
  with fake_kserve.installed(monkeypatch, fake_kserve.FakeKServe()):
    with pytest.raises(AirflowFailException, match="InferenceService serving/m not found"):
      serve_callable(PUSHED)
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", '{"target": "seldon"}')
  with pytest.raises(AirflowFailException, match="target 'seldon' is not one of"):
    serve_callable(PUSHED)
