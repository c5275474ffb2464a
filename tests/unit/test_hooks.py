"""The Admin and site hooks against requests-mock: URLs, auth, sessions, paging, errors."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import requests_mock as rm

from atlassian_cleanup.client.errors import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianConfigurationError,
    AtlassianConflictError,
    AtlassianNotFoundError,
    AtlassianRetryExhausted,
)
from atlassian_cleanup.client.hooks import AtlassianAdminHook, AtlassianSiteHook
from atlassian_cleanup.client.retry import RetryPolicy

API = "https://api.atlassian.com"
SITE = "https://acme.atlassian.net"
ORG = "org-1234"
DIR = "dir-5678"
KEY = "admin-api-key-0123456789"
TOKEN = "site-api-token-0123456789"
V1 = f"{API}/admin/v1/orgs/{ORG}"
V2 = f"{API}/admin/v2/orgs/{ORG}"
DIRS = f"{V2}/directories/{DIR}"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))


@pytest.fixture
def admin_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch, "atlassian_admin", host=API, password=KEY, extra={"org_id": ORG, "directory_id": DIR}
    )


@pytest.fixture
def site_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "atlassian_site", host=SITE, login="bot@acme.com", password=TOKEN)


@pytest.fixture
def admin(admin_conn: None) -> Iterator[AtlassianAdminHook]:
    with AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        yield hook


@pytest.fixture
def site(site_conn: None) -> Iterator[AtlassianSiteHook]:
    with AtlassianSiteHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        yield hook


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[requests.Session]:
    created: list[requests.Session] = []
    original = requests.Session.__init__

    def counting(self: requests.Session) -> None:
        created.append(self)
        original(self)

    monkeypatch.setattr(requests.Session, "__init__", counting)
    return created


def v2_page(data: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    links = {"self": "s"} | ({"next": next_cursor} if next_cursor else {})
    return {"data": data, "links": links}


# -- auth, headers, session -------------------------------------------------------------------------


def test_bearer_header_is_sent_with_an_empty_login_and_extras_are_not_headers(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(V1, json={"data": {"id": ORG, "attributes": {"name": "acme"}}})

    assert admin.get_org()["attributes"]["name"] == "acme"

    headers = requests_mock.last_request.headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith("atlassian-cleanup-airflow/")
    lowered = {name.lower() for name in headers}
    assert not lowered & {"org_id", "directory_id", "x-custom"}


def test_unknown_extras_are_ignored_not_sent(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_conn(
        monkeypatch,
        "atlassian_admin",
        host=API,
        password=KEY,
        extra={"org_id": ORG, "directory_id": DIR, "X-Custom": "1", "timeout": 5},
    )
    requests_mock.get(V1, json={"data": {}})
    with AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        hook.get_org()
        assert hook._timeout == 5.0
    assert "X-Custom" not in requests_mock.last_request.headers
    assert requests_mock.last_request.timeout == 5.0


def test_one_session_is_reused_across_calls_and_pages(
    admin_conn: None, requests_mock: rm.Mocker, sessions: list[requests.Session]
) -> None:
    requests_mock.get(V1, json={"data": {"id": ORG}})
    requests_mock.post(
        f"{DIRS}/users/search",
        [
            {"json": v2_page([{"accountId": "a"}], "c2")},
            {"json": v2_page([{"accountId": "b"}], "c3")},
            {"json": v2_page([{"accountId": "c"}])},
        ],
    )
    with AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        hook.get_org()
        assert [u["accountId"] for u in hook.iter_directory_users()] == ["a", "b", "c"]
        session = hook.get_conn()
        assert hook.get_conn() is session
        adapters = {id(session.adapters["https://"]), id(session.adapters["http://"])}

    assert len(sessions) == 1
    assert requests_mock.call_count == 4
    assert len(adapters) == 1  # the one keep-alive adapter serves both schemes


def test_context_manager_closes_the_session(admin_conn: None, requests_mock: rm.Mocker) -> None:
    requests_mock.get(V1, json={"data": {}})
    hook = AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep())
    with hook:
        hook.get_org()
        assert hook._session is not None
    assert hook._session is None


def test_base_url_from_host_schema_and_port(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_conn(
        monkeypatch,
        "sandbox_admin",
        host="localhost",
        schema="http",
        port=8765,
        password=KEY,
        extra={"org_id": ORG},
    )
    requests_mock.get(f"http://localhost:8765/admin/v1/orgs/{ORG}", json={"data": {"id": ORG}})
    with AtlassianAdminHook("sandbox_admin", retry_policy=RetryPolicy.without_sleep()) as hook:
        assert hook.get_org() == {"id": ORG}
        assert hook.base_url == "http://localhost:8765"


def test_host_without_scheme_defaults_to_https(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_conn(monkeypatch, "atlassian_site", host="acme.atlassian.net", login="bot@acme.com", password=TOKEN)
    requests_mock.get(f"{SITE}/rest/api/3/users/search", json=[])
    with AtlassianSiteHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        assert list(hook.iter_users()) == []


def test_missing_password_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "atlassian_admin", host=API, extra={"org_id": ORG})
    with pytest.raises(AtlassianConfigurationError, match="'atlassian_admin' has no password"):
        AtlassianAdminHook().get_org()


# -- identifiers and directory discovery -----------------------------------------------------------


def test_missing_org_id_names_the_connection_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "atlassian_admin", host=API, password=KEY)
    with pytest.raises(AtlassianConfigurationError) as info:
        AtlassianAdminHook().get_org()
    assert "'atlassian_admin'" in str(info.value)
    assert '"org_id"' in str(info.value)


def test_single_directory_is_discovered_and_used(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_conn(monkeypatch, "atlassian_admin", host=API, password=KEY, extra={"org_id": ORG})
    requests_mock.get(f"{V2}/directories", json=v2_page([{"directoryId": DIR, "name": "Acme"}]))
    requests_mock.post(f"{DIRS}/users/acc-1/suspend", status_code=204)
    with AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()) as hook:
        assert hook.suspend_user("acc-1") is None
        assert hook.directory_id == DIR
    assert [r.url for r in requests_mock.request_history] == [
        f"{V2}/directories",
        f"{DIRS}/users/acc-1/suspend",
    ]


# -- Admin API reads --------------------------------------------------------------------------------


def test_directory_user_search_sends_cursor_back_in_the_post_body(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    pages = {
        None: v2_page([{"accountId": "a"}, {"accountId": "b"}], "CUR2"),
        "CUR2": v2_page([{"accountId": "c"}], "CUR3"),
        "CUR3": v2_page([]),
    }
    requests_mock.post(f"{DIRS}/users/search", json=lambda request, _ctx: pages[request.json().get("cursor")])
    progress: list[tuple[int, int]] = []

    users = list(
        admin.iter_directory_users(
            filters={"claimStatus": "managed"}, limit=500, on_page=lambda p, n: progress.append((p, n))
        )
    )

    assert [u["accountId"] for u in users] == ["a", "b", "c"]
    bodies = [r.json() for r in requests_mock.request_history]
    assert [b.get("cursor") for b in bodies] == [None, "CUR2", "CUR3"]
    assert all(b["expand"] == ["productAccess", "groups", "platformRoles"] for b in bodies)
    assert all(b["limit"] == 100 and b["claimStatus"] == "managed" for b in bodies)
    assert all(r.qs == {} for r in requests_mock.request_history)
    assert progress == [(1, 2), (2, 3), (3, 3)]


def test_directory_user_search_is_retried_on_500(admin: AtlassianAdminHook, requests_mock: rm.Mocker) -> None:
    requests_mock.post(
        f"{DIRS}/users/search", [{"status_code": 500}, {"json": v2_page([{"accountId": "a"}])}]
    )
    assert len(list(admin.iter_directory_users())) == 1
    assert requests_mock.call_count == 2


def test_role_assignments_and_last_active_dates_follow_cursors(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{DIRS}/users/a1/role-assignments",
        [
            {"json": v2_page([{"resourceId": "ari:1"}], "r2")},
            {"json": v2_page([{"resourceId": "ari:2"}])},
        ],
    )
    requests_mock.get(f"{DIRS}/groups/g1/role-assignments", json=v2_page([{"resourceId": "ari:3"}]))
    requests_mock.get(
        f"{V1}/directory/users/a1/last-active-dates",
        [
            {
                "json": {
                    "data": {
                        "product_access": [{"key": "jira-software", "last_active": "2026-09-14"}],
                        "added_to_org": "2024-03-01",
                    },
                    "links": {"next": "lc2"},
                }
            },
            {
                "json": {
                    "data": {"product_access": [{"key": "confluence", "last_active": "2026-10-01"}]},
                    "links": {"next": None},
                }
            },
        ],
    )

    assert [r["resourceId"] for r in admin.get_user_role_assignments("a1")] == ["ari:1", "ari:2"]
    assert [r["resourceId"] for r in admin.get_group_role_assignments("g1")] == ["ari:3"]
    dates = admin.get_last_active_dates("a1")
    assert [p["key"] for p in dates["product_access"]] == ["jira-software", "confluence"]
    assert dates["added_to_org"] == "2024-03-01"
    cursors = [r.qs.get("cursor") for r in requests_mock.request_history]
    assert cursors == [None, ["r2"], None, None, ["lc2"]]


def test_group_search_and_membership_writes(admin: AtlassianAdminHook, requests_mock: rm.Mocker) -> None:
    requests_mock.post(
        f"{DIRS}/groups/search",
        [
            {"json": v2_page([{"id": "g1"}], "gc2")},
            {"json": v2_page([{"id": "g2"}])},
        ],
    )
    requests_mock.post(f"{DIRS}/groups/g1/memberships", status_code=200, json={"message": "ok"})
    requests_mock.delete(f"{DIRS}/groups/g1/memberships/a1", status_code=204)

    assert [g["id"] for g in admin.iter_groups(search_term="jira", group_ids=["g1", "g2"])] == ["g1", "g2"]
    assert admin.add_group_member("g1", "a1") == {"message": "ok"}
    assert admin.remove_group_member("g1", "a1") is None

    history = requests_mock.request_history
    assert history[0].json() == {"limit": 100, "searchTerm": "jira", "groupIds": ["g1", "g2"]}
    assert history[1].json()["cursor"] == "gc2"
    assert history[2].json() == {"accountId": "a1"}


def test_groups_with_roles_reads_each_granting_group_once(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    """Group search with counts.resources, then role assignments only where a group has resources
    (paged with the v2 cursor), each group read once per hook."""
    requests_mock.post(
        f"{DIRS}/groups/search",
        json=v2_page(
            [
                {"id": "g1", "counts": {"resources": 1}},
                {"id": "g2", "counts": {"resources": 0}},
                {"id": "g3"},  # no counts: read it to be sure
            ]
        ),
    )
    jira = {"resourceId": "ari:cloud:jira-software::site/c1", "roleAssignments": [{"role": "atlassian/user"}]}
    conf = {"resourceId": "ari:cloud:confluence::site/c1", "roleAssignments": [{"role": "atlassian/user"}]}
    g1 = requests_mock.get(
        f"{DIRS}/groups/g1/role-assignments", [{"json": v2_page([jira], "rc2")}, {"json": v2_page([conf])}]
    )
    g2 = requests_mock.get(f"{DIRS}/groups/g2/role-assignments", json=v2_page([jira]))
    g3 = requests_mock.get(f"{DIRS}/groups/g3/role-assignments", json=v2_page([]))

    first = [(g["id"], roles) for g, roles in admin.iter_groups_with_roles()]
    assert first == [("g1", [jira, conf]), ("g2", []), ("g3", [])]
    assert requests_mock.request_history[0].json() == {"limit": 100, "expand": ["counts.resources"]}
    assert g1.last_request.qs.get("cursor") == ["rc2"]
    assert g2.call_count == 0
    assert [(g["id"], roles) for g, roles in admin.iter_groups_with_roles()] == first
    assert (g1.call_count, g3.call_count) == (2, 1)  # cached per group


def test_group_add_over_the_seat_limit_is_a_conflict(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(
        f"{DIRS}/groups/g1/memberships",
        status_code=409,
        json={"errors": [{"code": "ADMIN-409-3", "title": "License limit", "detail": "No seats left"}]},
    )
    with pytest.raises(AtlassianConflictError) as info:
        admin.add_group_member("g1", "a1")
    assert info.value.code == "ADMIN-409-3"
    assert requests_mock.call_count == 1


# -- Admin API lifecycle writes ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_directory_writes_use_v2_paths_and_accept_200_or_204(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker, status: int
) -> None:
    body = {"json": {"message": "done"}} if status == 200 else {}
    requests_mock.post(f"{DIRS}/users/a1/suspend", status_code=status, **body)
    requests_mock.post(f"{DIRS}/users/a1/restore", status_code=status, **body)
    requests_mock.delete(f"{DIRS}/users/a1", status_code=status, **body)

    expected = {"message": "done"} if status == 200 else None
    assert admin.suspend_user("a1") == expected
    assert admin.restore_user("a1") == expected
    assert admin.remove_user("a1") == expected
    assert [(r.method, r.path) for r in requests_mock.request_history] == [
        ("POST", f"/admin/v2/orgs/{ORG}/directories/{DIR}/users/a1/suspend".lower()),
        ("POST", f"/admin/v2/orgs/{ORG}/directories/{DIR}/users/a1/restore".lower()),
        ("DELETE", f"/admin/v2/orgs/{ORG}/directories/{DIR}/users/a1".lower()),
    ]


def test_suspend_is_retried_but_lifecycle_delete_is_not(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(f"{DIRS}/users/a1/suspend", [{"status_code": 502}, {"status_code": 204}])
    requests_mock.post(
        f"{API}/users/a1/manage/lifecycle/delete", [{"status_code": 500}, {"status_code": 204}]
    )

    admin.suspend_user("a1")
    assert requests_mock.call_count == 2
    with pytest.raises(AtlassianApiError) as info:
        admin.delete_user("a1")
    assert requests_mock.call_count == 3
    assert info.value.status == 500
    assert "check the account's current state" in str(info.value)


def test_lifecycle_calls(admin: AtlassianAdminHook, requests_mock: rm.Mocker) -> None:
    manage = f"{API}/users/a1/manage"
    requests_mock.get(
        manage, json={"lifecycle.delete": {"allowed": False, "reason": {"key": "externalDirectory.scim"}}}
    )
    for action in ("disable", "enable", "delete", "cancel-delete"):
        requests_mock.post(f"{manage}/lifecycle/{action}", status_code=204)

    privileges = admin.get_manage_privileges("a1")
    admin.disable_user("a1", message="Inactive for 90 days")
    admin.enable_user("a1")
    admin.delete_user("a1")
    admin.cancel_delete("a1")

    assert privileges["lifecycle.delete"]["allowed"] is False
    history = requests_mock.request_history
    assert history[0].qs == {"privileges": ["lifecycle.enablement,lifecycle.delete"]}
    assert history[1].json() == {"message": "Inactive for 90 days"}
    assert history[2].body is None
    assert [r.path.rsplit("/", 1)[-1] for r in history[1:]] == [
        "disable",
        "enable",
        "delete",
        "cancel-delete",
    ]


def test_unknown_user_is_not_found_with_admin_code(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.post(
        f"{DIRS}/users/ghost/suspend",
        status_code=404,
        json={"errors": [{"id": "1", "status": "404", "code": "ADMIN-404-8", "title": "User not found"}]},
    )
    with pytest.raises(AtlassianNotFoundError) as info:
        admin.suspend_user("ghost")
    assert (info.value.code, info.value.method) == ("ADMIN-404-8", "POST")
    assert requests_mock.call_count == 1


def test_401_fails_fast_naming_the_connection_without_the_key(
    admin: AtlassianAdminHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(V1, status_code=401, json={"code": 401, "message": "Unauthorized"})
    with pytest.raises(AtlassianAuthError) as info:
        admin.get_org()
    assert requests_mock.call_count == 1
    assert "'atlassian_admin'" in str(info.value)
    assert "admin.atlassian.com" in str(info.value)
    assert KEY not in str(info.value)


def test_test_connection(admin: AtlassianAdminHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        V1, [{"json": {"data": {"attributes": {"name": "acme"}}}}, {"status_code": 401, "json": {}}]
    )
    assert admin.test_connection() == (True, f"Connected to Atlassian organization 'acme' ({ORG})")
    ok, message = admin.test_connection()
    assert not ok
    assert "expired" in message


# -- never the removed endpoints -------------------------------------------------------------------

REMOVED = [
    ("POST", re.compile(r"/admin/v1/orgs/[^/]+/users/search$")),
    ("POST", re.compile(r"/suspend-access$")),
    ("POST", re.compile(r"/restore-access$")),
    ("DELETE", re.compile(r"/admin/v1/orgs/[^/]+/directory/users/[^/]+$")),
    ("*", re.compile(r"/admin/v1/orgs/[^/]+/directory/groups")),
    ("*", re.compile(r"/admin/v1/orgs/[^/]+/groups/search")),
    ("*", re.compile(r"/rest/api/3/search$")),
]


def _answer(request: requests.PreparedRequest, context: Any) -> Any:
    path = request.path
    if path.endswith("/users/search") and "/rest/" in path:
        return [] if "startAt=0" not in (request.query or "") else [{"accountId": "a1"}]
    if (
        "/rest/servicedeskapi/" in path
        and request.method == "GET"
        and not re.search(r"/request/[^/]+$", path)
    ):
        return {"isLastPage": True, "values": []}
    if path.endswith("/group/bulk") or path.endswith("/group/member"):
        return {"isLast": True, "values": []}
    if path.endswith("/search/jql"):
        return {"issues": [], "isLast": True}
    if path.endswith("/user/groups") or path.endswith("/applicationrole"):
        return []
    if path.startswith("/admin/") or path.startswith("/users/"):
        # Lists answer a list under "data" (anything else is a broken page); single objects an object.
        listing = path.endswith(("/users/search", "/groups/search", "/role-assignments", "/users"))
        return {
            "data": [{"directoryId": DIR, "name": "Acme"}]
            if path.endswith("/directories")
            else []
            if listing
            else {},
            "links": {},
        }
    return {}


def test_no_method_ever_calls_a_removed_endpoint(
    admin: AtlassianAdminHook, site: AtlassianSiteHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.register_uri(rm.ANY, rm.ANY, json=_answer)

    admin.get_org()
    admin.list_directories()
    list(admin.iter_directory_users())
    admin.get_user_role_assignments("a1")
    admin.get_last_active_dates("a1")
    admin.suspend_user("a1")
    admin.restore_user("a1")
    admin.remove_user("a1")
    list(admin.iter_groups())
    admin.get_group_role_assignments("g1")
    admin.add_group_member("g1", "a1")
    admin.remove_group_member("g1", "a1")
    admin.get_manage_privileges("a1")
    admin.disable_user("a1")
    admin.enable_user("a1")
    admin.delete_user("a1")
    admin.cancel_delete("a1")
    list(site.iter_users())
    list(site.iter_groups())
    list(site.iter_jql("project = ITH"))
    site.get_issue_transitions("ITH-1")
    site.transition_issue("ITH-1", "31")
    list(site.iter_service_desks())
    list(site.iter_request_types("10"))
    site.create_request("10", "25", "Restore my access")
    site.add_request_comment("ITH-1", "Restored")
    site.get_request_transitions("ITH-1")
    site.transition_request("ITH-1", "761")

    calls = [(r.method, r.path) for r in requests_mock.request_history]
    assert len(calls) >= 28
    for method, path in calls:
        for removed_method, pattern in REMOVED:
            assert not (pattern.search(path) and removed_method in ("*", method)), (
                f"{method} {path} was removed"
            )
    admin_writes = {(m, p) for m, p in calls if m in ("POST", "DELETE") and p.startswith("/admin/")}
    assert all(p.startswith(f"/admin/v2/orgs/{ORG}/directories/".lower()) for _m, p in admin_writes)


# -- Jira / JSM -------------------------------------------------------------------------------------


def test_site_uses_basic_auth_and_exposes_the_api_user(
    site: AtlassianSiteHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{SITE}/rest/api/3/users/search", json=[])
    assert list(site.iter_users()) == []
    expected = base64.b64encode(f"bot@acme.com:{TOKEN}".encode()).decode()
    assert requests_mock.last_request.headers["Authorization"] == f"Basic {expected}"
    assert site.api_user_email == "bot@acme.com"


def test_site_connection_without_login_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "atlassian_site", host=SITE, password=TOKEN)
    with pytest.raises(AtlassianConfigurationError, match="e-mail as Login"):
        list(AtlassianSiteHook().iter_users())


def test_jira_users_are_paged_by_offset_until_an_empty_page(
    site: AtlassianSiteHook, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(
        f"{SITE}/rest/api/3/users/search",
        [
            {"json": [{"accountId": "1"}, {"accountId": "2"}]},
            {"json": [{"accountId": "3"}]},
            {"json": []},
        ],
    )
    assert [u["accountId"] for u in site.iter_users(page_size=2)] == ["1", "2", "3"]
    assert [r.qs for r in requests_mock.request_history] == [
        {"startat": ["0"], "maxresults": ["2"]},
        {"startat": ["2"], "maxresults": ["2"]},
        {"startat": ["3"], "maxresults": ["2"]},
    ]


def test_group_bulk_filters(site: AtlassianSiteHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{SITE}/rest/api/3/group/bulk", json={"isLast": True, "values": [{"name": "jira-software-users"}]}
    )
    assert list(site.iter_groups(application_key="jira-software", access_type="user")) == [
        {"name": "jira-software-users"}
    ]
    assert requests_mock.last_request.qs["applicationkey"] == ["jira-software"]


def test_jql_uses_search_jql_with_next_page_token(site: AtlassianSiteHook, requests_mock: rm.Mocker) -> None:
    requests_mock.post(
        f"{SITE}/rest/api/3/search/jql",
        [
            {"json": {"issues": [{"key": "ITH-1"}], "nextPageToken": "t2", "isLast": False}},
            {"json": {"issues": [{"key": "ITH-2"}], "nextPageToken": "t3", "isLast": False}},
            {"json": {"issues": [{"key": "ITH-3"}], "isLast": True}},
        ],
    )
    keys = [i["key"] for i in site.iter_jql("project = ITH", fields=("summary",), page_size=1)]
    assert keys == ["ITH-1", "ITH-2", "ITH-3"]
    bodies = [r.json() for r in requests_mock.request_history]
    assert bodies[0] == {"jql": "project = ITH", "fields": ["summary"], "maxResults": 1}
    assert [b.get("nextPageToken") for b in bodies] == [None, "t2", "t3"]


def test_issue_transitions(site: AtlassianSiteHook, requests_mock: rm.Mocker) -> None:
    url = f"{SITE}/rest/api/3/issue/ITH-1/transitions"
    requests_mock.get(url, json={"transitions": [{"id": "31", "name": "Resolve"}]})
    requests_mock.post(url, [{"status_code": 204}, {"status_code": 500}])
    assert site.get_issue_transitions("ITH-1") == [{"id": "31", "name": "Resolve"}]
    site.transition_issue("ITH-1", "31", fields={"resolution": {"name": "Done"}})
    assert requests_mock.last_request.json() == {
        "transition": {"id": "31"},
        "fields": {"resolution": {"name": "Done"}},
    }
    with pytest.raises(AtlassianApiError):
        site.transition_issue("ITH-1", "31")
    assert requests_mock.call_count == 3  # a transition is not replayed


def test_jsm_requests_pages_and_writes(site: AtlassianSiteHook, requests_mock: rm.Mocker) -> None:
    jsm = f"{SITE}/rest/servicedeskapi"
    requests_mock.get(
        f"{jsm}/servicedesk",
        [
            {"json": {"start": 0, "limit": 2, "isLastPage": False, "values": [{"id": "10"}, {"id": "11"}]}},
            {"json": {"start": 2, "limit": 2, "isLastPage": True, "values": [{"id": "12"}]}},
        ],
    )
    requests_mock.get(
        f"{jsm}/servicedesk/10/requesttype", json={"isLastPage": True, "values": [{"id": "25"}]}
    )
    requests_mock.post(f"{jsm}/request", status_code=201, json={"issueKey": "ITH-9"})
    requests_mock.post(f"{jsm}/request/ITH-1/comment", status_code=201, json={"id": "c1", "public": True})
    requests_mock.get(
        f"{jsm}/request/ITH-1/transition",
        json={"isLastPage": True, "values": [{"id": "761", "name": "Resolve"}]},
    )
    requests_mock.post(f"{jsm}/request/ITH-1/transition", status_code=204)

    assert [d["id"] for d in site.iter_service_desks(page_size=2)] == ["10", "11", "12"]
    assert requests_mock.request_history[0].qs == {"start": ["0"], "limit": ["2"]}
    assert requests_mock.request_history[1].qs["start"] == ["2"]
    assert [t["id"] for t in site.iter_request_types("10")] == ["25"]
    created = site.create_request("10", "25", "Restore my access", "Please", raise_on_behalf_of="a1")
    assert created == {"issueKey": "ITH-9"}
    assert requests_mock.last_request.json() == {
        "serviceDeskId": "10",
        "requestTypeId": "25",
        "requestFieldValues": {"summary": "Restore my access", "description": "Please"},
        "raiseOnBehalfOf": "a1",
    }
    assert site.add_request_comment("ITH-1", "Access restored.")["id"] == "c1"
    assert requests_mock.last_request.json() == {"body": "Access restored.", "public": True}
    assert site.get_request_transitions("ITH-1") == [{"id": "761", "name": "Resolve"}]
    site.transition_request("ITH-1", "761", comment="Restored")
    assert requests_mock.last_request.json() == {"id": "761", "additionalComment": {"body": "Restored"}}


def test_site_429_with_retry_after_then_success(site_conn: None, requests_mock: rm.Mocker) -> None:
    sleeps: list[float] = []
    requests_mock.get(
        f"{SITE}/rest/servicedeskapi/request/ITH-1/transition",
        [
            {"status_code": 429, "headers": {"Retry-After": "2", "X-RateLimit-Remaining": "0"}},
            {
                "json": {"isLastPage": True, "values": [{"id": "761"}]},
                "headers": {"X-RateLimit-Remaining": "99"},
            },
        ],
    )
    retry = RetryPolicy(sleep=sleeps.append, jitter=(1.0, 1.0))
    with AtlassianSiteHook(retry_policy=retry) as hook:
        assert hook.get_request_transitions("ITH-1") == [{"id": "761"}]
        assert hook.rate_limit.remaining == 99
    assert sleeps == [2.0]
    assert retry.rate_limit.remaining is None  # each hook tracks its own credential


def test_site_401_points_at_id_atlassian_com(site: AtlassianSiteHook, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{SITE}/rest/api/3/users/search",
        status_code=401,
        json={"errorMessages": ["Unauthorized"], "errors": {}},
    )
    ok, message = site.test_connection()
    assert not ok
    assert "'atlassian_site'" in message
    assert "id.atlassian.com → Security → API tokens" in message
    assert TOKEN not in message
    assert requests_mock.call_count == 1


def test_retry_extra_tunes_the_policy_without_becoming_a_header(monkeypatch, requests_mock):
    set_conn(
        monkeypatch,
        "atlassian_site",
        host="https://acme.atlassian.net",
        login="bot@acme.example",
        password="tok",
        extra={"retry": {"base_delay": 0.5, "max_attempts": 2, "max_wait": 10}},
    )
    hook = AtlassianSiteHook()
    assert hook.retry_policy.base_delay == 0.5
    assert hook.retry_policy.max_attempts == 2
    assert hook.retry_policy.max_wait == 10.0
    sleeps: list[float] = []
    hook._retry_policy = dataclasses.replace(hook.retry_policy, sleep=sleeps.append)
    requests_mock.get(
        "https://acme.atlassian.net/rest/api/3/users/search",
        [{"status_code": 500, "json": {"errorMessages": ["boom"], "errors": {}}}] * 3,
    )
    with pytest.raises(AtlassianRetryExhausted):
        list(hook.iter_users())
    # Two attempts in total, one wait in between, from the tuned base delay.
    assert len(requests_mock.request_history) == 2
    assert len(sleeps) == 1
    assert 0.5 <= sleeps[0] <= 0.5 * 1.3
    assert "retry" not in {k.lower() for k in requests_mock.request_history[0].headers}


def test_bad_retry_extra_is_a_clear_configuration_error(monkeypatch):
    set_conn(
        monkeypatch,
        "atlassian_site",
        host="https://acme.atlassian.net",
        login="bot@acme.example",
        password="tok",
        extra={"retry": {"base_dealy": 1}},
    )
    with pytest.raises(AtlassianConfigurationError, match="extra 'retry'"):
        _ = AtlassianSiteHook().retry_policy
