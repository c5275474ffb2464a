"""Example-based tests of the planner: one behaviour per test, with the numbers spelled out."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from atlassian_cleanup.decisions.planner import (
    UserHistory,
    plan_actions,
    plan_to_records,
    summarise_plan,
)
from atlassian_cleanup.decisions.policy import Policy, policy_from_dict
from atlassian_cleanup.decisions.records import UserRecord, format_timestamp
from tests.unit.readme_contract import plan_columns

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def ago(days: float, hours: float = 0) -> str:
    return format_timestamp(AS_OF - timedelta(days=days, hours=hours))


def date_ago(days: int) -> str:
    return (AS_OF - timedelta(days=days)).date().isoformat()


def date_in(days: int) -> str:
    return (AS_OF + timedelta(days=days)).date().isoformat()


def user(
    account_id: str = "u1",
    *,
    products: dict[str, str | None] | None = None,
    added: str | None = "400 days ago",
    email: str | None = "ada@acme.example",
    account_type: str = "atlassian",
    status: str = "active",
    claim: str | None = "managed",
    roles: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
) -> UserRecord:
    access = {"jira": ago(10)} if products is None else products
    active = [value for value in access.values() if value]
    return UserRecord(
        account_id=account_id,
        account_type=account_type,
        name="Ada Lovelace",
        email=email,
        email_domain=email.rsplit("@", 1)[1].lower() if email else None,
        status=status,
        account_status="active",
        membership_status="active",
        claim_status=claim,
        added_to_org=ago(400) if added == "400 days ago" else added,
        platform_roles=list(roles),
        groups=list(groups),
        group_ids=[],
        product_access=dict(sorted(access.items())),
        last_active=max(active) if active else None,
    )


def policy(**overrides: Any) -> Policy:
    """A policy from the defaults plus nested overrides (``inactivity={"default_days": 60}``)."""
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        data[key] = value
    return policy_from_dict(data)


NO_WARNINGS = {"lead_days": []}
# The default lead days with a one-day notice: isolates the choice of warning bucket from the
# notice period (whose default, the largest lead day, is tested on its own below).
SHORT_NOTICE = {"lead_days": [14, 7, 1], "min_notice_days": 1}


def plan_one(record: UserRecord, pol: Policy | None = None, **kwargs: Any) -> dict[str, Any]:
    frame = plan_actions([record], pol or Policy(), AS_OF, **kwargs)
    assert len(frame) == 1
    return plan_to_records(frame)[0]


def history(record: UserRecord, **fields: Any) -> dict[str, UserHistory]:
    return {record["account_id"]: UserHistory(**fields)}


# --- shape ------------------------------------------------------------------------------------------


def test_columns_and_empty_input():
    frame = plan_actions([], Policy(), AS_OF)
    assert tuple(frame.columns) == plan_columns()
    assert frame.empty
    assert summarise_plan(frame)["total"] == 0


def test_records_are_json_native():
    users = [
        user("a"),
        user("b", products={"jira": None}, added=None),
        user("c", products={"jira": ago(200), "confluence": None}),
    ]
    frame = plan_actions(users, policy(warning=NO_WARNINGS), AS_OF)
    records = plan_to_records(frame)
    text = json.dumps(records, allow_nan=False)
    assert json.loads(text) == records
    assert [r["account_id"] for r in records] == ["a", "b", "c"]
    assert records[1]["days_inactive"] is None
    assert records[1]["action_date"] is None
    assert isinstance(records[2]["days_inactive"], int)
    assert records[2]["inactive_products"] == ["confluence", "jira"]
    assert json.loads(records[2]["product_last_active"]) == {"confluence": None, "jira": ago(200)}
    for record in records:
        assert tuple(record) == plan_columns()
        for value in record.values():
            assert value is None or isinstance(value, str | int | list)


def test_dataframe_input_plans_like_records():
    users = [user("a"), user("b", products={"jira": ago(100), "confluence": ago(300)})]
    pol = policy(warning=NO_WARNINGS)
    from_list = plan_actions(users, pol, AS_OF)
    from_frame = plan_actions(pd.DataFrame(users), pol, AS_OF)
    pd.testing.assert_frame_equal(from_list, from_frame)


def test_raw_product_aliases_collapse_to_the_latest_activity():
    record = user(products={"jira": ago(200)})
    record["product_access"] = {"jira-software": ago(5), "jira": ago(200)}
    row = plan_one(record, policy(warning=NO_WARNINGS))
    assert row["rule"] == "active"
    assert row["days_inactive"] == 5


def test_summary_counts():
    users = [
        user("a", products={"jira": ago(200)}),
        user("b", account_type="app", products={"jira": ago(200)}),
        user("c", groups=("vip",), products={"jira": ago(200)}),
        user("d"),
    ]
    frame = plan_actions(users, policy(warning=NO_WARNINGS, protected={"groups": ["vip"]}), AS_OF)
    summary = summarise_plan(frame)
    assert summary["total"] == 4
    assert summary["by_action"]["suspend"] == 1
    assert summary["by_action"]["none"] == 3
    assert summary["writes"] == 1
    assert summary["protected"] == 2
    assert summary["protected_by_kind"] == {"account_type": 1, "group": 1}
    assert summary["by_rule"]["active"] == 1


# --- measuring inactivity ------------------------------------------------------------------------------


def test_never_logged_in_old_joiner_is_measured_from_joining():
    row = plan_one(user(products={"jira": None}, added=ago(200)), policy(warning=NO_WARNINGS))
    assert row["proposed_action"] == "suspend"
    assert row["rule"] == "inactive_all_products"
    assert row["days_inactive"] == 200
    assert row["action_date"] == date_ago(110)
    assert row["days_until_action"] == -110
    assert f"never active since joining on {date_ago(200)}" in row["reason"]
    assert "200 days" in row["reason"]


def test_never_logged_in_recent_joiner_waits_for_the_threshold():
    row = plan_one(user(products={"jira": None}, added=ago(40)), policy(warning=NO_WARNINGS))
    assert row["proposed_action"] == "none"
    assert row["rule"] == "active"
    assert row["action_date"] == date_in(50)
    assert row["days_until_action"] == 50


def test_never_logged_in_new_joiner_is_in_grace():
    row = plan_one(user(products={"jira": None}, added=ago(10)))
    assert row["rule"] == "new_user_grace"
    assert row["protected_by"] == "new_user_grace"
    assert "10 days ago" in row["reason"]
    assert "30-day" in row["reason"]


def test_no_activity_and_no_join_date_counts_as_inactive_forever():
    row = plan_one(user(products={"jira": None}, added=None), policy(warning=NO_WARNINGS))
    assert row["proposed_action"] == "suspend"
    assert row["days_inactive"] is None
    assert row["action_date"] is None
    assert "no activity ever recorded" in row["reason"].lower()


def test_no_product_access_uses_default_days_overall():
    record = user(products={})
    record["last_active"] = ago(120)
    row = plan_one(record, policy(warning=NO_WARNINGS))
    assert row["rule"] == "inactive_no_product_access"
    assert row["proposed_action"] == "suspend"
    assert "No product access" in row["reason"]
    assert "120 days" in row["reason"]
    assert plan_one(user(products={}, added=ago(60)), policy(warning=NO_WARNINGS))["rule"] == "active"


def test_suspend_needs_every_product_inactive():
    pol = policy(warning=NO_WARNINGS, inactivity={"default_days": 90, "products": {"confluence": 120}})
    partly = plan_one(user(products={"jira": ago(10), "confluence": ago(150)}), pol)
    assert partly["proposed_action"] == "none"
    assert partly["rule"] == "active"
    assert partly["inactive_products"] == ["confluence"]
    assert "Past the threshold on Confluence only" in partly["reason"]
    # The action date is the latest per-product due date (Jira: 10 days ago + 90).
    assert partly["action_date"] == date_in(80)

    both = plan_one(user(products={"jira": ago(134), "confluence": ago(150)}), pol)
    assert both["proposed_action"] == "suspend"
    assert both["inactive_products"] == ["confluence", "jira"]
    assert both["days_inactive"] == 134
    assert "No activity in Confluence or Jira for 134 days" in both["reason"]
    assert "thresholds Confluence 120, Jira 90" in both["reason"]
    assert f"last active {date_ago(134)} in Jira" in both["reason"]


def test_uniform_threshold_reason_matches_the_readme_example():
    row = plan_one(user(products={"jira": ago(134), "confluence": ago(200)}), policy(warning=NO_WARNINGS))
    assert row["reason"].startswith(
        f"No activity in Confluence or Jira for 134 days (threshold 90); last active {date_ago(134)} in Jira."
    )


def test_remove_product_access_removes_only_the_inactive_products():
    pol = policy(
        action="remove_product_access",
        warning=NO_WARNINGS,
        inactivity={"default_days": 90, "products": {"confluence": 120}},
    )
    row = plan_one(user(products={"jira": ago(10), "confluence": ago(150)}), pol)
    assert row["proposed_action"] == "remove_product_access"
    assert row["rule"] == "inactive_product"
    assert row["products_to_remove"] == ["confluence"]
    assert "Confluence for 150 days (threshold 120" in row["reason"]
    assert "Keeping Jira" in row["reason"]
    assert row["action_date"] == date_ago(30)

    active = plan_one(user(products={"jira": ago(10), "confluence": ago(100)}), pol)
    assert active["proposed_action"] == "none"
    assert active["products_to_remove"] == []
    assert active["action_date"] == date_in(20)  # Confluence is the next product due

    nothing = plan_one(user(products={}), pol)
    assert nothing["rule"] == "no_product_access"


def test_remove_product_access_warning_names_the_products():
    pol = policy(action="remove_product_access")
    row = plan_one(user(products={"jira": ago(10), "confluence": ago(85)}), pol)
    assert row["proposed_action"] == "warn"
    # Due in 5 days, never warned: the first warning gives the 14 days of notice.
    assert row["warning_lead_days"] == 14
    assert row["products_to_remove"] == ["confluence"]
    assert row["planned_action"] == "remove_product_access"
    assert "Confluence" in row["reason"]
    assert date_in(14) in row["reason"]


# --- day boundaries and time zones ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "hours", "calendar_days", "due"),
    # AS_OF is midnight: 89 days and 23 hours earlier is 90 dates back, 90 days and 1 hour is 91.
    [(90, 0, 90, True), (90, 1, 91, True), (89, 23, 90, True), (91, 0, 91, True), (89, 0, 89, False)],
)
def test_threshold_day_itself_is_due(days, hours, calendar_days, due):
    row = plan_one(user(products={"jira": ago(days, hours)}), policy(warning=NO_WARNINGS))
    assert (row["proposed_action"] == "suspend") is due
    assert row["days_inactive"] == calendar_days


@pytest.mark.parametrize(
    ("days", "hours", "protected"), [(30, 0, False), (29, 23, False), (29, 0, True), (0, 0, True)]
)
def test_new_user_grace_boundary(days, hours, protected):
    row = plan_one(user(products={"jira": None}, added=ago(days, hours)))
    assert (row["rule"] == "new_user_grace") is protected


def test_timezone_aware_as_of_gives_the_same_plan_for_the_same_instant():
    users = [user("a", products={"jira": ago(95)}), user("b", products={"jira": ago(80)})]
    paris = AS_OF.astimezone(timezone(timedelta(hours=2)))
    pd.testing.assert_frame_equal(plan_actions(users, Policy(), AS_OF), plan_actions(users, Policy(), paris))


def test_naive_as_of_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_actions([user()], Policy(), datetime(2026, 12, 1))


def test_action_dates_use_the_utc_date_of_as_of():
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    frame = plan_actions([user(products={"jira": ago(80)})], policy(warning=SHORT_NOTICE), late)
    assert frame.loc[0, "action_date"] == date_in(10)


# --- warnings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inactive", "action", "bucket"),
    [
        (75, "none", None),  # 15 days to go: outside the window
        (76, "warn", 14),
        (80, "warn", 14),  # 10 days to go -> the 14-day warning
        (83, "warn", 7),
        (86, "warn", 7),
        (88, "warn", 7),  # 2 days to go -> the 7-day warning
        (89, "warn", 1),
    ],
)
def test_warning_buckets(inactive, action, bucket):
    row = plan_one(user(products={"jira": ago(inactive)}), policy(warning=SHORT_NOTICE))
    assert row["proposed_action"] == action
    assert row["warning_lead_days"] == bucket
    assert row["days_until_action"] == 90 - inactive
    assert row["action_date"] == date_in(90 - inactive)
    if action == "warn":
        assert row["rule"] == "warning_window"
        assert row["planned_action"] == "suspend"
        assert f"{bucket}-day warning" in row["reason"]
        assert f"in {90 - inactive} day" in row["reason"]


def test_already_warned_bucket_is_not_sent_again():
    record = user(products={"jira": ago(86)})  # 4 days to go: the 7-day bucket
    warned = history(record, stage="warned", warned_at=AS_OF - timedelta(days=3), last_warned_lead_days=7)
    row = plan_one(record, history=warned)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "already_warned"
    assert "already sent" in row["reason"]
    assert date_ago(3) in row["reason"]
    # A smaller bucket sent is also enough.
    smaller = history(record, stage="warned", warned_at=AS_OF - timedelta(days=1), last_warned_lead_days=1)
    assert plan_one(record, history=smaller)["rule"] == "already_warned"


def test_next_bucket_is_sent_after_a_larger_one():
    record = user(products={"jira": ago(89)})  # 1 day to go
    warned = history(record, stage="warned", warned_at=AS_OF - timedelta(days=6), last_warned_lead_days=7)
    row = plan_one(record, policy(warning=SHORT_NOTICE), history=warned)
    assert row["proposed_action"] == "warn"
    assert row["warning_lead_days"] == 1


def test_unwarned_due_user_gets_a_final_warning_first():
    record = user(products={"jira": ago(120)})
    pol = policy(warning=SHORT_NOTICE)
    row = plan_one(record, pol)
    assert row["proposed_action"] == "warn"
    assert row["rule"] == "final_warning"
    assert row["warning_lead_days"] == 1
    assert row["action_date"] == date_in(1)
    assert row["planned_action"] == "suspend"
    assert "sending the 1-day warning" in row["reason"]

    # Warned (the final warning) a day ago: now it happens.
    warned = history(record, stage="warned", warned_at=AS_OF - timedelta(days=1), last_warned_lead_days=1)
    acted = plan_one(record, pol, history=warned)
    assert acted["proposed_action"] == "suspend"
    assert f"Warned on {date_ago(1)}" in acted["reason"]

    # Warned today: wait for the notice period.
    recent = history(record, stage="warned", warned_at=AS_OF, last_warned_lead_days=1)
    waiting = plan_one(record, pol, history=recent)
    assert waiting["proposed_action"] == "none"
    assert waiting["rule"] == "notice_period"
    assert waiting["action_date"] == date_in(1)


def test_final_warning_gives_the_notice_period():
    # README: the notice defaults to the largest lead day (10 here) and can be set on its own.
    row = plan_one(user(products={"jira": ago(120)}), policy(warning={"lead_days": [10, 3]}))
    assert row["warning_lead_days"] == 10
    assert row["action_date"] == date_in(10)
    row = plan_one(
        user(products={"jira": ago(120)}), policy(warning={"lead_days": [10, 3], "min_notice_days": 3})
    )
    assert row["warning_lead_days"] == 3
    assert row["action_date"] == date_in(3)


def test_a_first_run_over_a_backlog_gives_the_full_notice():
    # README: nobody is actioned sooner than warning.min_notice_days (default: the largest lead
    # day, 14) after their first warning, also when they are long overdue on the first live run.
    record = user(products={"jira": ago(400)})
    first = plan_one(record)
    assert (first["rule"], first["proposed_action"], first["warning_lead_days"]) == (
        "final_warning",
        "warn",
        14,
    )
    assert first["action_date"] == date_in(14)
    assert (
        f"sending the 14-day warning; suspension on {date_in(14)} at the earliest (14 days of notice)"
        in (first["reason"])
    )
    # The next runs count down from that first warning: the 7-day and 1-day warnings, then the action.
    expected = {1: ("notice_period", "none"), 7: ("warning_window", "warn"), 8: ("notice_period", "none")}
    expected |= {13: ("warning_window", "warn"), 14: ("inactive_all_products", "suspend")}
    last_bucket = 14
    for day in range(1, 15):
        as_of = AS_OF + timedelta(days=day)
        hist = {
            "u1": UserHistory(
                stage="warned", warned_at=AS_OF + timedelta(days=day - 1), first_warned_at=AS_OF,
                last_warned_lead_days=last_bucket,
            )
        }  # fmt: skip
        (row,) = plan_to_records(plan_actions([record], Policy(), as_of, history=hist))
        if day in expected:
            assert (row["rule"], row["proposed_action"]) == expected[day], day
        if row["proposed_action"] == "warn":
            last_bucket = row["warning_lead_days"]
            assert row["action_date"] == date_in(14)
        if row["proposed_action"] == "none":
            assert row["action_date"] == date_in(14)
    assert last_bucket == 1


def test_the_notice_counts_from_the_first_warning_not_the_latest():
    record = user(products={"jira": ago(120)})
    hist = history(
        record, stage="warned", warned_at=AS_OF - timedelta(days=1), last_warned_lead_days=1,
        first_warned_at=AS_OF - timedelta(days=14),
    )  # fmt: skip
    assert plan_one(record, history=hist)["proposed_action"] == "suspend"
    # First warned 13 days ago: one more day.
    hist = history(
        record, stage="warned", warned_at=AS_OF - timedelta(days=1), last_warned_lead_days=1,
        first_warned_at=AS_OF - timedelta(days=13),
    )  # fmt: skip
    row = plan_one(record, history=hist)
    assert (row["rule"], row["action_date"]) == ("notice_period", date_in(1))
    assert f"First warned on {date_ago(13)}; suspension waits until {date_in(1)}" in row["reason"]
    assert "at least 14 days of notice" in row["reason"]
    # Unknown first warning: the latest counts, which can only lengthen the notice.
    hist = history(record, stage="warned", warned_at=AS_OF - timedelta(days=13), last_warned_lead_days=1)
    assert plan_one(record, history=hist)["action_date"] == date_in(1)
    # A longer notice set on its own.
    longer = policy(warning={"lead_days": [14, 7, 1], "min_notice_days": 30})
    hist = history(
        record, stage="warned", warned_at=AS_OF - timedelta(days=1), last_warned_lead_days=1,
        first_warned_at=AS_OF - timedelta(days=20),
    )  # fmt: skip
    assert plan_one(record, longer, history=hist)["action_date"] == date_in(10)


@pytest.mark.parametrize("choice", ["action_after_notice", "hold"])
def test_users_without_email_are_planned_alike_and_the_reason_says_which_choice_applied(choice):
    pol = policy(warning={"lead_days": [14, 7, 1], "without_email": choice})
    hidden = user(products={"jira": ago(120)}, email=None)
    row = plan_one(hidden, pol)
    assert (row["rule"], row["proposed_action"]) == ("final_warning", "warn")
    if choice == "action_after_notice":
        assert row["reason"].endswith(
            "No visible e-mail address: listed to the admins in the digest instead of e-mailed; actioned "
            "after the same notice, counted from the first listing (warning.without_email: "
            "action_after_notice)."
        )
    else:
        assert row["reason"].endswith(
            "No visible e-mail address: reported to the admins and held; never actioned without a warning "
            "(warning.without_email: hold)."
        )
    # Listed 14 days ago (recorded as the warning): actioned, and the audit reason says why.
    listed = history(hidden, stage="warned", warned_at=AS_OF - timedelta(days=14), last_warned_lead_days=14)
    acted = plan_one(hidden, pol, history=listed)
    assert acted["proposed_action"] == "suspend"
    if choice == "action_after_notice":
        assert acted["reason"].endswith("(warning.without_email: action_after_notice).")
    # Users with an address get no such sentence; neither do protected ones.
    assert "e-mail address" not in plan_one(user(products={"jira": ago(120)}), pol)["reason"]
    vip = plan_one(user(products={"jira": ago(120)}, email=None, roles=("atlassian/org-admin",)), pol)
    assert "e-mail address" not in vip["reason"]


def test_a_warning_from_an_earlier_cycle_does_not_count():
    record = user(products={"jira": ago(120)})
    # The state store moved the user back to active after they came back; old warning fields remain.
    old = history(record, stage="active", warned_at=AS_OF - timedelta(days=200), last_warned_lead_days=1)
    assert plan_one(record, history=old)["rule"] == "final_warning"


def test_without_warnings_due_users_are_actioned_directly():
    row = plan_one(user(products={"jira": ago(120)}), policy(warning=NO_WARNINGS))
    assert row["proposed_action"] == "suspend"
    assert row["warning_lead_days"] is None


def test_activity_after_warning_resets():
    record = user(products={"jira": ago(2)})
    warned = history(record, stage="warned", warned_at=AS_OF - timedelta(days=5), last_warned_lead_days=7)
    row = plan_one(record, history=warned)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "activity_seen"
    assert date_ago(2) in row["reason"]
    assert date_ago(5) in row["reason"]


# --- actions --------------------------------------------------------------------------------------------


def test_deactivate_managed_and_fall_back_to_suspend_for_unmanaged():
    pol = policy(action="deactivate", warning=NO_WARNINGS)
    managed = plan_one(user(products={"jira": ago(120)}, claim="managed"), pol)
    assert managed["proposed_action"] == "deactivate"
    for claim in ("unmanaged", None):
        row = plan_one(user(products={"jira": ago(120)}, claim=claim), pol)
        assert row["proposed_action"] == "suspend"
        assert "Atlassian only allows deactivating managed accounts; suspending instead" in row["reason"]


def test_unmanaged_warning_names_the_fallback():
    row = plan_one(user(products={"jira": ago(85)}, claim="unmanaged"), policy(action="deactivate"))
    assert row["proposed_action"] == "warn"
    assert row["planned_action"] == "suspend"
    assert "suspending instead" in row["reason"]


@pytest.mark.parametrize(
    ("status", "rule"),
    [
        ("suspended", "already_suspended"),
        ("deactivated", "already_deactivated"),
        ("not_invited", "not_invited"),
        ("for_deletion", "already_for_deletion"),
        ("something_new", "unknown_status"),
    ],
)
def test_not_plainly_active_accounts_get_nothing_new(status, rule):
    row = plan_one(user(products={"jira": ago(300)}, status=status))
    assert row["proposed_action"] == "none"
    assert row["rule"] == rule
    assert row["protected_by"] == ""


# --- protection -----------------------------------------------------------------------------------------

PROTECTIVE = policy(
    warning=NO_WARNINGS,
    protected={
        "groups": ["VIP-Executives"],
        "account_ids": ["712020:keep"],
        "emails": ["Boss@Acme.Example"],
        "domains": ["partner.example"],
    },
)


@pytest.mark.parametrize(
    ("overrides", "rule", "protected_by"),
    [
        ({"account_type": "app"}, "app_account", "account_type:app"),
        ({"account_type": "customer"}, "customer_account", "account_type:customer"),
        ({"account_type": "unknown"}, "unknown_account_type", "account_type:unknown"),
        ({"roles": ("atlassian/org-admin",)}, "admin_role", "role:atlassian/org-admin"),
        ({"roles": ("atlassian/site-admin",)}, "admin_role", "role:atlassian/site-admin"),
        (
            {"roles": ("atlassian/ai-access", "atlassian/user-access-admin")},
            "admin_role",
            "role:atlassian/user-access-admin",
        ),
        ({"groups": ("site-admins",)}, "admin_group", "admin_group:site-admins"),
        ({"groups": ("jira-admins-acme",)}, "admin_group", "admin_group:jira-admins-acme"),
        ({"groups": ("Confluence-Administrators",)}, "admin_group", "admin_group:Confluence-Administrators"),
        ({"groups": ("staff", "vip-executives")}, "protected_group", "group:vip-executives"),
        ({"account_id": "712020:keep"}, "protected_account", "account_id:712020:keep"),
        ({"email": "BOSS@acme.example"}, "protected_email", "email:boss@acme.example"),
        ({"email": "x@partner.example"}, "protected_domain", "domain:partner.example"),
        ({"email": "x@eu.Partner.example"}, "protected_domain", "domain:partner.example"),
        ({"email": "api@acme.example"}, "api_user", "api_user"),
        ({"account_id": "712020:api"}, "api_user", "api_user"),
    ],
)
def test_protected_users_are_never_actioned(overrides, rule, protected_by):
    record = user(products={"jira": ago(300)}, **overrides)
    row = plan_one(
        record,
        PROTECTIVE,
        api_user_emails=["API@acme.example"],
        api_user_account_ids=["712020:api"],
    )
    assert row["proposed_action"] == "none"
    assert row["rule"] == rule
    assert row["protected_by"] == protected_by
    assert row["reason"].startswith("Protected:")


def test_lookalike_domains_and_ordinary_roles_are_not_protected():
    for email in ("x@notpartner.example", "x@partner.example.evil"):
        row = plan_one(user(products={"jira": ago(300)}, email=email), PROTECTIVE)
        assert row["proposed_action"] == "suspend", email
    row = plan_one(
        user(products={"jira": ago(300)}, roles=("atlassian/ai-access",), groups=("admins",)), PROTECTIVE
    )
    assert row["proposed_action"] == "suspend"


def test_protection_beats_deletion():
    record = user(products={"jira": ago(300)}, status="suspended", groups=("org-admins",))
    actioned = history(
        record, stage="actioned", actioned_at=AS_OF - timedelta(days=400), actioned_action="suspend"
    )
    row = plan_one(record, policy(delete_after_days=30), history=actioned)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "admin_group"


def test_restored_grace():
    record = user(products={"jira": ago(300)})
    restored = history(record, stage="restored", restored_at=AS_OF - timedelta(days=10))
    row = plan_one(record, history=restored)
    assert row["rule"] == "restored_grace"
    assert row["protected_by"] == "restored_grace"
    assert "10 days ago" in row["reason"]
    # After the grace period the user is warned again before anything happens.
    later = history(record, stage="restored", restored_at=AS_OF - timedelta(days=31))
    assert plan_one(record, history=later)["rule"] == "final_warning"


# --- deletion -------------------------------------------------------------------------------------------


def actioned_user(days_ago: int, *, status: str = "suspended", **fields: Any) -> tuple[UserRecord, dict]:
    record = user(products={"jira": ago(days_ago + 100)}, status=status)
    fields.setdefault("actioned_action", "suspend")
    fields.setdefault("warned_at", AS_OF - timedelta(days=days_ago + 1))
    fields.setdefault("last_warned_lead_days", 1)
    return record, history(record, stage="actioned", actioned_at=AS_OF - timedelta(days=days_ago), **fields)


def test_delete_after_delete_after_days():
    record, hist = actioned_user(200)
    row = plan_one(record, policy(delete_after_days=180, delete_notice_days=0), history=hist)
    assert row["proposed_action"] == "delete"
    assert row["rule"] == "dormant_delete"
    assert row["action_date"] == date_ago(20)
    assert "200 days ago" in row["reason"]
    assert "delete after 180" in row["reason"]
    assert "14 days" in row["reason"]


def test_delete_boundary_and_waiting():
    no_notice = policy(delete_after_days=180, delete_notice_days=0)
    record, hist = actioned_user(180)
    assert plan_one(record, no_notice, history=hist)["proposed_action"] == "delete"
    record, hist = actioned_user(179)
    row = plan_one(record, no_notice, history=hist)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "awaiting_delete"
    assert row["planned_action"] == "delete"
    assert row["action_date"] == date_in(1)


def test_no_delete_when_deletion_is_off():
    record, hist = actioned_user(400)
    row = plan_one(record, Policy(), history=hist)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "already_actioned"
    assert "delete_after_days is null" in row["reason"]


def test_no_delete_without_our_history():
    record = user(products={"jira": ago(900)}, status="suspended")
    row = plan_one(record, policy(delete_after_days=30))
    assert row["proposed_action"] == "none"
    assert row["rule"] == "already_suspended"


def test_no_delete_after_activity_restore_or_outside_change():
    pol = policy(delete_after_days=30)
    record, hist = actioned_user(100)
    record["product_access"] = {"jira": ago(50)}
    record["last_active"] = ago(50)
    assert plan_one(record, pol, history=hist)["rule"] == "activity_seen"

    record, hist = actioned_user(100, restored_at=AS_OF - timedelta(days=60))
    assert plan_one(record, pol, history=hist)["proposed_action"] == "none"

    record, hist = actioned_user(100, status="active")
    row = plan_one(record, pol, history=hist)
    assert row["rule"] == "changed_outside_tool"
    assert "status active" in row["reason"]

    record, hist = actioned_user(100, actioned_action=None)
    assert plan_one(record, pol, history=hist)["rule"] == "already_actioned"

    record, hist = actioned_user(100, status="for_deletion")
    assert plan_one(record, pol, history=hist)["rule"] == "already_for_deletion"

    for stage in ("pending_delete", "deleted"):
        record = user(products={"jira": ago(900)}, status="suspended")
        hist = history(
            record, stage=stage, actioned_at=AS_OF - timedelta(days=300), actioned_action="suspend"
        )
        assert plan_one(record, pol, history=hist)["rule"] == stage


def test_activity_between_warning_and_action_blocks_deletion():
    # The warning went out, the user came back (reported late), and was suspended anyway.
    record, hist = actioned_user(100)
    record["product_access"] = {"jira": ago(100, hours=12)}
    record["last_active"] = ago(100, hours=12)
    row = plan_one(record, policy(delete_after_days=30), history=hist)
    assert row["proposed_action"] == "none"
    assert row["rule"] == "activity_seen"


def test_product_removal_is_deleted_only_without_any_product_left():
    pol = policy(
        delete_after_days=30, delete_notice_days=0, action="remove_product_access", warning=NO_WARNINGS
    )
    record = user(products={}, status="active")
    record["last_active"] = None
    hist = history(
        record,
        stage="actioned",
        actioned_at=AS_OF - timedelta(days=60),
        actioned_action="remove_product_access",
    )
    assert plan_one(record, pol, history=hist)["proposed_action"] == "delete"
    # Still has (inactive) Jira: the removal goes on product by product, no deletion.
    record = user(products={"jira": ago(300)})
    hist = history(
        record,
        stage="actioned",
        actioned_at=AS_OF - timedelta(days=60),
        actioned_action="remove_product_access",
    )
    row = plan_one(record, pol, history=hist)
    assert row["proposed_action"] == "remove_product_access"
    assert row["products_to_remove"] == ["jira"]


# --- history objects ------------------------------------------------------------------------------------


def test_user_history_parses_and_validates():
    parsed = UserHistory(stage="warned", warned_at="2026-11-20T10:00:00Z", last_warned_lead_days=7)
    assert parsed.warned_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert UserHistory.from_dict(parsed.to_dict()) == parsed
    assert UserHistory.from_dict({"stage": "active", "unknown": 1}) == UserHistory()
    with pytest.raises(ValueError, match="stage"):
        UserHistory(stage="zombie")
    with pytest.raises(ValueError, match="timezone-aware"):
        UserHistory(warned_at=datetime(2026, 1, 1))


def test_history_may_be_plain_mappings():
    record = user(products={"jira": ago(86)})
    hist = {"u1": {"stage": "warned", "warned_at": ago(3), "last_warned_lead_days": 7}}
    assert plan_one(record, history=hist)["rule"] == "already_warned"


def test_stage_column_reports_the_known_stage():
    record = user(products={"jira": ago(86)})
    assert plan_one(record)["stage"] == "active"
    warned = history(record, stage="warned", warned_at=AS_OF - timedelta(days=3), last_warned_lead_days=7)
    assert plan_one(record, history=warned)["stage"] == "warned"


def test_days_are_integers_not_floats():
    frame = plan_actions([user(products={"jira": ago(86)})], Policy(), AS_OF)
    assert str(frame["days_inactive"].dtype) == "Int64"
    value = plan_to_records(frame)[0]["days_until_action"]
    assert isinstance(value, int)
    assert not isinstance(value, bool)
    assert not any(isinstance(v, float) and math.isnan(v) for v in plan_to_records(frame)[0].values())
