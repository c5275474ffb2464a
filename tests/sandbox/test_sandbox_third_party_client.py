"""atlassian-python-api, a real third-party client, against the running sandbox.

Every call the library offers for an endpoint the sandbox serves is driven here over HTTP
(uvicorn in a thread) and checked against what the contract (``atlassian-api.md``) says the
answer is, with values taken from the sandbox's ground truth (``GET /_sim/users``) or its live
model, never from the sandbox's constants. ``test_every_library_call_on_a_served_endpoint_is_driven``
keeps "every" honest: it lists the library methods that reach a served route and fails when one
has no test here.

The clients keep their real addresses (``https://api.atlassian.com``, ``https://acme.atlassian.net``):
a session hands what they send to the sandbox and refuses any other address, so nothing leaves the
machine, and the library's own Cloud detection (it looks for ``atlassian.net`` in the URL) behaves
as in production.

Where the library and the contract disagree, the test asserts the contract's answer; the
disagreements are named in the test names (``..._disagrees_...``) and listed in the sandbox README.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from atlassian_sandbox import SandboxConfig, SandboxServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from atlassian import CloudAdmin, CloudAdminOrgs, CloudAdminUsers, Jira, ServiceDesk
    from atlassian.jira import JiraCloud, JiraServiceManagement
    from atlassian.rest_client import AtlassianRestAPI

pytestmark = pytest.mark.integration

ADMIN_HOST = "https://api.atlassian.com"
SITE_HOST = "https://acme.atlassian.net"
ORG = {"users": 80, "seed": 11, "as_of": "2026-11-26"}


class ToSandbox(requests.Session):
    """Sends requests addressed to Atlassian to the sandbox; refuses every other address."""

    def __init__(self, sandbox_url: str) -> None:
        super().__init__()
        self.sandbox_url = sandbox_url

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = str(url)
        for host in (ADMIN_HOST, SITE_HOST):
            if url.startswith(host + "/"):
                url = self.sandbox_url + url[len(host) :]
                break
        else:
            # Links the sandbox returns (v1 links.next, JSM _links) carry its own address.
            if not url.startswith(self.sandbox_url + "/"):
                raise AssertionError(f"the client tried to leave the sandbox: {url}")
        return super().request(method, url, *args, **kwargs)


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(
        SandboxConfig(users=ORG["users"], seed=ORG["seed"], as_of=date.fromisoformat(ORG["as_of"]))
    ) as sb:
        yield sb


@pytest.fixture(autouse=True)
def fresh_org(server: SandboxServer) -> None:
    reply = requests.post(f"{server.url}/_sim/reset", json=ORG, timeout=30)
    assert reply.status_code == 200, reply.text
    requests.delete(f"{server.url}/_sim/calls", timeout=10)
    defaults = SandboxConfig()
    server.configure(v1_page_size=defaults.v1_page_size, rate_limit_enabled=False)


@pytest.fixture
def info(server: SandboxServer) -> dict[str, Any]:
    data: dict[str, Any] = requests.get(f"{server.url}/_sim/info", timeout=10).json()
    return data


def truth(server: SandboxServer) -> list[dict[str, Any]]:
    """The sandbox's ground truth (``GET /_sim/users``), read over HTTP."""
    users: list[dict[str, Any]] = requests.get(f"{server.url}/_sim/users", timeout=30).json()["users"]
    return users


def truth_of(server: SandboxServer, account_id: str) -> dict[str, Any]:
    reply = requests.get(f"{server.url}/_sim/users", params={"accountId": account_id}, timeout=10).json()
    (user,) = reply["users"]
    return dict(user)


def in_directory(user: dict[str, Any]) -> bool:
    """Who the v2 directory reads return (§3.3-§3.5): directory members and every managed account.

    Portal-only customers are no directory members; an unmanaged account that was removed from
    the directory is gone from it (§4.3), a managed one still shows as a managed account.
    """
    if user["account_type"] == "customer":
        return False
    return user["membership_status"] != "no_membership" or user["claim_status"] == "managed"


def pick(server: SandboxServer, **where: Any) -> dict[str, Any]:
    for user in truth(server):
        if all(user[k] == v for k, v in where.items()):
            return user
    raise AssertionError(f"the seeded org has no user with {where}")


def pick_outsider(server: SandboxServer, group_id: str) -> dict[str, Any]:
    """An active Atlassian account that is not in the group."""
    return next(
        u
        for u in truth(server)
        if u["account_type"] == "atlassian" and u["status"] == "active" and group_id not in u["group_ids"]
    )


def error_of(excinfo: pytest.ExceptionInfo[requests.HTTPError]) -> tuple[int, Any]:
    response = excinfo.value.response
    assert response is not None
    return response.status_code, response.json()


@pytest.fixture
def admin(server: SandboxServer) -> CloudAdmin:
    return CloudAdmin(admin_api_key=server.config.admin_api_key, session=ToSandbox(server.url))


@pytest.fixture
def admin_orgs(server: SandboxServer) -> CloudAdminOrgs:
    return CloudAdminOrgs(admin_api_key=server.config.admin_api_key, session=ToSandbox(server.url))


@pytest.fixture
def admin_users(server: SandboxServer) -> CloudAdminUsers:
    return CloudAdminUsers(admin_api_key=server.config.admin_api_key, session=ToSandbox(server.url))


def site_kwargs(server: SandboxServer) -> dict[str, Any]:
    return {
        "username": server.config.site_email,
        "password": server.config.site_token,
        "session": ToSandbox(server.url),
    }


@pytest.fixture
def jira(server: SandboxServer) -> Jira:
    """The legacy-compatible ``Jira`` client (``from atlassian import Jira``): REST API v2."""
    return Jira(SITE_HOST, cloud=True, **site_kwargs(server))


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def cloud(request: pytest.FixtureRequest, server: SandboxServer) -> JiraCloud:
    return JiraCloud(SITE_HOST, api_version=request.param, **site_kwargs(server))


