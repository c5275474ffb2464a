"""Admins approve restore requests no rule allows, in Airflow's Required Actions (human-in-the-loop).

Restore DAG: ``comment_and_resolve ─► ask_for_approval ─► announce_approvals`` journals one
``approval_asked`` entry per new refused request (live runs only) and, when it asked about any,
announces the ``atlassian_restore_approvals`` Asset. Approval DAG (``atlassian_restore_approval``,
scheduled by that Asset): ``collect_approvals ─► await_admin`` (one mapped prompt per request).
The answer is journalled; the restore DAG's next run carries it out (see
:mod:`atlassian_cleanup.restore.approval`). The wait lives in a DAG of its own, so hours of waiting
never hold up the restore DAG (one run at a time, a 30-minute run timeout).

Logs carry counts and request keys, never tokens or request texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from atlassian_cleanup.actions.journalled import Journal, WriteResult
from atlassian_cleanup.decisions.records import parse_timestamp
from atlassian_cleanup.operators.base import (
    open_state_store,
    policy_of_run,
    resolve_large_input,
    resolve_policy,
    run_as_of,
    wire_large_input,
)
from atlassian_cleanup.operators.restore import SiteDecisionsOperator
from atlassian_cleanup.outcomes import DONE
from atlassian_cleanup.restore.approval import (
    ANSWERED,
    APPROVE_OPTION,
    ASKED,
    PROMPTED,
    REJECT_OPTION,
    WAITING,
    answer_record,
    approval_state,
    ask_evidence,
    prompt,
)
from atlassian_cleanup.restore.carry_out import request_scope
from atlassian_cleanup.restore.on_demand import is_on_demand
from atlassian_cleanup.restore.rules import REFUSED, action_entries

if TYPE_CHECKING:
    from airflow.sdk import Context

    from atlassian_cleanup.actions.state import StateStore

#: What the audit's outcome says for a request an admin was asked about in this run.
ASKED_OUTCOME = "asked an admin to approve in Airflow"


def _recorded(journal: Journal, account_id: str, key: str, action: str, evidence: Any, detail: str) -> bool:
    """Claim and record one journal-only step (no Atlassian call) once per request; False if done before."""
    claim = journal.claim(account_id, action, reason=detail, evidence=evidence, scope=request_scope(key))
    if claim.status == "done":
        return False
    journal.record(account_id, claim, WriteResult("succeeded", DONE, action, detail))
    return True


def site_link(conn_id: str, key: str) -> str | None:
    """The request's link on the site of the ``atlassian_site`` connection (None without a host)."""
    try:
        host = (BaseHook.get_connection(conn_id).host or "").strip().rstrip("/")
    except Exception:  # a link is evidence, not a reason to fail the ask
        return None
    if not host:
        return None
    return f"{host if '://' in host else 'https://' + host}/browse/{key}"


class AskForApprovalOperator(SiteDecisionsOperator):
    """Journal one ``approval_asked`` entry per refused request, once per request (live runs only).

    In a dry run nothing is journalled: the audit says an admin would be asked. Returns the rows
    with ``approval_outcome``; pushes ``asked`` (how many were asked in this run).
    """

    ui_color = "#ffc400"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        policy = policy_of_run(resolve_large_input(self.run_policy, context))
        rows = [dict(row) for row in self.decisions or []]
        todo = [
            r
            for r in rows
            if r["verdict"] == REFUSED and r.get("account_id") and not is_on_demand(r["request_key"])
        ]
        asked = 0
        if policy.dry_run:
            for row in todo:
                row["approval_outcome"] = "dry run: would ask an admin to approve in Airflow"
        elif todo:
            hours = policy.restore.approval_timeout_hours
            with open_state_store(policy, self.log) as store:
                journal = Journal(store, run_id=context["run_id"], at=run_as_of(context))
                for row in todo:
                    asked += self.ask(store, journal, row, hours)
        context["ti"].xcom_push(key="asked", value=asked)
        self.log.info(
            "ask_for_approval: %d requests no rule allows; %d asked in this run%s",
            len(todo),
            asked,
            " (dry run: nobody asked)" if policy.dry_run else "",
        )
        return rows

    def ask(self, store: StateStore, journal: Journal, row: dict[str, Any], hours: int) -> int:
        key, account_id = row["request_key"], str(row["account_id"])
        products = sorted(
            {str(p) for e in action_entries(store.journal(account_id=account_id)) for p in e.products or []}
        )
        evidence = ask_evidence(
            {**row, "products": products},
            link=site_link(self.site_conn_id, key),
            asked_at=journal.at,
            timeout_hours=hours,
        )
        if not _recorded(journal, account_id, key, ASKED, evidence, ASKED_OUTCOME):
            row["approval_outcome"] = "asked earlier"
            return 0
        row["approval_outcome"] = f"{ASKED_OUTCOME} by {evidence['deadline']}"
        self.log.info("ask_for_approval: %s: %s", key, row["approval_outcome"])
        return 1


