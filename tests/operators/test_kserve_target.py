"""The KServe target against a scripted KServe API (tests/operators/fake_kserve.py), through the
real KubernetesHook of the cncf-kubernetes provider: exactly the expected calls and bodies, and
a clear error for each failure."""

import pytest

from operators.serving_targets import TargetError, TargetNotReady, serve
from operators.serving_targets.kserve import KServeTarget
from operators.serving_targets.settings import (KServeSettings, ServingTargetSettings,
                                                serving_target_settings)
from operators.settings import KubernetesSettings
from tests.operators import fake_kserve
from tests.operators.fake_kserve import FakeKServe, inference_service

MODEL_DIR = "gs://bucket/deeplab/serving/deeplab-voc"
TF_MODEL = {"modelFormat": {"name": "tensorflow"}, "storageUri": "gs://bucket/old/model",
            "resources": {"limits": {"cpu": "1"}}}


class FakeClock:
  """time.monotonic for the target: advances only when the target sleeps."""

  def __init__(self):
    self.now = 0.0
    self.slept = []

  def __call__(self):
    return self.now

  def sleep(self, seconds):
    self.slept.append(seconds)
    self.now += seconds


def _target(timeout=600.0, poll=10.0, clock=None):
  clock = clock or FakeClock()
  settings = KServeSettings(name="deeplab", namespace="serving", ready_timeout_seconds=timeout,
                            poll_interval=poll)
  return KServeTarget(settings, KubernetesSettings(), log=lambda _: None, sleep=clock.sleep,
                      clock=clock)


@pytest.fixture
def api(monkeypatch):
  with fake_kserve.installed(monkeypatch, FakeKServe()) as fake:
    yield fake


def test_points_the_model_predictor_at_the_model_folder_and_rolls_out_the_version(api):
  api.add(inference_service("deeplab", "serving", {
      "model": dict(TF_MODEL), "annotations": {"team": "vision"}}))
  result = _target().update(MODEL_DIR, 7)
  # Read, patch, then read until the controller reports the patched generation Ready: the first
  # read after the patch still shows generation 1 Ready (the old pods), which must not count.
  assert api.calls == ["get_namespaced_custom_object", "patch_namespaced_custom_object",
                       "get_namespaced_custom_object", "get_namespaced_custom_object"]
  assert api.bodies == [{"spec": {"predictor": {
      "annotations": {"deeplab/served-version": "7"},
      "model": {"storageUri": MODEL_DIR}}}}]
  served = api.objects[("serving", "deeplab")]
  assert served["spec"]["predictor"] == {
      "model": {**TF_MODEL, "storageUri": MODEL_DIR},
      "annotations": {"team": "vision", "deeplab/served-version": "7"}}
  assert result == {"target": "kserve", "inference_service": "serving/deeplab",
                    "predictor": "model", "storage_uri": MODEL_DIR, "version": 7,
                    "generation": 2, "url": "http://deeplab.serving.example.com"}


def test_the_deprecated_tensorflow_predictor_is_patched_in_its_own_field(api):
  api.add(inference_service("deeplab", "serving", {
      "tensorflow": {"storageUri": "gs://bucket/old", "runtimeVersion": "2.6.2"}}))
  _target().update(MODEL_DIR + "/", 3)  # a trailing slash is not part of the URI
  assert api.bodies == [{"spec": {"predictor": {
      "annotations": {"deeplab/served-version": "3"},
      "tensorflow": {"storageUri": MODEL_DIR}}}}]
  assert api.objects[("serving", "deeplab")]["spec"]["predictor"]["tensorflow"] == {
      "storageUri": MODEL_DIR, "runtimeVersion": "2.6.2"}


@pytest.mark.parametrize("predictor,expected", [
    ({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}},
     r"modelFormat.name is 'sklearn'.*must be 'tensorflow'"),
    ({"pytorch": {"storageUri": "gs://b/m"}}, r"neither spec.predictor.model .* nor "
     r"spec.predictor.tensorflow"),
])
def test_a_predictor_that_cannot_serve_the_folder_is_refused_before_any_patch(api, predictor,
                                                                               expected):
  api.add(inference_service("deeplab", "serving", predictor))
  with pytest.raises(TargetError, match=expected) as e:
    _target().update(MODEL_DIR, 2)
  assert "serving/deeplab" in str(e.value)
  assert api.calls == ["get_namespaced_custom_object"]


def test_a_missing_inference_service_fails_naming_it(api):
  with pytest.raises(TargetError, match=r"InferenceService serving/deeplab not found .*create "
                     r"it first"):
    _target().update(MODEL_DIR, 2)
  assert api.calls == ["get_namespaced_custom_object"]


