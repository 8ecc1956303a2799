"""KubernetesLauncher: the job as a pod on a GPU node, built on KubernetesPodOperator.

KubernetesPodOperator already does the hard parts well (pod creation, log streaming, the XCom
sidecar, durable reattach through the task state store on Airflow 3.3, deletion on kill), so
this launcher only translates a deeplab argv and the deployment settings into its arguments.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from operators import settings as settings_mod
from operators.launchers.base import JobResult, Launcher

# The XCom sidecar pushes whatever the base container leaves here (KPO do_xcom_push).
XCOM_RESULT_PATH = "/airflow/xcom/return.json"


class KubernetesLauncher(Launcher):
  """Runs `python -m deeplab <argv…>` (the image's ENTRYPOINT) in a pod and waits for it."""

  def __init__(self, *, task_id: str, log=None,
               settings: Optional[settings_mod.KubernetesSettings] = None):
    super().__init__(log)
    self.task_id = task_id
    self.settings = settings or settings_mod.kubernetes_settings()
    self._pod_operator = None

  def build_pod_operator(self, argv: Sequence[str], *, num_gpus: int = 0):
    """A KubernetesPodOperator for one job (not attached to any DAG)."""
    from kubernetes.client import models as k8s
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    s = self.settings
    limits = dict(s.limits)
    requests = dict(s.requests)
    if num_gpus > 0:
      # Extended resources need request == limit; one GPU per clone (one clone per GPU, as model_deploy).
      limits[s.gpu_resource] = str(int(num_gpus))
      requests[s.gpu_resource] = str(int(num_gpus))
    resources = k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None)
    tolerations = [k8s.V1Toleration(**t) if isinstance(t, dict) else t for t in s.tolerations]
    # The argv list becomes the container's args verbatim: no shell ever sees it.
    arguments = [*[str(a) for a in argv], f"--result_json={XCOM_RESULT_PATH}"]
    return KubernetesPodOperator(
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
        on_finish_action="delete_pod",
        on_kill_action="delete_pod",
        log_events_on_failure=True,
    )

  def build_pod(self, argv: Sequence[str], *, num_gpus: int = 0, context: Any = None):
    """The V1Pod that `run` would create (dry run: no cluster needed)."""
    return self.build_pod_operator(argv, num_gpus=num_gpus).build_pod_request_obj(
        context, dry_run=True)

  def run(self, argv: Sequence[str], *, context: Any = None, num_gpus: int = 0) -> JobResult:
    self._pod_operator = op = self.build_pod_operator(argv, num_gpus=num_gpus)
    try:
      result = op.execute(context)
    except Exception as e:  # the pod failed: recover its exit code for the operator's policy
      code = self._base_exit_code(op)
      if code is None:
        raise  # no exit code (API error, pod never started): transient, let Airflow retry
      return JobResult(exit_code=code, tail=(str(e),), result=None)
    return JobResult(exit_code=0, result=result if isinstance(result, dict) else None)

  @staticmethod
  def _base_exit_code(op) -> Optional[int]:
    pod = getattr(op, "remote_pod", None) or getattr(op, "pod", None)
    statuses = getattr(getattr(pod, "status", None), "container_statuses", None) or []
    for status in statuses:
      if status.name == op.base_container_name:
        terminated = getattr(status.state, "terminated", None)
        if terminated is not None and terminated.exit_code is not None:
          return int(terminated.exit_code)
    return None

  def kill(self) -> None:
    if self._pod_operator is not None:
      self._pod_operator.on_kill()  # deletes the pod (on_kill_action="delete_pod")
