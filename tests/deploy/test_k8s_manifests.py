"""deploy/k8s/: every manifest loads into the Kubernetes client's models, and the launcher's
Role grants exactly the API calls KubernetesPodOperator and the training-group launcher make
(fake_kubernetes.API_CALLS and GROUP_API_CALLS, which the scripted-cluster tests hold the real
code to)."""

import json
import pathlib

import pytest
import yaml
from kubernetes.client import ApiClient

from operators.settings import kubernetes_settings
from tests.operators.fake_kubernetes import needed_rules
from tests.pins import requirement_pins

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MODELS = {"Namespace": "V1Namespace", "ServiceAccount": "V1ServiceAccount", "Role": "V1Role",
          "RoleBinding": "V1RoleBinding"}
WORKLOAD_IDENTITY = "iam.gke.io/gcp-service-account"


def _documents():
  for path in sorted(K8S.glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
      if doc:
        yield path.name, doc


def _load(doc):
  class _Response:
    data = json.dumps(doc)

  return ApiClient().deserialize(_Response, MODELS[doc["kind"]])


def _strip_none(value):
  if isinstance(value, dict):
    return {k: _strip_none(v) for k, v in value.items() if v is not None}
  if isinstance(value, list):
    return [_strip_none(v) for v in value]
  return value


def _granted(role) -> set:
  granted = set()
  for rule in role.rules:
    assert len(rule.api_groups) == 1, "one API group per rule"
    assert not rule.resource_names and "*" not in rule.verbs + rule.resources
    granted |= {(rule.api_groups[0], resource, verb) for resource in rule.resources
                for verb in rule.verbs}
  return granted


OBJECTS = {(doc["kind"], doc["metadata"]["name"]): _load(doc) for _, doc in _documents()}


@pytest.mark.parametrize("name,doc", list(_documents()),
                         ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_a_valid_model_with_no_unknown_field(name, doc):
  assert doc["kind"] in MODELS, f"{name}: no test covers kind {doc['kind']}"
  obj = _load(doc)  # the models' setters reject missing required fields
  # A misspelt key ("verb:") would be dropped silently by the deserializer: compare back.
  assert _strip_none(ApiClient().sanitize_for_serialization(obj)) == doc


def test_role_grants_exactly_the_calls_the_launcher_makes():
  granted = _granted(OBJECTS[("Role", "deeplab-pod-launcher")])
  # The pod launcher's calls and the training group's (JobSets), as the scripted API saw them.
  needed = needed_rules()
  assert granted == needed, (f"missing {sorted(needed - granted)}, "
                             f"more than needed {sorted(granted - needed)}")


def test_binding_gives_the_role_to_the_launcher_account_in_the_training_namespace():
  role = OBJECTS[("Role", "deeplab-pod-launcher")]
  binding = OBJECTS[("RoleBinding", "deeplab-pod-launcher")]
  launcher = OBJECTS[("ServiceAccount", "deeplab-launcher")]
  namespace = OBJECTS[("Namespace", "deeplab")]
  assert role.metadata.namespace == binding.metadata.namespace == namespace.metadata.name
  assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", role.metadata.name)
  (subject,) = binding.subjects
  assert (subject.kind, subject.name, subject.namespace) == (
      "ServiceAccount", launcher.metadata.name, launcher.metadata.namespace)
  assert launcher.metadata.namespace != namespace.metadata.name  # Airflow runs elsewhere


def test_training_pods_account_uses_workload_identity_and_no_api_token():
  trainer = OBJECTS[("ServiceAccount", "deeplab-trainer")]
  assert trainer.metadata.namespace == "deeplab"
  assert trainer.metadata.annotations[WORKLOAD_IDENTITY].endswith(".iam.gserviceaccount.com")
  assert trainer.automount_service_account_token is False
  bound = {s.name for b in OBJECTS.values() if type(b).__name__ == "V1RoleBinding"
           for s in b.subjects}
  assert trainer.metadata.name not in bound


def test_helm_values_use_these_accounts_and_settings():
  values = yaml.safe_load((ROOT / "deploy" / "airflow" / "helm-values.yaml").read_text())
  launcher = OBJECTS[("ServiceAccount", "deeplab-launcher")]
  for component in ("workers", "triggerer"):
    assert values[component]["serviceAccount"] == {"create": False,
                                                   "name": launcher.metadata.name}
  assert values["airflowVersion"] == requirement_pins()["apache-airflow"]
  env = {e["name"]: e["value"] for e in values["env"]}
  settings = kubernetes_settings(env)  # the same parser as the workers'
  assert settings.namespace == "deeplab" and settings.deferrable is True
  assert settings.service_account_name == OBJECTS[("ServiceAccount", "deeplab-trainer")].metadata.name
  assert env["DEEPLAB_STORAGE_ROOT"].startswith("gs://")
  assert json.loads(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])["extra"] == {"in_cluster": True}



def test_kserve_role_grants_exactly_the_calls_the_kserve_target_makes(monkeypatch):
  """Both ways: the Role equals the table of the target's calls, and one update that waits for
  Ready makes every call of the table (so the Role grants nothing unused)."""
  from operators.serving_targets.kserve import KServeTarget
  from operators.serving_targets.settings import KServeSettings
  from operators.settings import KubernetesSettings
  from tests.operators import fake_kserve

  granted = _granted(OBJECTS[("Role", "deeplab-kserve-updater")])
  table = {(g, r, v) for g, r, verbs in fake_kserve.KSERVE_API_CALLS.values() for v in verbs}
  assert granted == table, f"missing {sorted(table - granted)}, extra {sorted(granted - table)}"
  with fake_kserve.installed(monkeypatch, fake_kserve.FakeKServe()) as api:
    api.add(fake_kserve.inference_service("m", "deeplab", {
        "model": {"modelFormat": {"name": "tensorflow"}, "storageUri": "gs://b/x"}}))
    KServeTarget(KServeSettings(name="m", namespace="deeplab", poll_interval=0),
                 KubernetesSettings(), log=lambda _: None).update("gs://b/serving/m", 1)
  assert api.rules() == granted


def test_kserve_binding_gives_its_role_to_the_airflow_workers_account():
  role = OBJECTS[("Role", "deeplab-kserve-updater")]
  binding = OBJECTS[("RoleBinding", "deeplab-kserve-updater")]
  launcher = OBJECTS[("ServiceAccount", "deeplab-launcher")]
  assert role.metadata.namespace == binding.metadata.namespace
  assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", role.metadata.name)
  (subject,) = binding.subjects
  assert (subject.kind, subject.name, subject.namespace) == (
      "ServiceAccount", launcher.metadata.name, launcher.metadata.namespace)