@pytest.fixture
def service_desk(server: SandboxServer) -> ServiceDesk:
    return ServiceDesk(SITE_HOST, cloud=True, **site_kwargs(server))


@pytest.fixture
def jsm(server: SandboxServer) -> JiraServiceManagement:
    return JiraServiceManagement(SITE_HOST, **site_kwargs(server))


# =========================================================================== Admin API (CloudAdmin)
def test_cloud_admin_organizations_and_directories(admin: CloudAdmin, info: dict[str, Any]) -> None:
    orgs = admin.get_organizations()
    assert [o["id"] for o in orgs["data"]] == [info["org_id"]]
    assert orgs["data"][0]["type"] == "orgs"  # §2.1
    org = admin.get_organization(info["org_id"])
    assert org["data"]["id"] == info["org_id"]
    assert org["data"]["attributes"]["name"] == info["org_name"]
    with pytest.raises(requests.HTTPError) as missing:
        admin.get_organization("no-such-org")
    status, body = error_of(missing)
    assert (status, body["errors"][0]["code"]) == (404, "ADMIN-404-2")  # §2.2
    directories = admin.get_directories(info["org_id"])
    assert [d["directoryId"] for d in directories["data"]] == [info["directory_id"]]  # §2.3


def test_cloud_admin_search_directory_users_pages_the_whole_directory(
    admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]
) -> None:
    expected = {u["account_id"]: u for u in truth(server) if in_directory(u)}
    seen: dict[str, dict[str, Any]] = {}
    body: dict[str, Any] = {"limit": 25, "expand": ["productAccess", "groups"]}
    pages = 0
    while True:
        page = admin.search_directory_users(info["org_id"], info["directory_id"], body)
        pages += 1
        for user in page["data"]:
            assert user["accountId"] not in seen, "a cursor page repeated a user"
            seen[user["accountId"]] = user
        cursor = page["links"].get("next")
        if not cursor:
            break
        body = {"cursor": cursor, "limit": 25, "expand": ["productAccess", "groups"]}  # opaque token (§3.3)
    assert pages > 1
    assert set(seen) == set(expected)
    for account_id, user in seen.items():
        gt = expected[account_id]
        assert (user["status"], user["accountStatus"]) == (gt["status"], gt["account_status"])
        assert user["membershipStatus"] == gt["membership_status"]
        assert sorted(g["id"] for g in user["groups"]) == sorted(gt["group_ids"])
        used = {a["id"]: a["lastActiveTimestamp"] for a in user["productAccess"]}
        # productAccess lists the products the user opened; one never opened is absent (§3.6).
        assert used == {info["resources"][p]: ts for p, ts in gt["product_access"].items() if ts is not None}


def test_cloud_admin_search_directory_users_filters_and_refuses_search_term_with_emails(
    admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]
) -> None:
    target = pick(server, status="suspended", account_type="atlassian")
    found = admin.search_directory_users(info["org_id"], info["directory_id"], {"emails": [target["email"]]})
    assert [u["accountId"] for u in found["data"]] == [target["account_id"]]
    suspended = admin.search_directory_users(
        info["org_id"], info["directory_id"], {"status": ["suspended"], "limit": 100}
    )
    assert {u["accountId"] for u in suspended["data"]} == {
        u["account_id"] for u in truth(server) if in_directory(u) and u["status"] == "suspended"
    }
    with pytest.raises(requests.HTTPError) as both:
        admin.search_directory_users(
            info["org_id"], info["directory_id"], {"searchTerm": "a", "emails": [target["email"]]}
        )
    assert error_of(both)[0] == 400  # §3.4: searchTerm and emails together


def test_cloud_admin_get_directory_user(
    admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]
) -> None:
    for where in ({"status": "active", "claim_status": "managed"}, {"status": "deactivated"}):
        gt = pick(server, **where)
        user = admin.get_directory_user(info["org_id"], info["directory_id"], gt["account_id"])["data"]
        assert user["accountId"] == gt["account_id"]
        assert (user["status"], user["accountStatus"], user["email"]) == (
            gt["status"],
            gt["account_status"],
            gt["email"],
        )
    with pytest.raises(requests.HTTPError) as missing:
        admin.get_directory_user(info["org_id"], info["directory_id"], "557058:no-such-user")
    status, body = error_of(missing)
    assert (status, body["errors"][0]["code"]) == (404, "ADMIN-404-8")


def test_cloud_admin_get_directory_users_count_is_a_count_not_an_account_id(
    admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]
) -> None:
    # Was matched by users/{account_id} and answered 404 "User count not found".
    expected = sum(1 for u in truth(server) if in_directory(u))
    assert admin.get_directory_users_count(info["org_id"], info["directory_id"]) == {"count": expected}
    assert admin.get_directory_users_count(info["org_id"], "-") == {"count": expected}  # all directories
    # §3.5: the count takes the list's filters (§3.3); the library's method passes none, its
    # generic get() does. The count agrees with the ground truth and with the list itself.
    path = f"admin/v2/orgs/{info['org_id']}/directories/{info['directory_id']}/users"
    for params in (
        {"status": "suspended"},
        {"accountStatus": ["inactive", "closed"]},
        {"claimStatus": "managed"},
    ):
        counted = admin.get(f"{path}/count", params=params)["count"]
        listed = admin.get(path, params={**params, "limit": 100})["data"]
        assert counted == len(listed) > 0
        for key, wanted in params.items():
            field = {"status": "status", "accountStatus": "account_status", "claimStatus": "claim_status"}[
                key
            ]
            values = wanted if isinstance(wanted, list) else [wanted]
            assert counted == sum(1 for u in truth(server) if in_directory(u) and u[field] in values)
    with pytest.raises(requests.HTTPError) as bad:
        admin.get(f"{path}/count", params={"status": "sleeping"})
    assert error_of(bad)[0] == 400
    with pytest.raises(requests.HTTPError) as other_org:
        admin.get_directory_users_count("no-such-org", info["directory_id"])
    assert error_of(other_org)[0] == 404


