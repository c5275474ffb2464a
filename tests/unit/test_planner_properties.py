"""Safety properties of the planner, checked on random orgs, policies and dates (hypothesis).

The examples in test_planner.py show the rules; these tests show that the rules that must never
break (DESIGN.md §6) hold for every combination hypothesis can find.
"""

from __future__ import annotations

import copy
import fnmatch
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atlassian_cleanup.decisions.planner import UserHistory, plan_actions
from atlassian_cleanup.decisions.policy import Policy, PolicyError, policy_from_dict
from atlassian_cleanup.decisions.records import UserRecord, format_timestamp
from tests.unit.readme_contract import plan_columns

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PRODUCTS = ("jira", "confluence", "jsm", "bitbucket")
GROUPS = ("staff", "vip", "Site-Admins", "jira-admins-acme", "finance-administrators", "contractors", "eng")
DOMAINS = ("acme.example", "eu.acme.example", "partner.example", "other.example")
# The platform roles that make an account untouchable, written from the contract and not read from
# the planner: the README's "never touched" list names org, site and user-access admins, and
# atlassian-api.md §3.4 lists the role values Atlassian returns. AI access is a role, not an admin.
PROTECTED_ROLES = ("atlassian/org-admin", "atlassian/site-admin", "atlassian/user-access-admin")
ADMIN_PATTERNS = ("site-admins", "administrators", "*-admins-*", "*-administrators", "org-admins")
API_EMAIL = "automation@acme.example"
API_ID = "acc-api"

as_of_strategy = st.builds(
    lambda day, minutes, offset: (
        datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day, minutes=minutes)
    ).astimezone(timezone(timedelta(hours=offset))),
    st.integers(0, 1000),
    st.integers(0, 24 * 60 - 1),
    st.sampled_from([0, 0, 2, -5, 9]),
)


