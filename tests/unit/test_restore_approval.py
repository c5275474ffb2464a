"""An admin approves, rejects or ignores a restore request no rule allows (Airflow human-in-the-loop).

The pure parts (approval state from the journal, the verdicts, the prompt, the answer record) and
the operators against a real SQLite state store: asked once per request, nothing asked in a dry
run, an answer journalled once (a retried task neither asks again nor changes it), a deadline
that has passed answered as a timeout without a prompt.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.decisions.policy import RestorePolicy, policy_from_dict
from atlassian_cleanup.operators import restore_approval
from atlassian_cleanup.operators.restore import audit_row
from atlassian_cleanup.operators.restore_approval import (
    AskForApprovalOperator,
    CollectApprovalsOperator,
    RestoreApprovalOperator,
)
from atlassian_cleanup.restore.approval import (
    ANSWERED,
    APPROVAL_REJECTED,
    APPROVAL_TIMED_OUT,
    ASKED,
    AWAITING_APPROVAL,
    answer_record,
    approval_state,
    ask_evidence,
    prompt,
)
from atlassian_cleanup.restore.rules import REFUSED, RESTORE, decide
from tests.unit.test_restore_rules import CONF, ENG, account, action_entry, history, request

ASKED_AT = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
KEY = "ITH-9"
CONTRACTOR = "carl@contractor.example"  # no rule allows this domain (the test policy allows acme.example)


def ask_entry(key: str = KEY, hours: int = 72, at: datetime = ASKED_AT) -> dict:
    row = {"request_key": key, "account_id": "557058:alice", "steps": ["restore_user"]}
    evidence = ask_evidence(row, link=None, asked_at=at, timeout_hours=hours)
    return {"action": ASKED, "outcome": "succeeded", "evidence": evidence, "intent_at": at}


def answer_entry(decision: str, by: str | None = "bob", key: str = KEY) -> dict:
    evidence = {"request_key": key, "decision": decision, "by": by, "at": "2026-12-10T09:30:00Z"}
    return {"action": ANSWERED, "outcome": "succeeded", "evidence": evidence}


def refused_run(journal_extra: list[dict], as_of: datetime = ASKED_AT + timedelta(hours=1)):
    journal = [action_entry("suspend", [ENG, CONF]), *journal_extra]
    return decide_with_approval(request(email=CONTRACTOR), account(email=CONTRACTOR), journal, as_of), journal


def decide_with_approval(req: Any, acct: dict, journal: list[dict], as_of: datetime) -> Any:
    """What the restore DAG's evaluate_rules does: the approval state from the journal, then decide."""
    return decide(
        req,
        account=acct,
        history=history(),
        journal=journal,
        restore_policy=RestorePolicy(allowed_domains=("acme.example",)),
        as_of=as_of,
        approval=approval_state(journal, req.key, as_of=as_of),
    )


# -- where the approval stands -------------------------------------------------------------------


def test_a_request_never_asked_about_has_no_approval_state():
    assert approval_state([answer_entry("approved")], KEY, as_of=ASKED_AT) is None


def test_the_deadline_is_the_one_recorded_with_the_ask():
    journal = [ask_entry(hours=72)]
    waiting = approval_state(journal, KEY, as_of=ASKED_AT + timedelta(hours=71, minutes=59))
    assert waiting is not None
    assert waiting.status == "waiting"
    assert waiting.deadline == datetime(2026, 12, 13, 8, 0, tzinfo=UTC)  # 08:00 + 72 h
    over = approval_state(journal, KEY, as_of=ASKED_AT + timedelta(hours=72))
    assert over is not None
    assert over.status == "timed_out"


def test_an_answer_wins_over_the_clock_and_only_counts_for_its_own_request():
    journal = [ask_entry(), answer_entry("approved", key="ITH-10"), answer_entry("approved")]
    state = approval_state(journal, KEY, as_of=ASKED_AT + timedelta(days=30))
    assert state is not None
    assert (state.status, state.by) == ("approved", "bob")
    other = approval_state([ask_entry(), answer_entry("rejected", key="ITH-10")], KEY, as_of=ASKED_AT)
    assert other is not None
    assert other.status == "waiting"


