"""KubernetesLauncher: the job as a pod on a GPU node, built on KubernetesPodOperator.

KubernetesPodOperator already does the hard parts well (pod creation, log streaming, the XCom
sidecar, durable reattach through the task state store on Airflow 3.3, deletion on kill, and
its deferrable mode, where the triggerer watches the pod), so this launcher only translates a
deeplab argv and the deployment settings into its arguments.

Deferrable (the default, `deferrable` in DEEPLAB_KUBERNETES): `run` creates the pod and then
raises KPO's TaskDeferred carrying a KubernetesPodTrigger; the operator re-targets it at its own
`execute_complete`, which calls `resume` with the trigger's event. Both paths end in the same
JobResult, so the exit-code policy of the operator holds either way.

A training group (num_replicas > 1 or num_ps_tasks > 0) runs as one JobSet instead
(kubernetes_jobset.KubernetesGroupLauncher), with the same deferral, exit codes and kill.
"""

from __future__ import annotations

import datetime
from typing import Any, Mapping, Optional, Sequence

from operators import settings as settings_mod
from operators.launchers.base import ClusterShape, JobResult, Launcher

# The XCom sidecar pushes whatever the base container leaves here (KPO do_xcom_push).
XCOM_RESULT_PATH = "/airflow/xcom/return.json"
# Kubernetes copies the end of a failed container's output (at most 80 lines / 2 KB) into its
# termination message: the reason a job failed survives the pod's deletion and needs no
# log-reading call after the fact.
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"


def _task_timeout(context: Any) -> Optional[datetime.timedelta]:
  """The execution_timeout of the task running the launcher (None outside a task)."""
  return getattr((context or {}).get("task"), "execution_timeout", None)


def _pod_operator_class():
  """KubernetesPodOperator whose base container keeps its last output lines on failure."""
  from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

  class DeepLabPodOperator(KubernetesPodOperator):

    def build_pod_request_obj(self, context=None, *, dry_run: bool = False):
      pod = super().build_pod_request_obj(context, dry_run=dry_run)
      for container in pod.spec.containers:
        if container.name == self.base_container_name:
          container.termination_message_policy = TERMINATION_MESSAGE_POLICY
      return pod

  return DeepLabPodOperator


