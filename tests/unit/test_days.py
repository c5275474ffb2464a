"""Days that match the dates: the day count in the plan, its reason, the warning e-mail and the
audit CSV is the number of calendar days between the UTC date of the last activity and the run's
date, whatever the time of day of either (README, "How users are judged")."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlassian_cleanup.actions.notifications import render_warning
from atlassian_cleanup.days import calendar_days, days_between
from atlassian_cleanup.decisions.planner import UserHistory, plan_actions, plan_to_records
from atlassian_cleanup.decisions.policy import policy_from_dict
from atlassian_cleanup.decisions.records import UserRecord, format_timestamp
from atlassian_cleanup.reports.audit import write_audit

RUN_DATE = datetime(2026, 11, 27, tzinfo=UTC)
LAST_ACTIVE_DATE = datetime(2026, 8, 29, tzinfo=UTC)  # 90 days before 2026-11-27 on the calendar
TIMES = [timedelta(0), timedelta(hours=12), timedelta(hours=23, minutes=59)]


def record(last_active: datetime, account_id: str = "u1", added: datetime | None = None) -> UserRecord:
    stamp = format_timestamp(last_active)
    return UserRecord(
        account_id=account_id, account_type="atlassian", name="Ada Lovelace", email="ada@acme.example",
        email_domain="acme.example", status="active", account_status="active", membership_status="active",
        claim_status="managed", added_to_org=format_timestamp(added or datetime(2024, 1, 1, tzinfo=UTC)),
        platform_roles=[], groups=[], group_ids=[], product_access={"jira": stamp}, last_active=stamp,
        time_zone=None,
    )  # fmt: skip


@pytest.mark.parametrize("run_time", TIMES, ids=["run-00:00", "run-12:00", "run-23:59"])
@pytest.mark.parametrize("active_time", TIMES, ids=["active-00:00", "active-12:00", "active-23:59"])
def test_the_boundary_day_counts_90_days_at_any_time(run_time, active_time, tmp_path: Path):
    as_of = RUN_DATE + run_time
    last = LAST_ACTIVE_DATE + active_time
    assert (as_of.date() - last.date()).days == 90  # the oracle: counting the dates
    pol = policy_from_dict({"inactivity": {"default_days": 90}, "warning": {"lead_days": [14, 7, 1]}})
    # Warned (first warning) 14 days ago: the 90-day threshold is reached, so the user is actioned.
    first, latest = RUN_DATE - timedelta(days=14), RUN_DATE - timedelta(days=1)
    history = {
        "u1": UserHistory(stage="warned", warned_at=latest, first_warned_at=first, last_warned_lead_days=1)
    }
    (row,) = plan_to_records(plan_actions([record(last)], pol, as_of, history=history))
    assert row["days_inactive"] == 90
    assert row["proposed_action"] == "suspend"
    assert "No activity in Jira for 90 days (threshold 90); last active 2026-08-29 in Jira." in row["reason"]

    # One day less inactive: not due yet, and the count says 89 at any time of day too.
    (early,) = plan_to_records(plan_actions([record(last + timedelta(days=1))], pol, as_of))
    assert early["days_inactive"] == 89
    assert early["proposed_action"] == "warn"  # in the warning window

    # The warning e-mail words the same number with the same date.
    (warn,) = plan_to_records(plan_actions([record(last)], pol, as_of))
    assert warn["days_inactive"] == 90
    _subject, _html, text = render_warning(warn)
    assert (
        "you have not used any Atlassian product for 90 days (last activity on Saturday 29 August 2026)"
        in text
    )

    # And the audit CSV.
    manifest = write_audit([row], tmp_path, run_id="r", as_of=as_of.date().isoformat(), mode="live")
    with open(manifest.csv_path, encoding="utf-8", newline="") as handle:
        (written,) = list(csv.DictReader(handle))
    assert (written["days_inactive"], written["as_of"]) == ("90", "2026-11-27")


@pytest.mark.parametrize("run_time", TIMES)
def test_grace_periods_and_deletion_count_dates_too(run_time):
    as_of = RUN_DATE + run_time
    pol = policy_from_dict(
        {
            "new_user_grace_days": 30,
            "delete_after_days": 30,
            "delete_notice_days": 0,
            "warning": {"lead_days": []},
        }
    )
    # Added 30 dates before the run, late in the day: the 30-day grace is over.
    joined = record(
        LAST_ACTIVE_DATE, "new", added=RUN_DATE - timedelta(days=30) + timedelta(hours=23, minutes=59)
    )
    (row,) = plan_to_records(plan_actions([joined], pol, as_of))
    assert row["rule"] != "new_user_grace"
    joined = record(LAST_ACTIVE_DATE, "new", added=RUN_DATE - timedelta(days=29))
    (row,) = plan_to_records(plan_actions([joined], pol, as_of))
    assert row["rule"] == "new_user_grace"
    assert "(29 days ago)" in row["reason"]
    # Suspended by this tool 30 dates ago at 23:59: proposed for deletion today.
    suspended = {**record(LAST_ACTIVE_DATE - timedelta(days=100), "s"), "status": "suspended"}
    acted = RUN_DATE - timedelta(days=30) + timedelta(hours=23, minutes=59)
    history = {"s": UserHistory(stage="actioned", actioned_at=acted, actioned_action="suspend")}
    (row,) = plan_to_records(plan_actions([suspended], pol, as_of, history=history))
    assert row["proposed_action"] == "delete"


def test_the_one_day_arithmetic():
    assert calendar_days(LAST_ACTIVE_DATE + timedelta(hours=23, minutes=59), RUN_DATE) == 90
    assert calendar_days(LAST_ACTIVE_DATE, RUN_DATE + timedelta(hours=23, minutes=59)) == 90
    assert calendar_days(RUN_DATE, LAST_ACTIVE_DATE) == -90
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_days(datetime(2026, 8, 29), RUN_DATE)
    assert math.isnan(days_between(float("nan"), RUN_DATE.timestamp()))