def test_directory_user_stats_count_statuses_and_roles(
    admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]
) -> None:
    # No library method: the generic get() on the §3.5 route, shape per jira.js's model.
    stats = admin.get(f"admin/v2/orgs/{info['org_id']}/directories/{info['directory_id']}/users/stats")
    members = [u for u in truth(server) if in_directory(u)]
    by_status = {s["status"]: s["count"] for s in stats["accountStatus"]}
    for status in ("active", "inactive", "closed"):
        assert by_status[status] == sum(1 for u in members if u["account_status"] == status)
    roles = {r["roleId"]: r["count"] for r in stats["roles"]}
    assert roles["atlassian/org-admin"] == sum(
        1 for u in members if "atlassian/org-admin" in u["platform_roles"]
    )
    assert 0 < roles["atlassian/user"] <= len(members)


def test_cloud_admin_groups(admin: CloudAdmin, server: SandboxServer, info: dict[str, Any]) -> None:
    listed = admin.get_groups(info["org_id"], info["directory_id"], limit=100)
    assert {g["id"]: g["name"] for g in listed["data"]} == {gid: name for name, gid in info["groups"].items()}
    name, group_id = next(iter(info["groups"].items()))
    members = sum(1 for u in truth(server) if group_id in u["group_ids"])
    group = admin.get_group(info["org_id"], info["directory_id"], group_id)["data"]
    assert (group["name"], group["counts"]["users"]) == (name, members)
    searched = admin.search_directory_groups(info["org_id"], info["directory_id"], {"groupNames": [name]})
    assert [g["id"] for g in searched["data"]] == [group_id]
    term = admin.get_groups(info["org_id"], info["directory_id"], search_term=name)
    assert group_id in {g["id"] for g in term["data"]}
    with pytest.raises(requests.HTTPError) as missing:
        admin.get_group(info["org_id"], info["directory_id"], "no-such-group")
    status, body = error_of(missing)
    assert (status, body["errors"][0]["code"]) == (404, "ADMIN-404-10")


# ====================================================================== User management (CloudAdmin)
def test_cloud_admin_permissions_and_profile(
    admin: CloudAdmin, admin_users: CloudAdminUsers, server: SandboxServer
) -> None:
    managed = pick(server, claim_status="managed", account_status="active", scim_managed=False)
    wanted = ["lifecycle.enablement", "lifecycle.delete"]
    privileges = admin.get_user_management_permissions(managed["account_id"], privileges=wanted)
    assert privileges == {name: {"allowed": True} for name in wanted}  # §4.5
    unmanaged = pick(server, claim_status="unmanaged", account_type="atlassian")
    blocked = admin.get_user_management_permissions(unmanaged["account_id"], privileges=wanted)
    assert all(entry["allowed"] is False for entry in blocked.values())
    for client in (admin.get_user_profile, admin_users.get_profile):
        account = client(managed["account_id"])["account"]
        assert (account["account_id"], account["email"], account["account_status"]) == (
            managed["account_id"],
            managed["email"],
            "active",
        )


def test_cloud_admin_lifecycle_disable_enable_delete_cancel(admin: CloudAdmin, server: SandboxServer) -> None:
    user = pick(server, claim_status="managed", status="active", scim_managed=False, platform_roles=[])
    account_id = user["account_id"]
    assert admin.deactivate_user(account_id, message="Inactive for 90 days") is None  # 204
    assert (truth_of(server, account_id)["account_status"], truth_of(server, account_id)["status"]) == (
        "inactive",
        "deactivated",
    )
    admin.activate_user(account_id)
    assert truth_of(server, account_id)["status"] == "active"
    admin.delete_user(account_id)
    pending = truth_of(server, account_id)
    assert (pending["for_deletion"], pending["account_status"], pending["status"]) == (
        True,
        "inactive",
        "for_deletion",
    )
    with pytest.raises(requests.HTTPError) as early:
        admin.activate_user(account_id)  # a for-deletion account needs cancel-delete first (§4.5)
    assert error_of(early)[0] == 400
    admin.cancel_user_deletion(account_id)
    restored = truth_of(server, account_id)
    assert (restored["for_deletion"], restored["account_status"]) == (False, "active")
    unmanaged = pick(server, claim_status="unmanaged", account_type="atlassian")
    with pytest.raises(requests.HTTPError) as refused:
        admin.deactivate_user(unmanaged["account_id"])  # managed accounts only (§0.5)
    assert error_of(refused)[0] == 403
    assert truth_of(server, unmanaged["account_id"])["account_status"] == unmanaged["account_status"]


# ============================================================ legacy CloudAdminOrgs / CloudAdminUsers
def test_cloud_admin_orgs_managed_accounts_follow_full_url_links(
    admin_orgs: CloudAdminOrgs, server: SandboxServer, info: dict[str, Any]
) -> None:
    server.configure(v1_page_size=20)
    assert [o["id"] for o in admin_orgs.get_organizations()["data"]] == [info["org_id"]]
    assert admin_orgs.get_organization(info["org_id"])["data"]["id"] == info["org_id"]
    expected = {u["account_id"] for u in truth(server) if u["claim_status"] == "managed"}
    seen: list[str] = []
    cursor = None
    while True:
        page = admin_orgs.get_managed_accounts_in_organization(info["org_id"], cursor=cursor)
        assert page["meta"]["total"] == len(expected)
        seen += [u["account_id"] for u in page["data"]]
        if "next" not in page["links"]:
            break
        # §3.1: links.next is a full URL; the library takes the cursor out of it.
        cursor = parse_qs(urlsplit(page["links"]["next"]).query)["cursor"][0]
    assert sorted(seen) == sorted(expected)


