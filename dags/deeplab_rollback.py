"""Serve a former DeepLab model again: its export pushed as the next TF Serving version.

plan -> deploy (`python -m deeplab deploy` through a launcher) -> record
                                                                 -> serve (the serving target)

Started by hand (model name; target "previous" or a version number from
models/<name>/history.jsonl). Versions only go up: the former model becomes the newest version,
so a server that serves the latest picks it up without a restart and nothing is overwritten.
record re-points models/<name>/champion.json to that model, appends the rollback to
history.jsonl and emits the model Asset (deeplab_deploy sees that this event was already pushed
and skips). Settings: as deeplab_deploy.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.dirname(_HERE)):
  if _path not in sys.path:
    sys.path.insert(0, _path)

from airflow.sdk import Asset, AssetAlias, dag, task

from deeplab_pipeline.champion import MODEL_ALIAS_NAME
from deeplab_pipeline.serving_dag import (dag_settings, push_job, rollback_params,
                                          serve_task)
from operators.settings import serving_base_path, storage_root

MODEL_ALIAS = AssetAlias(MODEL_ALIAS_NAME)


@dag(
    dag_id="deeplab_rollback",
    schedule=None,
    params=rollback_params(),
    doc_md=__doc__,
    **dag_settings(),
)
def deeplab_rollback():

  @task(multiple_outputs=True, retries=2)
  def plan(params=None, dag_run=None) -> dict:
    """Which former version to serve again, from history.jsonl and the serving folder."""
    from airflow.sdk.exceptions import AirflowFailException

    from deeplab_pipeline.deploy_plan import PlanError, plan_rollback
    from deeplab_pipeline.history import HistoryError
    from deeplab_pipeline.records import triggered_by

    try:
      result = plan_rollback(dict(params), run_id=dag_run.run_id, storage_root=storage_root(),
                             serving_base_path=serving_base_path(),
                             triggered_by=triggered_by(dag_run))
    except (PlanError, HistoryError) as e:
      raise AirflowFailException(str(e)) from e
    print(f"Roll back {result['model_name']} from version {result['rolled_back_from']} to the "
          f"model of version {result['rolled_back_to']} ({result['export_path']})")
    return result

  planned = plan()

  deploy = push_job(planned)

  @task(outlets=[MODEL_ALIAS], retries=2)
  def record(plan: dict, result: dict, outlet_events=None) -> dict:
    """champion.json re-pointed, history.jsonl appended, the model Asset emitted."""
    from deeplab_pipeline.champion import champion_uri, model_asset_name
    from deeplab_pipeline.promote import asset_uri
    from deeplab_pipeline.records import record_rollback

    line = record_rollback(plan, result, storage_root())
    outlet_events[MODEL_ALIAS].add(
        Asset(name=model_asset_name(plan["model_name"]),
              uri=asset_uri(champion_uri(storage_root(), plan["model_name"]))),
        extra={"rollback": True, "pushed_version": line["version"],
               "export_path": line["export_path"], "run_id": line["champion_run"]})
    print(f"Serving the model of version {plan['rolled_back_to']} again as version "
          f"{line['version']}" + (f"; {line['champion_restored']} re-pointed to it"
                                  if line["champion_restored"] else
                                  "; champion.json left as it is (no champion record for it)"))
    return line

  record(planned, deploy.output)
  serve_task()(deploy.output)


deeplab_rollback()
