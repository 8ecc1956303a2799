"""After the folder push: update the serving system the installation names (DEEPLAB_SERVING_TARGET).

Runs in the deploy and rollback DAGs' `serve` task on the Airflow side, through the providers'
hooks; never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from operators.serving_targets.errors import TargetError, TargetNotReady
from operators.serving_targets.settings import (FOLDER, KSERVE, VERTEX_AI,
                                                ServingTargetSettings, serving_target_settings)

__all__ = ["TargetError", "TargetNotReady", "serve"]


def serve(pushed: Mapping[str, Any], settings: Optional[ServingTargetSettings] = None, *,
          kubernetes=None, log: Callable[[str], None] = print) -> dict:
  """Points the configured target at the version the deploy job pushed.

  Args:
    pushed: the deploy job's result (model_name, model_dir, version, push_id, ...).
    settings: default: from DEEPLAB_SERVING_TARGET.
    kubernetes: the Kubernetes connection settings (default: from DEEPLAB_KUBERNETES).
  """
  try:
    settings = settings or serving_target_settings()
  except ValueError as e:
    raise TargetError(str(e)) from e
  model_dir, version = str(pushed["model_dir"]), int(pushed["version"])
  if settings.target == FOLDER:
    log(f"Serving target: folder (DEEPLAB_SERVING_TARGET unset): version {version} of "
        f"{model_dir} is served by whatever polls that folder")
    return {"target": FOLDER, "model_dir": model_dir, "version": version}
  if settings.target == KSERVE:
    from operators.serving_targets.kserve import KServeTarget
    from operators.settings import kubernetes_settings
    return KServeTarget(settings.kserve, kubernetes or kubernetes_settings(),
                        log=log).update(model_dir, version)
  if settings.target == VERTEX_AI:
    from operators.serving_targets.vertex_ai import VertexAITarget
    return VertexAITarget(settings.vertex_ai, log=log).update(pushed)
  raise TargetError(f"serving target {settings.target!r} has no implementation")
