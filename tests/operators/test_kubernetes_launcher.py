"""KubernetesLauncher up to the pod spec (no cluster here)."""

from unittest import mock

import pytest

from operators import DeepLabTrainOperator
from operators.launchers.base import make_launcher
from operators.launchers.kubernetes import XCOM_RESULT_PATH, KubernetesLauncher
from operators.settings import KubernetesSettings, kubernetes_settings

SETTINGS = KubernetesSettings(
    image="europe-docker.pkg.dev/p/deeplab/train:1.0",
    namespace="ml",
    service_account_name="deeplab-trainer",
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    requests={"cpu": "8", "memory": "32Gi"},
    limits={"memory": "48Gi"},
    env={"DEEPLAB_CACHE_DIR": "/cache"},
)
ARGV = ["train", "--dataset_dir=gs://b/datasets/x/abc", "--num_clones=4",
        "--train_logdir=gs://b/runs/r1/train"]


@pytest.fixture(autouse=True)
def kube_conn(monkeypatch):
  # KPO reads the sidecar image etc. from the connection; an empty one is enough for a dry run.
  monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')


def _pod(num_gpus=4):
  return KubernetesLauncher(task_id="train", settings=SETTINGS).build_pod(ARGV, num_gpus=num_gpus)


def test_gpu_limits_selector_tolerations_namespace_service_account():
  pod = _pod()
  base = next(c for c in pod.spec.containers if c.name == "base")
  assert base.image == SETTINGS.image
  assert base.resources.limits == {"memory": "48Gi", "nvidia.com/gpu": "4"}
  assert base.resources.requests == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}
  assert pod.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
  tol = pod.spec.tolerations[0]
  assert (tol.key, tol.operator, tol.effect) == ("nvidia.com/gpu", "Exists", "NoSchedule")
  assert pod.metadata.namespace == "ml"
  assert pod.spec.service_account_name == "deeplab-trainer"
  assert pod.spec.restart_policy == "Never"
  assert [(e.name, e.value) for e in base.env] == [("DEEPLAB_CACHE_DIR", "/cache")]


def test_args_are_an_argv_list_never_a_shell_string():
  base = next(c for c in _pod().spec.containers if c.name == "base")
  assert not base.command  # [] or None: the image's ENTRYPOINT ["python", "-m", "deeplab"]
  assert base.args == [*ARGV, f"--result_json={XCOM_RESULT_PATH}"]
  assert not any(a in ("sh", "bash", "-c") for a in base.args)


def test_result_comes_back_through_the_xcom_sidecar():
  pod = _pod()
  names = [c.name for c in pod.spec.containers]
  assert "airflow-xcom-sidecar" in names
  base = next(c for c in pod.spec.containers if c.name == "base")
  assert any(m.mount_path == "/airflow/xcom" for m in base.volume_mounts)


def test_no_gpu_for_cpu_stages():
  base = next(c for c in _pod(num_gpus=0).spec.containers if c.name == "base")
  assert "nvidia.com/gpu" not in (base.resources.limits or {})


def test_durable_reattach_and_pod_deleted_on_kill():
  launcher = KubernetesLauncher(task_id="train", settings=SETTINGS)
  op = launcher.build_pod_operator(ARGV, num_gpus=4)
  assert op.durable is True
  assert op.on_kill_action.value == "delete_pod"
  assert op.do_xcom_push is True
  launcher._pod_operator = mock.Mock()
  launcher.kill()
  launcher._pod_operator.on_kill.assert_called_once_with()


def test_train_operator_asks_for_one_gpu_per_clone(monkeypatch):
  launcher = mock.Mock()
  launcher.run.return_value = mock.Mock(exit_code=0, result={})
  monkeypatch.setattr("operators.base.make_launcher", mock.Mock(return_value=launcher))
  DeepLabTrainOperator(task_id="t", dataset_dir="d", train_logdir="l", num_clones=4,
                       launcher="kubernetes").execute({})
  assert launcher.run.call_args.kwargs["num_gpus"] == 4


@pytest.mark.parametrize("code", [2, 3, 1])
def test_pod_exit_code_is_recovered_for_the_retry_policy(code):
  launcher = KubernetesLauncher(task_id="train", settings=SETTINGS)
  op = launcher.build_pod_operator(ARGV, num_gpus=1)
  status = mock.Mock()
  status.name = "base"
  status.state.terminated.exit_code = code
  op.remote_pod = mock.Mock()
  op.remote_pod.status.container_statuses = [status]
  op.execute = mock.Mock(side_effect=RuntimeError("Pod returned a failure"))
  launcher.build_pod_operator = mock.Mock(return_value=op)
  result = launcher.run(ARGV, context={}, num_gpus=1)
  assert result.exit_code == code and "failure" in result.tail[0]


def test_settings_from_environment(monkeypatch, tmp_path):
  f = tmp_path / "k8s.json"
  f.write_text('{"image": "img:2", "namespace": "gpu", "tolerations": [{"key": "a"}]}')
  s = kubernetes_settings({"DEEPLAB_KUBERNETES": f"@{f}"})
  assert (s.image, s.namespace, s.tolerations) == ("img:2", "gpu", ({"key": "a"},))
  with pytest.raises(ValueError, match="unknown Kubernetes setting"):
    kubernetes_settings({"DEEPLAB_KUBERNETES": '{"imgae": "x"}'})
  monkeypatch.setenv("DEEPLAB_KUBERNETES", '{"image": "from-env"}')
  assert make_launcher("kubernetes", task_id="t").settings.image == "from-env"
