"""The Kubernetes path defers to the triggerer and keeps the exit-code contract after it.

Real KubernetesPodOperator and KubernetesPodTrigger code runs end to end against a scripted
Kubernetes API (fake_kubernetes.FakeCluster): execute() creates the pod and defers, the trigger
watches it (asyncio, as in the triggerer), and resuming maps the pod's exit code.
"""

import asyncio
import types

import pytest
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from operators import DeepLabTrainOperator
from operators.launchers.kubernetes import TERMINATION_MESSAGE_POLICY, KubernetesLauncher
from operators.settings import KubernetesSettings
from tests.operators import fake_kubernetes

SETTINGS = ('{"image": "europe-docker.pkg.dev/p/deeplab/train:1.0", "namespace": "ml", '
            '"poll_interval": 0.01, "logging_interval": null}')
WHY = "step 120: loss is NaN\nlearning rate 0.5 is too high; lower --base_learning_rate"


@pytest.fixture(autouse=True)
def kube_env(monkeypatch):
  monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')
  monkeypatch.setenv("DEEPLAB_KUBERNETES", SETTINGS)


class _TI:
  """The task instance fields KPO reads from the context, and the XComs it pushes."""

  dag_id, task_id, run_id, map_index, try_number = "deeplab_retrain", "train", "manual__1", -1, 1
  start_date = None

  def __init__(self):
    self.xcoms = {}

  def xcom_push(self, key, value):
    self.xcoms[key] = value


def _context():
  ti = _TI()
  return {"ti": ti, "run_id": ti.run_id, "dag": types.SimpleNamespace(dag_id=ti.dag_id)}


def _operator():
  return DeepLabTrainOperator(task_id="train", dataset_dir="gs://b/datasets/x/abc",
                              train_logdir="gs://b/runs/r1/train", num_clones=2,
                              launcher="kubernetes")


async def _first_event(trigger: KubernetesPodTrigger) -> dict:
  async for event in trigger.run():
    return event.payload
  raise AssertionError("the trigger ended without an event")


def _defer(op, context) -> TaskDeferred:
  with pytest.raises(TaskDeferred) as info:
    op.execute(context)
  return info.value


def _resume(op, deferred: TaskDeferred, context, event: dict):
  # What the task runner does when the trigger fired: next_kwargs + {"event": payload}.
  return op.resume_execution(deferred.method_name, {**(deferred.kwargs or {}), "event": event},
                             context)


def test_execute_creates_the_pod_then_defers_to_the_kubernetes_pod_trigger(monkeypatch):
  from airflow.sdk.serde import deserialize, serialize

  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster()) as cluster:
    op, context = _operator(), _context()
    deferred = _defer(op, context)
  assert deferred.method_name == "execute_complete"  # ours, so our exit-code policy applies
  trigger = deferred.trigger
  assert isinstance(trigger, KubernetesPodTrigger)
  (namespace, name), = cluster.pods
  assert (trigger.pod_namespace, trigger.pod_name) == (namespace, name) == ("ml", name)
  assert trigger.poll_interval == 0.01 and trigger.on_kill_action.value == "delete_pod"
  assert cluster.created == 1 and cluster.deleted == []  # the pod runs on while deferred
  assert op._launcher is not None  # kept, but never killed on deferral
  # The triggerer rebuilds the trigger from its serialised form (provider class, no repo code).
  classpath, kwargs = trigger.serialize()
  assert classpath == "airflow.providers.cncf.kubernetes.triggers.pod.KubernetesPodTrigger"
  rebuilt = KubernetesPodTrigger(**deserialize(serialize(kwargs)))
  assert (rebuilt.pod_name, rebuilt.pod_namespace) == (name, namespace)


def test_success_returns_the_result_json_from_the_sidecar(monkeypatch):
  result = {"checkpoint": "gs://b/runs/r1/train/model.ckpt-500", "global_step": 500}
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=0, result=result, log_lines=["step 500 loss 0.3"])) as cluster:
    op, context = _operator(), _context()
    deferred = _defer(op, context)
    event = asyncio.run(_first_event(deferred.trigger))
    assert event["status"] == "success"
    assert _resume(op, deferred, context, event) == result
  (name,) = cluster.deleted  # on_finish_action="delete_pod", once: nothing left to kill after
  assert not cluster.pods and cluster.calls.count("delete_namespaced_pod") == 1


