"""A ps/worker training group launched from one task as a JobSet, up to the API boundary.

The real DeepLabTrainOperator, KubernetesLauncher and the provider's KubernetesPodTrigger run
against the scripted API (fake_kubernetes.FakeCluster, which also plays the JobSet and Job
controllers: one pod per index, labelled as they label them). The task state store is a dict
with Airflow's get/set/delete (the real one is exercised by test_kubernetes_durable.py).
"""

import asyncio
import json
import re
import types

import pytest
from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred

from deeplab.config.cluster import ClusterFlags, resolve_task
from operators import DeepLabTrainOperator
from operators.launchers.kubernetes_jobset import STATE_KEY
from tests.operators import fake_kubernetes

RESULT = {"checkpoint": "model.ckpt-40", "global_step": 40}
WHY = "ps-0 unreachable: Socket closed\nthe retry starts a fresh group"


@pytest.fixture(autouse=True)
def kube_env(monkeypatch):
  monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')
  monkeypatch.setenv("DEEPLAB_KUBERNETES", '{"image": "img:1", "namespace": "ml", '
                     '"poll_interval": 0.01, "startup_timeout_seconds": 5}')


class _Store(dict):
  """The task_state_store accessor's interface (get/set/delete), kept across attempts."""

  def set(self, key, value):
    self[key] = json.loads(json.dumps(value))  # stored as JSON, as in the metadata DB

  def delete(self, key):
    self.pop(key, None)


def _context(store):
  ti = types.SimpleNamespace(dag_id="deeplab_retrain", task_id="train", run_id="manual__1",
                             map_index=-1, try_number=1, start_date=None)
  return {"ti": ti, "run_id": ti.run_id, "dag": types.SimpleNamespace(dag_id=ti.dag_id),
          "task_state_store": store}


def _operator(logdir):
  return DeepLabTrainOperator(task_id="train", dataset_dir="gs://b/datasets/x/abc",
                              train_logdir=str(logdir), num_clones=2, num_replicas=2,
                              num_ps_tasks=1, launcher="kubernetes")


def _defer(op, context) -> TaskDeferred:
  with pytest.raises(TaskDeferred) as info:
    op.execute(context)
  return info.value


async def _first_event(trigger):
  async for event in trigger.run():
    return event.payload
  raise AssertionError("the trigger ended without an event")


def _resume(op, deferred, context, event):
  return op.resume_execution(deferred.method_name, {**(deferred.kwargs or {}), "event": event},
                             context)


def _env(pod):
  base = next(c for c in pod.spec.containers if c.name == "base")
  return {e.name: e.value for e in base.env}


def test_one_jobset_whose_pods_each_resolve_to_their_own_task_and_the_chief_is_watched(
    monkeypatch, tmp_path):
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster()) as cluster:
    deferred = _defer(_operator(tmp_path), _context(store))
  assert cluster.jobsets_created == 1 and len(cluster.pods) == 3  # 1 ps + 2 workers
  tasks = {pod.metadata.name: resolve_task(ClusterFlags(), 2, 1, _env(pod))
           for pod in cluster.pods.values()}
  assert sorted((t.job_name, t.task_index) for t in tasks.values()) == [
      ("ps", 0), ("worker", 0), ("worker", 1)]
  (chief,) = [name for name, t in tasks.items() if t.is_chief]
  for pod in cluster.pods.values():
    base = next(c for c in pod.spec.containers if c.name == "base")
    assert "--num_replicas=2" in base.args and "--num_ps_tasks=1" in base.args
    assert not any(a.startswith("--result_json") for a in base.args)
  trigger = deferred.trigger
  assert isinstance(trigger, KubernetesPodTrigger)  # the provider's: no repo code in the triggerer
  assert (trigger.pod_name, trigger.pod_namespace) == (chief, "ml")
  assert trigger.on_kill_action.value == "delete_pod"  # a killed deferred task ends the group
  (namespace, name), = cluster.jobsets
  assert store[STATE_KEY] == {"namespace": "ml", "name": name, "uid": "uid-1", "chief": chief}
  assert cluster.deleted == []  # the group runs on while the task is deferred