def test_cloud_admin_orgs_search_users_disagrees_with_the_contract_removed_endpoint(
    admin_orgs: CloudAdminOrgs, info: dict[str, Any]
) -> None:
    # The library sends GET to the v1 search, documented as POST and removed after 2026-06-30 (§3.2).
    with pytest.raises(requests.HTTPError) as gone:
        admin_orgs.search_users_in_organization(info["org_id"], account_statuses=["active"])
    status, body = error_of(gone)
    assert (status, body["errors"][0]["code"]) == (410, "ADMIN-410-1")


# ================================================================= Jira (legacy client, REST API v2)
def test_jira_users_get_all_pages_a_bare_array(jira: Jira, server: SandboxServer) -> None:
    seen: list[str] = []
    start = 0
    while True:
        page = jira.users_get_all(start=start, limit=30)
        assert isinstance(page, list)  # §5.4: a bare array, page until an empty page
        if not page:
            break
        seen += [u["accountId"] for u in page]
        start += len(page)
    # Includes active, inactive, app and customer accounts (§5.4).
    assert sorted(seen) == sorted(u["account_id"] for u in truth(server))
    assert server.calls()[-1]["path_template"] == "/rest/api/2/users/search"


def test_jira_user_myself_and_user_groups(jira: Jira, server: SandboxServer, info: dict[str, Any]) -> None:
    gt = pick(server, account_status="inactive", account_type="atlassian")
    user = jira.user(account_id=gt["account_id"], expand="groups,applicationRoles")
    assert (user["accountId"], user["active"]) == (gt["account_id"], False)
    assert user["self"].endswith(f"/rest/api/2/user?accountId={gt['account_id']}")
    assert sorted(g["name"] for g in user["groups"]["items"]) == sorted(gt["groups"])
    assert sorted(g["name"] for g in jira.get_user_groups(account_id=gt["account_id"])) == sorted(
        gt["groups"]
    )
    assert jira.myself()["accountId"] == info["api_account_id"]


def test_jira_is_active_user_disagrees_with_the_contract_no_usernames(jira: Jira) -> None:
    # The library looks users up by username; Jira Cloud identifies them by accountId only (§5.4).
    with pytest.raises(requests.HTTPError) as refused:
        jira.is_active_user("ada")
    status, body = error_of(refused)
    assert status == 400
    assert body["errorMessages"]


def test_jira_group_members_add_and_remove(jira: Jira, server: SandboxServer, info: dict[str, Any]) -> None:
    name = next(n for n in info["groups"] if n.startswith("jira-software-users"))
    group_id = info["groups"][name]
    members = [u for u in truth(server) if group_id in u["group_ids"]]
    active = jira.get_all_users_from_group(name, include_inactive_users=False, limit=50)
    everyone = jira.get_all_users_from_group(name, include_inactive_users=True, limit=50)
    assert active["total"] == sum(1 for u in members if u["account_status"] == "active")  # §9.5
    assert everyone["total"] == len(members) > active["total"]
    assert everyone["self"].startswith(f"{server.url}/rest/api/2/group/member")
    if not everyone["isLast"]:
        assert everyone["nextPage"].startswith(f"{server.url}/rest/api/2/group/member")

    outsider = pick_outsider(server, group_id)
    added = jira.add_user_to_group(group_name=name, account_id=outsider["account_id"])
    assert (added["name"], added["groupId"]) == (name, group_id)  # 201 + Group (§5.4)
    assert group_id in truth_of(server, outsider["account_id"])["group_ids"]
    with pytest.raises(requests.HTTPError) as again:
        jira.add_user_to_group(group_name=name, account_id=outsider["account_id"])
    status, body = error_of(again)
    assert status == 400
    assert "already a member" in body["errorMessages"][0]
    assert (
        jira.remove_user_from_group(group_name=name, account_id=outsider["account_id"]) is None
    )  # 200, empty
    assert group_id not in truth_of(server, outsider["account_id"])["group_ids"]


def test_jira_application_roles(jira: Jira, server: SandboxServer, info: dict[str, Any]) -> None:
    roles = {r["key"]: r for r in jira.get_all_application_roles()}
    assert set(roles) == {"jira-software", "jira-servicedesk"}
    users = truth(server)
    for key, role in roles.items():
        # Seats are used by the billable users with access to the product (§5.1, §4.1).
        assert role["userCount"] == sum(1 for u in users if u["billable"] and key in u["product_access"])
        assert set(role["defaultGroups"]) <= set(role["groups"]) <= set(info["groups"])
        assert role["remainingSeats"] == role["numberOfSeats"] - role["userCount"]
    assert jira.get_application_role("jira-software") == roles["jira-software"]
    with pytest.raises(requests.HTTPError) as missing:
        jira.get_application_role("no-such-product")
    assert error_of(missing)[0] == 404


def open_issue(server: SandboxServer) -> str:
    state = server.state
    return next(k for k in state.request_order if state.requests[k].category == "NEW")


