"""Product access as Atlassian reports it: access from group role assignments, dates from activity.

Contract (atlassian-api.md §3.6, §5.1, §9.2): ``productAccess`` lists the products a user *opened*;
a product the user may use but never opened is absent from it. What grants access is the user's
groups and the roles those groups hold on each product. The README promises: "a product they never
opened counts from the day they joined the org". The expected values below come from those
sentences and from dates spelled out in each test, not from the planner's constants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atlassian_cleanup.actions.notifications import render_warning
from atlassian_cleanup.decisions.planner import UserHistory, plan_actions, plan_to_records
from atlassian_cleanup.decisions.policy import LicensingPolicy, policy_from_dict
from atlassian_cleanup.decisions.records import is_idp_managed, product_grants, user_record_from_v2
from atlassian_cleanup.decisions.user_table import UserTable
from atlassian_cleanup.reports.seats import seat_figures

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
JIRA_USERS, CONF_USERS, ADMINS, SITE_ADMINS, NOTHING = "g-jira", "g-conf", "g-admins", "g-site", "g-none"


def stamp(days: int) -> str:
    return (AS_OF - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def assignment(resource: str, *roles: str, owner: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"resourceId": resource, "roleAssignments": [{"role": r} for r in roles]}
    if owner:
        entry["resourceOwner"] = owner
    return entry


#: Groups and their role assignments as the Admin API gives them (§5.2).
GROUPS = [
    ({"id": JIRA_USERS, "name": "jira-software-users-acme"}, [
        assignment("ari:cloud:jira-software::site/c1", "atlassian/user")]),
    ({"id": CONF_USERS, "name": "confluence-users-acme"}, [
        assignment("ari:cloud:confluence::site/c1", "atlassian/user")]),
    ({"id": ADMINS, "name": "jsm-agents"}, [
        assignment("opaque-resource-id", "atlassian/user", owner="jira-servicedesk")]),
    # A platform role is no product; an assignment without roles grants nothing.
    ({"id": SITE_ADMINS, "name": "site-admins"}, [
        assignment("ari:cloud:platform::site/c1", "atlassian/site-admin"),
        assignment("ari:cloud:confluence::site/c1")]),
    ({"id": NOTHING, "name": "marketing"}, []),
]  # fmt: skip


def v2_user(
    account_id: str,
    *,
    groups: tuple[str, ...],
    activity: dict[str, str] | None = None,
    added_days: int = 400,
    claim: str = "managed",
    source: str | None = "invited",
) -> dict[str, Any]:
    """A v2 ``users/search`` result with the contract's default: never-opened products absent."""
    user = {
        "accountId": account_id,
        "accountType": "atlassian",
        "status": "active",
        "accountStatus": "active",
        "membershipStatus": "active",
        "claimStatus": claim,
        "addedToOrg": stamp(added_days),
        "name": f"User {account_id}",
        "email": f"{account_id}@acme.example",
        "groups": [{"id": g, "name": g} for g in groups],
        "productAccess": [
            {"key": key, "id": f"ari:cloud:{key}::site/c1", "lastActiveTimestamp": seen}
            for key, seen in (activity or {}).items()
        ],
    }
    if source is not None:
        user["managementSource"] = source
    return user


def records(*users: dict[str, Any]) -> list[Any]:
    grants = product_grants(GROUPS)
    return [user_record_from_v2(user, grants) for user in users]


def policy(**data: Any) -> Any:
    base: dict[str, Any] = {"inactivity": {"default_days": 90}, "warning": {"lead_days": []}}
    base.update(data)
    return policy_from_dict(base)