class AnnounceApprovalsOperator(BaseOperator):
    """Emit the approvals Asset (outlet) when this run asked about a request; skipped otherwise."""

    template_fields: Sequence[str] = ("asked",)

    def __init__(self, *, asked: Any, run_policy: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked = asked
        self.run_policy = wire_large_input(self, run_policy)

    def execute(self, context: Context) -> int:
        if not self.asked:
            raise AirflowSkipException("announce_approvals: no new request to approve")
        policy = policy_of_run(resolve_large_input(self.run_policy, context))
        self.log.info(
            "announce_approvals: %s new requests wait for an admin's approval (up to %d hours)",
            self.asked,
            policy.restore.approval_timeout_hours,
        )
        return int(self.asked)


class CollectApprovalsOperator(BaseOperator):
    """The asked requests still waiting and never prompted, each claimed once for its prompt."""

    template_fields: Sequence[str] = ("policy_path",)

    def __init__(self, *, policy_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy_path = policy_path

    def execute(self, context: Context) -> list[dict[str, Any]]:
        policy = resolve_policy(self.policy_path, {})
        as_of = run_as_of(context)
        prompts: list[dict[str, Any]] = []
        with open_state_store(policy, self.log) as store:
            journal = Journal(store, run_id=context["run_id"], at=as_of)
            entries = store.journal()
            asks = [e for e in entries if e.action == ASKED and e.outcome == "succeeded"]
            for ask in asks:
                key = str(ask.evidence.get("request_key"))
                mine = [e for e in entries if e.account_id == ask.account_id]
                state = approval_state(mine, key, as_of=as_of)
                if state is None or state.status != WAITING:
                    continue
                if _recorded(journal, ask.account_id, key, PROMPTED, {"request_key": key}, "prompt created"):
                    prompts.append(dict(ask.evidence))
        self.log.info("collect_approvals: %d asked requests; %d new prompts", len(asks), len(prompts))
        if not prompts:
            raise AirflowSkipException("collect_approvals: every asked request already has its prompt")
        return prompts


class RestoreApprovalOperator(HITLOperator):
    """One admin's approval of one request, in Airflow's Required Actions; the answer is journalled.

    The response time is what is left of the ask's deadline (``restore.approval_timeout_hours``
    when asked), so a late prompt does not extend it. No answer by then is journalled as timed
    out (the task succeeds: nobody answering is an outcome, not a failure). A retried task whose
    answer is already journalled does not ask again.

    :param ask: the ``approval_asked`` entry's evidence
        (:func:`~atlassian_cleanup.restore.approval.ask_evidence`).
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "ask")
    ui_color = "#ffc400"

    def __init__(self, *, ask: Any, policy_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Restore access?")
        super().__init__(options=[APPROVE_OPTION, REJECT_OPTION], multiple=False, **kwargs)
        self.ask = ask
        self.policy_path = policy_path

    def _journalled_answer(self, context: Context) -> dict[str, Any] | None:
        policy = resolve_policy(self.policy_path, {})
        key = str(self.ask["request_key"])
        with open_state_store(policy, self.log) as store:
            for entry in store.journal(account_id=str(self.ask["account_id"])):
                evidence = entry.evidence if isinstance(entry.evidence, Mapping) else {}
                if (
                    entry.action == ANSWERED
                    and entry.outcome == "succeeded"
                    and evidence.get("request_key") == key
                ):
                    return dict(evidence)
        return None

    def execute(self, context: Context) -> Any:
        earlier = self._journalled_answer(context)
        if earlier is not None:
            self.log.info(
                "await_admin: %s was answered earlier (%s)", self.ask["request_key"], earlier["decision"]
            )
            return earlier
        deadline = parse_timestamp(self.ask.get("deadline"))
        left = deadline - datetime.now(UTC) if deadline is not None else None
        if left is not None and left.total_seconds() <= 0:
            return self.journal_answer(context, answer_record(None, by=None, at=deadline, timed_out=True))
        self.subject, self.body = prompt(self.ask)
        self.response_timeout = left
        self.log.info(
            "await_admin: %s waits for an admin until %s", self.ask["request_key"], self.ask.get("deadline")
        )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        timed_out = "error" in event
        if not timed_out:
            super().execute_complete(context=context, event=event)  # validates the answer
        user = event.get("responded_by_user") or {}
        at = event.get("responded_at")
        record = answer_record(
            event.get("chosen_options"),
            by=str(user.get("name") or user.get("id") or "") or None,
            at=at if isinstance(at, datetime) else datetime.now(UTC),
            timed_out=timed_out,
        )
        return self.journal_answer(context, record)

    def journal_answer(self, context: Context, record: dict[str, Any]) -> dict[str, Any]:
        """Journal the answer once per request; what is journalled (an earlier answer wins)."""
        policy = resolve_policy(self.policy_path, {})
        key, account_id = str(self.ask["request_key"]), str(self.ask["account_id"])
        at = parse_timestamp(record.get("at")) or datetime.now(UTC)
        evidence = {"request_key": key, **record}
        with open_state_store(policy, self.log) as store:
            journal = Journal(store, run_id=context["run_id"], at=at)
            detail = f"approval {record['decision']}" + (f" by {record['by']}" if record.get("by") else "")
            if not _recorded(journal, account_id, key, ANSWERED, evidence, detail):
                self.log.info("await_admin: %s: an earlier answer stands", key)
                return self._journalled_answer(context) or evidence
        self.log.info("await_admin: %s: %s", key, detail)
        return evidence
