"""Deployment settings read from the environment (never from a run conf).

Everything a user may change per run is a DAG Param; what belongs to the installation (where
artifacts live, which image and node pool the GPU pods use) comes from here, so a run conf can
neither move artifacts outside the storage root nor pick another cluster.

    DEEPLAB_STORAGE_ROOT   local folder or gs://bucket/prefix  (default: <repo>/demo_output/storage)
    DEEPLAB_KUBERNETES     JSON object (or @/path/to/file.json) with KubernetesSettings fields
    DEEPLAB_PYTHON         interpreter for LocalLauncher jobs (default: this interpreter)
    DEEPLAB_SERVING_BASE_PATH  where the deploy DAGs push (default: <storage root>/serving)
    DEEPLAB_SERVING_TARGET     JSON object: which server the deploy DAGs update after the push
                               (operators/serving_targets/settings.py; default: none, the folder)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
from typing import Any, Mapping, Optional

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def storage_root() -> str:
  root = os.environ.get("DEEPLAB_STORAGE_ROOT") or str(REPO_ROOT / "demo_output" / "storage")
  return root.rstrip("/") if root.startswith("gs://") else str(pathlib.Path(root).resolve())


def serving_base_path() -> str:
  """TF Serving's model base path the deploy and rollback DAGs push to (local or gs://)."""
  from deeplab.config.deploy import SERVING_FOLDER
  base = (os.environ.get("DEEPLAB_SERVING_BASE_PATH") or "").strip()
  if not base:
    return f"{storage_root()}/{SERVING_FOLDER}"
  return base.rstrip("/") if base.startswith("gs://") else str(pathlib.Path(base).resolve())


def python_executable() -> str:
  return os.environ.get("DEEPLAB_PYTHON") or sys.executable


@dataclasses.dataclass(frozen=True)
class KubernetesSettings:
  """Where and how GPU pods run (KubernetesLauncher)."""

  image: str = "deeplab-train:latest"
  namespace: str = "default"
  service_account_name: Optional[str] = None
  node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # e.g. [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
  tolerations: tuple = ()
  # Per-pod requests/limits besides the GPUs, e.g. {"cpu": "8", "memory": "32Gi"}.
  requests: Mapping[str, str] = dataclasses.field(default_factory=dict)
  limits: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # The parameter-server pods of a training group (num_ps_tasks): CPU and memory for the
  # variables they hold, never GPUs. Empty: the same requests/limits as the workers.
  ps_requests: Mapping[str, str] = dataclasses.field(default_factory=dict)
  ps_limits: Mapping[str, str] = dataclasses.field(default_factory=dict)
  gpu_resource: str = "nvidia.com/gpu"
  kubernetes_conn_id: Optional[str] = "kubernetes_default"
  in_cluster: Optional[bool] = None
  config_file: Optional[str] = None
  image_pull_policy: str = "IfNotPresent"
  env: Mapping[str, str] = dataclasses.field(default_factory=dict)
  startup_timeout_seconds: int = 600
  termination_grace_period: int = 60
  labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # The triggerer watches the pod (no worker slot held for hours); false: the worker waits.
  deferrable: bool = True
  poll_interval: float = 10.0  # seconds between pod status reads while waiting
  logging_interval: Optional[int] = 300  # seconds between log fetches into the task log

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "KubernetesSettings":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
      raise ValueError(f"unknown Kubernetes setting(s) {unknown}; known: {sorted(names)}")
    data = dict(data)
    if "tolerations" in data:
      data["tolerations"] = tuple(data["tolerations"] or ())
    return cls(**data)


def json_setting(name: str, env: Optional[Mapping[str, str]] = None) -> Optional[dict]:
  """The JSON object in environment variable `name` (or in the file `@/path` names); None when
  the variable is unset or empty."""
  raw = (env if env is not None else os.environ).get(name, "").strip()
  if not raw:
    return None
  if raw.startswith("@"):
    raw = pathlib.Path(raw[1:]).read_text()
  try:
    data = json.loads(raw)
  except json.JSONDecodeError as e:
    raise ValueError(f"{name} is not valid JSON ({e}); give a JSON object or "
                     "@/path/to/settings.json") from e
  if not isinstance(data, dict):
    raise ValueError(f"{name} must be a JSON object, got {type(data).__name__}")
  return data


def kubernetes_settings(env: Optional[Mapping[str, str]] = None) -> KubernetesSettings:
  data = json_setting("DEEPLAB_KUBERNETES", env)
  return KubernetesSettings() if data is None else KubernetesSettings.from_dict(data)