def test_jira_issue_transitions_by_status_name_with_a_plain_text_comment(
    jira: Jira, server: SandboxServer
) -> None:
    key = open_issue(server)
    transitions = jira.get_issue_transitions(key)
    assert {t["to"] for t in transitions} >= {"Resolved"}
    full = jira.get_issue_transitions_full(key)
    assert full["transitions"][0]["to"]["self"].startswith(f"{server.url}/rest/api/2/status/")
    resolve = jira.get_transition_id_to_status_name(key, "resolved")
    assert resolve == next(t["id"] for t in transitions if t["to"] == "Resolved")
    # v2 takes rich text as a plain string (v3 wants an ADF document).
    jira.set_issue_status(key, "Resolved", update={"comment": [{"add": {"body": "Access restored."}}]})
    request = server.state.requests[key]
    assert request.status == "Resolved"
    assert [(c.body, c.public) for c in request.comments][-1] == ("Access restored.", True)
    reopen = jira.get_issue_transitions(key)[0]
    jira.set_issue_status_by_transition_id(key, reopen["id"])
    assert server.state.requests[key].status == reopen["to"]
    jira.issue_transition(key, "In Progress")
    assert server.state.requests[key].status == "In Progress"
    with pytest.raises(requests.HTTPError) as adf:
        jira.set_issue_status(key, "Resolved", update={"comment": [{"add": {"body": {"type": "doc"}}}]})
    assert error_of(adf)[0] == 400
    assert server.state.requests[key].status == "In Progress"  # refused before anything changed


def test_jira_transition_by_name_disagrees_with_the_contract_id_required(
    jira: Jira, server: SandboxServer
) -> None:
    key = open_issue(server)
    with pytest.raises(requests.HTTPError) as refused:
        jira.set_issue_status_by_transition_name(key, "Resolve")  # body {"transition": {"name": ...}}
    status, body = error_of(refused)
    assert status == 400
    assert "transition" in body["errors"]
    assert server.state.requests[key].category == "NEW"


def test_jira_jql_helpers_use_the_enhanced_search(jira: Jira, server: SandboxServer) -> None:
    state = server.state
    keys = sorted(state.request_order, key=lambda k: int(k.split("-")[1]))
    first = jira.jql("project = ITH ORDER BY key", fields=["summary", "description"], limit=2)
    assert [i["key"] for i in first["issues"]] == keys[:2]
    assert "total" not in first
    # enhanced JQL is v3 only: the description is an ADF document there.
    assert first["issues"][0]["fields"]["description"]["type"] == "doc"
    token = first["nextPageToken"]
    second = jira.enhanced_jql("project = ITH ORDER BY key", fields="summary", nextPageToken=token, limit=2)
    assert [i["key"] for i in second["issues"]] == keys[2:4]
    listed = jira.enhanced_jql_get_list_of_tickets("project = ITH", fields="summary", limit=None)
    assert sorted(i["key"] for i in listed) == keys
    assert sorted(i["key"] for i in jira.jql_get_list_of_tickets("project = ITH", fields="summary")) == keys
    assert [i["key"] for i in jira.get_all_project_issues("ITH", fields="summary")] == keys
    assert jira.get_project_issuekey_all("ITH") == keys
    assert jira.get_project_issuekey_last("ITH") == keys[-1]
    assert jira.get_project_issues_count("ITH") == len(keys)
    issues, missing = jira.bulk_issue([keys[0], keys[-1]], fields="summary")
    assert sorted(i["key"] for i in issues["issues"]) == sorted([keys[0], keys[-1]])
    assert missing == []
    assert {c["path_template"] for c in server.calls()} == {"/rest/api/3/search/jql"}


# =================================================================== JiraCloud (REST API v2 and v3)
def test_jira_cloud_users_and_groups(cloud: JiraCloud, server: SandboxServer, info: dict[str, Any]) -> None:
    version = cloud.api_version
    everyone = sorted(u["account_id"] for u in truth(server))
    for lister in (cloud.get_all_users, cloud.get_all_users_default):
        seen: list[str] = []
        while page := lister(start_at=len(seen), max_results=40):
            seen += [u["accountId"] for u in page]
        assert sorted(seen) == everyone
    gt = pick(server, account_status="active", account_type="atlassian", status="active")
    user = cloud.get_user(account_id=gt["account_id"], expand="groups")
    assert sorted(g["groupId"] for g in user["groups"]["items"]) == sorted(gt["group_ids"])
    assert f"/rest/api/{version}/user?" in user["self"]
    assert sorted(g["groupId"] for g in cloud.get_user_groups(account_id=gt["account_id"])) == sorted(
        gt["group_ids"]
    )
    assert cloud.get_current_user()["accountId"] == info["api_account_id"]

    bulk = cloud.bulk_get_groups(max_results=50)
    assert {g["groupId"] for g in bulk["values"]} == set(info["groups"].values())
    assert bulk["isLast"]
    name = next(n for n in info["groups"] if n.startswith("jira-software-users"))
    group_id = info["groups"][name]
    named = cloud.bulk_get_groups(group_name=name)
    assert [g["groupId"] for g in named["values"]] == [group_id]
    members = cloud.get_users_from_group(group_id=group_id, include_inactive_users=True, max_results=50)
    assert members["total"] == sum(1 for u in truth(server) if group_id in u["group_ids"])
    outsider = pick_outsider(server, group_id)
    added = cloud.add_user_to_group(group_id=group_id, data={"accountId": outsider["account_id"]})
    assert added["groupId"] == group_id
    assert f"/rest/api/{version}/group?" in added["self"]
    assert group_id in truth_of(server, outsider["account_id"])["group_ids"]
    cloud.remove_user_from_group(group_id=group_id, account_id=outsider["account_id"])
    assert group_id not in truth_of(server, outsider["account_id"])["group_ids"]
    templates = {c["path_template"] for c in server.calls()}
    assert f"/rest/api/{version}/group/user" in templates
    assert f"/rest/api/{5 - version}/group/user" not in templates


def test_jira_cloud_application_roles(cloud: JiraCloud, server: SandboxServer) -> None:
    roles = cloud.get_all_application_roles()
    assert {r["key"] for r in roles} == {"jira-software", "jira-servicedesk"}
    role = cloud.get_application_role("jira-servicedesk")
    users = truth(server)
    assert role["userCount"] == sum(
        1 for u in users if u["billable"] and "jira-servicedesk" in u["product_access"]
    )


