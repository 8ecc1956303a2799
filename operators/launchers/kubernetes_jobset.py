"""A training group on Kubernetes, run from one Airflow task: create its JobSet, watch the
chief, delete the JobSet (every pod with it) when the job is over or the task is killed.

Why not KubernetesJobOperator (cncf-kubernetes 10.25): it runs one Indexed Job, so the ps tasks
would get the workers' GPUs and pod template, and its trigger waits for *every* pod to
complete, which the ps tasks never do (they serve until stopped). The JobSet
(kubernetes_group.build_jobset) has what the group needs; this module only drives it.

How it runs, as KubernetesLauncher runs one pod:

* `run` creates the JobSet through the custom-objects API, records its identity (namespace,
  name, uid, the chief's pod) in the task's `task_state_store`, waits for the chief's pod
  (worker 0) and, deferrable, hands that pod to the provider's own KubernetesPodTrigger: the
  triggerer needs no code from this repository. In the synchronous mode the worker polls it.
* The chief's exit is the group's outcome: its exit code, its last lines (the termination
  message Kubernetes keeps), and on success the result it wrote as train_result.json in the
  train_logdir. A ps or another worker that fails makes the JobSet fail (failurePolicy
  maxRestarts 0) and the JobSet controller then deletes the remaining jobs, the chief's
  included: the task fails as transient with the JobSet's reason, and the retry starts a
  fresh group whose chief resumes from its checkpoint.
* A retry, or the same try after a worker restart, finds the recorded JobSet: if it is still
  there it watches that one again instead of creating a second group.
* `kill` deletes the JobSet with foreground propagation (its Jobs, their pods). A task killed
  while deferred is cancelled in the triggerer: the trigger deletes the chief's pod, which
  fails the JobSet, which deletes the rest; its ttlSecondsAfterFinished removes the object.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid
from typing import Any, Mapping, Optional, Sequence

from deeplab.config.cluster import WORKER_JOB
from operators import settings as settings_mod
from operators.launchers.job_record import state_store
from operators.launchers.base import ClusterShape, JobResult
from operators.launchers.kubernetes_group import (JOBSET_API_VERSION, JOBSET_NAME_LABEL,
                                                  build_jobset)

JOBSET_GROUP, JOBSET_VERSION = JOBSET_API_VERSION.split("/")
JOBSET_PLURAL = "jobsets"
# Labels the controllers put on every pod: the JobSet's (replicated job) and the Job's (index).
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
STATE_KEY = "deeplab_kubernetes_group"
BASE_CONTAINER = "base"
GONE = "the chief's pod is gone"


def jobset_name(task_id: str) -> str:
  """A fresh, DNS-safe name per group. Short: Kubernetes builds `<name>-worker-0-<i>-<x>` pod
  names and `<name>-worker-0` Job names from it (63 characters at most)."""
  stem = re.sub(r"[^a-z0-9-]+", "-", task_id.lower())[:24].strip("-") or "train"
  return f"dl-{stem}-{uuid.uuid4().hex[:6]}"


def chief_selector(name: str) -> str:
  return (f"{JOBSET_NAME_LABEL}={name},{REPLICATED_JOB_LABEL}={WORKER_JOB},"
          f"{COMPLETION_INDEX_LABEL}=0")


def train_logdir(argv: Sequence[str]) -> Optional[str]:
  for arg in argv:
    if str(arg).startswith("--train_logdir="):
      return str(arg).split("=", 1)[1]
  return None


class KubernetesGroupLauncher:
  """Runs one ps/worker group as a JobSet (used by KubernetesLauncher for a group)."""

  def __init__(self, *, task_id: str, settings: settings_mod.KubernetesSettings, log):
    self.task_id = task_id
    self.settings = settings
    self.log = log
    self._identity: Optional[dict] = None  # the JobSet this launcher owns, for kill()
    self._context: Any = None

  # -- the API ---------------------------------------------------------------------------------
  def _hook(self):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    s = self.settings
    return KubernetesHook(conn_id=s.kubernetes_conn_id, in_cluster=s.in_cluster,
                          config_file=s.config_file)

  def _get_jobset(self, hook, identity: Mapping) -> Optional[dict]:
    from kubernetes.client import ApiException
    try:
      obj = hook.custom_object_client.get_namespaced_custom_object(
          JOBSET_GROUP, JOBSET_VERSION, identity["namespace"], JOBSET_PLURAL, identity["name"])
    except ApiException as e:
      if e.status == 404:
        return None
      raise
    uid = (obj.get("metadata") or {}).get("uid")
    return obj if identity.get("uid") in (None, uid) else None  # same name, another group

  def _chief_pod(self, hook, identity: Mapping):
    """The chief's pod, waiting for the controllers to create it (startup_timeout_seconds)."""
    deadline = time.monotonic() + self.settings.startup_timeout_seconds
    while True:
      pods = hook.core_v1_client.list_namespaced_pod(
          identity["namespace"], label_selector=chief_selector(identity["name"])).items
      if pods:
        return pods[0]
      if time.monotonic() > deadline:
        raise TimeoutError(f"JobSet {identity['namespace']}/{identity['name']}: the chief's pod "
                           f"did not appear within {self.settings.startup_timeout_seconds} s; "
                           "is the JobSet controller installed (docs/deploy.md)?")
      time.sleep(min(self.settings.poll_interval, 5.0))

  # -- the task state store (durable reattach) --------------------------------------------------
  def _recorded(self, context) -> Optional[dict]:
    store = state_store(context)
    if store is None:
      return None
    try:
      value = store.get(STATE_KEY)
    except Exception as e:  # noqa: BLE001 - an aid: without it a fresh group starts
      self.log.warning("Could not read the training group from the task state store: %s", e)
      return None
    return dict(value) if isinstance(value, Mapping) and value.get("name") else None

  def _record(self, context, identity: Optional[dict]) -> None:
    store = state_store(context)
    if store is None:
      return
    try:
      store.set(STATE_KEY, identity) if identity else store.delete(STATE_KEY)
    except Exception as e:  # noqa: BLE001
      self.log.warning("Could not update the training group in the task state store: %s", e)

  # -- the launcher ------------------------------------------------------------------------------
  def run(self, argv: Sequence[str], *, context: Any, num_gpus: int,
          cluster: ClusterShape, execution_timeout: Optional[datetime.timedelta]) -> JobResult:
    hook = self._hook()
    self._context = context
    identity = self._reattach(hook, context)
    if identity is None:
      identity = self._create(hook, argv, num_gpus, cluster)
      self._record(context, identity)
    self._identity = identity
    chief = self._chief_pod(hook, identity)
    if identity.get("chief") != chief.metadata.name:
      identity = self._identity = {**identity, "chief": chief.metadata.name}
      self._record(context, identity)
    if self.settings.deferrable:
      self._defer(identity, context, execution_timeout)
    return self._wait_and_finish(hook, argv, identity)

  def resume(self, argv: Sequence[str], event: Mapping[str, Any], *, context: Any) -> JobResult:
    hook = self._hook()
    self._context = context
    identity = {"namespace": event.get("deeplab_namespace") or event.get("namespace"),
                "name": event.get("deeplab_jobset"), "uid": event.get("deeplab_uid"),
                "chief": event.get("name")}
    self._identity = identity
    if event.get("status") == "timeout" and self._chief_exit(hook, identity)[0] is None:
      # The chief never started (or the task's deadline passed): transient, the retry starts
      # a fresh group. kill() (the operator's finally) deletes this one.
      raise RuntimeError(f"training group {identity['namespace']}/{identity['name']}: "
                         f"{event.get('message') or event.get('status')}")
    return self._finish(hook, argv, identity)

  def _reattach(self, hook, context) -> Optional[dict]:
    previous = self._recorded(context)
    if previous is None:
      return None
    if self._get_jobset(hook, previous) is None:
      self.log.info("The training group %s/%s of an earlier attempt is gone: starting a new one",
                    previous["namespace"], previous["name"])
      return None
    self.log.warning("Re-attaching to the running training group %s/%s (started by an earlier "
                     "attempt of this task) instead of starting a second one",
                     previous["namespace"], previous["name"])
    return previous

  def _create(self, hook, argv, num_gpus: int, cluster: ClusterShape) -> dict:
    name = jobset_name(self.task_id)
    body = build_jobset(name, argv, cluster, num_gpus=num_gpus, settings=self.settings)
    namespace = body["metadata"]["namespace"]
    created = hook.custom_object_client.create_namespaced_custom_object(
        JOBSET_GROUP, JOBSET_VERSION, namespace, JOBSET_PLURAL, body)
    uid = (created.get("metadata") or {}).get("uid") if isinstance(created, Mapping) else None
    self.log.info("Created JobSet %s/%s: %d ps and %d worker pod(s)", namespace, name,
                  cluster.num_ps_tasks, cluster.num_replicas)
    return {"namespace": namespace, "name": name, "uid": uid}

  def _defer(self, identity: dict, context, execution_timeout) -> None:
    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
    from airflow.sdk.exceptions import TaskDeferred
    s = self.settings
    now = datetime.datetime.now(datetime.timezone.utc)
    trigger_kwargs = {"deeplab_jobset": identity["name"], "deeplab_uid": identity.get("uid"),
                      "deeplab_namespace": identity["namespace"]}
    started = getattr((context or {}).get("ti"), "start_date", None)
    if execution_timeout is not None and started is not None:
      trigger_kwargs["_execution_deadline"] = (started + execution_timeout).timestamp()
    trigger = KubernetesPodTrigger(
        pod_name=identity["chief"], pod_namespace=identity["namespace"],
        trigger_start_time=now, base_container_name=BASE_CONTAINER,
        kubernetes_conn_id=s.kubernetes_conn_id, poll_interval=s.poll_interval,
        config_dict=None, in_cluster=s.in_cluster, get_logs=False,
        startup_timeout=s.startup_timeout_seconds, schedule_timeout=s.startup_timeout_seconds,
        # The resume reads the chief's exit and deletes the whole JobSet; a killed deferred task
        # deletes the chief's pod, which ends the group (module docstring).
        on_finish_action="keep_pod", on_kill_action="delete_pod",
        termination_grace_period=s.termination_grace_period, trigger_kwargs=trigger_kwargs)
    raise TaskDeferred(trigger=trigger, method_name="execute_complete", timeout=(
        execution_timeout + datetime.timedelta(minutes=5) if execution_timeout else None))

  def _wait_and_finish(self, hook, argv, identity: dict) -> JobResult:
    while True:
      code, message = self._chief_exit(hook, identity)
      if code is not None or message == GONE:
        break
      if self._get_jobset(hook, identity) is None:
        raise RuntimeError(f"the JobSet {identity['namespace']}/{identity['name']} was deleted "
                           "while its chief was running")
      time.sleep(self.settings.poll_interval)
    return self._finish(hook, argv, identity)

  @staticmethod
  def _chief_exit(hook, identity: Mapping):
    """(exit code or None, termination message) of the chief's base container; (None, why)
    when its pod is gone."""
    from kubernetes.client import ApiException
    try:
      pod = hook.core_v1_client.read_namespaced_pod(identity["chief"], identity["namespace"])
    except ApiException as e:
      if e.status == 404:
        return None, GONE
      raise
    for status in (pod.status.container_statuses or []) if pod.status else []:
      terminated = getattr(status.state, "terminated", None)
      if status.name == BASE_CONTAINER and terminated is not None:
        return terminated.exit_code, terminated.message or ""
    return None, ""

  def _finish(self, hook, argv, identity: dict) -> JobResult:
    code, message = self._chief_exit(hook, identity)
    if code is None:  # the chief's pod is gone: another task failed and ended the group
      jobset = self._get_jobset(hook, identity) or {}
      reasons = [c.get("message") or c.get("reason") for c in
                 (jobset.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
      tail = (f"training group {identity['namespace']}/{identity['name']} ended without its "
              "chief's exit code (a ps or worker task failed and the JobSet stopped the group)",
              *[r for r in reasons if r])
      self.kill()
      from deeplab.contract import EXIT_TRANSIENT
      return JobResult(exit_code=EXIT_TRANSIENT, tail=tuple(tail))
    result = None
    if code == 0:
      result = self._read_result(argv)
    self.kill()  # the ps tasks serve forever: the group ends with its chief
    tail = tuple(message.rstrip("\n").splitlines()) if code else ()
    return JobResult(exit_code=int(code), tail=tail, result=result)

  def _read_result(self, argv) -> Optional[dict]:
    """The chief's train_result.json (it alone writes one; there is no XCom sidecar here)."""
    from deeplab import storage
    from deeplab.contract import TRAIN_RESULT_JSON
    logdir = train_logdir(argv)
    if not logdir:
      return None
    result = storage.read_json(storage.join(logdir, TRAIN_RESULT_JSON))
    return result if isinstance(result, dict) else None

  def kill(self) -> None:
    """Deletes the JobSet (its Jobs and pods, foreground) and forgets it; safe to repeat."""
    identity, self._identity = self._identity, None
    if not identity or not identity.get("name"):
      return
    from kubernetes.client import ApiException, V1DeleteOptions
    try:
      self._hook().custom_object_client.delete_namespaced_custom_object(
          JOBSET_GROUP, JOBSET_VERSION, identity["namespace"], JOBSET_PLURAL, identity["name"],
          body=V1DeleteOptions(propagation_policy="Foreground"))
      self.log.info("Deleted JobSet %s/%s and its pods", identity["namespace"], identity["name"])
    except ApiException as e:
      if e.status != 404:
        raise
    self._record(self._context, None)