@pytest.mark.parametrize("code,fails_without_retry", [(2, True), (3, True), (1, False),
                                                      (137, False)])
def test_exit_codes_keep_the_contract_after_the_trigger(monkeypatch, code, fails_without_retry):
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=code, message=WHY, log_lines=["starting", "step 120: loss is NaN"])):
    op, context = _operator(), _context()
    deferred = _defer(op, context)
    event = asyncio.run(_first_event(deferred.trigger))
    assert event["status"] == "failed"
    with pytest.raises(AirflowException) as info:
      _resume(op, deferred, context, event)
  assert isinstance(info.value, AirflowFailException) is fails_without_retry
  message = str(info.value)
  assert f"exited with code {code}" in message
  # The pod's last output lines (its termination message) say why, after its deletion.
  assert "learning rate 0.5 is too high" in message and "step 120: loss is NaN" in message


def test_a_trigger_timeout_is_transient_and_deletes_the_pod(monkeypatch):
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      running_reads=10**6)) as cluster:
    op, context = _operator(), _context()
    deferred = _defer(op, context)
    (namespace, name), = cluster.pods
    event = {"status": "timeout", "name": name, "namespace": namespace,
             "message": "Pod took too long to start"}
    with pytest.raises(AirflowException) as info:
      _resume(op, deferred, context, event)
  assert not isinstance(info.value, AirflowFailException)  # no exit code: retried
  assert name in cluster.deleted


def test_synchronous_mode_keeps_the_same_contract(monkeypatch):
  monkeypatch.setenv("DEEPLAB_KUBERNETES", SETTINGS.replace("}", ', "deferrable": false}'))
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=2, message="dataset_dir gs://b/x has no manifest.json",
      log_lines=["reading gs://b/x"])) as cluster:
    op, context = _operator(), _context()
    with pytest.raises(AirflowFailException, match="has no manifest.json"):
      op.execute(context)
  assert cluster.created == 1 and cluster.deleted


def test_the_base_container_keeps_its_last_lines_as_termination_message():
  pod = KubernetesLauncher(task_id="train", settings=KubernetesSettings()).build_pod(
      ["train"], num_gpus=1)
  base = next(c for c in pod.spec.containers if c.name == "base")
  assert base.termination_message_policy == TERMINATION_MESSAGE_POLICY == "FallbackToLogsOnError"
  sidecar = next(c for c in pod.spec.containers if c.name != "base")
  assert sidecar.termination_message_policy is None


def test_the_tasks_execution_timeout_becomes_the_triggers_deadline(monkeypatch):
  import datetime

  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster()):
    op, context = _operator(), _context()
    op.execution_timeout = datetime.timedelta(hours=12)
    context["task"] = op
    context["ti"].start_date = datetime.datetime.now(datetime.timezone.utc)
    deferred = _defer(op, context)
  deadline = deferred.trigger.trigger_kwargs["_execution_deadline"]
  assert abs(deadline - (context["ti"].start_date.timestamp() + 12 * 3600)) < 1
  assert deferred.timeout >= datetime.timedelta(hours=12)  # the framework's backstop, padded


def test_a_failed_job_uses_every_listed_api_call_and_no_other(monkeypatch):
  # _record rejects calls missing from API_CALLS; this shows none of the list is unused, so
  # the Role built from it (tests/deploy/test_k8s_manifests.py) grants nothing KPO does not use.
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=2, message=WHY)) as cluster:
    op, context = _operator(), _context()
    deferred = _defer(op, context)
    event = asyncio.run(_first_event(deferred.trigger))
    with pytest.raises(AirflowFailException):
      _resume(op, deferred, context, event)
  assert set(cluster.calls) == set(fake_kubernetes.API_CALLS)
