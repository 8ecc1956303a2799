"""Which serving system the deploy and rollback DAGs update after the folder push.

An installation setting (never a run conf), the JSON object in DEEPLAB_SERVING_TARGET:

    {"target": "folder"}                                   the default: the push is all
    {"target": "kserve", "kserve": {"name": "deeplab", "namespace": "serving"}}
    {"target": "vertex_ai", "vertex_ai": {"project_id": "p", "region": "europe-west4",
     "model_id": "123", "endpoint_id": "456", "serving_container_image_uri": "..."}}

Each target's fields are declared once, in its dataclass below; unknown fields are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from operators.settings import json_setting

ENV_VAR = "DEEPLAB_SERVING_TARGET"
FOLDER, KSERVE, VERTEX_AI = "folder", "kserve", "vertex_ai"
TARGETS = (FOLDER, KSERVE, VERTEX_AI)


def _from_dict(cls, data: Mapping[str, Any], where: str):
  if not isinstance(data, Mapping):
    raise ValueError(f"{ENV_VAR}: {where} must be a JSON object, got {data!r}")
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names)
  if unknown:
    raise ValueError(f"{ENV_VAR}: unknown field(s) {unknown} in {where}; known: {sorted(names)}")
  return cls(**data)


@dataclasses.dataclass(frozen=True)
class KServeSettings:
  """The InferenceService the deploy DAGs point at each new version (operators/serving_targets/
  kserve.py). The Kubernetes connection is DEEPLAB_KUBERNETES's (kubernetes_conn_id,
  in_cluster, config_file)."""

  name: str = ""  # the InferenceService's metadata.name
  namespace: str = ""  # its namespace (deploy/k8s/kserve-rbac.yaml grants access there)
  # How long the new predictor may take to become Ready (pods, model download, TF Serving load).
  ready_timeout_seconds: float = 600.0
  poll_interval: float = 10.0  # seconds between status reads while waiting for Ready

  def __post_init__(self):
    for field in ("name", "namespace"):
      if not str(getattr(self, field) or "").strip():
        raise ValueError(f'{ENV_VAR}: the kserve target needs "kserve": {{"{field}": ...}} '
                         "(the InferenceService to update)")
    if not self.ready_timeout_seconds >= 0 or not self.poll_interval >= 0:
      raise ValueError(f"{ENV_VAR}: kserve ready_timeout_seconds and poll_interval must be "
                       f">= 0, got {self.ready_timeout_seconds} and {self.poll_interval}")


@dataclasses.dataclass(frozen=True)
class VertexAISettings:
  """The Model Registry model and the endpoint the deploy DAGs put each new version on
  (operators/serving_targets/vertex_ai.py). Both are created once by hand (docs/deploy.md)."""

  project_id: str = ""
  region: str = ""  # e.g. europe-west4: the model's and the endpoint's location
  model_id: str = ""  # the parent model: each push becomes a new version of it
  endpoint_id: str = ""
  # A prebuilt TensorFlow serving container, e.g.
  # europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest
  serving_container_image_uri: str = ""
  machine_type: str = "n1-standard-4"
  min_replica_count: int = 1
  max_replica_count: int = 1
  # true: the models deployed before are undeployed once the new one has all the traffic;
  # false: they stay deployed with 0 % traffic (a rollback by traffic split; their nodes cost).
  undeploy_previous: bool = True
  gcp_conn_id: str = "google_cloud_default"
  operation_timeout_seconds: int = 1800  # an upload or a deploy (new nodes) can take minutes

  def __post_init__(self):
    for field in ("project_id", "region", "model_id", "endpoint_id",
                  "serving_container_image_uri"):
      if not str(getattr(self, field) or "").strip():
        raise ValueError(f'{ENV_VAR}: the vertex_ai target needs "vertex_ai": {{"{field}": ...}}')
    if not 1 <= self.min_replica_count <= self.max_replica_count:
      raise ValueError(f"{ENV_VAR}: vertex_ai needs 1 <= min_replica_count <= "
                       f"max_replica_count, got {self.min_replica_count} and "
                       f"{self.max_replica_count}")


@dataclasses.dataclass(frozen=True)
class ServingTargetSettings:
  target: str = FOLDER
  kserve: Optional[KServeSettings] = None
  vertex_ai: Optional[VertexAISettings] = None

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "ServingTargetSettings":
    data = dict(data)
    target = data.pop("target", FOLDER)
    if target not in TARGETS:
      raise ValueError(f"{ENV_VAR}: target {target!r} is not one of {list(TARGETS)}")
    sections = {KSERVE: KServeSettings, VERTEX_AI: VertexAISettings}
    unknown = sorted(set(data) - set(sections))
    if unknown:
      raise ValueError(f"{ENV_VAR}: unknown field(s) {unknown}; known: "
                       f"{['target', *sorted(sections)]}")
    parsed = {name: _from_dict(sections[name], section or {}, f'"{name}"')
              for name, section in data.items()}
    if target != FOLDER and target not in parsed:
      parsed[target] = _from_dict(sections[target], {}, f'"{target}"')  # names what is missing
    return cls(target=target, **parsed)


def serving_target_settings(env: Optional[Mapping[str, str]] = None) -> ServingTargetSettings:
  data = json_setting(ENV_VAR, env)
  return ServingTargetSettings() if data is None else ServingTargetSettings.from_dict(data)