def plan(users: list[Any], pol: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    return {row["account_id"]: row for row in plan_to_records(plan_actions(users, pol, AS_OF, **kwargs))}


# -- access from the groups' role assignments ------------------------------------------------------


def test_group_grants_come_from_role_assignments():
    grants = product_grants(GROUPS)
    assert grants == {
        JIRA_USERS: frozenset({"jira"}),
        CONF_USERS: frozenset({"confluence"}),
        ADMINS: frozenset({"jsm"}),  # opaque id: the resource owner names the product
    }


def test_never_opened_product_is_access_with_no_date():
    never, some = records(
        v2_user("never", groups=(JIRA_USERS, CONF_USERS)),
        v2_user("some", groups=(JIRA_USERS, CONF_USERS, NOTHING), activity={"jira": stamp(5)}),
    )
    assert never["product_access"] == {"confluence": None, "jira": None}
    assert never["last_active"] is None
    assert some["product_access"] == {"confluence": None, "jira": stamp(5)}


def test_activity_without_a_grant_is_activity_not_access():
    (record,) = records(v2_user("gone", groups=(JIRA_USERS,), activity={"confluence": stamp(3)}))
    assert record["product_access"] == {"jira": None}
    assert record["last_active"] == stamp(3)  # the user did something: overall activity counts it


def test_without_grants_productaccess_is_read_as_before():
    record = user_record_from_v2(v2_user("x", groups=(JIRA_USERS,), activity={"confluence": stamp(3)}))
    assert record["product_access"] == {"confluence": stamp(3)}


def test_user_table_round_trip_keeps_the_granted_products():
    users = records(v2_user("never", groups=(JIRA_USERS, CONF_USERS)))
    table = UserTable.from_json(json.loads(json.dumps(UserTable.from_records(users).to_json())))
    assert next(table.records())["product_access"] == {"confluence": None, "jira": None}


# -- never-opened products count from joining, for every action and the seats ------------------------


def test_remove_product_access_removes_never_opened_products_too():
    # Joined 400 days ago, opened Jira 10 days ago, never opened Confluence: Confluence has been
    # unused for 400 days (>= 90), so it is removed; Jira is kept.
    users = records(
        v2_user("mixed", groups=(JIRA_USERS, CONF_USERS), activity={"jira": stamp(10)}),
        v2_user("never", groups=(JIRA_USERS, CONF_USERS)),
        v2_user("new", groups=(JIRA_USERS,), added_days=30),
    )
    rows = plan(users, policy(action="remove_product_access"))
    assert rows["mixed"]["proposed_action"] == "remove_product_access"
    assert rows["mixed"]["products_to_remove"] == ["confluence"]
    joined = (AS_OF - timedelta(days=400)).date().isoformat()
    assert (
        f"No activity in Confluence for 400 days (threshold 90, never used since joining on {joined})"
        in (rows["mixed"]["reason"])
    )
    assert rows["never"]["proposed_action"] == "remove_product_access"
    assert rows["never"]["products_to_remove"] == ["confluence", "jira"]
    assert rows["never"]["rule"] != "no_product_access"
    # 30 days since joining: below the 90-day threshold, nothing to remove yet.
    assert rows["new"]["proposed_action"] == "none"
    assert rows["new"]["days_inactive"] == 30


@pytest.mark.parametrize("action", ["suspend", "deactivate"])
def test_suspend_needs_the_never_opened_product_inactive_too(action):
    # Jira opened 100 days ago, JSM granted but never opened, joined 50 days ago: JSM counts from
    # joining (50 days < 90), so not every product is past its threshold.
    users = records(
        v2_user("recent", groups=(JIRA_USERS, ADMINS), activity={"jira": stamp(100)}, added_days=50),
    )
    row = plan(users, policy(action=action))["recent"]
    assert row["proposed_action"] == "none"
    assert json.loads(row["product_last_active"]) == {"jira": stamp(100), "jsm": None}


def test_seats_count_never_opened_products():
    users = records(
        v2_user("never", groups=(JIRA_USERS, CONF_USERS)),
        v2_user("mixed", groups=(JIRA_USERS, CONF_USERS), activity={"jira": stamp(10)}),
    )
    rows = list(plan(users, policy(action="remove_product_access")).values())
    results = {row["account_id"]: "done" for row in rows}
    seats = seat_figures(rows, results, LicensingPolicy(), dry_run=False)
    # Two users hold Jira and Confluence: four seats; "never" loses both, "mixed" loses Confluence.
    assert seats["before"] == {"confluence": 2, "jira": 2}
    assert seats["reclaimed"] == {"confluence": 2, "jira": 1}
    assert seats["total_after"] == 1


# -- managed means managed ----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["scim", "SCIM"])
def test_scim_account_is_suspended_and_told_so(source):
    assert is_idp_managed(source)
    users = records(
        v2_user("scim", groups=(JIRA_USERS,), activity={"jira": stamp(120)}, source=source),
        v2_user("own", groups=(JIRA_USERS,), activity={"jira": stamp(120)}),
    )
    acted = plan(users, policy(action="deactivate"))
    assert acted["own"]["proposed_action"] == "deactivate"
    assert acted["scim"]["proposed_action"] == "suspend"
    assert "identity provider (SCIM)" in acted["scim"]["reason"]
    assert "suspending instead" in acted["scim"]["reason"]

    warned = plan(users, policy(action="deactivate", warning={"lead_days": [14, 7]}))
    row = warned["scim"]
    assert row["proposed_action"] == "warn"
    assert row["planned_action"] == "suspend"
    subject, html, text = render_warning(row)
    assert "suspended" in subject
    assert "deactivat" not in subject + html + text
    assert "no longer be able to log in to any Atlassian product" not in text
    own_subject, _html, own_text = render_warning(warned["own"])
    assert "deactivated" in own_subject
    assert "no longer be able to log in to any Atlassian product" in own_text


@pytest.mark.parametrize("source", [None, "invited", "", "Invited"])
def test_invited_or_unknown_source_is_not_idp_managed(source):
    assert not is_idp_managed(source)


# -- removed means removed ---------------------------------------------------------------------------


def removal(at_days: int, *products: str, **fields: Any) -> UserHistory:
    return UserHistory(
        stage="actioned",
        actioned_at=AS_OF - timedelta(days=at_days),
        actioned_action="remove_product_access",
        removed_products=products,
        **fields,
    )


def test_a_removed_product_is_never_planned_again():
    # A stale read still shows Confluence (never opened) although this tool removed it 2 days ago.
    users = records(v2_user("u", groups=(JIRA_USERS, CONF_USERS), activity={"jira": stamp(5)}))
    pol = policy(action="remove_product_access", warning={"lead_days": [3, 1]}, delete_after_days=7)
    row = plan(users, pol, history={"u": removal(2, "confluence")})["u"]
    assert row["proposed_action"] == "none"
    assert "Not warned yet" not in row["reason"]
    assert row["products_to_remove"] == []
    assert json.loads(row["product_last_active"]) == {"jira": stamp(5)}


def test_a_user_whose_products_were_all_removed_is_deleted_after_delete_after_days():
    users = records(v2_user("u", groups=(CONF_USERS,)))  # Confluence still listed (stale)
    # Deletion notices off: this test is about reaching deletion, not the notice before it.
    pol = policy(
        action="remove_product_access",
        warning={"lead_days": [3, 1]},
        delete_after_days=7,
        delete_notice_days=0,
    )
    waiting = plan(users, pol, history={"u": removal(6, "confluence")})["u"]
    assert (waiting["proposed_action"], waiting["rule"]) == ("none", "awaiting_delete")
    due = plan(users, pol, history={"u": removal(7, "confluence")})["u"]
    assert (due["proposed_action"], due["rule"]) == ("delete", "dormant_delete")
    # Without the record of the removal the stale product would be warned about again instead.
    unknown = plan(users, pol, history={"u": removal(7)})["u"]
    assert unknown["proposed_action"] == "warn"


def test_access_comes_back_with_a_restore_or_with_use():
    pol = policy(action="remove_product_access", delete_after_days=7)
    users = records(v2_user("u", groups=(CONF_USERS,)))
    restored = removal(200, "confluence", restored_at=AS_OF - timedelta(days=150))
    row = plan(users, pol, history={"u": restored})["u"]
    assert row["products_to_remove"] == ["confluence"]  # restored 150 days ago, unused since
    used = records(v2_user("u", groups=(CONF_USERS,), activity={"confluence": stamp(100)}))
    row = plan(used, pol, history={"u": removal(200, "confluence")})["u"]
    assert row["rule"] == "activity_seen"  # used after the removal: the access is back
    assert json.loads(row["product_last_active"]) == {"confluence": stamp(100)}


def test_user_history_carries_removed_products():
    history = removal(3, "jira-software", "confluence")
    assert history.removed_products == ("confluence", "jira")
    assert UserHistory.from_dict(history.to_dict()) == history
    with pytest.raises(TypeError, match="removed_products"):
        UserHistory(removed_products="jira")  # type: ignore[arg-type]


class _ManageApi:
    """``GET /users/{id}/manage`` answers (§4.5), per account id."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        self.asked: list[str] = []

    def get_manage_privileges(self, account_id: str) -> dict[str, Any]:
        self.asked.append(account_id)
        if account_id in self.refused:
            entry = {"allowed": False, "reason": {"key": self.refused[account_id]}}
        else:
            entry = {"allowed": True}
        return {"lifecycle.enablement": entry, "lifecycle.delete": entry}


def test_the_manage_api_decides_what_is_promised():
    """The v2 user says managed and invited, yet Atlassian's manage API refuses the deactivation:
    the plan, its reason and the warning e-mail all say "suspended"."""
    from atlassian_cleanup.actions.enforcement import deactivation_refusals

    api = _ManageApi({"locked": "myselfOnly", "scim": "externalDirectory.scim"})
    assert deactivation_refusals(api, ["own", "locked", "scim", "own"]) == {
        "locked": "myselfOnly",
        "scim": "externalDirectory.scim",
    }
    assert api.asked == ["own", "locked", "scim"]  # each account asked once

    users = records(
        *(v2_user(a, groups=(JIRA_USERS,), activity={"jira": stamp(85)}) for a in ("own", "locked"))
    )
    pol = policy(action="deactivate", warning={"lead_days": [14, 7]})
    rows = plan(users, pol, not_deactivatable={"locked": "myselfOnly"})
    assert (rows["own"]["proposed_action"], rows["own"]["planned_action"]) == ("warn", "deactivate")
    locked = rows["locked"]
    assert (locked["proposed_action"], locked["planned_action"]) == ("warn", "suspend")
    assert "does not allow deactivating this account; suspending instead" in locked["reason"]
    subject, _html, text = render_warning(locked)
    assert "will be suspended" in subject
    assert "deactivat" not in text.lower()
    due = records(v2_user("locked", groups=(JIRA_USERS,), activity={"jira": stamp(120)}))
    acted = plan(due, policy(action="deactivate"), not_deactivatable={"locked": "externalDirectory.scim"})
    assert acted["locked"]["proposed_action"] == "suspend"
    assert "identity provider (SCIM)" in acted["locked"]["reason"]