def test_success_returns_the_chiefs_result_and_deletes_the_whole_group(monkeypatch, tmp_path):
  (tmp_path / "train_result.json").write_text(json.dumps(RESULT))
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(exit_code=0)) as cluster:
    op, context = _operator(tmp_path), _context(store)
    deferred = _defer(op, context)
    event = asyncio.run(_first_event(deferred.trigger))
    assert event["status"] == "success"
    assert _resume(op, deferred, context, event) == RESULT
  assert cluster.jobsets == {} and cluster.pods == {}
  assert [p for _, p in cluster.jobset_deletions] == ["Foreground"]  # its Jobs, then their pods
  assert STATE_KEY not in store  # nothing left for a retry to re-attach to


@pytest.mark.parametrize("code,fails_without_retry", [(2, True), (3, True), (1, False)])
def test_the_chiefs_exit_code_and_last_lines_keep_the_contract(monkeypatch, tmp_path, code,
                                                               fails_without_retry):
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=code, message=WHY)) as cluster:
    op, context = _operator(tmp_path), _context(_Store())
    deferred = _defer(op, context)
    event = asyncio.run(_first_event(deferred.trigger))
    with pytest.raises(AirflowException) as info:
      _resume(op, deferred, context, event)
  assert isinstance(info.value, AirflowFailException) is fails_without_retry
  assert f"exited with code {code}" in str(info.value) and "ps-0 unreachable" in str(info.value)
  assert cluster.jobsets == {} and cluster.pods == {}


def test_a_lost_task_that_ended_the_group_is_a_transient_failure_with_the_jobsets_reason(
    monkeypatch, tmp_path):
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      running_reads=10**6)) as cluster:
    op, context = _operator(tmp_path), _context(_Store())
    deferred = _defer(op, context)
    # worker-1 failed: the JobSet failed (maxRestarts 0) and its controller deleted the jobs.
    (key,) = [k for k in cluster.jobsets]
    cluster.jobsets[key]["status"] = {"conditions": [{
        "type": "Failed", "status": "True", "reason": "FailedJobs",
        "message": "jobset failed due to one or more job failures"}]}
    for pod_key in list(cluster.pods):
      del cluster.pods[pod_key]
    event = {"status": "error", "name": deferred.trigger.pod_name, "namespace": "ml",
             "message": "pods not found", **deferred.trigger.trigger_kwargs}
    with pytest.raises(AirflowException) as info:
      _resume(op, deferred, context, event)
  assert not isinstance(info.value, AirflowFailException)  # retried: a fresh group resumes
  assert "one or more job failures" in str(info.value)
  assert cluster.jobsets == {}


def test_synchronous_mode_waits_on_the_worker_and_keeps_the_same_contract(monkeypatch, tmp_path):
  monkeypatch.setenv("DEEPLAB_KUBERNETES", '{"namespace": "ml", "poll_interval": 0.01, '
                     '"deferrable": false}')
  (tmp_path / "train_result.json").write_text(json.dumps(RESULT))
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=0, running_reads=3)) as cluster:
    assert _operator(tmp_path).execute(_context(_Store())) == RESULT
  assert cluster.jobsets == {} and cluster.pods == {}
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      exit_code=3, message="step 7: loss is NaN", running_reads=3)) as cluster:
    with pytest.raises(AirflowFailException, match="loss is NaN"):
      _operator(tmp_path).execute(_context(_Store()))
  assert cluster.jobsets == {} and cluster.pods == {}


def test_no_chief_pod_in_time_names_the_missing_controller_and_deletes_the_jobset(
    monkeypatch, tmp_path):
  monkeypatch.setenv("DEEPLAB_KUBERNETES", '{"namespace": "ml", "poll_interval": 0.01, '
                     '"startup_timeout_seconds": 0}')
  cluster = fake_kubernetes.FakeCluster()
  cluster.jobset_controller = False
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, cluster):
    with pytest.raises(TimeoutError, match="JobSet controller installed"):
      _operator(tmp_path).execute(_context(store))  # not AirflowFailException: retried
  assert cluster.jobsets_created == 1 and cluster.jobsets == {}
  assert STATE_KEY not in store