class KubernetesLauncher(Launcher):
  """Runs `python -m deeplab <argv…>` (the image's ENTRYPOINT) in a pod and waits for it."""

  def __init__(self, *, task_id: str, log=None,
               settings: Optional[settings_mod.KubernetesSettings] = None):
    super().__init__(log)
    self.task_id = task_id
    self.settings = settings or settings_mod.kubernetes_settings()
    self._pod_operator = None
    self._group_launcher = None

  def build_pod_operator(self, argv: Sequence[str], *, num_gpus: int = 0,
                         execution_timeout: Optional[datetime.timedelta] = None):
    """A KubernetesPodOperator for one job (not attached to any DAG).

    `execution_timeout` is the calling task's: KPO turns it into the trigger's deadline, so a
    deferred task still times out (the task runner's own timeout only covers the worker).
    """
    from kubernetes.client import models as k8s

    s = self.settings
    limits = dict(s.limits)
    requests = dict(s.requests)
    if num_gpus > 0:
      # Extended resources need request == limit; one GPU per clone (model_deploy).
      limits[s.gpu_resource] = str(int(num_gpus))
      requests[s.gpu_resource] = str(int(num_gpus))
    resources = k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None)
    tolerations = [k8s.V1Toleration(**t) if isinstance(t, dict) else t for t in s.tolerations]
    # The argv list becomes the container's args verbatim: no shell ever sees it.
    arguments = [*[str(a) for a in argv], f"--result_json={XCOM_RESULT_PATH}"]
    return _pod_operator_class()(
        task_id=self.task_id,
        name=f"deeplab-{self.task_id}".replace("_", "-"),
        image=s.image,
        image_pull_policy=s.image_pull_policy,
        cmds=None,  # keep the image's ENTRYPOINT ["python", "-m", "deeplab"]
        arguments=arguments,
        namespace=s.namespace,
        service_account_name=s.service_account_name,
        node_selector=dict(s.node_selector) or None,
        tolerations=tolerations or None,
        container_resources=resources,
        env_vars=dict(s.env) or None,
        labels={"app": "deeplab", **dict(s.labels)},
        kubernetes_conn_id=s.kubernetes_conn_id,
        in_cluster=s.in_cluster,
        config_file=s.config_file,
        startup_timeout_seconds=s.startup_timeout_seconds,
        termination_grace_period=s.termination_grace_period,
        do_xcom_push=True,
        get_logs=True,
        durable=True,  # reconnect to the running pod after a worker restart (Airflow 3.3)
        deferrable=s.deferrable,  # the triggerer watches the pod; no worker slot held for hours
        poll_interval=s.poll_interval,
        logging_interval=s.logging_interval,
        on_finish_action="delete_pod",
        on_kill_action="delete_pod",
        log_events_on_failure=True,
        execution_timeout=execution_timeout,
    )

  def build_pod(self, argv: Sequence[str], *, num_gpus: int = 0, context: Any = None):
    """The V1Pod that `run` would create (dry run: no cluster needed)."""
    return self.build_pod_operator(argv, num_gpus=num_gpus).build_pod_request_obj(
        context, dry_run=True)

  def run(self, argv: Sequence[str], *, context: Any = None, num_gpus: int = 0,
          cluster: Optional[ClusterShape] = None) -> JobResult:
    """Creates (or, durable, re-attaches to) the pod; raises TaskDeferred when deferrable."""
    if cluster is not None and cluster.is_group:  # a JobSet of ps and worker pods
      return self._group().run(argv, context=context, num_gpus=num_gpus, cluster=cluster,
                               execution_timeout=_task_timeout(context))
    self._pod_operator = op = self.build_pod_operator(
        argv, num_gpus=num_gpus, execution_timeout=_task_timeout(context))
    return self._job_result(op, lambda: op.execute(context))

  def resume(self, argv: Sequence[str], event: Mapping[str, Any], *, context: Any = None,
             num_gpus: int = 0, cluster: Optional[ClusterShape] = None) -> JobResult:
    """After the triggerer's event: logs, XCom, cleanup and the exit code, as KPO does."""
    if cluster is not None and cluster.is_group:
      return self._group().resume(argv, event, context=context)
    self._pod_operator = op = self.build_pod_operator(
        argv, num_gpus=num_gpus, execution_timeout=_task_timeout(context))
    return self._job_result(op, lambda: op.trigger_reentry(context, dict(event)))

  def _group(self):
    from operators.launchers.kubernetes_jobset import KubernetesGroupLauncher
    self._group_launcher = KubernetesGroupLauncher(task_id=self.task_id, settings=self.settings,
                                                   log=self.log)
    return self._group_launcher

  def _job_result(self, op, call) -> JobResult:
    # TaskDeferred is a BaseException: it passes through to the operator, which defers.
    try:
      result = call()
    except Exception as e:  # the pod failed: recover its exit code for the operator's policy
      code = self._base_exit_code(op)
      if code is None:
        raise  # no exit code (API error, pod never started, timeout): transient, Airflow retries
      tail = self._termination_message(op) or (str(e),)
      self._pod_operator = None  # the job ended and KPO cleaned up: nothing left to kill
      return JobResult(exit_code=code, tail=tail, result=None)
    self._pod_operator = None
    return JobResult(exit_code=0, result=result if isinstance(result, dict) else None)

  @staticmethod
  def _base_terminated(op):
    pod = getattr(op, "remote_pod", None) or getattr(op, "pod", None)
    statuses = getattr(getattr(pod, "status", None), "container_statuses", None) or []
    for status in statuses:
      if status.name == op.base_container_name:
        return getattr(status.state, "terminated", None)
    return None

  @classmethod
  def _base_exit_code(cls, op) -> Optional[int]:
    terminated = cls._base_terminated(op)
    if terminated is not None and terminated.exit_code is not None:
      return int(terminated.exit_code)
    return None

  @classmethod
  def _termination_message(cls, op) -> tuple:
    """The job's last output lines, kept by Kubernetes (TERMINATION_MESSAGE_POLICY)."""
    message = getattr(cls._base_terminated(op), "message", None)
    return tuple(message.rstrip("\n").splitlines()) if isinstance(message, str) else ()

  def kill(self) -> None:
    if self._group_launcher is not None:
      self._group_launcher.kill()  # deletes the JobSet: every pod of the group
    if self._pod_operator is not None:
      self._pod_operator.on_kill()  # deletes the pod (on_kill_action="delete_pod")
