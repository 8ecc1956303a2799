"""What the deploy and rollback DAGs share: their policy, their push job, their trigger forms."""

from __future__ import annotations

import datetime
import os

from airflow.sdk import Param, task

from deeplab.contract import LAUNCHERS, NAME_PATTERN
from deeplab_pipeline.deploy_plan import PREVIOUS, ROLLBACK_TARGET_PATTERN
from deeplab_pipeline.params import DEFAULTS, OPTIONAL_STRING
from operators import DeepLabDeployOperator

PUSH_TIMEOUT = datetime.timedelta(hours=1)


def dag_settings() -> dict:
  """@dag arguments both DAGs take: one run at a time, every task retried (a bad input fails
  at once: AirflowFailException in the plan, exit 2 from the job)."""
  retry_delay = datetime.timedelta(
      seconds=int(os.environ.get("DEEPLAB_RETRY_DELAY_SECONDS", "60")))
  return {
      "start_date": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
      "catchup": False,
      "max_active_runs": 1,
      "tags": ["deeplab", "serving", "segmentation"],
      "default_args": {"owner": "ml-platform", "retries": 2, "retry_delay": retry_delay,
                       "retry_exponential_backoff": True},
  }


def push_job(planned) -> DeepLabDeployOperator:
  """`python -m deeplab deploy` with the plan task's output, through the plan's launcher."""
  return DeepLabDeployOperator(
      task_id="deploy", export_path=planned["export_path"],
      serving_base_path=planned["serving_base_path"], model_name=planned["model_name"],
      flags=planned["flags"], launcher=planned["launcher"], skip_reason=planned["skip_reason"],
      execution_timeout=PUSH_TIMEOUT)


def serve_task():
  """The `serve` task: points the installation's serving target (DEEPLAB_SERVING_TARGET:
  folder, the default; kserve; vertex_ai) at the version the deploy job pushed. Airflow side,
  through the providers' hooks. A bad setting, a missing InferenceService / model / endpoint or
  a refused call fail at once; anything else (not ready in time, a failed operation) fails and
  is retried. The pushed version stays either way."""

  @task(task_id="serve", retries=2)
  def serve(result: dict) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from operators.serving_targets import TargetError, serve as serve_target

    try:
      return serve_target(result)
    except TargetError as e:
      raise AirflowFailException(str(e)) from e

  return serve


def _model_name() -> Param:
  return Param(DEFAULTS["model_name"], type="string", pattern=NAME_PATTERN, section="Model",
               title="Model name",
               description="The model whose models/<name>/champion.json is read; it is served "
               "as <serving base path>/<name>/<version>/. A run started by the model Asset "
               "takes the name from the Asset instead.")


def _launcher() -> Param:
  return Param(DEFAULTS["launcher"], type="string", enum=list(LAUNCHERS), section="Runtime",
               title="Launcher",
               description="Where the push and its request check run (they need TensorFlow): "
               "local: a process on the worker; kubernetes: a pod from the training image.")


def deploy_params() -> dict:
  return {
      "model_name": _model_name(),
      "export_path": Param(
          None, type=OPTIONAL_STRING, section="Model", title="Export path",
          description="Push this export folder instead of the champion's (e.g. an older "
          "run's runs/<run_id>/export). Empty: the champion's export."),
      "push_id": Param(
          None, type=OPTIONAL_STRING, section="Model", title="Push id",
          description="Empty: derived from the export, so deploying the same export again is "
          "a no-op. Give a new id to push the same model again as a new version."),
      "launcher": _launcher(),
  }


def rollback_params() -> dict:
  return {
      "model_name": _model_name(),
      "target": Param(
          PREVIOUS, type="string", pattern=ROLLBACK_TARGET_PATTERN, section="Model",
          title="Version to serve again",
          description="'previous': the newest version in models/<name>/history.jsonl served "
          "before the current one with another export; or a version number from that file. "
          "Its export is pushed again as the next version."),
      "launcher": _launcher(),
  }
