"""The restore DAG's pure decisions, and the state store's scoped claims they rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.decisions.planner import UserHistory
from atlassian_cleanup.decisions.policy import RestorePolicy
from atlassian_cleanup.restore.rules import (
    ALREADY_RESTORED,
    DELETED,
    NOT_ACTIONED,
    REFUSED,
    RESTORE,
    RestoreRequest,
    decide,
    decision_from_dict,
    request_from_issue,
)
from tests.unit.test_state_store import cycle_of

AS_OF = datetime(2026, 12, 10, tzinfo=UTC)
ACTIONED_AT = datetime(2026, 12, 1, tzinfo=UTC)
ALICE = "557058:alice"
ENG = {"id": "g-eng", "name": "engineering"}
CONF = {"id": "g-conf", "name": "confluence-users"}


def request(
    key: str = "ITH-9", reporter: str | None = ALICE, email: str = "alice@acme.example"
) -> RestoreRequest:
    return RestoreRequest(key=key, reporter_account_id=reporter, reporter_email=email, summary="restore")


def action_entry(action: str, groups: list[dict], cycle: int = 0, **extra) -> dict:
    return {
        "action": action, "outcome": "succeeded", "event": "actioned", "cycle": cycle,
        "before": {"status": "active", "groups": groups}, "result_at": ACTIONED_AT, "evidence": {},
        **extra,
    }  # fmt: skip


def history(stage: str = "actioned", action: str = "suspend", **extra) -> UserHistory:
    return UserHistory(stage=stage, actioned_at=ACTIONED_AT, actioned_action=action, **extra)


def account(
    email: str = "alice@acme.example", groups: list[dict] | None = None, status: str = "suspended"
) -> dict:
    return {"accountId": ALICE, "email": email, "status": status, "groups": groups or []}


def run(req=None, *, acct=None, hist=None, journal=(), domains=("acme.example",), groups=(), as_of=AS_OF):
    policy = RestorePolicy(allowed_domains=tuple(domains), allowed_groups=tuple(groups))
    return decide(
        req or request(),
        account=acct,
        history=hist,
        journal=list(journal),
        restore_policy=policy,
        as_of=as_of,
    )


@pytest.mark.parametrize(
    ("action", "step"),
    [
        ("suspend", "restore_user"),
        ("deactivate", "enable_user"),
        ("remove_product_access", "add_group_member"),
    ],
)
def test_restore_follows_the_action(action, step):
    decision = run(
        acct=account(groups=[ENG]), hist=history(action=action), journal=[action_entry(action, [ENG, CONF])]
    )
    assert decision.verdict == RESTORE
    assert decision.steps == (step,)
    assert decision.rule == "domain:acme.example"
    assert decision.resolve is True
    if step == "add_group_member":
        # Only what the user had before and lacks now is given back.
        assert decision.groups_to_add == (CONF,)


def test_pending_delete_cancels_then_restores():
    journal = [
        action_entry("suspend", [ENG]),
        {"action": "delete", "outcome": "succeeded", "event": "delete_requested", "cycle": 0,
         "result_at": AS_OF - timedelta(days=3), "before": {"groups": [ENG]}},
    ]  # fmt: skip
    decision = run(acct=account(status="for_deletion"), hist=history(stage="pending_delete"), journal=journal)
    assert decision.verdict == RESTORE
    assert decision.steps == ("cancel_delete", "restore_user")


def test_pending_delete_past_the_grace_is_deleted_for_good():
    journal = [
        action_entry("suspend", [ENG]),
        {"action": "delete", "outcome": "succeeded", "event": "delete_requested", "cycle": 0,
         "result_at": AS_OF - timedelta(days=15)},
    ]  # fmt: skip
    decision = run(acct=account(status="for_deletion"), hist=history(stage="pending_delete"), journal=journal)
    assert decision.verdict == DELETED
    assert decision.resolve is False
    assert "cannot be restored" in decision.comment


def test_deleted_stage_gets_a_clear_answer():
    decision = run(acct=None, hist=history(stage="deleted"))
    assert decision.verdict == DELETED


def test_group_rule_uses_the_groups_before_the_action():
    # Removed from engineering by the cleanup: the live account no longer shows it.
    decision = run(
        acct=account(email="bob@contractor.example", groups=[]),
        hist=history(action="remove_product_access"),
        journal=[action_entry("remove_product_access", [ENG])],
        domains=(),
        groups=("Engineering",),
    )
    assert decision.verdict == RESTORE
    assert decision.rule == "group:Engineering"


def test_subdomains_are_allowed_but_lookalikes_are_not():
    assert (
        run(
            acct=account(email="a@eu.acme.example"), hist=history(), journal=[action_entry("suspend", [])]
        ).verdict
        == RESTORE
    )
    refused = run(
        acct=account(email="a@notacme.example"), hist=history(), journal=[action_entry("suspend", [])]
    )
    assert refused.verdict == REFUSED
    assert refused.resolve is False
    assert "administrator will review" in refused.comment


def test_no_rule_configured_allows_nobody():
    decision = run(
        acct=account(), hist=history(), journal=[action_entry("suspend", [ENG])], domains=(), groups=()
    )
    assert decision.verdict == REFUSED


def test_unknown_or_never_actioned_requesters_are_answered_not_acted_on():
    unknown = run(acct=None, hist=None)
    assert unknown.verdict == NOT_ACTIONED
    assert unknown.steps == ()
    assert unknown.resolve is False
    warned = run(
        acct=account(status="active"),
        hist=UserHistory(stage="warned", warned_at=ACTIONED_AT, last_warned_lead_days=7),
    )
    assert warned.verdict == NOT_ACTIONED
    nobody = run(req=request(reporter=None))
    assert nobody.verdict == NOT_ACTIONED


def test_only_the_reporter_counts_whatever_the_text_says():
    # The request's text names someone else; the decision is about the reporter only.
    req = RestoreRequest(key="ITH-3", reporter_account_id="557058:mallory", reporter_email="m@acme.example",
                         summary=f"Please restore {ALICE}")  # fmt: skip
    decision = run(req=req, acct=None, hist=None)
    assert decision.account_id == "557058:mallory"
    assert decision.verdict == NOT_ACTIONED


def test_already_restored_and_done_earlier():
    restored = history(stage="restored", restored_at=AS_OF - timedelta(days=1))
    assert run(acct=account(status="active"), hist=restored).verdict == ALREADY_RESTORED
    done = {"action": "restore", "outcome": "succeeded", "evidence": {"request_key": "ITH-9"}}
    journal = [action_entry("suspend", [ENG]), done]
    again = run(acct=account(status="active"), hist=restored, journal=journal)
    assert again.verdict == RESTORE
    assert again.done_earlier is True


def test_decisions_round_trip_through_xcom_json():
    decision = run(acct=account(), hist=history(action="remove_product_access"),
                   journal=[action_entry("remove_product_access", [ENG])])  # fmt: skip
    assert decision_from_dict(decision.to_dict()) == decision


def test_request_from_a_jql_issue_reads_the_reporter():
    reporter = {"accountId": "a1", "emailAddress": "a@b.c"}
    issue = {
        "key": "ITH-4",
        "fields": {"summary": "x", "reporter": reporter, "status": {"name": "Waiting for support"}},
    }
    req = request_from_issue(issue)
    assert (req.key, req.reporter_account_id, req.reporter_email, req.status) == (
        "ITH-4", "a1", "a@b.c", "Waiting for support",
    )  # fmt: skip


def test_scoped_claims_survive_the_cycle_the_restore_starts(tmp_path: Path):
    with StateStore(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.record_event(ALICE, "actioned", at=ACTIONED_AT, run_id="daily", action="suspend")
        claim = store.claim(run_id="r1", account_id=ALICE, action="restore", at=AS_OF, scope="jsm:ITH-9")
        assert claim.status == "new"
        store.complete(claim.entry_id, outcome="succeeded", at=AS_OF, event="restored")
        assert cycle_of(store, ALICE) == 1
        # The restore opened a new cycle; the scoped key does not depend on it.
        again = store.claim(run_id="r2", account_id=ALICE, action="restore", at=AS_OF, scope="jsm:ITH-9")
        assert again.status == "done"
        assert again.entry_id == claim.entry_id
        other = store.claim(run_id="r2", account_id=ALICE, action="restore", at=AS_OF, scope="jsm:ITH-10")
        assert other.status == "new"
        # Unscoped keys are unchanged.
        plain = store.claim(run_id="r2", account_id=ALICE, action="restore", at=AS_OF)
        assert plain.idempotency_key.startswith(f'["{ALICE}", 1, "restore"')
        assert store.user_state(ALICE)["stage"] == "restored"
