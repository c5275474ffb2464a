"""The review queue's store: all-or-nothing decisions, the latest one counts, keeps expire,
approves belong to one stretch in the queue, and an existing state database gains the tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.decisions.reviews import PendingReview
from atlassian_cleanup.review.store import ReviewNotReady, ReviewStore

DAY = date(2026, 12, 1)
NOON = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _entry(account_id: str, rule: str = "default") -> PendingReview:
    return PendingReview(
        account_id=account_id,
        email=f"{account_id}@acme.example",
        display_name=account_id.upper(),
        rule=rule,
        action="suspend",
        reason="inactive for 120 days",
        products=("jira",),
        last_active={"jira": "2026-08-01"},
        due_on=DAY,
    )


@pytest.fixture
def reviews(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).close()  # the state store's migration creates the review tables
    with ReviewStore(url) as store:
        yield store


def test_a_fresh_database_has_no_queue_and_refuses_decisions(tmp_path):
    with ReviewStore(f"sqlite:///{tmp_path / 'none.db'}") as store:
        assert store.pending() == []
        assert store.decisions_in_force(DAY) == {}
        with pytest.raises(ReviewNotReady, match="no live cleanup run"):
            store.decide(["a1"], decision="approve", reason="ok", decided_by="ann", decided_at=NOON)


def test_an_existing_state_database_gains_the_review_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    StateStore(url, schema_version=2).close()
    assert not ReviewStore(url).ready()
    with StateStore(url) as upgraded:
        assert upgraded.schema_version() == 3
    with ReviewStore(url) as store:
        store.queue_pending([_entry("a1")], run_id="r1", as_of=DAY)
        assert [p.account_id for p in store.pending()] == ["a1"]


def test_a_batch_with_one_problem_stores_nothing_and_names_every_problem(reviews):
    reviews.queue_pending([_entry("a1"), _entry("a2")], run_id="r1", as_of=DAY)
    with pytest.raises(ValueError, match="nothing was stored") as raised:
        reviews.decide(["a1", "ghost"], decision="keep", reason=" ", decided_by="ann", decided_at=NOON)
    message = str(raised.value)
    assert "ghost" in message
    assert "give a reason" in message
    assert "needs an expiry date" in message
    assert reviews.recent_decisions() == []
    assert {p.account_id for p in reviews.pending()} == {"a1", "a2"}


@pytest.mark.parametrize(
    ("decision", "keep_until", "problem"),
    [
        ("keep", DAY, "not after today"),
        ("keep", DAY + timedelta(days=400), "more than 366 days"),
        ("approve", DAY + timedelta(days=5), "an approve has no expiry"),
        ("delete", None, "decision must be one of"),
    ],
)
def test_bad_decisions_are_refused(reviews, decision, keep_until, problem):
    reviews.queue_pending([_entry("a1")], run_id="r1", as_of=DAY)
    with pytest.raises(ValueError, match=problem):
        reviews.decide(
            ["a1"], decision=decision, reason="why", decided_by="ann", decided_at=NOON, keep_until=keep_until
        )


def test_a_keep_counts_until_its_last_day_and_leaves_the_pending_list(reviews):
    reviews.queue_pending([_entry("a1"), _entry("a2")], run_id="r1", as_of=DAY)
    until = DAY + timedelta(days=30)
    reviews.decide(
        ["a1"],
        decision="keep",
        reason="on parental leave",
        decided_by="ann",
        decided_at=NOON,
        keep_until=until,
    )
    assert [p.account_id for p in reviews.pending()] == ["a2"]
    assert reviews.decisions_in_force(until)["a1"].decided_by == "ann"
    assert "a1" not in reviews.decisions_in_force(until + timedelta(days=1))


def test_the_latest_decision_counts(reviews):
    reviews.queue_pending([_entry("a1")], run_id="r1", as_of=DAY)
    reviews.decide(
        ["a1"],
        decision="keep",
        reason="leave",
        decided_by="ann",
        decided_at=NOON,
        keep_until=DAY + timedelta(9),
    )
    reviews.decide(["a1"], decision="approve", reason="left the company", decided_by="bob", decided_at=NOON)
    force = reviews.decisions_in_force(DAY)
    assert (force["a1"].decision, force["a1"].decided_by) == ("approve", "bob")
    assert [d.decided_by for d in reviews.recent_decisions()] == ["bob", "ann"]


def test_an_approve_belongs_to_its_stretch_in_the_queue(reviews):
    reviews.queue_pending([_entry("a1")], run_id="r1", as_of=DAY)
    reviews.decide(["a1"], decision="approve", reason="gone", decided_by="ann", decided_at=NOON)
    # Still queued on later runs (e.g. the action failed): the approve still counts.
    reviews.queue_pending([_entry("a1")], run_id="r2", as_of=DAY + timedelta(days=1))
    assert "a1" in reviews.decisions_in_force(DAY + timedelta(days=1))
    # Active again: out of the queue; inactive again months later: a new stretch needs a new decision.
    reviews.queue_pending([], run_id="r3", as_of=DAY + timedelta(days=2))
    assert reviews.decisions_in_force(DAY + timedelta(days=2)) == {}
    later = DAY + timedelta(days=120)
    reviews.queue_pending([_entry("a1")], run_id="r4", as_of=later)
    assert reviews.decisions_in_force(later) == {}
    assert [p.account_id for p in reviews.pending()] == ["a1"]
    assert reviews.queued()[0].queued_on == later


def test_filters(reviews):
    reviews.queue_pending([_entry("ann"), _entry("bob", rule="contractors")], run_id="r1", as_of=DAY)
    assert [p.account_id for p in reviews.pending(rule="contractors")] == ["bob"]
    assert [p.account_id for p in reviews.pending(search="ANN@acme")] == ["ann"]


def test_decisions_are_kept_in_the_state_database(reviews, tmp_path):
    reviews.queue_pending([_entry("a1")], run_id="r1", as_of=DAY)
    reviews.decide(["a1"], decision="approve", reason="gone", decided_by="ann", decided_at=NOON)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT account_id, decision, decided_by FROM acu_review_decisions")
        ).all()
    assert stored == [("a1", "approve", "ann")]