def test_jira_cloud_transitions_take_rich_text_in_each_versions_form(
    cloud: JiraCloud, server: SandboxServer
) -> None:
    key = open_issue(server)
    transitions = cloud.get_transitions(key)["transitions"]
    resolve = next(t for t in transitions if t["to"]["name"] == "Resolved")
    assert f"/rest/api/{cloud.api_version}/status/" in resolve["to"]["self"]
    text = "Restored; see the audit."
    v3 = cloud.api_version == 3
    adf = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }
    wrong, right = (text, adf) if v3 else (adf, text)
    with pytest.raises(requests.HTTPError) as refused:
        cloud.do_transition(
            key, data={"transition": {"id": resolve["id"]}, "update": {"comment": [{"add": {"body": wrong}}]}}
        )
    assert error_of(refused)[0] == 400
    assert server.state.requests[key].category == "NEW"
    internal = [{"key": "sd.public.comment", "value": {"internal": True}}]
    cloud.do_transition(
        key,
        data={
            "transition": {"id": resolve["id"]},
            "update": {"comment": [{"add": {"body": right, "properties": internal}}]},
        },
    )
    request = server.state.requests[key]
    assert request.status == "Resolved"
    assert [(c.body, c.public) for c in request.comments][-1] == (text, False)
    with pytest.raises(requests.HTTPError) as missing:
        cloud.get_transitions("ITH-99999")
    assert error_of(missing)[0] == 404


def test_jira_cloud_enhanced_search_renders_rich_text_per_version(
    cloud: JiraCloud, server: SandboxServer
) -> None:
    state = server.state
    key = state.request_order[0]
    description = state.requests[key].description
    jql = f"key = {key}"
    got = cloud.search_and_reconsile_issues_using_jql(jql=jql, fields="summary,description")
    posted = cloud.search_and_reconsile_issues_using_jql_post(data={"jql": jql, "fields": ["description"]})
    for answer in (got, posted):
        (issue,) = answer["issues"]
        assert f"/rest/api/{cloud.api_version}/issue/" in issue["self"]
        field = issue["fields"]["description"]
        if cloud.api_version == 3:
            assert field["type"] == "doc"
            assert field["content"][0]["content"][0]["text"] == description
        else:
            assert field == description
    everything: list[str] = []
    token = None
    while True:
        page = cloud.search_and_reconsile_issues_using_jql(
            jql="project = ITH", next_page_token=token, max_results=3
        )
        everything += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
        if page["isLast"]:
            break
    assert sorted(everything) == sorted(state.request_order)
    # The versioned client's enhanced_jql helpers always call v3.
    assert len(cloud.enhanced_jql("project = ITH", limit=1)["issues"]) == 1
    assert sorted(i["key"] for i in cloud.enhanced_jql_get_list_of_tickets("project = ITH")) == sorted(
        state.request_order
    )


def test_jira_cloud_classic_search_disagrees_with_the_contract_gone(cloud: JiraCloud) -> None:
    # /rest/api/{2,3}/search was removed (CHANGE-2046, §6.1): 410 Gone.
    for call in (
        lambda: cloud.search_for_issues_using_jql(jql="project = ITH"),
        lambda: cloud.search_for_issues_using_jql_post(data={"jql": "project = ITH"}),
    ):
        with pytest.raises(requests.HTTPError) as gone:
            call()
        status, body = error_of(gone)
        assert status == 410
        assert "/search/jql" in body["errorMessages"][0]


# =================================================================== JSM (ServiceDesk, JiraServiceManagement)
def test_service_desks_request_types_and_fields(
    service_desk: ServiceDesk, jsm: JiraServiceManagement, info: dict[str, Any]
) -> None:
    desk_id, type_id = info["service_desk_id"], info["restore_request_type_id"]
    assert [d["id"] for d in service_desk.get_service_desks()] == [desk_id]
    assert [d["id"] for d in jsm.get_service_desks()["values"]] == [desk_id]
    for client in (service_desk, jsm):
        assert client.get_service_desk_by_id(desk_id)["id"] == desk_id
        assert client.get_service_desk_by_id("ITH")["id"] == desk_id  # id or project key (§6)
    types = service_desk.get_request_types(desk_id)["values"]
    assert type_id in {t["id"] for t in types}
    assert {t["id"] for t in jsm.get_request_types(desk_id)["values"]} == {t["id"] for t in types}
    restore = jsm.get_request_types(desk_id, search_query="restore")["values"]
    assert [t["id"] for t in restore] == [type_id]
    for client in (service_desk, jsm):
        fields = client.get_request_type_fields(desk_id, type_id)
        summary = next(f for f in fields["requestTypeFields"] if f["fieldId"] == "summary")
        assert summary["required"] is True
    with pytest.raises(requests.HTTPError) as missing:
        service_desk.get_service_desk_by_id("999")
    status, body = error_of(missing)
    assert status == 404
    assert body["errorMessage"]