def test_a_failed_ask_or_answer_does_not_count():
    failed_ask = {**ask_entry(), "outcome": "failed"}
    assert approval_state([failed_ask], KEY, as_of=ASKED_AT) is None
    failed_answer = {**answer_entry("approved"), "outcome": "intent"}
    state = approval_state([ask_entry(), failed_answer], KEY, as_of=ASKED_AT)
    assert state is not None
    assert state.status == "waiting"


# -- the verdicts ----------------------------------------------------------------------------------


def test_refused_without_an_ask_says_what_a_restore_would_do():
    decision, _ = refused_run([])
    assert decision.verdict == REFUSED
    assert decision.resolve is False
    assert decision.steps == ("restore_user",)  # a suspension is undone by a directory restore
    # ... which the audit does not present as planned: nothing was approved.
    assert audit_row({**decision.to_dict(), "verdict": REFUSED})["planned_action"] == ""


def test_approved_restores_the_way_an_allowed_request_is_and_names_the_approver():
    decision, _ = refused_run([ask_entry(), answer_entry("approved", by="bob")])
    assert decision.verdict == RESTORE
    assert decision.rule == "approved:bob"
    assert decision.steps == ("restore_user",)
    assert decision.resolve is True
    assert "approved by bob" in decision.comment
    assert decision.comment.startswith("Your access has been restored.")
    assert "Approved in Airflow by bob at 2026-12-10T09:30:00Z" in decision.reason
    assert audit_row(decision.to_dict())["planned_action"] == "restore_user"


def test_rejected_is_answered_and_resolved_without_a_restore():
    decision, _ = refused_run([ask_entry(), answer_entry("rejected", by="bob")])
    assert decision.verdict == APPROVAL_REJECTED
    assert decision.resolve is True
    assert "did not approve" in decision.comment
    assert "Rejected in Airflow by bob" in decision.reason


def test_no_answer_in_time_is_answered_and_left_open():
    decision, _ = refused_run([ask_entry(hours=2)], as_of=ASKED_AT + timedelta(hours=3))
    assert decision.verdict == APPROVAL_TIMED_OUT
    assert decision.resolve is False
    assert "No administrator answered your request in time" in decision.comment
    assert "2026-12-10T10:00:00Z" in decision.reason  # 08:00 + 2 h


def test_a_request_still_waiting_gets_no_new_answer():
    decision, _ = refused_run([ask_entry()])
    assert decision.verdict == AWAITING_APPROVAL
    assert decision.comment == ""
    assert decision.resolve is False


def test_a_rule_that_allows_the_request_needs_no_approval():
    # Asked (and rejected) while no rule allowed it, then the domain was allowed: the rule restores.
    journal = [action_entry("suspend", [ENG]), ask_entry(), answer_entry("rejected")]
    decision = decide_with_approval(request(), account(), journal, ASKED_AT)
    assert (decision.verdict, decision.rule) == (RESTORE, "domain:acme.example")


# -- the prompt and the answer ------------------------------------------------------------------------


def test_the_prompt_shows_the_admin_the_evidence():
    row = {
        "request_key": KEY,
        "account_id": "557058:carl",
        "email": CONTRACTOR,
        "reporter_name": "Carl Contractor",
        "stage": "actioned",
        "actioned_action": "remove_product_access",
        "reason": "No restore rule allows this account.",
        "steps": ["add_group_member"],
        "groups_to_add": [{"id": "g-conf", "name": "confluence-users"}],
        "products": ["confluence"],
    }
    evidence = ask_evidence(
        row, link="https://acme.atlassian.net/browse/ITH-9", asked_at=ASKED_AT, timeout_hours=48
    )
    subject, body = prompt(evidence)
    assert subject == "Restore access for Carl Contractor? (ITH-9)"
    for shown in (
        "557058:carl",
        CONTRACTOR,
        "No restore rule allows this account.",
        "re-add the groups it had before",
        "confluence-users",
        "confluence",
        "[ITH-9](https://acme.atlassian.net/browse/ITH-9)",
        "2026-12-12T08:00:00Z",  # 08:00 + 48 h
        "remove_product_access",
    ):
        assert shown in body, shown