def test_killing_the_task_deletes_the_jobset_and_every_pod(monkeypatch, tmp_path):
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      running_reads=10**6)) as cluster:
    op = _operator(tmp_path)
    _defer(op, _context(store))
    assert len(cluster.pods) == 3
    op.on_kill()
  assert cluster.jobsets == {} and cluster.pods == {} and len(cluster.deleted) == 3
  assert STATE_KEY not in store


def test_a_task_killed_while_deferred_has_the_trigger_delete_the_chiefs_pod(monkeypatch,
                                                                         tmp_path):
  # The triggerer cancels the trigger; the chief's pod deleted fails the JobSet, whose
  # controller then deletes the ps and the other workers (docs/deploy.md).
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      running_reads=10**6)) as cluster:
    trigger = _defer(_operator(tmp_path), _context(_Store())).trigger
    asyncio.run(trigger.on_kill())
  assert cluster.deleted == [trigger.pod_name]
  assert trigger.pod_name.endswith("-worker-0-0-x0")  # the chief, not a ps or another worker


def test_a_restarted_worker_reattaches_to_the_running_group_instead_of_starting_another(
    monkeypatch, tmp_path):
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster(
      running_reads=10**6)) as cluster:
    first = _defer(_operator(tmp_path), _context(store))
    cluster.heal()  # the worker that deferred is gone; a new one runs the task again
    second = _defer(_operator(tmp_path), _context(store))
  assert cluster.jobsets_created == 1 and len(cluster.pods) == 3
  assert second.trigger.pod_name == first.trigger.pod_name
  after = cluster.calls[cluster.calls.index("--- a new try on a healthy worker ---") + 1:]
  assert after[0] == "get_namespaced_custom_object"
  assert "create_namespaced_custom_object" not in after


def test_a_recorded_group_that_is_gone_is_replaced_by_a_fresh_one(monkeypatch, tmp_path):
  store = _Store({STATE_KEY: {"namespace": "ml", "name": "dl-train-0ld000", "uid": "u0",
                              "chief": "dl-train-0ld000-worker-0-0-x0"}})
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster()) as cluster:
    _defer(_operator(tmp_path), _context(store))
  assert cluster.jobsets_created == 1 and store[STATE_KEY]["name"] != "dl-train-0ld000"


def test_the_group_path_uses_exactly_the_calls_listed_for_the_role(monkeypatch, tmp_path):
  # With test_a_failed_job_uses_every_listed_api_call_and_no_other (the pod path), this shows
  # the Role (tests/deploy/test_k8s_manifests.py) grants nothing the launchers do not use.
  (tmp_path / "train_result.json").write_text(json.dumps(RESULT))
  store = _Store()
  with fake_kubernetes.installed(monkeypatch, fake_kubernetes.FakeCluster()) as cluster:
    op, context = _operator(tmp_path), _context(store)
    deferred = _defer(op, context)
    _defer(_operator(tmp_path), context)  # a restarted worker re-attaches
    event = asyncio.run(_first_event(deferred.trigger))
    _resume(op, deferred, context, event)
    killed = _operator(tmp_path)
    trigger = _defer(killed, _context(_Store())).trigger
    asyncio.run(trigger.on_kill())  # a deferred task killed: the triggerer cancels the trigger
  assert set(cluster.made()) == set(fake_kubernetes.GROUP_API_CALLS)


def test_jobset_names_are_dns_labels_whatever_the_task_id():
  from operators.launchers.kubernetes_jobset import jobset_name
  for task_id in ("train", "group.train_step", "A" * 200, "__"):
    name = jobset_name(task_id)
    assert re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", name) and len(name) <= 40, name
  assert jobset_name("train") != jobset_name("train")  # a fresh group never reuses a name