PRODUCT_THRESHOLDS = st.dictionaries(st.sampled_from(PRODUCTS), st.integers(2, 200), max_size=3)
POLICY_REST = st.fixed_dictionaries(
    {
        "dry_run": st.booleans(),
        "action": st.sampled_from(["suspend", "deactivate", "remove_product_access"]),
        "delete_after_days": st.none() | st.integers(1, 60) | st.integers(1, 400),
        "new_user_grace_days": st.integers(0, 60),
        "restored_grace_days": st.integers(0, 60),
        "protected": st.fixed_dictionaries(
            {
                "groups": st.lists(st.sampled_from(["vip", "VIP", "contractors"]), unique=True, max_size=2),
                "account_ids": st.lists(
                    st.sampled_from([f"acc-{i}" for i in range(8)]), unique=True, max_size=3
                ),
                "emails": st.lists(
                    st.sampled_from(["user1@acme.example", "USER2@partner.example"]), unique=True
                ),
                "domains": st.lists(st.sampled_from(["partner.example", "eu.acme.example"]), unique=True),
            }
        ),
        "admin_groups": st.lists(st.sampled_from(ADMIN_PATTERNS), unique=True, max_size=5),
    }
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Random valid policies: lead days always below the smallest threshold."""
    default_days = draw(st.integers(30, 120) | st.integers(2, 200))
    products = draw(PRODUCT_THRESHOLDS)
    smallest = min([default_days, *products.values()])
    lead_days = draw(st.lists(st.integers(1, smallest - 1), unique=True, max_size=3))
    warning: dict[str, Any] = {"lead_days": lead_days}
    if draw(st.booleans()):
        warning["min_notice_days"] = draw(st.integers(1, 40))
    warning["without_email"] = draw(st.sampled_from(["action_after_notice", "hold"]))
    data = {
        **draw(POLICY_REST),
        "inactivity": {"default_days": default_days, "products": products},
        "warning": warning,
    }
    return policy_from_dict(data)


def stamp(as_of: datetime, days_ago: int, hours: int) -> str:
    return format_timestamp(as_of - timedelta(days=days_ago, hours=hours))


# Times are drawn as (days, hours) before as_of so they cluster around the thresholds that matter.
AGO = st.tuples(st.integers(-3, 130) | st.integers(-3, 700), st.integers(0, 23))
# Recent history events are drawn often, so notice periods and delete dates are actually hit.
HISTORY_AGO = (
    st.none()
    | st.tuples(st.integers(-2, 40), st.integers(0, 23))
    | st.tuples(st.integers(-2, 500), st.integers(0, 23))
)
# How long before the latest warning the first one of the cycle went out (None: not known).
FIRST_WARNED_GAP = st.none() | st.tuples(st.integers(0, 20), st.integers(0, 23))
# Strategies are built once: building them per draw makes hypothesis spend its time validating.
USER_SPEC = st.fixed_dictionaries(
    {
        "api_user": st.integers(0, 30).map(lambda n: n == 0),
        "local": st.sampled_from(["user1", "User2", "user3", "automation", "x"]),
        "domain": st.sampled_from(DOMAINS),
        "has_email": st.booleans(),
        # Make Atlassian's status agree with our history (as it usually does) half of the time,
        # and, independently, make the user stay away after our warning/action half of the time.
        "consistent": st.booleans(),
        "quiet": st.booleans(),
        "access": st.dictionaries(st.sampled_from(PRODUCTS), st.none() | AGO, max_size=3),
        "added": st.none() | AGO,
        "account_type": st.sampled_from(["atlassian"] * 12 + ["app", "customer", "unknown"]),
        "name": st.none() | st.text(max_size=8),
        "status": st.sampled_from(
            ["active"] * 5 + ["suspended", "deactivated", "not_invited", "for_deletion"]
        ),
        "claim": st.sampled_from(["managed", "unmanaged", None]),
        # Mostly ordinary users: protection must not crowd out the cases it is tested against.
        "roles": st.sampled_from(
            [[]] * 20 + [["atlassian/ai-access"]] + [[role] for role in PROTECTED_ROLES]
        ),
        "groups": st.lists(st.sampled_from(GROUPS + ("staff",) * 4 + ("eng",) * 4), unique=True, max_size=2),
        "history": st.none()
        | st.fixed_dictionaries(
            {
                "stage": st.sampled_from(
                    ["active", "warned", "actioned", "pending_delete", "deleted", "restored"]
                ),
                "actioned_at": HISTORY_AGO,
                "actioned_action": st.sampled_from(["suspend", "deactivate", "remove_product_access", None]),
                "restored_at": HISTORY_AGO,
                "last_warned_lead_days": st.none() | st.integers(1, 30),
                "warned_at": HISTORY_AGO,
                "first_warned_gap": FIRST_WARNED_GAP,
            }
        ),
    }
)


LIFECYCLE_HISTORY = st.fixed_dictionaries(
    {
        "stage": st.sampled_from(["warned", "actioned"]),
        "actioned_at": HISTORY_AGO,
        "actioned_action": st.sampled_from(["suspend", "deactivate", "remove_product_access", None]),
        "restored_at": st.none() | HISTORY_AGO,
        "last_warned_lead_days": st.none() | st.integers(1, 30),
        "warned_at": HISTORY_AGO,
        "first_warned_gap": FIRST_WARNED_GAP,
    }
)


@st.composite
def orgs(draw: st.DrawFn, *, lifecycle: bool = False) -> dict[str, Any]:
    """Random orgs; ``lifecycle=True`` gives ordinary users we already warned or actioned."""
    as_of = draw(as_of_strategy)
    specs = draw(st.lists(USER_SPEC, max_size=12))
    users: list[UserRecord] = []
    history: dict[str, UserHistory] = {}
    for index, spec in enumerate(specs):
        if lifecycle:
            spec = {  # the lifecycle variant narrows the drawn spec
                **spec,
                "api_user": False,
                "account_type": "atlassian",
                "roles": [],
                "groups": [],
                "has_email": False,
                "history": draw(LIFECYCLE_HISTORY),
            }
        account_id = API_ID if spec["api_user"] else f"acc-{index}"
        if any(u["account_id"] == account_id for u in users):
            account_id = f"acc-{index}"
        email = f"{spec['local']}@{spec['domain']}" if spec["has_email"] else None
        fields = None if spec["history"] is None else dict(spec["history"])
        status = spec["status"]
        latest = None  # no activity after this moment, when the history should look coherent
        if fields is not None:
            for key in ("actioned_at", "restored_at", "warned_at"):
                if fields[key] is not None:
                    days, hours = fields[key]
                    fields[key] = as_of - timedelta(days=days, hours=hours)
            gap = fields.pop("first_warned_gap")
            if fields["stage"] in ("warned", "actioned") and (spec["consistent"] or spec["quiet"]):
                # What the state store would really hold: a warning with its bucket and the time
                # of our action.
                fields["warned_at"] = fields["warned_at"] or as_of - timedelta(days=1)
                fields["last_warned_lead_days"] = fields["last_warned_lead_days"] or 1
                if fields["stage"] == "actioned":
                    fields["actioned_at"] = fields["actioned_at"] or as_of - timedelta(days=30)
                if spec["quiet"]:  # no activity since the warning (else the cycle resets)
                    latest = min(filter(None, (fields["warned_at"], fields["actioned_at"])))
                if spec["consistent"] and fields["stage"] == "actioned":  # Atlassian shows our action
                    status = {"suspend": "suspended", "deactivate": "deactivated"}.get(
                        fields["actioned_action"], "active"
                    )
            if gap is not None and fields["warned_at"] is not None:
                fields["first_warned_at"] = fields["warned_at"] - timedelta(days=gap[0], hours=gap[1])
            history[account_id] = UserHistory(**fields)
        product_access = {}
        for product, value in sorted(spec["access"].items()):
            when = None if value is None else as_of - timedelta(days=value[0], hours=value[1])
            if when is not None and latest is not None:
                when = min(when, latest)
            product_access[product] = format_timestamp(when)
        seen = [value for value in product_access.values() if value]
        users.append(
            UserRecord(
                account_id=account_id,
                account_type=spec["account_type"],
                name=spec["name"],
                email=email,
                email_domain=spec["domain"] if email else None,
                status=status,
                account_status="active",
                membership_status="active",
                claim_status=spec["claim"],
                added_to_org=None if spec["added"] is None else stamp(as_of, *spec["added"]),
                platform_roles=spec["roles"],
                groups=sorted(spec["groups"]),
                group_ids=[],
                product_access=product_access,
                last_active=max(seen) if seen else None,
            )
        )
    return {
        "users": users,
        "policy": draw(policies()),
        "as_of": as_of,
        "history": history if lifecycle or draw(st.integers(0, 3)) else None,
    }


def run(org: dict[str, Any]) -> pd.DataFrame:
    return plan_actions(
        org["users"],
        org["policy"],
        org["as_of"],
        history=org["history"],
        api_user_emails=[API_EMAIL.upper()],
        api_user_account_ids=[API_ID],
    )


def parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def dates_apart(earlier: datetime, later: datetime) -> int:
    """Calendar days between the UTC dates of two moments (the README's day count)."""
    return (later.astimezone(UTC).date() - earlier.astimezone(UTC).date()).days


def must_be_protected(user: UserRecord, policy: Policy, as_of: datetime, hist: UserHistory | None) -> str:
    """An independent statement of the never-touch rules; returns why, or "" when none applies."""
    if user["account_type"] != "atlassian":
        return "account type"
    if set(user["platform_roles"]) & set(PROTECTED_ROLES):
        return "admin role"
    groups = [g.lower() for g in user["groups"]]
    if any(fnmatch.fnmatchcase(g, p.lower()) for g in groups for p in policy.admin_groups):
        return "admin group"
    email = (user["email"] or "").lower()
    if email == API_EMAIL or user["account_id"] == API_ID:
        return "api user"
    if user["account_id"] in policy.protected.account_ids:
        return "account id"
    if email and email in policy.protected.emails:
        return "email"
    domain = email.rsplit("@", 1)[-1] if email else ""
    if domain and any(domain == d or domain.endswith("." + d) for d in policy.protected.domains):
        return "domain"
    if {g.lower() for g in policy.protected.groups} & set(groups):
        return "group"
    added = parse(user["added_to_org"])
    if added is not None and max(dates_apart(added, as_of), 0) < policy.new_user_grace_days:
        return "new user"
    if hist and hist.restored_at and dates_apart(hist.restored_at, as_of) < policy.restored_grace_days:
        return "restored"
    return ""


@SETTINGS
@given(orgs())
def test_protected_users_are_never_touched(org):
    plan = run(org)
    for user, row in zip(org["users"], plan.itertuples(index=False), strict=True):
        hist = (org["history"] or {}).get(user["account_id"])
        why = must_be_protected(user, org["policy"], org["as_of"], hist)
        if why:
            assert row.proposed_action == "none", (why, row.reason)
            assert row.protected_by != "", why
        else:
            assert row.protected_by == "", row.reason


@SETTINGS
@given(orgs())
def test_one_row_per_user_in_input_order_with_consistent_dates(org):
    plan = run(org)
    assert tuple(plan.columns) == plan_columns()
    assert plan["account_id"].tolist() == [u["account_id"] for u in org["users"]]
    assert plan.index.tolist() == list(range(len(org["users"])))
    assert plan["reason"].map(lambda r: isinstance(r, str) and len(r) > 10).all()
    as_of_date = org["as_of"].astimezone(UTC).date()
    for row in plan.itertuples(index=False):
        if row.action_date is not None:
            assert row.days_until_action is not pd.NA
            assert row.action_date == (as_of_date + timedelta(days=int(row.days_until_action))).isoformat()
        if row.days_inactive is not pd.NA:
            assert row.days_inactive >= 0


@SETTINGS
@given(orgs() | orgs(lifecycle=True))
def test_delete_only_for_users_we_actioned_long_enough_ago(org):
    plan = run(org)
    policy = org["policy"]
    for user, row in zip(org["users"], plan.itertuples(index=False), strict=True):
        if row.proposed_action != "delete":
            continue
        hist = (org["history"] or {}).get(user["account_id"])
        assert policy.delete_after_days is not None
        assert hist is not None
        assert hist.stage == "actioned"
        assert hist.actioned_at is not None
        assert dates_apart(hist.actioned_at, org["as_of"]) >= policy.delete_after_days
        assert hist.restored_at is None or hist.restored_at < hist.actioned_at
        assert user["status"] != "for_deletion"
        # Atlassian still shows the account as we left it (nobody restored it by hand).
        if hist.actioned_action == "suspend":
            assert user["status"] in ("suspended", "deactivated")
        elif hist.actioned_action == "deactivate":
            assert user["status"] == "deactivated"
        else:
            assert hist.actioned_action == "remove_product_access"
            assert not user["product_access"]
        last = parse(user["last_active"])
        assert last is None or last <= hist.actioned_at


@SETTINGS
@given(orgs() | orgs(lifecycle=True))
def test_nobody_is_actioned_without_notice(org):
    plan = run(org)
    policy = org["policy"]
    lead_days = policy.warning.lead_days
    for user, row in zip(org["users"], plan.itertuples(index=False), strict=True):
        if row.proposed_action in ("suspend", "deactivate", "remove_product_access"):
            assert user["status"] == "active"
            assert row.proposed_action == policy.action or (
                policy.action == "deactivate" and row.proposed_action == "suspend"
            )
            if row.proposed_action == "deactivate":
                assert user["claim_status"] == "managed"
            if lead_days:
                hist = (org["history"] or {}).get(user["account_id"])
                assert hist is not None
                assert hist.stage == "warned"
                # The notice runs from the first warning (the latest one when that is not known).
                first = hist.first_warned_at or hist.warned_at
                assert dates_apart(first, org["as_of"]) >= notice_days(policy)
        if row.proposed_action == "warn":
            assert row.warning_lead_days in lead_days
        else:
            assert row.warning_lead_days is pd.NA


def notice_days(policy: Policy) -> int:
    """README: warning.min_notice_days, by default the largest lead day."""
    if policy.warning.min_notice_days is not None:
        return policy.warning.min_notice_days
    return max(policy.warning.lead_days)


@SETTINGS
@given(orgs() | orgs(lifecycle=True))
def test_no_action_date_before_the_notice_period_ends(org):
    """Every date the plan announces or acts on is at least min_notice_days after the first warning."""
    plan = run(org)
    policy = org["policy"]
    if not policy.warning.lead_days:
        return
    as_of = org["as_of"]
    today = as_of.astimezone(UTC).date()
    for user, row in zip(org["users"], plan.itertuples(index=False), strict=True):
        hist = (org["history"] or {}).get(user["account_id"])
        warned = hist is not None and hist.stage == "warned" and hist.warned_at and hist.last_warned_lead_days
        first = (hist.first_warned_at or hist.warned_at).astimezone(UTC).date() if warned else today
        if row.proposed_action == "warn" or row.rule in ("notice_period", "already_warned"):
            # The first warning is today's (not warned yet) or the recorded one.
            action_date = datetime.fromisoformat(row.action_date).date()
            assert (action_date - first).days >= notice_days(policy), (row.rule, row.reason)
            assert row.planned_action in ("suspend", "deactivate", "remove_product_access")
        if row.proposed_action in ("suspend", "deactivate", "remove_product_access"):
            assert warned
            assert (today - first).days >= notice_days(policy), (row.rule, row.reason)


@SETTINGS
@given(orgs() | orgs(lifecycle=True))
def test_planning_is_deterministic_and_does_not_mutate_inputs(org):
    before = copy.deepcopy(org)
    first = run(org)
    assert org == before
    second = run(org)
    pd.testing.assert_frame_equal(first, second)
    # The same plan from a DataFrame of the same users.
    if org["users"]:
        frame_input = pd.DataFrame(org["users"])
        frame_before = frame_input.copy(deep=True)
        from_frame = plan_actions(
            frame_input,
            org["policy"],
            org["as_of"],
            history=org["history"],
            api_user_emails=[API_EMAIL],
            api_user_account_ids=[API_ID],
        )
        pd.testing.assert_frame_equal(frame_input, frame_before)
        pd.testing.assert_frame_equal(first, from_frame)


SCOPE_SELECTORS = st.sampled_from(
    [
        {"managed": True},
        {"managed": False},
        {"groups": ["contractors"]},
        {"email_domains": ["partner.example"]},
        {"products": ["confluence"]},
        {"products": ["jira"], "managed": True},
    ]
)
SCOPE_ACTIONS = st.sampled_from(["suspend", "deactivate", "remove_product_access"])


def scope_selects(selector: dict[str, Any], user: UserRecord) -> bool:
    """The README's selector semantics, written out per user (the code matches column-wise)."""
    email = user["email"] or ""
    domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
    claim = {True: "managed", False: "unmanaged"}
    checks = {
        "managed": lambda want: user["claim_status"] == claim[want],
        "groups": lambda want: bool({g.lower() for g in user["groups"]} & set(want)),
        "email_domains": lambda want: any(domain == d or domain.endswith("." + d) for d in want),
        "products": lambda want: bool(set(user["product_access"]) & set(want)),
    }
    return all(checks[key](want) for key, want in selector.items())


@SETTINGS
@given(orgs() | orgs(lifecycle=True), SCOPE_SELECTORS, st.integers(2, 60), SCOPE_ACTIONS)
def test_a_scoped_rules_users_are_planned_as_under_its_settings_alone(org, selector, days, action):
    """Oracle: the users the rule selects get the rows of the policy with the rule's settings at the
    top level; the others the rows of the policy without the rule."""
    data = org["policy"].to_dict()
    rule = {"name": "scoped", "match": selector, "inactivity": {"default_days": days}}
    rule.update({"warning": {"lead_days": []}, "action": action})
    protected = data["protected"]
    group_protected = {g.lower() for g in protected["groups"]} | {
        "contractors"
        for pattern in data["admin_groups"]
        if fnmatch.fnmatchcase("contractors", pattern.lower())
    }
    if ("contractors" in group_protected and "groups" in selector) or (
        "partner.example" in protected["domains"] and "email_domains" in selector
    ):  # the drawn protections cover the rule's whole population
        with pytest.raises(PolicyError, match="can never apply"):
            policy_from_dict({**data, "rules": [rule]})
        return
    scoped = run({**org, "policy": policy_from_dict({**data, "rules": [rule]})})
    alone_data = {**data, "inactivity": {**data["inactivity"], "default_days": days}, "action": action}
    alone_data["warning"] = {**data["warning"], "lead_days": []}
    alone = run({**org, "policy": policy_from_dict(alone_data)})
    default = run(org)
    for i, user in enumerate(org["users"]):
        selected = scope_selects(selector, user)
        row = scoped.iloc[i].to_dict()
        assert row.pop("policy_rule") == ("scoped" if selected else "default")
        want = (alone if selected else default).iloc[i].to_dict()
        want.pop("policy_rule")
        assert str(row) == str(want), (selector, user["account_id"])


@st.composite
def reviewed_orgs(draw: st.DrawFn) -> dict[str, Any]:
    """A random org under ``review: true`` and random admin decisions for some of its users."""
    from atlassian_cleanup.decisions.reviews import ReviewDecision

    org = draw(orgs() | orgs(lifecycle=True))
    org["policy"] = policy_from_dict({**org["policy"].to_dict(), "review": True})
    decided_at = org["as_of"] - timedelta(days=draw(st.integers(0, 5)))
    reviews = {}
    for user in org["users"]:
        kind = draw(st.sampled_from(["none", "none", "approve", "keep", "expired_keep"]))
        if kind == "none":
            continue
        until = org["as_of"].astimezone(UTC).date() + timedelta(days=-1 if kind == "expired_keep" else 3)
        reviews[user["account_id"]] = ReviewDecision(
            account_id=user["account_id"],
            decision="approve" if kind == "approve" else "keep",
            reason="decided in a test",
            decided_by="alice",
            decided_at=decided_at,
            keep_until=None if kind == "approve" else until,
        )
    org["reviews"] = reviews
    return org


@SETTINGS
@given(reviewed_orgs())
def test_under_review_no_first_action_without_an_approve_and_nothing_for_a_kept_user(org):
    plan = plan_actions(
        org["users"], org["policy"], org["as_of"], history=org["history"], reviews=org["reviews"]
    )
    today = org["as_of"].astimezone(UTC).date()
    first_actions = {"suspend", "deactivate", "remove_product_access"}
    for user, row in zip(org["users"], plan.itertuples(index=False), strict=True):
        decision = org["reviews"].get(user["account_id"])
        approved = decision is not None and decision.decision == "approve"
        kept = decision is not None and decision.decision == "keep" and decision.keep_until >= today
        if row.proposed_action in first_actions:
            assert approved, (user["account_id"], row.rule, row.reason)
            assert row.review_by == "alice"
        if kept:
            assert row.proposed_action == "none", row.reason
            assert row.protected_by, row.reason
        if row.rule == "awaiting_review":
            assert (row.proposed_action, row.review_decision) == ("none", "awaiting")
            assert row.planned_action in first_actions