@pytest.mark.parametrize(
    ("chosen", "timed_out", "expected"),
    [
        (["Approve"], False, ("approved", "bob")),
        (["Reject"], False, ("rejected", "bob")),
        (None, True, ("timed_out", None)),
        (["Approve"], True, ("timed_out", None)),  # the sweep's defaults are not an answer
    ],
)
def test_the_answer_record(chosen, timed_out, expected):
    at = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
    record = answer_record(chosen, by="bob", at=at, timed_out=timed_out)
    assert (record["decision"], record["by"]) == expected
    assert record["at"] == "2026-12-10T09:30:00Z"


def test_an_unknown_answer_is_refused():
    with pytest.raises(ValueError, match="unknown approval answer"):
        answer_record(["Maybe"], by="bob", at=ASKED_AT, timed_out=False)


# -- the operators against a real state store ----------------------------------------------------


@pytest.fixture
def store_path(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    policy = policy_from_dict({"dry_run": False, "restore": {"approval_timeout_hours": 24}})

    def open_store(_policy: Any, _log: Any) -> StateStore:
        return StateStore(f"sqlite:///{path}")

    monkeypatch.setattr(restore_approval, "open_state_store", open_store)
    monkeypatch.setattr(restore_approval, "resolve_policy", lambda *_a, **_k: policy)
    monkeypatch.setattr(
        restore_approval, "site_link", lambda _conn, key: f"https://acme.atlassian.net/browse/{key}"
    )
    return path


class _TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _context(run_id: str, at: datetime = ASKED_AT) -> dict:
    return {"run_id": run_id, "logical_date": at, "ti": _TI(), "dag_run": SimpleNamespace(run_after=at)}


def _refused_row(key: str = KEY) -> dict:
    decision, _ = refused_run([])
    return {**decision.to_dict(), "request_key": key, "reporter_name": "Carl"}


def _ask(rows: list[dict], *, dry_run: bool, run_id: str) -> tuple[list[dict], int]:
    policy = policy_from_dict({"dry_run": dry_run, "restore": {"approval_timeout_hours": 24}})
    operator = AskForApprovalOperator(task_id="ask_for_approval", decisions=rows, run_policy=None)
    operator.run_policy = None
    context = _context(run_id)
    restore_approval.policy_of_run = lambda _record: policy  # type: ignore[assignment]
    try:
        result = operator.execute(context)  # type: ignore[arg-type]
    finally:
        from atlassian_cleanup.operators.base import policy_of_run

        restore_approval.policy_of_run = policy_of_run
    return result, context["ti"].pushed["asked"]


def _asks(path) -> list:
    with StateStore(f"sqlite:///{path}") as store:
        return [e for e in store.journal() if e.action == ASKED]


def test_each_request_is_asked_about_once(store_path):
    rows, asked = _ask([_refused_row(), _refused_row("ITH-10")], dry_run=False, run_id="r1")
    assert asked == 2
    assert all(r["approval_outcome"].startswith("asked an admin to approve in Airflow by") for r in rows)
    # The next scheduled run (and a retry) ask nobody again.
    rows, asked = _ask([_refused_row(), _refused_row("ITH-10")], dry_run=False, run_id="r2")
    assert asked == 0
    assert [r["approval_outcome"] for r in rows] == ["asked earlier", "asked earlier"]
    asks = _asks(store_path)
    assert len(asks) == 2
    assert asks[0].evidence["deadline"] == "2026-12-11T08:00:00Z"  # asked at 08:00 + 24 h
    assert asks[0].evidence["link"] == "https://acme.atlassian.net/browse/ITH-9"


def test_a_dry_run_asks_nobody(store_path):
    rows, asked = _ask([_refused_row()], dry_run=True, run_id="r1")
    assert asked == 0
    assert rows[0]["approval_outcome"] == "dry run: would ask an admin to approve in Airflow"
    assert _asks(store_path) == []


def test_only_refused_requests_are_asked_about(store_path):
    allowed = {**_refused_row("ITH-11"), "verdict": RESTORE}
    waiting = {**_refused_row("ITH-12"), "verdict": AWAITING_APPROVAL}
    _, asked = _ask([allowed, waiting], dry_run=False, run_id="r1")
    assert asked == 0


def _waiting_prompt(store_path) -> dict:
    _ask([_refused_row()], dry_run=False, run_id="r1")
    collect = CollectApprovalsOperator(task_id="collect_approvals", policy_path="p.yaml")
    prompts = collect.execute(_context("approval-1", ASKED_AT + timedelta(minutes=5)))  # type: ignore[arg-type]
    assert [p["request_key"] for p in prompts] == [KEY]
    # A second approval run (a second Asset event) does not prompt again.
    with pytest.raises(Exception, match="already has its prompt"):
        collect.execute(_context("approval-2", ASKED_AT + timedelta(minutes=15)))  # type: ignore[arg-type]
    return prompts[0]


def _answers(path) -> list:
    with StateStore(f"sqlite:///{path}") as store:
        return [e.evidence for e in store.journal() if e.action == ANSWERED]


def test_an_answer_is_journalled_once_and_a_retry_does_not_ask_again(store_path):
    ask = _waiting_prompt(store_path)
    operator = RestoreApprovalOperator(task_id="await_admin", ask=ask, policy_path="p.yaml")
    at = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
    event = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": at,
        "responded_by_user": {"id": "7", "name": "bob"},
    }
    record = operator.execute_complete(_context("approval-1"), event)  # type: ignore[arg-type]
    assert (record["decision"], record["by"], record["at"]) == ("approved", "bob", "2026-12-10T09:30:00Z")
    # A second answer (a cleared task answered again) changes nothing.
    rejected = {**event, "chosen_options": ["Reject"], "responded_by_user": {"id": "8", "name": "eve"}}
    again = operator.execute_complete(_context("approval-1"), rejected)  # type: ignore[arg-type]
    assert (again["decision"], again["by"]) == ("approved", "bob")
    # A restarted task finds the answer and puts no new prompt up.
    retry = RestoreApprovalOperator(task_id="await_admin", ask=ask, policy_path="p.yaml")
    assert retry.execute(_context("approval-1"))["decision"] == "approved"  # type: ignore[arg-type]
    assert [a["decision"] for a in _answers(store_path)] == ["approved"]


