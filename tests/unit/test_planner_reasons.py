"""The reason sentences: the column-wise wording must equal the row-by-row reference, word for word.

The planner words the frequent rules column-wise (each distinct combination of inputs once; with
``remove_product_access`` each product detail once, joined per user). ``_Reasons._text`` words one
user at a time and is the reference: these tests plan the same orgs both ways and compare, and spell
out the ``remove_product_access`` sentences for hand-made users.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from atlassian_cleanup.decisions import planner
from atlassian_cleanup.decisions.planner import UserHistory, plan_actions, plan_to_records
from atlassian_cleanup.decisions.policy import Policy, policy_from_dict
from atlassian_cleanup.decisions.records import UserRecord, format_timestamp
from tests.unit.test_planner import AS_OF, ago, date_ago, date_in, user

REMOVAL_RULES = {"inactive_product", "final_warning", "notice_period", "warning_window", "already_warned"}


def reference_texts(self: Any) -> np.ndarray:
    """``_Reasons.texts`` with every rule that is not a fixed sentence worded row by row by ``_text``."""
    out = np.array(
        [planner._FIXED_TEXT.get(planner._RULES[code]) for code in self.rule.tolist()], dtype=object
    )
    rows = np.flatnonzero(pd.isna(out))
    out[rows] = planner._objects(self._row_by_row(rows))
    return out


def plan_both_ways(
    users: list[UserRecord], pol: Policy, as_of: datetime, hist: dict[str, UserHistory] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast = plan_actions(users, pol, as_of, history=hist)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(planner._Reasons, "texts", reference_texts)
        reference = plan_actions(users, pol, as_of, history=hist)
    return fast, reference


def stamp(as_of: datetime, rng: random.Random, low: int, high: int) -> str:
    return format_timestamp(as_of - timedelta(days=rng.randint(low, high), seconds=rng.randrange(86_400)))


def generated_org(
    seed: int, as_of: datetime, size: int = 400
) -> tuple[list[UserRecord], dict[str, UserHistory]]:
    """Ordinary users around the thresholds (never-used products, unknown join dates), half warned."""
    rng = random.Random(seed)
    users: list[UserRecord] = []
    history: dict[str, UserHistory] = {}
    for index in range(size):
        products = rng.sample(["jira", "confluence", "jsm", "bitbucket", "jira-software"], rng.randint(0, 4))
        access: dict[str, str | None] = {}
        for product in products:
            roll = rng.random()
            if roll < 0.1:
                access[product] = None  # access, never used
            else:
                access[product] = stamp(as_of, rng, 0, 130) if roll < 0.7 else stamp(as_of, rng, 0, 700)
        seen = [value for value in access.values() if value]
        account_id = f"acc-{index}"
        # Many join dates a day apart: never-used products with equal days but different dates.
        added = rng.choice(
            [None, stamp(as_of, rng, 200, 201), stamp(as_of, rng, 200, 201), stamp(as_of, rng, 0, 1500)]
        )
        users.append(
            UserRecord(
                account_id=account_id,
                account_type=rng.choice(["atlassian"] * 20 + ["app"]),
                name=None,
                # Some addresses hidden by Atlassian: their reasons say what warning.without_email does.
                email=None if index % 6 == 0 else f"user{index}@acme.example",
                email_domain=None if index % 6 == 0 else "acme.example",
                status=rng.choice(["active"] * 12 + ["suspended"]),
                account_status="active",
                membership_status="active",
                claim_status=rng.choice(["managed", "unmanaged"]),
                added_to_org=added,
                platform_roles=[],
                groups=[],
                group_ids=[],
                product_access=access,
                last_active=max(seen) if seen else None,
            )
        )
        if rng.random() < 0.5:
            warned_at = as_of - timedelta(days=rng.randint(0, 20), seconds=rng.randrange(86_400))
            stage = rng.choice(["warned"] * 4 + ["actioned", "active"])
            first = rng.choice([None, warned_at, warned_at - timedelta(days=rng.randint(0, 14))])
            history[account_id] = UserHistory(
                stage=stage,
                warned_at=warned_at,
                first_warned_at=first,
                last_warned_lead_days=rng.choice([1, 3, 7, 14, None]),
                actioned_at=warned_at if stage == "actioned" else None,
                actioned_action="remove_product_access" if stage == "actioned" else None,
            )
    return users, history


POLICIES = [
    {"warning": {"lead_days": [14, 7, 1]}},
    {"warning": {"lead_days": []}, "delete_after_days": 30},
    {
        "warning": {"lead_days": [3]},
        "inactivity": {"default_days": 60, "products": {"confluence": 120, "jsm": 45}},
    },
    {"warning": {"lead_days": [30, 10]}, "inactivity": {"default_days": 40, "products": {"jira": 90}}},
    {"warning": {"lead_days": [14, 7, 1], "min_notice_days": 5, "without_email": "hold"}},
]


@pytest.mark.parametrize("action", ["remove_product_access", "suspend", "deactivate"])
def test_column_wise_reasons_equal_the_row_by_row_reference(action):
    rules: set[str] = set()
    for seed, overrides in enumerate(POLICIES):
        pol = policy_from_dict({**overrides, "action": action})
        as_of = AS_OF + timedelta(hours=7 * seed)  # also a run date that is not midnight
        users, history = generated_org(seed, as_of)
        for hist in (None, history):
            fast, reference = plan_both_ways(users, pol, as_of, hist)
            for row, expected in zip(plan_to_records(fast), plan_to_records(reference), strict=True):
                assert row == expected, (row["rule"], row["reason"], expected["reason"])
            rules.update(fast["rule"])
    if action == "remove_product_access":  # every column-wise removal sentence was checked
        assert not REMOVAL_RULES - rules


def test_remove_product_access_sentences_for_each_rule():
    pol = policy_from_dict(
        {
            "action": "remove_product_access",
            "inactivity": {"default_days": 90, "products": {"confluence": 120}},
        }
    )
    users = [
        user("final", products={"jira": ago(100), "confluence": ago(200), "jsm": ago(5)}),
        user("never", products={"jira": None}, added=None),  # no join date either: nothing known
        user("window", products={"jira": None, "confluence": ago(10)}, added=ago(85)),
        user("two", products={"jira": ago(84), "jsm": ago(84, hours=3), "confluence": ago(1)}),
        user("act", products={"jira": ago(120), "confluence": ago(20)}),
        user("notice", products={"jira": ago(100)}),
        user("warned", products={"jira": ago(85)}),
    ]
    history = {
        "act": UserHistory(stage="warned", warned_at=AS_OF - timedelta(days=14), last_warned_lead_days=1),
        "notice": UserHistory(stage="warned", warned_at=AS_OF - timedelta(hours=5), last_warned_lead_days=1),
        "warned": UserHistory(stage="warned", warned_at=AS_OF - timedelta(days=2), last_warned_lead_days=7),
    }
    expected = {
        "final": (
            "final_warning",
            f"No activity in Confluence for 200 days (threshold 120, last active {date_ago(200)}); no "
            f"activity in Jira for 100 days (threshold 90, last active {date_ago(100)}). Not warned yet: "
            f"sending the 14-day warning; removal of Confluence and Jira access on {date_in(14)} at "
            "the earliest (14 days of notice).",
        ),
        "never": (
            "final_warning",
            "No activity ever recorded in Jira (threshold 90). Not warned yet: sending the 14-day "
            f"warning; removal of Jira access on {date_in(14)} at the earliest (14 days of notice).",
        ),
        # Due in 5 days but never warned: the first warning gives the full 14 days of notice.
        "window": (
            "warning_window",
            f"Removal of Jira access due on {date_in(14)} (in 14 days): no activity in Jira for 85 days "
            f"(threshold 90, never used since joining on {date_ago(85)}). Sending the 14-day warning.",
        ),
        # Days are counted between dates: last active 84 days and 3 hours ago is 85 calendar days.
        "two": (
            "warning_window",
            f"Removal of Jira and Jira Service Management access due on {date_in(14)} (in 14 days): no "
            f"activity in Jira for 84 days (threshold 90, last active {date_ago(84)}); no activity in Jira "
            f"Service Management for 85 days (threshold 90, last active {date_ago(85)}). Sending the "
            "14-day warning.",
        ),
        "act": (
            "inactive_product",
            f"No activity in Jira for 120 days (threshold 90, last active {date_ago(120)}). Removing Jira "
            "access. Keeping Confluence.",
        ),
        "notice": (
            "notice_period",
            f"No activity in Jira for 100 days (threshold 90, last active {date_ago(100)}). First warned "
            f"on {date_ago(1)}; removal of Jira access waits until {date_in(13)} so the user has at least "
            "14 days of notice.",
        ),
        # First warned 2 days ago: the action waits for the 14 days of notice, not the 5 days to go.
        "warned": (
            "already_warned",
            f"7-day warning already sent on {date_ago(2)}; removal of Jira access due on {date_in(12)} (in "
            "12 days).",
        ),
    }
    fast, reference = plan_both_ways(users, pol, AS_OF, history)
    assert fast["reason"].tolist() == reference["reason"].tolist()
    got = {row["account_id"]: (row["rule"], row["reason"]) for row in plan_to_records(fast)}
    assert got == expected
