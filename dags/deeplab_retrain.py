"""Retrain DeepLab weekly or when new raw data lands; ship only a model that beats the champion.

resolve_config -> build_tfrecords -> check_dataset -> train -> evaluate -> check_champion
  -> evaluate_champion -> gate -> approve -> export -> promote

Parsing this file imports airflow.sdk, the operators and deeplab.config only (no TensorFlow,
no storage client): the heavy work runs in `python -m deeplab` jobs through a launcher.
Deployment settings come from the environment (operators/settings.py):
  DEEPLAB_STORAGE_ROOT         local folder or gs://bucket/prefix for every artifact
  DEEPLAB_RETRAIN_SCHEDULE     cron or preset, default @weekly; "none": on new raw data only
  DEEPLAB_RAW_DATA_URI         the Asset whose updates trigger a run (default <root>/raw)
  DEEPLAB_RAW_SOURCES          annotation sources, one Asset each (deeplab_pipeline/raw_sources.py)
  DEEPLAB_TRAIN_TIMEOUT_MINUTES, DEEPLAB_RETRY_DELAY_SECONDS
"""

from __future__ import annotations

import datetime
import os
import sys

# This repo's operators/ and deeplab/ sit next to dags/; make them importable even when only
# AIRFLOW__CORE__DAGS_FOLDER points here (scripts/airflow_env.sh also sets PYTHONPATH).
_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.dirname(_HERE)):
  if _path not in sys.path:
    sys.path.insert(0, _path)

from airflow.sdk import (Asset, AssetAlias, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable,
                         TriggerRule, dag, task)

from deeplab_pipeline import raw_sources
from deeplab_pipeline.champion import MODEL_ALIAS_NAME, model_asset_name
from deeplab_pipeline.params import build_params
from operators import (BuildTFRecordsOperator, DeepLabEvalOperator, DeepLabExportOperator,
                       DeepLabTrainOperator)
from operators.approval import ModelApprovalOperator
from operators.settings import storage_root

ROOT = storage_root()
RAW_DATA = Asset(
    name="deeplab_raw_data",
    uri=os.environ.get("DEEPLAB_RAW_DATA_URI")
    or (f"{ROOT}/raw" if ROOT.startswith("gs://") else f"file://{ROOT}/raw"))
DATASET_ALIAS = AssetAlias("deeplab_dataset")
MODEL_ALIAS = AssetAlias(MODEL_ALIAS_NAME)  # deeplab_deploy is scheduled on it
RETRY_DELAY = datetime.timedelta(seconds=int(os.environ.get("DEEPLAB_RETRY_DELAY_SECONDS", "60")))
TRAIN_TIMEOUT = datetime.timedelta(
    minutes=int(os.environ.get("DEEPLAB_TRAIN_TIMEOUT_MINUTES", "720")))
# "@weekly" (default) or any cron: that time OR new raw data; "none": only new raw data.
_CRON = os.environ.get("DEEPLAB_RETRAIN_SCHEDULE", "@weekly").strip()
# New data: the catch-all Asset or any declared annotation source's own Asset.
RAW_ASSETS = AssetAny(RAW_DATA, *raw_sources.assets(
    ROOT, raw_sources.parse_sources(os.environ.get(raw_sources.ENV))))
SCHEDULE = (RAW_ASSETS if _CRON.lower() in ("", "none", "off") else AssetOrTimeSchedule(
    timetable=CronTriggerTimetable(_CRON, timezone="UTC"), assets=RAW_ASSETS))
STAGE_TIMEOUT = datetime.timedelta(hours=2)


