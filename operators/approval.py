"""ModelApprovalOperator: a person approves or rejects a model the gate passed (approval=human).

Airflow's Human-in-the-loop ApprovalOperator (standard provider, Airflow 3.1+): the request
appears under "Required actions" in the UI with the comparison summary and where the report is.
Reject, or no answer within the timeout (the default option is Reject), skips export and
promote: the champion stays. With approval=auto, or when the gate refused the model, nothing is
asked. The answer is written to runs/<run_id>/approval.json.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException

APPROVAL_JSON = "approval.json"


class ModelApprovalOperator(ApprovalOperator):
  """Asks for approval only when ``approval`` renders to ``human`` and the gate passed.

  :param approval: ``auto`` (approve without asking) or ``human`` (templated).
  :param skip_reason: non-empty when the gate refused the model: the task is skipped (templated).
  :param timeout_minutes: minutes to wait for an answer; then Reject applies (templated).
  :param run_dir: the run folder where approval.json is written (templated).
  """

  template_fields = (*ApprovalOperator.template_fields, "approval", "skip_reason",
                     "timeout_minutes", "run_dir")

  def __init__(self, *, approval: Any, skip_reason: Any, timeout_minutes: Any, run_dir: Any,
               **kwargs):
    super().__init__(defaults=ApprovalOperator.REJECT, **kwargs)
    self.approval = approval
    self.skip_reason = skip_reason
    self.timeout_minutes = timeout_minutes
    self.run_dir = run_dir

  def execute(self, context):
    if self.skip_reason and str(self.skip_reason).strip() not in ("", "None"):
      raise AirflowSkipException(f"nothing to approve: {self.skip_reason}")
    if str(self.approval) != "human":
      self.log.info("approval=%s: the gate's decision stands", self.approval)
      return {"chosen_options": [self.APPROVE], "approved_by": "gate (approval=auto)"}
    # A Param of the run, so the wait is set here, not at parse time.
    self.response_timeout = datetime.timedelta(minutes=float(self.timeout_minutes))
    return super().execute(context)

  def execute_complete(self, context, event: dict[str, Any]) -> Any:
    from deeplab import storage

    chosen = (event.get("chosen_options") or [None])[0]
    timed_out = bool(event.get("timedout"))
    user = event.get("responded_by_user") or {}
    outcome = ("promoted after approval" if chosen == self.APPROVE else
               "champion kept: no answer within the approval timeout" if timed_out else
               "champion kept: rejected by a reviewer")
    storage.write_json(storage.join(str(self.run_dir), APPROVAL_JSON), {
        "chosen": chosen, "timed_out": timed_out,
        "responded_by": user.get("name") if isinstance(user, dict) else str(user),
        "outcome": outcome})
    self.log.info("%s", outcome)
    return super().execute_complete(context, event)