def test_access_denied_names_the_role_to_apply(monkeypatch):
  with fake_kserve.installed(monkeypatch, FakeKServe(refuse=403)) as api:
    with pytest.raises(TargetError, match=r"refused \(403 Forbidden\).*kserve-rbac.yaml.*"
                       r"namespace serving"):
      _target().update(MODEL_DIR, 2)
  assert api.calls == ["get_namespaced_custom_object"]


def test_a_local_serving_folder_is_refused_without_calling_the_api(api):
  with pytest.raises(TargetError, match=r"/srv/serving/m is not storage KServe can fetch"):
    _target().update("/srv/serving/m", 2)
  assert api.calls == []


def test_not_ready_in_time_fails_with_the_condition_and_a_retry_does_not_roll_out_again(
    monkeypatch):
  fake = FakeKServe(ready_after_reads=None, failure="Back-off pulling image")
  with fake_kserve.installed(monkeypatch, fake) as api:
    api.add(inference_service("deeplab", "serving", {"model": dict(TF_MODEL)}))
    clock = FakeClock()
    with pytest.raises(TargetNotReady) as e:
      _target(timeout=25, poll=10, clock=clock).update(MODEL_DIR, 4)
    message = str(e.value)
    assert "serving/deeplab is not Ready on generation 2 after 25 s" in message
    assert "RevisionFailed: Back-off pulling image" in message and "retry" in message
    assert clock.slept == [10, 10, 10]  # read at 0, 10, 20, 30 s: the fourth is past 25 s
    assert api.calls.count("patch_namespaced_custom_object") == 1
    # The retry sends the same patch: the spec does not change, so no new generation (no second
    # rollout); it only waits again.
    api.ready_after_reads = 0
    result = _target(clock=FakeClock()).update(MODEL_DIR, 4)
  assert result["generation"] == 2
  assert api.bodies[0] == api.bodies[1]


def test_serve_defaults_to_the_folder_target_and_calls_nothing(api, monkeypatch):
  monkeypatch.delenv("DEEPLAB_SERVING_TARGET", raising=False)
  pushed = {"model_dir": MODEL_DIR, "version": 3, "push_id": "p"}
  assert serve(pushed, log=lambda _: None) == {"target": "folder", "model_dir": MODEL_DIR,
                                               "version": 3}
  assert api.calls == []


def test_serve_with_the_kserve_target_from_the_environment(api, monkeypatch):
  api.add(inference_service("deeplab", "serving", {"model": dict(TF_MODEL)}))
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", '{"target": "kserve", "kserve": {"name": '
                     '"deeplab", "namespace": "serving", "poll_interval": 0}}')
  result = serve({"model_dir": MODEL_DIR, "version": 5}, log=lambda _: None)
  assert (result["target"], result["version"], result["storage_uri"]) == ("kserve", 5, MODEL_DIR)
  assert api.objects[("serving", "deeplab")]["spec"]["predictor"]["annotations"] == {
      "deeplab/served-version": "5"}


@pytest.mark.parametrize("raw,expected", [
    ('{"target": "vertex"}', r"target 'vertex' is not one of \['folder', 'kserve', 'vertex_ai'\]"),
    ('{"target": "kserve"}', r'the kserve target needs "kserve": \{"name": ...\}'),
    ('{"target": "kserve", "kserve": {"name": "d"}}', r'needs "kserve": \{"namespace": ...\}'),
    ('{"target": "kserve", "kserve": {"name": "d", "namespace": "n", "timeout": 1}}',
     r"unknown field\(s\) \['timeout'\] in \"kserve\""),
    ('{"target": "folder", "kserv": {}}', r"unknown field\(s\) \['kserv'\]"),
    ('{"target": "kserve", "kserve": "deeplab"}', r'"kserve" must be a JSON object'),
    ('["kserve"]', r"must be a JSON object"),
    ('{"target": ', r"DEEPLAB_SERVING_TARGET is not valid JSON"),
])
def test_bad_settings_are_refused_naming_the_field(raw, expected):
  with pytest.raises(ValueError, match=expected):
    serving_target_settings({"DEEPLAB_SERVING_TARGET": raw})


def test_bad_settings_fail_the_serve_step_as_permanent(monkeypatch):
  monkeypatch.setenv("DEEPLAB_SERVING_TARGET", '{"target": "kserve"}')
  with pytest.raises(TargetError, match=r"needs \"kserve\""):
    serve({"model_dir": MODEL_DIR, "version": 1})


def test_settings_default_and_kserve_defaults():
  assert serving_target_settings({}) == ServingTargetSettings(target="folder", kserve=None)
  parsed = serving_target_settings(
      {"DEEPLAB_SERVING_TARGET": '{"target": "kserve", "kserve": {"name": "a", "namespace": "b"}}'})
  assert parsed.kserve == KServeSettings(name="a", namespace="b", ready_timeout_seconds=600.0,
                                         poll_interval=10.0)