def test_service_desk_requests_comments_and_transitions(
    service_desk: ServiceDesk, server: SandboxServer, info: dict[str, Any]
) -> None:
    desk_id, type_id = info["service_desk_id"], info["restore_request_type_id"]
    requester = pick(server, status="suspended", account_type="atlassian")
    created = service_desk.create_customer_request(
        desk_id, type_id, {"summary": "Restore my access", "description": "Back from leave"},
        raise_on_behalf_of=requester["account_id"],
    )  # fmt: skip
    key = created["issueKey"]
    assert created["reporter"]["accountId"] == requester["account_id"]
    assert server.state.requests[key].reporter == requester["account_id"]
    fetched = service_desk.get_customer_request(key)
    assert (fetched["issueKey"], fetched["currentStatus"]["status"]) == (
        key,
        server.state.requests[key].status,
    )
    # GET /request lists the caller's own requests, not a queue (§6 gotchas).
    mine = {r["issueKey"] for r in service_desk.get_my_customer_requests()}
    assert key not in mine
    own = service_desk.create_customer_request(desk_id, type_id, {"summary": "Automation check"})
    assert own["issueKey"] in {r["issueKey"] for r in service_desk.get_my_customer_requests()}

    public = service_desk.create_request_comment(key, "We are on it.", public=True)
    internal = service_desk.create_request_comment(key, "Check the audit first.", public=False)
    assert (public["body"], public["public"], internal["public"]) == ("We are on it.", True, False)
    everything = service_desk.get_request_comments(key)
    assert [c["body"] for c in everything] == ["We are on it.", "Check the audit first."]
    only_public = service_desk.get_request_comments(key, public=True, internal=False)
    assert [c["body"] for c in only_public] == ["We are on it."]

    transitions = service_desk.get_customer_transitions(key)["values"]
    resolve = next(t for t in transitions if t["name"] == "Resolve")
    service_desk.perform_transition(key, resolve["id"], comment="Access restored.")
    request = server.state.requests[key]
    assert (request.category, request.comments[-1].body) == ("DONE", "Access restored.")
    # The library returns the first status of the history: the current one (newest first).
    assert service_desk.get_customer_request_status(key) == request.status == "Resolved"


def test_jira_service_management_requests_comments_and_transitions(
    jsm: JiraServiceManagement, server: SandboxServer, info: dict[str, Any]
) -> None:
    desk_id, type_id = info["service_desk_id"], info["restore_request_type_id"]
    created = jsm.create_customer_request(
        data={
            "serviceDeskId": desk_id,
            "requestTypeId": type_id,
            "requestFieldValues": {"summary": "Restore access"},
        }
    )
    key = created["issueKey"]
    assert server.state.requests[key].reporter == info["api_account_id"]
    fetched = jsm.get_customer_request_by_id_or_key(key, expand="requestType")
    assert fetched["requestTypeId"] == type_id
    owned = jsm.get_customer_requests(request_ownership="OWNED_REQUESTS", service_desk_id=desk_id)
    assert key in {r["issueKey"] for r in owned["values"]}
    everyone = jsm.get_customer_requests(
        request_ownership="ALL_REQUESTS", request_status="OPEN_REQUESTS", limit=100
    )
    state = server.state
    assert {r["issueKey"] for r in everyone["values"]} == {
        k for k in state.request_order if state.requests[k].category != "DONE"
    }

    jsm.create_request_comment(key, data={"body": "Looking into it.", "public": False})
    comments = jsm.get_request_comments(key, public=False, internal=True)
    assert [(c["body"], c["public"]) for c in comments["values"]] == [("Looking into it.", False)]
    with pytest.raises(requests.HTTPError) as empty:
        jsm.create_request_comment(key, data={"body": " "})
    assert error_of(empty)[0] == 400

    values = jsm.get_customer_transitions(key)["values"]
    cancel = next(t for t in values if t["name"] == "Cancel request")
    assert jsm.perform_customer_transition(key, data={"id": cancel["id"]}) is None  # 204
    assert state.requests[key].status == "Canceled"
    assert jsm.get_customer_request_status(key)["values"][0]["status"] == "Canceled"


# =============================================================================== coverage of the library
#: Every library method that reaches a route the sandbox serves, and the test above that drives it.
DRIVEN: dict[str, set[str]] = {
    "CloudAdmin": {
        "get_organizations", "get_organization", "get_directories", "search_directory_users",
        "get_directory_user", "get_directory_users_count", "get_groups", "search_directory_groups",
        "get_group", "get_user_management_permissions", "get_user_profile", "deactivate_user",
        "activate_user", "delete_user", "cancel_user_deletion",
    },
    "CloudAdminOrgs": {
        "get_organizations", "get_organization", "get_managed_accounts_in_organization",
        "search_users_in_organization",
    },
    "CloudAdminUsers": {"get_profile"},
    "Jira": {
        "users_get_all", "user", "myself", "get_user_groups", "is_active_user", "get_all_users_from_group",
        "add_user_to_group", "remove_user_from_group", "get_all_application_roles", "get_application_role",
        "get_issue_transitions", "get_issue_transitions_full", "get_transition_id_to_status_name",
        "set_issue_status", "set_issue_status_by_transition_id", "set_issue_status_by_transition_name",
        "issue_transition", "jql", "enhanced_jql", "enhanced_jql_get_list_of_tickets",
        "jql_get_list_of_tickets", "get_all_project_issues", "get_project_issuekey_all",
        "get_project_issuekey_last", "get_project_issues_count", "bulk_issue",
    },
    "JiraCloud": {
        "get_all_users", "get_all_users_default", "get_user", "get_user_groups", "get_current_user",
        "bulk_get_groups", "get_users_from_group", "add_user_to_group", "remove_user_from_group",
        "get_all_application_roles", "get_application_role", "get_transitions", "do_transition",
        "search_and_reconsile_issues_using_jql", "search_and_reconsile_issues_using_jql_post",
        "enhanced_jql", "enhanced_jql_get_list_of_tickets", "search_for_issues_using_jql",
        "search_for_issues_using_jql_post",
    },
    "ServiceDesk": {
        "get_service_desks", "get_service_desk_by_id", "get_request_types", "get_request_type_fields",
        "create_customer_request", "get_customer_request", "get_my_customer_requests",
        "get_customer_request_status", "create_request_comment", "get_request_comments",
        "get_customer_transitions", "perform_transition",
    },
    "JiraServiceManagement": {
        "get_service_desks", "get_service_desk_by_id", "get_request_types", "get_request_type_fields",
        "create_customer_request", "get_customer_request_by_id_or_key", "get_customer_requests",
        "get_customer_request_status", "create_request_comment", "get_request_comments",
        "get_customer_transitions", "perform_customer_transition",
    },
}  # fmt: skip


