"""The review queue, live: with review on, nobody's first action happens until an admin decides;
an approve goes ahead on the next run, a keep protects until its last day, and the audit says who."""

# The org fixture is imported by name, and pytest passes it as an argument of the same name.
# ruff: noqa: F811

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import AS_OF
from tests.integration.test_live_lifecycle import DAY0, LiveOrg, _states, _successful
from tests.integration.test_scoped_rules_live import _audit_rows, org  # noqa: F401 - fixture used by name

pytestmark = pytest.mark.integration


def _reviews():
    from atlassian_cleanup.operators.cleanup import state_store_url
    from atlassian_cleanup.review.store import ReviewStore

    return ReviewStore(state_store_url("atlassian_cleanup_state"))


def _suspends(calls) -> list[str]:
    return [c["account_id"] for c in _successful(calls) if c["path"].endswith("/suspend")]


def test_first_actions_wait_for_an_admin_and_follow_the_decisions(org: LiveOrg):
    org.write_policy(warning={"lead_days": []}, review=True)

    # Day 0: everyone due waits in the queue; Atlassian is not written to.
    seq = org.last_seq()
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    assert _successful(org.write_calls(seq)) == []
    rows = _audit_rows()
    waiting = sorted(a for a, r in rows.items() if r["rule"] == "awaiting_review")
    assert len(waiting) >= 4, "the seed has users due for suspension"
    assert {rows[a]["review_decision"] for a in waiting} == {"awaiting"}
    assert {rows[a]["proposed_action"] for a in waiting} == {"none"}
    assert {rows[a]["planned_action"] for a in waiting} <= {"suspend"}
    with _reviews() as reviews:
        pending = {p.account_id: p for p in reviews.pending()}
        assert sorted(pending) == waiting
        # The evidence an admin decides on came with the queue.
        first = pending[waiting[0]]
        assert first.action == "suspend"
        assert first.reason == rows[waiting[0]]["reason"]
        assert first.products
        # An admin keeps one person and approves two (as the review view does).
        kept, approved = waiting[0], waiting[1:3]
        at = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 15, tzinfo=UTC)
        keep_until = AS_OF + timedelta(days=10)
        reviews.decide([kept], decision="keep", reason="back from leave in January", decided_by="alice",
                       decided_at=at, keep_until=keep_until)  # fmt: skip
        reviews.decide(
            approved, decision="approve", reason="left the company", decided_by="bob", decided_at=at
        )

    # Day 1: exactly the approved two are suspended; the kept one is protected, the rest still wait.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    assert sorted(_suspends(org.write_calls(seq))) == sorted(approved)
    rows = _audit_rows()
    for account_id in approved:
        assert rows[account_id]["proposed_action"] == "suspend"
        assert rows[account_id]["result"] == "done"
        assert (rows[account_id]["review_decision"], rows[account_id]["review_by"]) == ("approve", "bob")
        assert rows[account_id]["review_reason"] == "left the company"
    kept_row = rows[kept]
    assert kept_row["rule"] == "kept_in_review"
    assert kept_row["protected_by"] == "review_keep:alice"
    assert (kept_row["review_decision"], kept_row["keep_until"]) == ("keep", keep_until.isoformat())
    assert "kept by alice" in kept_row["reason"]
    assert {rows[a]["rule"] for a in waiting[3:]} == {"awaiting_review"}

    # Day 2: the approved are done (out of the queue); nothing is written again.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(2)
    assert str(run.state) == "success", _states(run)
    assert _suspends(org.write_calls(seq)) == []
    with _reviews() as reviews:
        queued = {p.account_id for p in reviews.queued()}
    assert not queued & set(approved)
    assert kept not in queued
    assert set(waiting[3:]) <= queued

    # After the keep's last day the kept user waits for a decision again; still no write.
    days = (keep_until - (DAY0.date())).days + 1
    org.advance_clock(days - 2)
    seq = org.last_seq()
    run = org.run(days)
    assert str(run.state) == "success", _states(run)
    assert kept not in _suspends(org.write_calls(seq))
    assert _audit_rows()[kept]["rule"] == "awaiting_review"


def test_dry_run_shows_the_decisions_but_queues_nobody(org: LiveOrg):
    org.write_policy(warning={"lead_days": []}, review=True, dry_run=True)
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    rows = _audit_rows()
    assert any(r["rule"] == "awaiting_review" for r in rows.values())
    with _reviews() as reviews:
        assert reviews.queued() == []