@dag(
    dag_id="deeplab_retrain",
    schedule=SCHEDULE,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["deeplab", "training", "segmentation"],
    params=build_params(),
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": RETRY_DELAY,
                  "retry_exponential_backoff": True},
    doc_md=__doc__,
)
def deeplab_retrain():

  @task(multiple_outputs=True, retries=0)
  def resolve_config(params=None, dag_run=None, triggering_asset_events=None) -> dict:
    """Validates the conf beyond the schema and freezes the plan (runs/<run_id>/config.json)."""
    import json

    from airflow.sdk.exceptions import AirflowFailException

    from deeplab import storage
    from deeplab.datasets.converted import is_converted
    from deeplab.datasets.fingerprint import compute_fingerprint
    from deeplab.errors import UserInputError
    from deeplab_pipeline import resolve as r

    def load_champion(uri):
      return storage.read_json(uri) if storage.exists(uri) else None

    try:  # a run started by new data converts the source that announced it
      settings, started_by = raw_sources.run_settings(
          [(e.asset.name, e.extra, e.timestamp) for events in
           (triggering_asset_events or {}).values() for e in events],
          raw_sources.parse_sources(os.environ.get(raw_sources.ENV)))
    except raw_sources.SourceError as e:
      raise AirflowFailException(str(e)) from e
    if started_by:
      print(started_by)
    try:
      plan = r.resolve({**dict(params), **settings}, run_id=dag_run.run_id, run_type=str(getattr(dag_run.run_type, "value", dag_run.run_type)),
                       storage_root=storage_root(), load_champion=load_champion,
                       fingerprint_fn=compute_fingerprint, converted_fn=is_converted)
    except (r.ConfError, UserInputError) as e:
      raise AirflowFailException(str(e)) from e  # retrying cannot fix a bad conf
    storage.write_text(plan["config_uri"],
                       json.dumps(plan["train_config"], indent=2, sort_keys=True) + "\n")
    storage.write_json(storage.join(plan["run_dir"], "plan.json"), plan)
    print(f"Run folder {plan['run_dir']}; dataset {plan['dataset_dir']}")
    for what in ("build_skip", "train_skip"):
      if plan[what]:
        print(f"{what}: {plan[what]}")
    return plan

  plan = resolve_config()

  build = BuildTFRecordsOperator(
      task_id="build_tfrecords", format=plan["build_format"], source=plan["build_source"],
      output_dir=plan["dataset_dir"], flags=plan["build_flags"], launcher=plan["launcher"],
      skip_reason=plan["build_skip"], execution_timeout=STAGE_TIMEOUT)

  # The first point where this run's dataset always exists (converted now or before): the
  # class check against the champion and the drift report, once (deeplab_pipeline.dataset_check).
  @task(retries=2, trigger_rule=TriggerRule.NONE_FAILED)
  def check_dataset(plan: dict) -> dict:
    """Refuses a warm start from a champion with other classes; writes the drift report."""
    from airflow.sdk.exceptions import AirflowFailException

    from deeplab_pipeline.dataset_check import ClassesDiffer, check

    try:
      result = check(plan)
    except ClassesDiffer as e:  # a retry cannot change the classes
      raise AirflowFailException(str(e)) from e
    if result["class_difference"]:
      print(f"Classes: {result['class_difference']}")
    if result["drift"]:
      print(f"Drift report {result['drift']['md']}")
      for warning in result["drift"]["warnings"]:
        print(f"  WARNING: {warning}")
    else:
      print(f"No drift report: {result['note']}")
    return result

  checked = check_dataset(plan)

  train = DeepLabTrainOperator(
      task_id="train", dataset_dir=plan["dataset_dir"], train_logdir=plan["train_logdir"],
      num_clones=plan["num_clones"], num_replicas=plan["num_replicas"],
      num_ps_tasks=plan["num_ps_tasks"], flags=plan["train_flags"], launcher=plan["launcher"],
      skip_reason=plan["train_skip"], execution_timeout=TRAIN_TIMEOUT,
      # Runs when the conversion was skipped (dataset already there), not when it failed.
      trigger_rule=TriggerRule.NONE_FAILED)

  evaluate = DeepLabEvalOperator(
      task_id="evaluate", dataset_dir=plan["dataset_dir"], checkpoint_dir=plan["train_logdir"],
      eval_logdir=plan["eval_logdir"], flags=plan["eval_flags"], launcher=plan["launcher"],
      execution_timeout=STAGE_TIMEOUT)

  @task(retries=2)
  def check_champion(plan: dict) -> dict:
    """Whether the champion can be evaluated on this run's split, and with which checkpoint."""
    from deeplab_pipeline.judge import check_champion as check

    result = check(plan)
    print(f"Champion evaluation skipped: {result['skip']}" if result["skip"]
          else f"Champion {result['checkpoint']} is evaluated on this run's split")
    return result

  champion = check_champion(plan)

  # The champion on the same images with the same settings as the candidate; its model is
  # built from the config.json of its own run.
  evaluate_champion = DeepLabEvalOperator(
      task_id="evaluate_champion", dataset_dir=plan["dataset_dir"],
      checkpoint_dir=champion["checkpoint_dir"], eval_logdir=plan["champion_eval_logdir"],
      flags=champion["eval_flags"], launcher=plan["launcher"], skip_reason=champion["skip"],
      execution_timeout=STAGE_TIMEOUT)

  # Retried: it reads and writes storage, where a gs:// error is transient. A refusal is not a
  # failure (export and promote are skipped), and evaluations that cannot be compared fail at once.
  @task(multiple_outputs=True, retries=2, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
  def gate(eval_result: dict | None = None, champion_eval: dict | None = None,
           champion: dict | None = None, plan: dict | None = None, ti=None) -> dict:
    """Blesses the model or says why not (gate.json, compare/, XCom); export/promote run only
    when blessed."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from deeplab.errors import UserInputError
    from deeplab_pipeline.judge import judge

    if ti is not None:  # in a DAG run: what the upstream tasks returned, if they ran
      eval_result, champion, champion_eval = upstream_results(ti)
    if not eval_result:  # training was skipped, so evaluate was too: nothing to judge
      raise AirflowSkipException("the candidate was not evaluated: nothing to judge")
    try:
      decision = judge(plan, eval_result, champion_eval, (champion or {}).get("skip") or "")
    except UserInputError as e:  # e.g. not the same images or classes: a retry cannot help
      raise AirflowFailException(str(e)) from e
    print(decision["summary"])
    return decision

  # The upstream results are pulled inside: an XComArg argument of a skipped task (the
  # champion's evaluation on a first run) logs "XCom not found" as an ERROR in a good run.
  decision = gate(plan=plan)
  [evaluate, champion] >> decision

  # approval=human: a person approves a model the gate passed (Required actions in the UI);
  # Reject or no answer in time skips export and promote. approval=auto: nothing is asked.
  approve = ModelApprovalOperator(
      task_id="approve", approval=plan["approval"], skip_reason=decision["skip_reason"],
      timeout_minutes=plan["approval_timeout_minutes"], run_dir=plan["run_dir"], retries=0,
      subject="Promote the DeepLab candidate of run {{ run_id }}?",
      body="{{ ti.xcom_pull(task_ids='gate', key='summary') }}")

  export = DeepLabExportOperator(
      task_id="export",
      # Exactly the checkpoint the gate judged, served with the input size it was scored at.
      checkpoint_path="{{ ti.xcom_pull(task_ids='evaluate')['checkpoint'] }}",
      eval_metrics_json="{{ ti.xcom_pull(task_ids='evaluate')['metrics_json'] }}",
      export_path=plan["export_path"], flags=plan["export_flags"], launcher=plan["launcher"],
      skip_reason=decision["skip_reason"], execution_timeout=STAGE_TIMEOUT)

  @task(outlets=[DATASET_ALIAS, MODEL_ALIAS], retries=2)
  def promote(plan: dict, decision: dict, export_result: dict, train_result: dict,
              outlet_events=None) -> dict:
    """Writes models/<name>/champion.json atomically and emits the dataset and model Assets."""
    from airflow.sdk.exceptions import AirflowSkipException

    from deeplab import storage
    from deeplab_pipeline.promote import asset_uri, champion_record, formats_table

    if not decision.get("passed"):
      raise AirflowSkipException(decision.get("outcome") or "gate did not pass")
    record = champion_record(plan, decision=decision, export_result=export_result or {},
                             train_result=train_result or {})
    storage.write_json(plan["champion_uri"], record)  # atomic: tmp + rename / one GCS object
    outlet_events[DATASET_ALIAS].add(
        Asset(name=f"deeplab_dataset/{plan['fingerprint']}", uri=asset_uri(plan["dataset_dir"])),
        extra={"fingerprint": plan["fingerprint"]})
    # One Asset per model (its champion pointer); each promotion is an event on it.
    outlet_events[MODEL_ALIAS].add(
        Asset(name=model_asset_name(plan["model_name"]), uri=asset_uri(plan["champion_uri"])),
        extra={"miou": record["miou"], "run_id": plan["run_id"],
               "export_path": plan["export_path"], "formats": record["formats"]})
    print(f"Promoted run {plan['run_id']} (mIoU {record['miou']:.4f}) -> {plan['champion_uri']}")
    table = formats_table(export_result or {})
    if table:  # the device formats' scores on the eval split (docs/export.md)
      print(f"Exported formats:\n{table}")
    return record

  promoted = promote(plan, decision, export.output, train.output)

  plan >> build >> checked >> train >> evaluate >> champion >> evaluate_champion >> decision
  decision >> approve >> export >> promoted


def upstream_results(ti) -> tuple:
  """(evaluate's result, check_champion's, evaluate_champion's) for the gate; None for a task
  that was skipped. ti.xcom_pull(task_ids=...) reads all map indexes at once and returns None
  quietly when there is nothing, where resolving an XComArg logs an ERROR."""
  champion = ti.xcom_pull(task_ids="check_champion")
  ran = champion is not None and not champion.get("skip")
  return (ti.xcom_pull(task_ids="evaluate"), champion,
          ti.xcom_pull(task_ids="evaluate_champion") if ran else None)


deeplab_retrain()