def test_the_timeout_is_journalled_as_no_answer(store_path):
    ask = _waiting_prompt(store_path)
    operator = RestoreApprovalOperator(task_id="await_admin", ask=ask, policy_path="p.yaml")
    event = {"error": "The Human-in-the-loop response timeout has passed", "error_type": "timeout"}
    record = operator.execute_complete(_context("approval-1"), event)  # type: ignore[arg-type]
    assert (record["decision"], record["by"]) == ("timed_out", None)
    assert [a["decision"] for a in _answers(store_path)] == ["timed_out"]


def test_a_prompt_whose_deadline_passed_is_not_put_up(store_path):
    ask = {**_waiting_prompt(store_path), "deadline": "2000-01-01T00:00:00Z"}
    operator = RestoreApprovalOperator(task_id="await_admin", ask=ask, policy_path="p.yaml")
    record = operator.execute(_context("approval-1"))  # type: ignore[arg-type]
    assert record["decision"] == "timed_out"


def test_the_prompt_waits_only_for_what_is_left_of_the_deadline(store_path, monkeypatch):
    ask = {**_waiting_prompt(store_path), "deadline": "2999-01-01T00:00:00Z"}
    operator = RestoreApprovalOperator(task_id="await_admin", ask=ask, policy_path="p.yaml")
    seen: dict[str, Any] = {}

    def parked(self: Any, context: Any) -> None:
        seen.update(subject=self.subject, body=self.body, timeout=self.response_timeout)

    monkeypatch.setattr(restore_approval.HITLOperator, "execute", parked)
    operator.execute(_context("approval-1"))  # type: ignore[arg-type]
    assert seen["subject"] == "Restore access for Carl? (ITH-9)"
    assert "https://acme.atlassian.net/browse/ITH-9" in seen["body"]
    # What is left until the recorded deadline (about 973 years here), not a fresh full timeout.
    assert timedelta(days=365 * 900) < seen["timeout"] < timedelta(days=365 * 1000)
