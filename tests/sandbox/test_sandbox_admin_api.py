"""Admin API (v1 + v2) behaviour: paging styles, filters, errors, directory and group writes."""

from __future__ import annotations

from typing import Any

import pytest

from atlassian_sandbox.state import JIRA


def admin_code(response: Any) -> str:
    body = response.json()
    assert set(body["errors"][0]) == {"id", "status", "code", "title", "detail"}
    assert body["errors"][0]["status"] == str(response.status_code)
    return body["errors"][0]["code"]


# ------------------------------------------------------------------ auth and discovery
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc"])
def test_admin_endpoints_reject_missing_or_wrong_key(api: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = api.client.get(f"/admin/v1/orgs/{api.org}", headers=headers)
    assert response.status_code == 401
    assert admin_code(response) == "ADMIN-401-1"
    assert response.headers["content-type"].startswith("application/json")


def test_user_management_requires_the_bearer_key(api: Any) -> None:
    account = api.population("active")[0].account_id
    response = api.client.get(f"/users/{account}/manage", headers=api.site)
    assert response.status_code == 401
    assert admin_code(response) == "ADMIN-401-1"


def test_org_and_directories(api: Any) -> None:
    org = api.get(f"/admin/v1/orgs/{api.org}").json()["data"]
    assert org["id"] == api.org
    assert org["type"] == "orgs"
    dirs = api.get(f"/admin/v2/orgs/{api.org}/directories").json()["data"]
    assert [d["directoryId"] for d in dirs] == [api.dir]
    missing = api.get("/admin/v1/orgs/not-an-org")
    assert missing.status_code == 404
    assert admin_code(missing) == "ADMIN-404-2"


# ------------------------------------------------------------------ v2 search
def test_v2_search_pages_cover_every_directory_user_exactly_once(api: Any) -> None:
    expand = ["productAccess", "groups", "platformRoles", "counts.resources"]
    users = api.search_all({"expand": expand}, limit=37)
    ids = [u["accountId"] for u in users]
    assert len(ids) == len(set(ids))
    expected = {a for a, u in api.state.users.items() if u.account_type != "customer"}
    assert set(ids) == expected
    for user in users:
        assert {"productAccess", "groups", "platformRoles", "counts"} <= set(user)
        truth = api.state.users[user["accountId"]]
        assert sorted(g["name"] for g in user["groups"]) == sorted(
            api.state.groups[g].name for g in truth.groups
        )


def test_v2_search_cursor_is_an_opaque_token_and_last_page_has_no_next(api: Any) -> None:
    first = api.post(api.v2("/users/search"), json={"limit": 100}).json()
    token = first["links"]["next"]
    assert token
    assert not token.startswith("http")
    second = api.post(api.v2("/users/search"), json={"cursor": token, "limit": 100}).json()
    assert "next" not in second["links"]
    assert second["links"]["prev"]


def test_v2_last_page_next_null_knob(make_api: Any) -> None:
    api = make_api(v2_last_page_next="null")
    page = api.post(api.v2("/users/search"), json={"limit": 100, "cursor": None}).json()
    page = api.post(api.v2("/users/search"), json={"limit": 100, "cursor": page["links"]["next"]}).json()
    assert page["links"]["next"] is None


def test_unexpanded_search_omits_expand_only_fields(api: Any) -> None:
    user = api.post(api.v2("/users/search"), json={"limit": 1}).json()["data"][0]
    assert not {"productAccess", "groups", "platformRoles", "counts"} & set(user)
    assert {"accountId", "status", "accountStatus", "membershipStatus", "claimStatus", "addedToOrg"} <= set(
        user
    )


def test_product_access_entries_and_never_used_knob(make_api: Any) -> None:
    # The contract's default (§3.6, §9.2): a product never opened is absent from productAccess.
    default = make_api()
    never = default.population("never_logged_in")[0]
    body = {"accountIds": [never.account_id], "expand": ["productAccess", "groups"]}
    user = default.post(default.v2("/users/search"), json=body).json()["data"][0]
    assert user["productAccess"] == []
    assert user["groups"], "the never-logged-in user still has product access through groups"

    api = make_api(never_used_product_entry="null")
    found = api.post(
        api.v2("/users/search"), json={"accountIds": [never.account_id], "expand": ["productAccess"]}
    )
    entries = found.json()["data"][0]["productAccess"]
    assert entries
    assert all(e["lastActiveTimestamp"] is None for e in entries)
    assert {e["key"] for e in entries} <= {"jira", "confluence"}
    assert all(e["id"].startswith("ari:cloud:") for e in entries)

    absent = make_api(never_used_product_entry="absent", product_key_style="v1")
    dormant = absent.population("jira_active_confluence_dormant")[0]
    body = {"accountIds": [never.account_id, dormant.account_id], "expand": ["productAccess"]}
    data = {u["accountId"]: u for u in absent.post(absent.v2("/users/search"), json=body).json()["data"]}
    assert data[never.account_id]["productAccess"] == []
    assert {e["key"] for e in data[dormant.account_id]["productAccess"]} == {"jira-software", "confluence"}


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ({"status": ["suspended"]}, lambda u, s: u["status"] == "suspended"),
        ({"claimStatus": "unmanaged"}, lambda u, s: u["claimStatus"] == "unmanaged"),
        ({"accountStatus": ["inactive"]}, lambda u, s: u["accountStatus"] == "inactive"),
        ({"membershipStatus": ["suspended"]}, lambda u, s: u["membershipStatus"] == "suspended"),
        ({"emailDomains": ["partner.example"]}, lambda u, s: u["email"].endswith("@partner.example")),
    ],
)
def test_v2_search_filters(api: Any, body: dict[str, Any], check: Any) -> None:
    users = api.search_all(body)
    assert users
    assert all(check(u, api.state) for u in users)


