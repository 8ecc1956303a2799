"""Serve each promoted DeepLab model: push its SavedModel as the next TF Serving version.

plan -> deploy (`python -m deeplab deploy` through a launcher) -> record (history.jsonl)
                                                                 -> serve (the serving target)

Scheduled on the model Asset that promotion emits (deeplab_retrain's promote adds
`deeplab_model/<name>` through the `deeplab_model` alias), and triggerable by hand with a
model name. The push lands in <serving base path>/<name>/<version>/, checked by a TF Serving
request before it becomes visible (docs/deploy.md). Settings from the environment:
  DEEPLAB_STORAGE_ROOT         where models/<name>/champion.json and history.jsonl live
  DEEPLAB_SERVING_BASE_PATH    TF Serving's model base path (default <storage root>/serving)
  DEEPLAB_SERVING_TARGET       updated after the push: folder (default), kserve, vertex_ai
  DEEPLAB_RETRY_DELAY_SECONDS
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.dirname(_HERE)):
  if _path not in sys.path:
    sys.path.insert(0, _path)

from airflow.sdk import AssetAlias, dag, task

from deeplab_pipeline.champion import MODEL_ALIAS_NAME
from deeplab_pipeline.serving_dag import dag_settings, deploy_params, push_job, serve_task
from operators.settings import serving_base_path, storage_root


@dag(
    dag_id="deeplab_deploy",
    schedule=AssetAlias(MODEL_ALIAS_NAME),
    params=deploy_params(),
    doc_md=__doc__,
    **dag_settings(),
)
def deeplab_deploy():

  # Retried: reading champion.json on gs:// can fail transiently; a missing champion cannot.
  @task(multiple_outputs=True, retries=2)
  def plan(params=None, dag_run=None, triggering_asset_events=None) -> dict:
    """Which export to push: the champion of the model the Asset event (or the form) names."""
    from airflow.sdk.exceptions import AirflowFailException

    from deeplab_pipeline.champion import NoChampion
    from deeplab_pipeline.deploy_plan import PlanError, plan_deploy
    from deeplab_pipeline.records import triggered_by

    events = sorted((e for evs in (triggering_asset_events or {}).values() for e in evs),
                    key=lambda e: e.timestamp)
    try:
      result = plan_deploy(dict(params), [(e.asset.name, e.extra) for e in events],
                           storage_root=storage_root(), serving_base_path=serving_base_path(),
                           triggered_by=triggered_by(dag_run, events))
    except (NoChampion, PlanError) as e:
      raise AirflowFailException(str(e)) from e
    print(f"Deploy {result['export_path']} as the next version of "
          f"{result['serving_base_path']}/{result['model_name']}")
    return result

  planned = plan()

  deploy = push_job(planned)

  @task(retries=2)
  def record(plan: dict, result: dict) -> dict:
    """Appends the push to models/<name>/history.jsonl (a retry appends nothing twice)."""
    from deeplab_pipeline.records import record_deploy

    line = record_deploy(plan, result)
    print(f"Served version {line['version']} of {line['model_dir']} "
          f"({'already recorded' if not line['appended'] else 'recorded'} in history.jsonl)")
    return line

  record(planned, deploy.output)
  serve_task()(deploy.output)


deeplab_deploy()
