"""Safety gates: caps per action kind and in total, and the input sanity checks."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from atlassian_cleanup.decisions.gates import (
    CAP_KINDS,
    StoreWitness,
    cap_plausibility_warnings,
    check_caps,
    memory_problems,
    missing_activity_share,
    plausibility_warnings,
    sanity_problems,
)
from atlassian_cleanup.decisions.policy import Policy, policy_from_dict


def policy(**safety: Any) -> Policy:
    return policy_from_dict({"safety": safety})


def rows(**counts: int) -> list[dict[str, Any]]:
    out = []
    for action, count in counts.items():
        out += [{"account_id": f"{action}-{i}", "proposed_action": action} for i in range(count)]
    return out


# --------------------------------------------------------------------------------------------------
# Caps
# --------------------------------------------------------------------------------------------------


def test_counts_every_write_kind_and_ignores_warnings() -> None:
    decision = check_caps(
        rows(suspend=3, delete=2, warn=40, none=100), user_count=1000, policy=policy(max_actions_per_run=50)
    )
    assert decision.counts == {"suspend": 3, "deactivate": 0, "remove_product_access": 0, "delete": 2}
    assert tuple(decision.counts) == CAP_KINDS
    assert decision.total == 5
    assert not decision.exceeded
    assert decision.over == []


def test_count_cap_per_kind() -> None:
    decision = check_caps(
        rows(suspend=11, delete=1),
        user_count=10_000,
        policy=policy(max_actions_per_run=10, max_action_share=0.5),
    )
    assert decision.exceeded
    assert decision.over == ["suspend", "total"]
    assert any(line.startswith("suspend: 11 planned, more than the cap of 10") for line in decision.lines)
    assert "approve" in decision.lines[-1]


def test_total_cap_applies_when_every_kind_is_within() -> None:
    decision = check_caps(
        rows(suspend=6, deactivate=6),
        user_count=10_000,
        policy=policy(max_actions_per_run=10, max_action_share=0.5),
    )
    assert decision.exceeded
    assert decision.over == ["total"]
    assert any(line.startswith("all writes together: 12 planned") for line in decision.lines)


def test_share_cap_can_be_tighter_than_the_count_cap() -> None:
    decision = check_caps(
        rows(remove_product_access=11),
        user_count=100,
        policy=policy(max_actions_per_run=50, max_action_share=0.1),
    )
    assert decision.exceeded
    assert decision.over == ["remove_product_access", "total"]
    assert decision.limits["share_limit"] == pytest.approx(10.0)
    assert decision.limits["effective"] == 10
    assert "10% of the 100 users" in decision.lines[0]


@pytest.mark.parametrize(
    ("count", "max_count", "share", "users"),
    [
        (10, 10, 1.0, 1000),  # exactly at the count cap
        (10, 50, 0.1, 100),  # exactly at the share cap
    ],
)
def test_exactly_at_the_limit_is_not_exceeded(count: int, max_count: int, share: float, users: int) -> None:
    decision = check_caps(
        rows(suspend=count),
        user_count=users,
        policy=policy(max_actions_per_run=max_count, max_action_share=share),
    )
    assert not decision.exceeded
    over = check_caps(
        rows(suspend=count + 1),
        user_count=users,
        policy=policy(max_actions_per_run=max_count, max_action_share=share),
    )
    assert over.exceeded


def test_accepts_a_plan_dataframe_and_serialises_to_json() -> None:
    frame = pd.DataFrame(rows(suspend=2, warn=1))
    decision = check_caps(frame, user_count=100, policy=policy())
    assert decision.counts["suspend"] == 2
    assert decision.total == 2
    assert json.loads(json.dumps(decision.to_dict())) == decision.to_dict()
    assert decision.to_dict()["limits"]["max_actions_per_run"] == 50


def test_no_writes() -> None:
    decision = check_caps(rows(warn=3), user_count=0, policy=policy())
    assert not decision.exceeded
    assert decision.total == 0
    assert decision.lines == ["No writes planned."]


# --------------------------------------------------------------------------------------------------
# Sanity
# --------------------------------------------------------------------------------------------------


def test_collapsed_user_count_is_a_problem() -> None:
    problems = sanity_problems(
        user_count=400, previous_user_count=1000, missing_activity_share=0.1, policy=policy()
    )
    assert len(problems) == 1
    assert "400 users" in problems[0]
    assert "1000" in problems[0]
    assert "50%" in problems[0]
    assert "org_id" in problems[0]


def test_a_back_fill_is_named_but_never_counted() -> None:
    # The directory listed 28 of the 300 it listed last time; Jira's list filled the rest back.
    problems = sanity_problems(
        user_count=28, previous_user_count=300, missing_activity_share=0.0, policy=policy(), back_filled=272
    )
    assert len(problems) == 1
    assert "directory listed 28 users" in problems[0]
    assert "added 272 accounts" in problems[0]


def test_user_count_at_the_ratio_is_fine() -> None:
    assert (
        sanity_problems(user_count=500, previous_user_count=1000, missing_activity_share=0.0, policy=policy())
        == []
    )


def test_first_run_and_disabled_ratio_skip_the_collapse_check() -> None:
    assert (
        sanity_problems(user_count=1, previous_user_count=None, missing_activity_share=0, policy=policy())
        == []
    )
    disabled = policy(min_user_count_ratio=0)
    assert (
        sanity_problems(user_count=1, previous_user_count=1000, missing_activity_share=0, policy=disabled)
        == []
    )


def test_missing_activity_data_is_a_problem() -> None:
    problems = sanity_problems(
        user_count=1000,
        previous_user_count=1000,
        missing_activity_share=0.95,
        policy=policy(max_missing_activity_share=0.9),
    )
    assert len(problems) == 1
    assert "95%" in problems[0]
    assert "productAccess" in problems[0]
    both = sanity_problems(
        user_count=10, previous_user_count=1000, missing_activity_share=0.95, policy=policy()
    )
    assert len(both) == 2


def test_missing_activity_check_disabled_at_one() -> None:
    assert (
        sanity_problems(
            user_count=10,
            previous_user_count=None,
            missing_activity_share=1.0,
            policy=policy(max_missing_activity_share=1.0),
        )
        == []
    )


def test_missing_activity_share_counts_active_atlassian_accounts_only() -> None:
    users = [
        {"account_type": "atlassian", "status": "active", "last_active": "2026-01-01T00:00:00Z"},
        {
            "account_type": "atlassian",
            "status": "active",
            "last_active": None,
            "product_access": {"jira": None},
        },
        {"account_type": "atlassian", "status": "active", "last_active": None, "product_access": {}},
        {
            "account_type": "atlassian",
            "status": "active",
            "product_access": {"confluence": "2026-01-01T00:00:00Z"},
        },
        {"account_type": "app", "status": "active", "last_active": None},
        {"account_type": "atlassian", "status": "suspended", "last_active": None},
    ]
    assert missing_activity_share(users) == pytest.approx(0.5)
    assert missing_activity_share([]) == 0.0


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------

STORE_A = "0b7c3a52-5b1e-4a49-9b8f-6c3f2f1d0a11"
STORE_B = "9e3f1c77-2d4a-4f0e-8c61-5a2b7d9e4c22"
LAST_LIVE = "scheduled__2026-11-25T00:00:00+00:00"


def witness(store_id: str = STORE_A, run_id: str = LAST_LIVE) -> StoreWitness:
    return StoreWitness(run_id=run_id, store_id=store_id, source="Airflow Variable x")


@pytest.mark.parametrize(
    ("store_id", "known_runs", "seen", "expected"),
    [
        # No live run was ever witnessed: a new install, or dry runs only.
        (STORE_A, set(), None, None),
        # The same store, remembering the last live run.
        (STORE_A, {LAST_LIVE}, witness(), None),
        # Deleted / truncated / recreated: a new identity (and no runs).
        (STORE_B, set(), witness(), "is not the one the last live run"),
        # Another store that happens to know the run id (a copy made before a swap): still refused.
        (STORE_B, {LAST_LIVE}, witness(), "is not the one the last live run"),
        # Same identity but the run is missing: an older backup, or rows removed.
        (STORE_A, {"scheduled__2026-11-20T00:00:00+00:00"}, witness(), "has no record of the last live run"),
    ],
    ids=["never-live", "intact", "new-store", "other-store", "rolled-back"],
)
def test_memory_problems(store_id, known_runs, seen, expected) -> None:
    problems = memory_problems(store_id=store_id, store_knows_run=known_runs.__contains__, witness=seen)
    if expected is None:
        assert problems == []
        return
    assert len(problems) == 1
    assert expected in problems[0]
    # Every message says how to restore and how to acknowledge a fresh start.
    assert "Restore the state database" in problems[0]
    assert "acknowledge_new_state_store" in problems[0]
    assert LAST_LIVE in problems[0]


# --------------------------------------------------------------------------------------------------
# Plausibility of the caps
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_actions", "share", "users", "warned"),
    [
        (50, 0.1, 300, False),  # the defaults: 30 of 300
        (1000, 0.6, 100, True),  # 60 of 100
        (1000, 0.5, 100, False),  # exactly half: allowed without a warning
        (51, 1.0, 100, True),  # the count cap alone allows 51 of 100
        (50, 1.0, 100, False),
        (1000, 0.6, 0, False),  # an empty org: nothing to compare with
    ],
)
def test_caps_allowing_more_than_half_the_org_warn(max_actions, share, users, warned):
    pol = policy(max_actions_per_run=max_actions, max_action_share=share)
    found = cap_plausibility_warnings(pol, user_count=users)
    assert bool(found) is warned
    if warned:
        allowed = min(max_actions, int(share * users))
        assert found[0].startswith(f"safety caps: one run may action up to {allowed} of the {users} users")


def test_all_plausibility_warnings_of_a_run():
    pol = policy_from_dict({"safety": {"max_actions_per_run": 1000, "max_action_share": 1}})
    found = plausibility_warnings(pol, user_count=10)
    assert [w.split(":")[0] for w in found] == ["protected", "safety caps"]
