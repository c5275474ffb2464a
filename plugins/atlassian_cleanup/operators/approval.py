"""The approval gate between the plan and the first write (Airflow human-in-the-loop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.decisions.records import format_timestamp
from atlassian_cleanup.outcomes import MODE_LIVE

if TYPE_CHECKING:
    from airflow.sdk import Context


class PlanApprovalOperator(ApprovalOperator):
    """Stop before the first write when the plan exceeds the safety caps.

    Within the caps (or in a dry run) it returns at once and the run continues. Above them it
    either fails the run (``safety.on_cap_exceeded: fail``) or waits for an admin to approve the
    plan in the Airflow UI (``approve``; Required Actions page). A rejection or a timeout skips
    every write.

    Returns the decision for the audit (:func:`approval_record`): whether an approval was needed,
    and for a capped run who approved or rejected it and when (Airflow's HITL response).

    :param gate: the ``gate`` XCom of ``compute_inactivity``.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "gate")
    ui_color = "#ffc400"

    def __init__(self, *, gate: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Approve the Atlassian user cleanup plan")
        # A timeout must not act on its own: no answer counts as a rejection.
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)
        kwargs.setdefault("response_timeout", timedelta(days=2))
        super().__init__(**kwargs)
        self.gate = gate

    def execute(self, context: Context) -> Any:
        gate = self.gate or {}
        if gate.get("mode") != MODE_LIVE:
            self.log.info("approve_plan: dry run, nothing will be written; no approval needed")
            return approval_record("not_needed", summary="not needed: dry run")
        if not gate.get("exceeded"):
            self.log.info("approve_plan: the plan is within the safety caps; no approval needed")
            return approval_record("not_needed", summary="not needed: within the safety caps")
        lines = list(gate.get("lines") or [])
        if gate.get("on_cap_exceeded") != "approve":
            context["ti"].xcom_push(
                key="return_value",
                value=approval_record(
                    "stopped",
                    required=True,
                    summary="the plan exceeds the safety caps and safety.on_cap_exceeded is fail: "
                    "the run stopped before any write",
                ),
            )
            raise AirflowFailException(
                "approve_plan: the plan exceeds the safety caps, so nothing was written:\n- "
                + "\n- ".join(lines)
                + "\nCheck the plan (dry run), then raise safety.max_actions_per_run / "
                "max_action_share for one run in the trigger form, or set "
                "safety.on_cap_exceeded: approve to approve such runs in the UI."
            )
        self.body = (
            "This run's plan exceeds the safety caps:\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + "\n\n**Approve** to let the run warn and act as planned; **Reject** (or no answer "
            "within the timeout) skips every write. The planned rows are in the "
            "`compute_inactivity` XCom and, after the run, in the audit CSV. The run acts under "
            f"the policy it was planned with (SHA-256 `{gate.get('policy_sha256')}`), whatever the "
            "policy file says by now."
        )
        self.log.info("approve_plan: waiting for an admin to approve (%s)", "; ".join(lines))
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        # Recorded before the parent acts: on Reject it skips the writes by raising, so nothing
        # after it would run. What is kept is who decided, what and when.
        record = self.decision_of(event)
        context["ti"].xcom_push(key="return_value", value=record)
        self.log.info("approve_plan: %s", record["summary"])
        super().execute_complete(context=context, event=event)
        return record

    def decision_of(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The approval record of a HITL response event (see :func:`approval_record`)."""
        user = event.get("responded_by_user") or {}
        by = str(user.get("name") or user.get("id") or "") or None
        at = event.get("responded_at")
        when = format_timestamp(at) if isinstance(at, datetime) else (str(at) if at else None)
        approved = "error" not in event and self.APPROVE in (event.get("chosen_options") or [])
        decision = "approved" if approved else "rejected"
        if by:
            summary = f"{decision} by {by}" + (f" at {when}" if when else "")
        else:
            summary = f"{decision}: no answer within the timeout" + (f" ({when})" if when else "")
        return approval_record(decision, required=True, by=by, at=when, summary=summary)


def approval_record(
    decision: str,
    *,
    summary: str,
    required: bool = False,
    by: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """What ``approve_plan`` decided, for the manifest, the audit page and the digest.

    :param decision: ``not_needed``, ``stopped`` (caps exceeded, ``on_cap_exceeded: fail``),
        ``approved`` or ``rejected``.
    :param by: the Airflow user who answered (None: nobody, e.g. the timeout answered).
    :param at: when they answered (ISO-8601 UTC).
    """
    return {"required": required, "decision": decision, "by": by, "at": at, "summary": summary}
