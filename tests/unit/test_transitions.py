"""The per-user state machine: every allowed edge, forbidden edges, and random event sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlassian_cleanup.actions.transitions import (
    EVENTS,
    InvalidTransition,
    allowed_events,
    apply_event,
    can_apply,
    starts_new_cycle,
)
from atlassian_cleanup.decisions.planner import plan_actions, plan_to_records
from atlassian_cleanup.decisions.policy import Policy
from atlassian_cleanup.decisions.records import UserHistory, UserRecord, format_timestamp
from tests.unit.readme_contract import documented_values

T0 = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
T1 = T0 + timedelta(days=7)

WARNED = UserHistory(stage="warned", warned_at=T0, last_warned_lead_days=14)
ACTIONED = UserHistory(
    stage="actioned", warned_at=T0 - timedelta(days=14), last_warned_lead_days=1, actioned_at=T0,
    actioned_action="suspend",
)  # fmt: skip
REMOVED = UserHistory(stage="actioned", actioned_at=T0, actioned_action="remove_product_access")
PENDING = UserHistory(stage="pending_delete", actioned_at=T0, actioned_action="deactivate")
DELETED = UserHistory(stage="deleted", actioned_at=T0, actioned_action="deactivate")
RESTORED = UserHistory(stage="restored", actioned_at=T0 - timedelta(days=90), actioned_action="suspend",
                       restored_at=T0)  # fmt: skip
ACTIVE = UserHistory()
BY_STAGE = {
    "active": ACTIVE,
    "warned": WARNED,
    "actioned": ACTIONED,
    "pending_delete": PENDING,
    "deleted": DELETED,
    "restored": RESTORED,
}


# --- allowed edges, with the fields each one sets ---------------------------------------------------


#: The edges of the state machine as the module docstring's diagram draws them (event -> from -> to),
#: written out here so the machine is checked against its documentation, not its own table.
DOCUMENTED_EDGES = {
    "warned": {"active": "warned", "restored": "warned", "warned": "warned", "actioned": "warned"},
    "actioned": {"active": "actioned", "warned": "actioned", "restored": "actioned", "actioned": "actioned"},
    "delete_requested": {"actioned": "pending_delete"},
    "deleted": {"pending_delete": "deleted"},
    "delete_cancelled": {"pending_delete": "actioned"},
    "activity_seen": {"warned": "active", "actioned": "active", "restored": "active"},
    "restored": {"actioned": "restored", "pending_delete": "restored"},
}


def invariant_violations(history: UserHistory) -> list[str]:
    """What is wrong with a history, by the rules the planner relies on (empty list: consistent)."""
    problems = []
    if history.stage not in documented_values("stage"):
        problems.append(f"unknown stage {history.stage!r}")
    if history.stage == "warned" and (history.warned_at is None or history.last_warned_lead_days is None):
        problems.append("stage warned without warned_at / last_warned_lead_days")
    if history.stage in ("actioned", "pending_delete", "deleted") and (
        history.actioned_at is None
        or history.actioned_action not in ("suspend", "deactivate", "remove_product_access")
    ):
        problems.append(f"stage {history.stage} without actioned_at / actioned_action")
    if history.stage in ("active", "restored") and (
        history.warned_at is not None or history.last_warned_lead_days is not None
    ):
        problems.append(f"stage {history.stage} still carries a warning")
    if history.stage == "restored" and history.restored_at is None:
        problems.append("stage restored without restored_at")
    return problems


def test_every_documented_edge_and_only_those_are_allowed():
    for stage in documented_values("stage"):
        assert set(allowed_events(stage)) == {e for e, edges in DOCUMENTED_EDGES.items() if stage in edges}


def test_first_warning_of_a_new_user():
    after = apply_event(None, "warned", T1, lead_days=14)
    assert after == UserHistory(stage="warned", warned_at=T1, last_warned_lead_days=14, first_warned_at=T1)


def test_warning_after_restore_keeps_the_restore_record():
    after = apply_event(RESTORED, "warned", T1, lead_days=7)
    assert (after.stage, after.warned_at, after.last_warned_lead_days) == ("warned", T1, 7)
    assert after.restored_at == RESTORED.restored_at
    assert after.actioned_at == RESTORED.actioned_at


def test_a_tighter_warning_keeps_the_smallest_bucket_and_the_latest_time():
    after = apply_event(WARNED, "warned", T1, lead_days=7)
    assert (after.stage, after.last_warned_lead_days, after.warned_at) == ("warned", 7, T1)
    # A wider bucket (a late retry of an old warning) never loosens what was already sent.
    again = apply_event(after, "warned", T1 + timedelta(days=1), lead_days=14)
    assert again.last_warned_lead_days == 7


def test_the_notice_clock_starts_at_the_first_warning_of_a_cycle():
    first = apply_event(None, "warned", T1, lead_days=14)
    later = apply_event(first, "warned", T1 + timedelta(days=7), lead_days=7)
    assert (later.first_warned_at, later.warned_at) == (T1, T1 + timedelta(days=7))
    back = apply_event(later, "activity_seen", T1 + timedelta(days=8))
    assert back.first_warned_at is None
    again = apply_event(back, "warned", T1 + timedelta(days=90), lead_days=14)
    assert again.first_warned_at == T1 + timedelta(days=90)


@pytest.mark.parametrize("start", ["active", "warned", "restored"])
@pytest.mark.parametrize("action", ["suspend", "deactivate", "remove_product_access"])
def test_action_from_active_warned_and_restored(start: str, action: str):
    before = BY_STAGE[start]
    after = apply_event(before, "actioned", T1, action=action)
    assert (after.stage, after.actioned_at, after.actioned_action) == ("actioned", T1, action)
    # The warning that led to the action stays: the planner measures returns from it.
    assert after.warned_at == before.warned_at
    assert after.last_warned_lead_days == before.last_warned_lead_days
    assert after.restored_at == before.restored_at


def test_product_by_product_removal_may_continue_from_actioned():
    after = apply_event(REMOVED, "actioned", T1, action="remove_product_access", products=["jira"])
    assert (after.stage, after.actioned_at) == ("actioned", T1)
    warned = apply_event(REMOVED, "warned", T1, lead_days=7, products=["jira"])
    assert (warned.stage, warned.last_warned_lead_days, warned.actioned_at) == ("warned", 7, T0)


def test_deletion_lifecycle():
    pending = apply_event(ACTIONED, "delete_requested", T1)
    assert pending == UserHistory(
        **{
            **ACTIONED.__dict__,
            "stage": "pending_delete",
            "delete_requested_at": T1,
            "deletion_kind": "delete",
        }
    )
    cancelled = apply_event(pending, "delete_cancelled", T1 + timedelta(days=2))
    assert cancelled.stage == "actioned"
    assert cancelled.actioned_at == T0  # still the time of our action: the delete clock is not reset
    deleted = apply_event(pending, "deleted", T1 + timedelta(days=14))
    assert (deleted.stage, deleted.deletion_kind) == ("deleted", "delete")
    # Final at the very moment it was requested: a removal from the directory, no grace.
    removed = apply_event(pending, "deleted", T1)
    assert (removed.stage, removed.deletion_kind) == ("deleted", "remove_from_directory")
    assert allowed_events("deleted") == ()


@pytest.mark.parametrize("start", ["warned", "actioned", "restored"])
def test_activity_resets_to_active_and_clears_the_warning(start: str):
    before = BY_STAGE[start]
    after = apply_event(before, "activity_seen", T1)
    assert after.stage == "active"
    assert after.warned_at is None
    assert after.last_warned_lead_days is None
    assert (after.actioned_at, after.actioned_action, after.restored_at) == (
        before.actioned_at,
        before.actioned_action,
        before.restored_at,
    )


@pytest.mark.parametrize("start", ["actioned", "pending_delete"])
def test_restore(start: str):
    after = apply_event(BY_STAGE[start], "restored", T1)
    assert (after.stage, after.restored_at) == ("restored", T1)
    assert (after.warned_at, after.last_warned_lead_days) == (None, None)
    assert after.actioned_at == T0


def test_time_is_normalised_to_utc():
    cet = timezone(timedelta(hours=2))
    after = apply_event(None, "warned", datetime(2026, 6, 1, 11, 30, tzinfo=cet), lead_days=1)
    assert after.warned_at == T0
    assert after.warned_at.tzinfo == UTC


# --- forbidden edges --------------------------------------------------------------------------------

FORBIDDEN = [
    ("active", "delete_requested", {}),
    ("active", "deleted", {}),
    ("active", "activity_seen", {}),
    ("active", "restored", {}),
    ("active", "delete_cancelled", {}),
    ("warned", "delete_requested", {}),
    ("warned", "restored", {}),
    ("actioned", "actioned", {"action": "suspend"}),  # never suspended twice
    ("actioned", "warned", {"lead_days": 7}),  # suspended users are not warned again
    ("actioned", "deleted", {}),  # deletion only through Atlassian's grace
    ("pending_delete", "warned", {"lead_days": 7}),
    ("pending_delete", "actioned", {"action": "suspend"}),
    ("pending_delete", "activity_seen", {}),
    ("pending_delete", "delete_requested", {}),
    ("restored", "delete_requested", {}),
    ("restored", "restored", {}),
    *[
        ("deleted", event, {})
        for event in ("delete_requested", "deleted", "delete_cancelled", "activity_seen")
    ],
    ("deleted", "restored", {}),
    ("deleted", "warned", {"lead_days": 7}),
]


@pytest.mark.parametrize(("stage", "event", "data"), FORBIDDEN)
def test_forbidden_transitions_raise_with_a_clear_message(stage: str, event: str, data: dict[str, Any]):
    with pytest.raises(InvalidTransition, match=f"'{event}' is not allowed from stage '{stage}'") as info:
        apply_event(BY_STAGE[stage], event, T1, **data)
    assert isinstance(info.value, ValueError)
    assert (info.value.stage, info.value.event) == (stage, event)
    assert not can_apply(BY_STAGE[stage], event, **data)


def test_a_partial_removal_may_not_turn_into_a_suspension():
    with pytest.raises(InvalidTransition, match="only a further remove_product_access"):
        apply_event(REMOVED, "actioned", T1, action="suspend")


@pytest.mark.parametrize(
    ("event", "data", "error", "match"),
    [
        ("warned", {}, ValueError, "lead_days"),
        ("warned", {"lead_days": 0}, ValueError, "lead_days"),
        ("warned", {"lead_days": True}, ValueError, "lead_days"),
        ("actioned", {"action": "delete"}, ValueError, "action in"),
        ("actioned", {"action": "suspend", "products": "jira"}, TypeError, "products"),
        ("activity_seen", {"lead_days": 3}, TypeError, "takes no data"),
        ("vanished", {}, ValueError, "unknown event"),
    ],
)
def test_bad_event_data_is_rejected(event: str, data: dict[str, Any], error: type, match: str):
    start = ACTIVE if event != "activity_seen" else WARNED
    with pytest.raises(error, match=match):
        apply_event(start, event, T1, **data)


def test_naive_time_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_event(None, "warned", datetime(2026, 6, 1), lead_days=7)


def test_cycles_and_lookup_helpers():
    assert [event for event in EVENTS if starts_new_cycle(event)] == ["activity_seen", "restored"]
    assert set(allowed_events("active")) == {"warned", "actioned"}
    with pytest.raises(ValueError, match="unknown event"):
        starts_new_cycle("nope")


# --- random sequences -------------------------------------------------------------------------------

EVENT_STEPS = st.one_of(
    st.tuples(st.just("warned"), st.fixed_dictionaries({"lead_days": st.sampled_from([1, 7, 14])})),
    st.tuples(
        st.just("actioned"),
        st.fixed_dictionaries(
            {"action": st.sampled_from(["suspend", "deactivate", "remove_product_access"])}
        ),
    ),
    *[st.tuples(st.just(event), st.just({})) for event in EVENTS if event not in ("warned", "actioned")],
)


def _user(account_id: str, last_active: datetime | None) -> UserRecord:
    stamp = format_timestamp(last_active)
    return UserRecord(
        account_id=account_id,
        account_type="atlassian",
        name="Zoë",
        email=None,
        email_domain=None,
        status="active",
        account_status="active",
        membership_status="active",
        claim_status="managed",
        added_to_org="2020-01-01T00:00:00Z",
        platform_roles=[],
        groups=[],
        group_ids=[],
        product_access={"jira": stamp},
        last_active=stamp,
    )


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(EVENT_STEPS, st.integers(0, 40)), max_size=12), quiet=st.booleans())
def test_random_event_sequences_keep_the_history_consistent(steps: list, quiet: bool):
    history: UserHistory | None = None
    at = T0
    accepted = 0
    for (event, data), gap in steps:
        at = at + timedelta(days=gap)
        before = history
        stage = (before or ACTIVE).stage
        try:
            after = apply_event(before, event, at, **data)
        except InvalidTransition:
            # Only the data-dependent edges (after a product removal) may refuse a listed event.
            assert event not in allowed_events(stage) or (stage, event) in (
                ("actioned", "warned"),
                ("actioned", "actioned"),
            )
            continue
        accepted += 1
        assert after.stage in documented_values("stage")
        assert after.stage == DOCUMENTED_EDGES[event][stage]
        assert invariant_violations(after) == []
        if event == "warned":
            assert after.warned_at == at
            assert after.last_warned_lead_days <= data["lead_days"]
        if stage == "deleted":
            pytest.fail("an event was accepted after deletion")
        history = after

    # The planner accepts every history the machine can produce, and never proposes to delete a
    # user we have not actioned, nor warns someone the history shows as deleted or pending deletion.
    as_of = at + timedelta(days=1)
    last_active = T0 - timedelta(days=400) if quiet else as_of - timedelta(days=1)
    final = history or ACTIVE
    row = plan_to_records(plan_actions([_user("u1", last_active)], Policy(), as_of, history={"u1": final}))[0]
    assert row["stage"] == final.stage
    if row["proposed_action"] == "delete":
        assert final.stage == "actioned"
    if final.stage in ("deleted", "pending_delete"):
        assert row["proposed_action"] == "none"
    assert accepted <= len(steps)
