"""Which serving system the deploy and rollback DAGs update after the folder push.

An installation setting (never a run conf), the JSON object in DEEPLAB_SERVING_TARGET:

    {"target": "folder"}                                   the default: the push is all
    {"target": "kserve", "kserve": {"name": "deeplab", "namespace": "serving"}}

Each target's fields are declared once, in its dataclass below; unknown fields are refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from operators.settings import json_setting

ENV_VAR = "DEEPLAB_SERVING_TARGET"
FOLDER, KSERVE = "folder", "kserve"
TARGETS = (FOLDER, KSERVE)


def _from_dict(cls, data: Mapping[str, Any], where: str):
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
class ServingTargetSettings:
  target: str = FOLDER
  kserve: Optional[KServeSettings] = None

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> "ServingTargetSettings":
    data = dict(data)
    target = data.pop("target", FOLDER)
    if target not in TARGETS:
      raise ValueError(f"{ENV_VAR}: target {target!r} is not one of {list(TARGETS)}")
    sections = {KSERVE: KServeSettings}
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