class _Recorder(requests.Session):
    """Answers every request with an empty 200 page and records (method, path); no network."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.seen.append((str(method), urlsplit(str(url)).path))
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"values": [], "issues": [], "isLast": true, "isLastPage": true}'
        response.headers["Content-Type"] = "application/json"
        return response


def _route_patterns(server: SandboxServer) -> list[tuple[str, re.Pattern[str]]]:
    endpoints = requests.get(f"{server.url}/_sim/config", timeout=10).json()["endpoints"]
    out = []
    for endpoint in endpoints:
        method, template = endpoint.split(" ", 1)
        pattern = re.sub(r"\{[a-z_]+:path\}", ".*", template)
        pattern = re.sub(r"\{[a-z_]+\}", "[^/]+", pattern)
        out.append((method, re.compile(f"^{pattern}$")))
    return out


def _library_methods_on_served_routes(server: SandboxServer) -> dict[str, set[str]]:
    """Call each public method with placeholder arguments on a recording session.

    A method counts when one of the requests it sends matches a route the sandbox serves. Methods
    whose placeholder call raises before sending anything are not seen, so ``DRIVEN`` lists more
    than this finds; the point is to catch a new library method on a served route.
    """
    patterns = _route_patterns(server)
    clients: dict[str, AtlassianRestAPI] = {}
    for label, factory in {
        "CloudAdmin": lambda s: CloudAdmin("key", session=s),
        "CloudAdminOrgs": lambda s: CloudAdminOrgs("key", session=s),
        "CloudAdminUsers": lambda s: CloudAdminUsers("key", session=s),
        "Jira": lambda s: Jira(SITE_HOST, username="u", password="p", cloud=True, session=s),
        "JiraCloud": lambda s: JiraCloud(SITE_HOST, username="u", password="p", session=s),
        "JiraCloud-v2": lambda s: JiraCloud(SITE_HOST, username="u", password="p", api_version=2, session=s),
        "ServiceDesk": lambda s: ServiceDesk(SITE_HOST, username="u", password="p", cloud=True, session=s),
        "JiraServiceManagement": lambda s: JiraServiceManagement(
            SITE_HOST, username="u", password="p", session=s
        ),
    }.items():
        clients[label] = factory(_Recorder())
    base = set(dir(AtlassianRestAPI))
    found: dict[str, set[str]] = {}
    for label, client in clients.items():
        session = client.session
        assert isinstance(session, _Recorder)
        for name in dir(type(client)):
            if name.startswith("_") or name in base or not callable(getattr(client, name)):
                continue
            method = getattr(client, name)
            args = {
                p.name: (
                    {"accountId": "X1"} if p.name == "data" else ["X1"] if p.name.endswith("ids") else "X1"
                )
                for p in inspect.signature(method).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            }
            session.seen.clear()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = method(**args)
                    if inspect.isgenerator(result):
                        next(result, None)
            except Exception:  # placeholder arguments may be refused after a request was sent
                pass
            if any(m == verb and rx.match(path) for verb, path in session.seen[:3] for m, rx in patterns):
                found.setdefault(label.split("-")[0], set()).add(name)
    return found


def test_every_library_call_on_a_served_endpoint_is_driven(server: SandboxServer) -> None:
    found = _library_methods_on_served_routes(server)
    missing = {label: names - DRIVEN.get(label, set()) for label, names in found.items()}
    assert not {k: v for k, v in missing.items() if v}, f"library methods without a test here: {missing}"
    assert found["CloudAdmin"] >= {"get_directory_users_count", "search_directory_users"}
    assert found["Jira"] >= {"users_get_all", "add_user_to_group", "get_issue_transitions"}


# ======================================================================= v2 twins: limits and call log
def test_v2_twins_are_routes_of_their_own_for_limits_and_the_call_log(server: SandboxServer) -> None:
    auth = (server.config.site_email, server.config.site_token)
    account_id = pick(server, status="active", account_type="atlassian")["account_id"]
    endpoints = requests.get(f"{server.url}/_sim/config", timeout=10).json()["endpoints"]
    assert {"GET /rest/api/2/user", "POST /rest/api/2/issue/{key}/transitions"} <= set(endpoints)
    # A limit names one version's route; the other version keeps its own bucket.
    server.configure(
        rate_limit_enabled=True, rate_limit_burst=1, rate_limit_endpoints={"GET /rest/api/2/user": 0.01}
    )
    try:
        url = f"{server.url}/rest/api/{{}}/user"
        assert (
            requests.get(url.format(2), params={"accountId": account_id}, auth=auth, timeout=10).status_code
            == 200
        )
        limited = requests.get(url.format(2), params={"accountId": account_id}, auth=auth, timeout=10)
        assert limited.status_code == 429
        assert limited.headers["RateLimit-Reason"] == "jira-burst-based"  # the Jira family's 429 (§7.2)
        assert "errorMessages" in limited.json()
        assert (
            requests.get(url.format(3), params={"accountId": account_id}, auth=auth, timeout=10).status_code
            == 200
        )
    finally:
        server.configure(rate_limit_enabled=False, rate_limit_burst=20, rate_limit_endpoints={})
    logged = [(c["path_template"], c["status"], c["account_id"]) for c in server.calls()[-3:]]
    assert logged == [
        ("/rest/api/2/user", 200, account_id),
        ("/rest/api/2/user", 429, account_id),
        ("/rest/api/3/user", 200, account_id),
    ]
    # A knob naming a twin that does not exist is refused like any unknown route.
    refused = requests.post(
        f"{server.url}/_sim/config", json={"rate_limit_endpoints": {"GET /rest/api/2/nowhere": 1}}, timeout=10
    )
    assert refused.status_code == 400
    # The removed classic search keeps its own v2 route (410), it is not a twin of anything.
    gone = requests.get(
        f"{server.url}/rest/api/2/search", params={"jql": "project = ITH"}, auth=auth, timeout=10
    )
    assert gone.status_code == 410
