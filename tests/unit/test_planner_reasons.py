"""The reason sentences: the planner's wording must equal an independent row-by-row oracle, word for word.

The planner words the frequent rules column-wise (each distinct combination of inputs once; with
``remove_product_access`` each product detail once, joined per user). :func:`reference_text` below
words one user at a time from the same facts, with its own sentences (nothing taken from
:mod:`atlassian_cleanup.decisions.reasons`): these tests plan the same orgs both ways and compare,
and spell out the ``remove_product_access`` sentences for hand-made users.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from atlassian_cleanup.decisions import reasons
from atlassian_cleanup.decisions.plan_arrays import dates
from atlassian_cleanup.decisions.plan_rules import RULE_CODE, RULE_NAMES
from atlassian_cleanup.decisions.planner import UserHistory, plan_actions, plan_to_records
from atlassian_cleanup.decisions.policy import Policy, policy_from_dict
from atlassian_cleanup.decisions.products import product_label
from atlassian_cleanup.decisions.records import STAGES, UserRecord, format_timestamp
from tests.unit.test_planner import AS_OF, ago, date_ago, date_in, user

REMOVAL_RULES = {"inactive_product", "final_warning", "notice_period", "warning_window", "already_warned"}

# -- the oracle: every rule worded one user at a time ------------------------------------------------

GRACE = 14  # Atlassian's cancellable deletion window, in days
FIXED = {
    "app_account": "Protected: app account (apps, bots and integrations are never warned or actioned).",
    "customer_account": "Protected: customer account (portal-only JSM customers are never actioned).",
    "api_user": "Protected: this is the API user the DAG runs as.",
    "protected_account": "Protected: account id listed in protected.account_ids.",
    "protected_email": "Protected: e-mail address listed in protected.emails.",
    "already_for_deletion": "Atlassian already shows the account as scheduled for deletion (status "
    "for_deletion); nothing to do.",
    "already_suspended": "Already suspended in Atlassian (status suspended); no new warning or action.",
    "already_deactivated": "Already deactivated in Atlassian (status deactivated); no new warning or action.",
    "not_invited": "Not a member of the directory (status not_invited); no warning or action.",
    "no_product_access": "No product access to remove.",
}
DONE = {
    "suspend": "Suspended",
    "deactivate": "Deactivated",
    "remove_product_access": "Product access removed",
}
NOUNS = {
    "suspend": "suspension",
    "deactivate": "deactivation",
    "remove_product_access": "product access removal",
    "delete": "deletion",
}
# Rules whose reason lists the products one by one.
DETAIL_RULES = ("inactive_all_products", *sorted(REMOVAL_RULES))
NOTICE_PIPELINE = (*REMOVAL_RULES, "inactive_all_products", "inactive_no_product_access")
SUSPENDING_INSTEAD = {  # why_suspend -> the sentence (see plan_facts.WHY_*)
    1: " Unmanaged account: Atlassian only allows deactivating managed accounts; suspending instead.",
    2: " Account managed by the identity provider (SCIM): Atlassian does not let the organization "
    "deactivate it; suspending instead.",
    3: " Atlassian's user management API does not allow deactivating this account; suspending instead.",
}


def days_text(value: float) -> str:
    return "1 day" if int(value) == 1 else f"{int(value)} days"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def join_or(items: Sequence[str]) -> str:
    return " or ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def labels_and(products: Sequence[str]) -> str:
    items = [product_label(p) for p in products]
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def suspending_instead(r: Any, i: int) -> str:
    if r.policy.action != "deactivate" or r.planned_names[i] != "suspend":
        return ""
    return SUSPENDING_INSTEAD.get(int(r.suspend_why[i]), SUSPENDING_INSTEAD[1])


def deletion_kind(r: Any, i: int) -> str:
    if r.managed[i]:
        return f"Atlassian keeps it cancellable for {GRACE} days from the deletion request"
    return (
        "an unmanaged account: Atlassian does not delete it, it is removed from the directory instead, "
        "with no grace period"
    )


def email_note(r: Any, i: int) -> str:
    rule = RULE_NAMES[r.rule[i]]
    if not r.no_email[i] or rule not in NOTICE_PIPELINE:
        return ""
    warned = rule in ("final_warning", "warning_window")
    if r.policy.warning.without_email == "hold":
        return (
            " No visible e-mail address: reported to the admins and held; never actioned without a warning "
            "(warning.without_email: hold)."
            if warned
            else ""
        )
    if warned:
        return (
            " No visible e-mail address: listed to the admins in the digest instead of e-mailed; actioned "
            "after the same notice, counted from the first listing (warning.without_email: "
            "action_after_notice)."
        )
    return (
        " No visible e-mail address: listed to the admins in the digest instead of e-mailed "
        "(warning.without_email: action_after_notice)."
    )


def row_by_row(r: Any, rows: np.ndarray) -> list[str]:
    # (product, days or None, threshold, last active date or None), for the rows that need them.
    pu, pc, pdays, pthreshold, plast = r.product_rows
    details: dict[int, list[tuple[str, int | None, int, str | None]]] = {}
    wanted = np.zeros(r.n, dtype=bool)
    wanted[rows] = np.isin(r.rule[rows], [RULE_CODE[rule] for rule in DETAIL_RULES])
    if len(pu) and wanted.any():
        order = np.lexsort((pc, pu))
        picked = order[wanted[pu[order]]]
        last_dates = dates(plast[picked])
        for user, code, days, threshold, last in zip(
            pu[picked].tolist(),
            pc[picked].tolist(),
            pdays[picked].tolist(),
            pthreshold[picked].tolist(),
            last_dates,
            strict=True,
        ):
            entry = (r.products[code], None if math.isnan(days) else int(days), int(threshold), last)
            details.setdefault(user, []).append(entry)
    return [reference_text(r, i, details) + email_note(r, i) for i in rows.tolist()]


def reference_text(
    r: Any, i: int, details: Mapping[int, list[tuple[str, int | None, int, str | None]]]
) -> str:
    policy = r.policy
    default_days = r.default_days
    is_remove = r.is_remove
    notice = r.notice
    delete_after = r.delete_after
    added, warned, actioned, restored = r.added, r.warned, r.actioned, r.restored
    action_date, action_days, days_inactive = r.action_date, r.action_days, r.days_inactive
    planned = r.planned_names
    remove_lists = r.remove_lists
    products = details

    def last_text(i: int) -> str:
        if r.last_any[i]:
            code = r.last_pc[i]
            where = f" in {product_label(r.products[code])}" if code >= 0 else ""
            return f"last active {r.last_any[i]}{where}"
        if added[i]:
            return f"never active since joining on {added[i]}"
        return "no activity ever recorded"

    def thresholds(rows: Sequence[tuple[Any, ...]]) -> str:
        values = {row[2] for row in rows} or {default_days}
        if len(values) == 1:
            return f"threshold {values.pop()}"
        return "thresholds " + ", ".join(f"{product_label(row[0])} {row[2]}" for row in rows)

    def all_products(i: int) -> str:
        rows = products.get(i, [])
        if not rows:
            if math.isnan(days_inactive[i]):
                return f"No product access and no activity ever recorded (threshold {default_days})."
            return (
                f"No product access and no activity for {days_text(days_inactive[i])} "
                f"(threshold {default_days}); {last_text(i)}."
            )
        names = join_or([product_label(row[0]) for row in rows])
        if math.isnan(days_inactive[i]):
            return f"No activity ever recorded in {names} ({thresholds(rows)})."
        inactive = days_text(days_inactive[i])
        return f"No activity in {names} for {inactive} ({thresholds(rows)}); {last_text(i)}."

    def some_products(i: int, names: Sequence[str]) -> str:
        parts = []
        for product, days, threshold, last in products.get(i, []):
            if product not in names:
                continue
            if days is None:
                parts.append(f"no activity ever recorded in {product_label(product)} (threshold {threshold})")
                continue
            since = f"last active {last}" if last else f"never used since joining on {added[i]}"
            label = product_label(product)
            parts.append(f"no activity in {label} for {days_text(days)} (threshold {threshold}, {since})")
        return upper_first("; ".join(parts)) + "."

    def removal(i: int) -> list[str]:
        return remove_lists[i] if remove_lists is not None else []

    def coming(i: int) -> str:
        """What happens next: the action, or the products whose access goes."""
        if is_remove:
            return f"removal of {labels_and(removal(i))} access"
        return NOUNS[str(planned[i])]

    def fallback(i: int) -> str:
        return suspending_instead(r, i)

    def core(i: int) -> str:
        return some_products(i, removal(i)) if is_remove else all_products(i)

    def verb(i: int) -> str:
        code = int(r.act_code[i])
        return DONE.get(r.acted[code - 1] if code else "", "Actioned")

    rule = RULE_NAMES[r.rule[i]]
    if rule in FIXED:
        return FIXED[rule]
    by = str(r.protected_by[i]).split(":", 1)[-1]
    if rule == "unknown_account_type":
        return (
            f"Protected: account type '{r.account_types[i]}' is not a normal user account; "
            "only 'atlassian' accounts are actioned."
        )
    if rule == "admin_role":
        return f"Protected: holds the admin role {by}."
    if rule == "admin_group":
        return f"Protected: member of admin group {by} (matches admin_groups)."
    if rule == "protected_domain":
        return f"Protected: e-mail domain is covered by protected.domains entry {by}."
    if rule == "protected_group":
        return f"Protected: member of protected group {by}."
    if rule == "new_user_grace":
        return (
            f"New user: added to the org on {added[i]} ({days_text(r.since_added[i])} ago), within the "
            f"{policy.new_user_grace_days}-day new-user grace period."
        )
    if rule == "restored_grace":
        return (
            f"Restored by this tool on {restored[i]} ({days_text(max(r.since_restored[i], 0))} ago), "
            f"within the {policy.restored_grace_days}-day grace period after a restore."
        )
    if rule == "activity_seen":
        if r.reset_ref[i] == r.warned_at[i]:
            event = f"the warning sent on {warned[i]}"
        else:
            event = f"this tool's action on {actioned[i]}"
        return f"Activity seen ({last_text(i)}) after {event}; access kept, the user is active again."
    if rule == "deleted":
        if r.removed_from_directory[i] and r.delete_requested[i]:
            return (
                f"{verb(i)} by this tool on {actioned[i]}, then removed from the directory on "
                f"{r.delete_requested[i]} (not a deletion: no grace period; only a re-invite brings "
                "the user back); nothing to do."
            )
        if r.delete_requested[i]:
            return (
                f"{verb(i)} by this tool on {actioned[i]}; deletion requested on "
                f"{r.delete_requested[i]}, final since {r.grace_ends[i]}; nothing to do."
            )
        return "Deleted by this tool earlier (stage deleted); nothing to do."
    if rule == "pending_delete":
        if not r.delete_requested[i]:
            return (
                f"Deletion already requested by this tool; Atlassian's {GRACE}-day "
                "cancellable grace period is running."
            )
        window = (
            f"Atlassian's {GRACE}-day window to cancel it ended on {r.grace_ends[i]}: deleted for good"
            if r.grace_over[i]
            else f"Atlassian's {GRACE}-day window to cancel it ends on {r.grace_ends[i]}"
        )
        return (
            f"{verb(i)} by this tool on {actioned[i]}; deletion requested on {r.delete_requested[i]}; "
            f"{window}."
        )
    if rule == "dormant_delete":
        notice = f", deletion notice e-mailed on {r.noticed[i]}" if r.noticed[i] else ""
        return (
            f"{verb(i)} by this tool on {actioned[i]} ({days_text(r.since_action[i])} ago, delete after "
            f"{delete_after}){notice}, no activity since and not restored: proposing deletion "
            f"({deletion_kind(r, i)})."
        )
    if rule == "deletion_notice":
        return (
            f"{verb(i)} by this tool on {actioned[i]}, no activity since and not restored: sending the "
            f"deletion notice {days_text(policy.delete_notice_days)} ahead; deletion on {action_date[i]} "
            f"(in {days_text(action_days[i])}) at the earliest ({deletion_kind(r, i)})."
        )
    if rule == "awaiting_delete":
        notice = f" Deletion notice e-mailed on {r.noticed[i]}." if r.noticed[i] else ""
        return (
            f"{verb(i)} by this tool on {actioned[i]}; if still inactive it will be proposed for "
            f"deletion on {action_date[i]} (in {days_text(action_days[i])}).{notice}"
        )
    if rule == "already_actioned":
        when = actioned[i] or "an unknown date"
        if delete_after is None:
            why = "deletion is off (delete_after_days is null)"
        elif restored[i] and actioned[i] and restored[i] >= actioned[i]:
            why = f"restored on {restored[i]}, so it is not deleted"
        else:
            why = "the action or its date is not recorded, so it is never deleted automatically"
        return f"{verb(i)} by this tool on {when}; {why}."
    if rule == "changed_outside_tool":
        return (
            f"{verb(i)} by this tool on {actioned[i]}, but Atlassian now shows status "
            f"{r.statuses[i]}: changed outside this tool, so it is not deleted."
        )
    if rule == "unknown_status":
        return f"Atlassian status '{r.statuses[i]}' is not 'active'; no warning or action."
    if rule in ("inactive_all_products", "inactive_no_product_access"):
        warned_text = ""
        if r.stage[i] == STAGES.index("warned") and warned[i]:
            last_warned = r.last_warned[i]
            bucket_text = "" if math.isnan(last_warned) else f" ({int(last_warned)}-day warning)"
            warned_text = f" Warned on {warned[i]}{bucket_text}."
        return f"{all_products(i)}{warned_text} Proposing {planned[i]}.{fallback(i)}"
    if rule == "inactive_product":
        kept = [product for product, *_ in products.get(i, []) if product not in removal(i)]
        keep = f" Keeping {labels_and(kept)}." if kept else ""
        return f"{core(i)} Removing {labels_and(removal(i))} access.{keep}"
    if rule == "final_warning":
        return (
            f"{core(i)} Not warned yet: sending the {int(r.bucket[i])}-day warning; {coming(i)} on "
            f"{action_date[i]} at the earliest ({days_text(notice)} of notice).{fallback(i)}"
        )
    if rule == "notice_period":
        return (
            f"{core(i)} First warned on {r.first_warned[i]}; {coming(i)} waits until "
            f"{action_date[i]} so the user has at least {days_text(notice)} of notice.{fallback(i)}"
        )
    if rule == "warning_window":
        detail = core(i)
        return (
            f"{upper_first(coming(i))} due on {action_date[i]} (in {days_text(action_days[i])}): "
            f"{detail[:1].lower()}{detail[1:-1]}. Sending the {int(r.bucket[i])}-day warning."
            f"{fallback(i)}"
        )
    if rule == "already_warned":
        return (
            f"{int(r.last_warned[i])}-day warning already sent on {warned[i]}; {coming(i)} due on "
            f"{action_date[i]} (in {days_text(action_days[i])})."
        )
    # active
    when = ""
    if action_date[i]:
        when = f" Earliest action date {action_date[i]} (in {days_text(action_days[i])})."
    if math.isnan(days_inactive[i]):
        return f"Not inactive long enough: {last_text(i)}.{when}"
    past = r.inactive_products[i]
    still = ""
    if past and not is_remove:
        still = (
            f" Past the threshold on {labels_and(past)} only; {policy.action} needs every product inactive."
        )
    return f"Active: {last_text(i)} ({days_text(days_inactive[i])} ago).{still}{when}"


def reference_texts(r: Any) -> np.ndarray:
    """``Reasons.texts`` with every rule worded row by row by the oracle."""
    out = np.empty(r.n, dtype=object)
    out[:] = row_by_row(r, np.arange(r.n))
    return out


def plan_both_ways(
    users: list[UserRecord], pol: Policy, as_of: datetime, hist: dict[str, UserHistory] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    fast = plan_actions(users, pol, as_of, history=hist)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reasons.Reasons, "texts", reference_texts)
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


@pytest.mark.parametrize("action", ["remove_product_access", "deactivate"])
def test_more_products_than_bit_masks_hold_are_worded_the_same(action):
    """Past 62 distinct products the product sets are numbered instead of bit masks."""
    rng = random.Random(7)
    pol = policy_from_dict({"action": action, "warning": {"lead_days": [14, 7, 1]}})
    products = [f"tool-{k}" for k in range(70)]
    users = [
        user(
            f"u{k}",
            products={p: rng.choice([None, ago(rng.randint(60, 200))]) for p in rng.sample(products, 3)},
            claim=rng.choice(["managed", "unmanaged"]),
        )
        for k in range(150)
    ]
    history = {
        f"u{k}": UserHistory(
            stage="warned",
            warned_at=AS_OF - timedelta(days=rng.randint(0, 20)),
            last_warned_lead_days=rng.choice([1, 7, 14]),
        )
        for k in range(0, 150, 2)
    }
    fast, reference = plan_both_ways(users, pol, AS_OF, history)
    assert fast["reason"].tolist() == reference["reason"].tolist()
    assert len(set(fast["rule"])) > 3