def test_v2_search_group_email_term_and_account_filters(api: Any) -> None:
    vip = api.group_id("vip-executives")
    members = {u["accountId"] for u in api.search_all({"groupIds": [vip]})}
    assert members == api.state.groups[vip].members
    target = api.population("inactive_90")[0]
    by_email = api.search_all({"emails": [target.email.upper()]})
    assert [u["accountId"] for u in by_email] == [target.account_id]
    by_term = api.search_all({"searchTerm": target.email.split("@")[0]})
    assert target.account_id in {u["accountId"] for u in by_term}
    by_id = api.search_all({"accountIds": [target.account_id]})
    assert [u["accountId"] for u in by_id] == [target.account_id]


def test_v2_search_rejects_bad_requests(api: Any) -> None:
    both = api.post(api.v2("/users/search"), json={"searchTerm": "ada", "emails": ["a@acme.example"]})
    assert both.status_code == 400
    assert admin_code(both).startswith("ADMIN-400")
    too_big = api.post(api.v2("/users/search"), json={"limit": 101})
    assert too_big.status_code == 400
    bad_cursor = api.post(api.v2("/users/search"), json={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400
    assert admin_code(bad_cursor) == "ADMIN-400-1"
    bad_expand = api.post(api.v2("/users/search"), json={"expand": ["everything"]})
    assert bad_expand.status_code == 400


def test_deprecated_get_twin_and_dash_directory(api: Any) -> None:
    path = f"/admin/v2/orgs/{api.org}/directories/-/users"
    response = api.get(path, params=[("status", "suspended"), ("status", "deactivated"), ("limit", "100")])
    assert response.status_code == 200
    statuses = {u["status"] for u in response.json()["data"]}
    assert statuses == {"suspended", "deactivated"}


def test_apps_can_be_hidden_from_directory_search(make_api: Any) -> None:
    api = make_api(apps_in_directory_search=False)
    assert all(u["accountType"] != "app" for u in api.search_all())
    shown = make_api()
    assert any(u["accountType"] == "app" for u in shown.search_all())


# ------------------------------------------------------------------ v1
def test_v1_users_follow_full_url_links_and_list_managed_accounts_only(make_api: Any) -> None:
    api = make_api(v1_page_size=25)
    url = f"/admin/v1/orgs/{api.org}/users"
    seen: list[str] = []
    pages = 0
    while url:
        page = api.get(url).json()
        pages += 1
        seen.extend(u["account_id"] for u in page["data"])
        nxt = page["links"].get("next")
        if nxt:
            assert nxt.startswith(f"http://testserver/admin/v1/orgs/{api.org}/users?cursor=")
        url = nxt.removeprefix("http://testserver") if nxt else None
    managed = {a for a, u in api.state.users.items() if u.managed}
    assert pages > 1
    assert len(seen) == len(set(seen))
    assert set(seen) == managed
    assert page["meta"]["total"] == len(managed)
    first = api.get(f"/admin/v1/orgs/{api.org}/users").json()["data"][0]
    assert {"account_id", "account_type", "account_status", "product_access", "links"} <= set(first)
    bad = api.get(f"/admin/v1/orgs/{api.org}/users", params={"cursor": "zzz"})
    assert bad.status_code == 400
    assert admin_code(bad) == "ADMIN-400-1"


def test_last_active_dates(api: Any) -> None:
    never = api.population("never_logged_in")[0]
    body = api.get(f"/admin/v1/orgs/{api.org}/directory/users/{never.account_id}/last-active-dates").json()
    assert body["data"]["product_access"] == []
    assert body["data"]["added_to_org"] == never.added_to_org.date().isoformat()
    assert body["data"]["added_to_org_timestamp"].endswith("Z")
    active = api.population("jira_active_confluence_dormant")[0]
    body = api.get(f"/admin/v1/orgs/{api.org}/directory/users/{active.account_id}/last-active-dates").json()
    entries = {e["key"]: e for e in body["data"]["product_access"]}
    assert entries["jira-software"]["last_active"] == active.last_active[JIRA].date().isoformat()
    assert entries["jira-software"]["last_active_timestamp"].startswith(
        entries["jira-software"]["last_active"]
    )
    missing = api.get(f"/admin/v1/orgs/{api.org}/directory/users/nobody/last-active-dates")
    assert missing.status_code == 404
    assert admin_code(missing) == "ADMIN-404-8"


# ------------------------------------------------------------------ directory writes
def test_suspend_and_restore_keep_groups(api: Any) -> None:
    user = api.population("inactive_90", claim_status="managed")[0]
    groups = set(user.groups)
    response = api.post(api.v2(f"/users/{user.account_id}/suspend"))
    assert response.status_code == 204
    assert response.content == b""
    got = api.get(api.v2(f"/users/{user.account_id}")).json()["data"]
    assert (got["status"], got["membershipStatus"]) == ("suspended", "suspended")
    assert user.groups == groups
    assert api.post(api.v2(f"/users/{user.account_id}/restore")).status_code == 204
    got = api.get(api.v2(f"/users/{user.account_id}")).json()["data"]
    assert got["status"] == "active"
    assert user.groups == groups


def test_suspend_success_code_knob(make_api: Any) -> None:
    api = make_api(suspend_restore_success_code=200)
    user = api.population("inactive_180")[0]
    response = api.post(api.v2(f"/users/{user.account_id}/suspend"))
    assert response.status_code == 200
    assert user.account_id in response.json()["message"]


def test_remove_drops_groups_and_membership(api: Any) -> None:
    managed = api.population("inactive_400", claim_status="managed")[0]
    group_ids = set(managed.groups)
    assert api.delete(api.v2(f"/users/{managed.account_id}")).status_code == 204
    assert not managed.groups
    assert all(managed.account_id not in api.state.groups[g].members for g in group_ids)
    got = api.get(api.v2(f"/users/{managed.account_id}")).json()["data"]
    assert (got["status"], got["membershipStatus"]) == ("not_invited", "no_membership")
    contractor = api.population("unmanaged_contractor", membership="active")[0]
    assert api.delete(api.v2(f"/users/{contractor.account_id}")).status_code == 204
    assert api.get(api.v2(f"/users/{contractor.account_id}")).status_code == 404


def test_unknown_user_and_dash_writes(api: Any) -> None:
    missing = api.post(api.v2("/users/does-not-exist/suspend"))
    assert missing.status_code == 404
    assert admin_code(missing) == "ADMIN-404-8"
    user = api.population("active")[0]
    dash = api.post(f"/admin/v2/orgs/{api.org}/directories/-/users/{user.account_id}/suspend")
    assert dash.status_code == 400
    assert user.membership == "active"


def test_role_assignments_show_group_roles_and_platform_roles(api: Any) -> None:
    admin = api.population("site_admin")[0]
    data = api.get(api.v2(f"/users/{admin.account_id}/role-assignments")).json()["data"]
    platform = [d for d in data if d["directoryId"] is None]
    assert platform
    assert platform[0]["roleAssignments"][0]["role"] == "atlassian/site-admin"
    product = [d for d in data if d["directoryId"] == api.dir]
    assert any(r["role"] == "atlassian/admin" for d in product for r in d["roleAssignments"])
    assert all(d["resourceId"].startswith("ari:cloud:") for d in data)


def test_group_role_assignments_grant_exactly_the_seeded_product_access(api: Any) -> None:
    """Access comes from groups (§5.1): a client reading group search (counts.resources) and the
    groups' role assignments finds, for every user, the products the sandbox bills and that
    ``productAccess`` dates; every product with activity is one the user's groups grant."""
    groups = api.post(api.v2("/groups/search"), json={"limit": 100, "expand": ["counts.resources"]}).json()
    assert "next" not in groups["links"]
    grants: dict[str, set[str]] = {}
    for group in groups["data"]:
        assignments = api.get(api.v2(f"/groups/{group['id']}/role-assignments")).json()["data"]
        assert group["counts"]["resources"] == len(assignments)
        assert len({a["resourceId"] for a in assignments}) == len(assignments)  # one entry per resource
        # ari:cloud:<product key>::site/<cloud id>
        grants[group["id"]] = {a["resourceId"].split(":")[2] for a in assignments if a["roleAssignments"]}
    assert any(grants.values())
    users = api.search_all({"expand": ["productAccess", "groups"]}, limit=100)
    for user in users:
        truth = api.state.users[user["accountId"]]
        granted = set().union(*(grants[g["id"]] for g in user["groups"])) if user["groups"] else set()
        assert granted == set(api.state.user_products(truth)), user["accountId"]
        assert set(truth.last_active) <= granted, user["accountId"]
        # Default knob: only opened products are listed, each with a date.
        assert all(e["lastActiveTimestamp"] for e in user["productAccess"])
        assert len(user["productAccess"]) == len(set(truth.last_active) & granted)


# ------------------------------------------------------------------ groups
def test_group_list_search_get_and_create(api: Any) -> None:
    listed = api.get(api.v2("/groups"), params={"limit": 100}).json()["data"]
    names = {g["name"] for g in listed}
    assert {"jira-software-users-acme", "site-admins", "vip-executives", "idp-engineering"} <= names
    found = api.post(api.v2("/groups/search"), json={"searchTerm": "idp", "expand": ["counts.users"]}).json()[
        "data"
    ]
    assert [g["name"] for g in found] == ["idp-engineering"]
    assert found[0]["externalSynced"] is True
    assert found[0]["counts"]["users"] > 0
    single = api.get(api.v2(f"/groups/{found[0]['id']}")).json()["data"]
    assert single["managementAccess"]["modifiable"] is False
    created = api.post(api.v2("/groups"), json={"name": "cleanup-test", "description": "x"})
    assert created.status_code == 201
    assert api.post(api.v2("/groups"), json={"name": "cleanup-test"}).status_code == 409
    missing = api.get(api.v2("/groups/nope"))
    assert missing.status_code == 404
    assert admin_code(missing) == "ADMIN-404-10"


def test_membership_add_and_remove(api: Any) -> None:
    marketing = api.group_id("marketing-team")
    user = api.population("active")[0]
    path = api.v2(f"/groups/{marketing}/memberships")
    assert api.post(path, json={"accountId": user.account_id}).status_code == 204
    assert marketing in user.groups
    assert api.delete(f"{path}/{user.account_id}").status_code == 204
    assert marketing not in user.groups
    assert api.post(path, json={}).status_code == 400


def test_synced_group_writes_are_forbidden(api: Any) -> None:
    synced = api.group_id("idp-engineering")
    user = api.population("active")[0]
    member = next(iter(api.state.groups[synced].members))
    add = api.post(api.v2(f"/groups/{synced}/memberships"), json={"accountId": user.account_id})
    assert add.status_code == 403
    assert admin_code(add).startswith("ADMIN-403")
    remove = api.delete(api.v2(f"/groups/{synced}/memberships/{member}"))
    assert remove.status_code == 403
    assert member in api.state.groups[synced].members
    assert synced not in user.groups


def test_seat_cap_conflict(make_api: Any) -> None:
    api = make_api()
    held = api.state.seat_holders(JIRA)
    api.rt.configure({"seat_caps": {JIRA: held}})
    jira_group = api.group_id("jira-software-users-acme")
    outsider = next(
        u
        for u in api.population("active")
        if JIRA not in api.state.user_products(u) and u.account_type == "atlassian"
    )
    response = api.post(api.v2(f"/groups/{jira_group}/memberships"), json={"accountId": outsider.account_id})
    assert response.status_code == 409
    assert admin_code(response) == "ADMIN-409-3"
    assert jira_group not in outsider.groups
    api.rt.configure({"seat_caps": {JIRA: held + 1}})
    assert (
        api.post(
            api.v2(f"/groups/{jira_group}/memberships"), json={"accountId": outsider.account_id}
        ).status_code
        == 204
    )


def test_removed_v1_endpoints_answer_gone(api: Any) -> None:
    user = api.population("active")[0].account_id
    org = f"/admin/v1/orgs/{api.org}"
    for method, path in [
        ("post", f"{org}/directory/users/{user}/suspend-access"),
        ("post", f"{org}/directory/users/{user}/restore-access"),
        ("delete", f"{org}/directory/users/{user}"),
        ("post", f"{org}/users/search"),
        ("post", f"{org}/directory/groups/abc/memberships"),
    ]:
        response = getattr(api, method)(path)
        assert response.status_code == 410, path
        assert admin_code(response) == "ADMIN-410-1"
    assert api.state.users[user].membership == "active"
