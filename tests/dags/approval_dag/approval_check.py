"""A minimal DAG around the pipeline's approval task (tests/dags/test_approval_services.py):
a gate that passed -> approve -> promote, without training, so that the human path runs on the
real services in seconds."""

import datetime

from airflow.sdk import Param, dag, task

from operators.approval import ModelApprovalOperator


@dag(dag_id="approval_check", schedule=None, catchup=False,
     start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
     params={"approval_timeout_minutes": Param(10.0, type="number"),
             "run_dir": Param("", type="string")})
def approval_check():

  @task(multiple_outputs=True)
  def gate() -> dict:
    return {"skip_reason": "", "summary": "candidate mIoU 0.9000\npromoted: test"}

  decision = gate()
  approve = ModelApprovalOperator(
      task_id="approve", approval="human", skip_reason=decision["skip_reason"],
      timeout_minutes="{{ params.approval_timeout_minutes }}", run_dir="{{ params.run_dir }}",
      subject="Promote?", body="{{ ti.xcom_pull(task_ids='gate', key='summary') }}")

  @task
  def promote() -> str:
    return "promoted"

  decision >> approve >> promote()


approval_check()
