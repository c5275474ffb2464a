"""Organisations with several directories: configuration, merged users, per-directory writes, failures.

Expected merge results come from the API contract (docs/atlassian-api §3.4): ``membershipStatus``
``suspended`` means suspended in *all* directories the caller sees; ``for_deletion``/``deactivated``
are account states; ``productAccess[].lastActiveTimestamp`` dates a product instance.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests_mock as rm

from atlassian_cleanup.client.directories import DirectoryMerge, configured_directories, merge_user
from atlassian_cleanup.client.errors import (
    AtlassianApiError,
    AtlassianConfigurationError,
    AtlassianNotFoundError,
    AtlassianPaginationError,
)
from atlassian_cleanup.client.hooks import AtlassianAdminHook
from atlassian_cleanup.client.retry import RetryPolicy

API = "https://api.atlassian.com"
ORG = "org-77"
KEY = "admin-api-key-directories-0123"
V2 = f"{API}/admin/v2/orgs/{ORG}"
LOCAL, IDP = "d-local", "d-okta"
DIRECTORIES = [{"directoryId": LOCAL, "name": "Acme"}, {"directoryId": IDP, "name": "Okta"}]


def page(data: list[Any], next_cursor: str | None = None) -> dict[str, Any]:
    return {"data": data, "links": {"self": "s"} | ({"next": next_cursor} if next_cursor else {})}


def set_admin(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = {"conn_type": "http", "host": API, "password": KEY, "extra": {"org_id": ORG, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_ATLASSIAN_ADMIN", json.dumps(conn))


def hook() -> AtlassianAdminHook:
    return AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep())


def user(account_id: str, **fields: Any) -> dict[str, Any]:
    return {"accountId": account_id, "status": "active", "membershipStatus": "active", **fields}


def users_answer(pages: dict[str | None, dict[str, Any]]) -> Any:
    """A users/search answer: the page for the cursor in the POST body."""

    def answer(request: Any, _context: Any) -> dict[str, Any]:
        return pages[request.json().get("cursor")]

    return answer


@pytest.fixture
def two_directories(monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker) -> rm.Mocker:
    set_admin(monkeypatch)
    requests_mock.get(f"{V2}/directories", json=page(DIRECTORIES))
    return requests_mock


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  ", "*"])
def test_absent_empty_or_star_means_every_directory(value: Any) -> None:
    assert configured_directories(value, "c") is None


def test_one_id_or_a_list_of_ids() -> None:
    assert configured_directories(" d-1 ", "c") == ["d-1"]
    assert configured_directories(["d-1", "d-2", "d-1"], "c") == ["d-1", "d-2"]
    assert configured_directories("d-1, d-2", "c") == ["d-1", "d-2"]  # the connection form's text field


@pytest.mark.parametrize(
    "value", [5, {"id": "d-1"}, [], ["d-1", ""], ["d-1", 3], ["*", "d-1"], "d-1,,d-2", "*,d-1"]
)
def test_a_malformed_directory_setting_says_what_it_may_be(value: Any) -> None:
    with pytest.raises(AtlassianConfigurationError, match="directory_id") as info:
        configured_directories(value, "atlassian_admin")
    assert "'atlassian_admin'" in str(info.value)


def test_a_listed_unknown_directory_fails_before_any_user_call_naming_the_directories(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_admin(monkeypatch, directory_id=[LOCAL, "d-okat"])
    requests_mock.get(f"{V2}/directories", json=page(DIRECTORIES))
    with pytest.raises(AtlassianConfigurationError) as info:
        hook().suspend_user("a1")
    text = str(info.value)
    for part in ("d-okat", "'Acme' = d-local", "'Okta' = d-okta", "nothing was read or changed"):
        assert part in text
    assert [r.method for r in requests_mock.request_history] == ["GET"]


def test_a_single_typoed_directory_is_explained_on_its_first_read(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_admin(monkeypatch, directory_id="d-lcoal")
    requests_mock.get(f"{V2}/directories", json=page(DIRECTORIES))
    error = {"code": "ADMIN-404-1", "title": "Directory not found"}
    requests_mock.post(f"{V2}/directories/d-lcoal/groups/search", status_code=404, json={"errors": [error]})
    with pytest.raises(AtlassianConfigurationError) as info:
        list(hook().iter_groups())
    assert "has no directory d-lcoal" in str(info.value)
    assert "'Acme' = d-local; 'Okta' = d-okta" in str(info.value)


def test_a_404_about_something_else_stays_a_not_found(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_admin(monkeypatch, directory_id=LOCAL)
    requests_mock.get(f"{V2}/directories", json=page(DIRECTORIES))
    requests_mock.post(f"{V2}/directories/{LOCAL}/groups/search", status_code=404, json={})
    with pytest.raises(AtlassianNotFoundError):
        list(hook().iter_groups())


def test_a_call_that_needs_one_directory_refuses_several(two_directories: rm.Mocker) -> None:
    with pytest.raises(AtlassianConfigurationError, match="manages 2 directories"):
        _ = hook().directory_id


# -- merging ------------------------------------------------------------------------------------------


def test_suspended_in_one_directory_but_active_in_the_other_is_active() -> None:
    seen = user("a", status="suspended", membershipStatus="suspended", directoryIds=[IDP])
    merge_user(seen, user("a"), LOCAL)
    assert (seen["status"], seen["membershipStatus"]) == ("active", "active")
    assert seen["directoryIds"] == [IDP, LOCAL]


def test_suspended_everywhere_stays_suspended_and_account_states_win() -> None:
    seen = user("a", status="suspended", membershipStatus="suspended", directoryIds=[LOCAL])
    merge_user(seen, user("a", status="suspended", membershipStatus="suspended"), IDP)
    assert (seen["status"], seen["membershipStatus"]) == ("suspended", "suspended")
    gone = user("b", directoryIds=[LOCAL])
    merge_user(gone, user("b", status="for_deletion", forDeletion=True), IDP)
    assert (gone["status"], gone["forDeletion"]) == ("for_deletion", True)


def test_products_keep_the_latest_date_and_groups_roles_are_united() -> None:
    jira = {"key": "jira", "id": "r-jira"}
    seen = user(
        "a",
        addedToOrg="2024-05-01T00:00:00Z",
        productAccess=[{**jira, "lastActiveTimestamp": "2026-01-10T00:00:00Z"}],
        groups=[{"id": "g1"}],
        platformRoles=["atlassian/ai-access"],
        directoryIds=[LOCAL],
    )
    other = user(
        "a",
        addedToOrg="2023-02-01T00:00:00+00:00",
        productAccess=[
            {**jira, "lastActiveTimestamp": "2026-03-01T00:00:00Z"},
            {"key": "confluence", "id": "r-conf", "lastActiveTimestamp": None},
        ],
        groups=[{"id": "g1"}, {"id": "g2"}],
        platformRoles=["atlassian/site-admin"],
    )
    merge_user(seen, other, IDP)
    by_id = {p["id"]: p["lastActiveTimestamp"] for p in seen["productAccess"]}
    assert by_id == {"r-jira": "2026-03-01T00:00:00Z", "r-conf": None}
    assert [g["id"] for g in seen["groups"]] == ["g1", "g2"]
    assert set(seen["platformRoles"]) == {"atlassian/ai-access", "atlassian/site-admin"}
    assert seen["addedToOrg"] == "2023-02-01T00:00:00+00:00"
    # A later directory never turns a date back into "never used".
    merge_user(seen, user("a", productAccess=[{**jira, "lastActiveTimestamp": None}]), "d-3")
    assert {p["id"]: p["lastActiveTimestamp"] for p in seen["productAccess"]}[
        "r-jira"
    ] == "2026-03-01T00:00:00Z"


def test_one_directory_listing_an_account_twice_is_refused() -> None:
    merge = DirectoryMerge()
    merge.add(LOCAL, [user("a")], "POST x")
    merge.add(IDP, [user("a")], "POST y")  # in two directories: fine
    with pytest.raises(AtlassianPaginationError, match="more than one page"):
        merge.add(LOCAL, [user("a")], "POST x")


# -- reading several directories through the hook -----------------------------------------------------


def test_every_directory_is_read_and_each_account_appears_once(two_directories: rm.Mocker) -> None:
    two_directories.post(
        f"{V2}/directories/{LOCAL}/users/search",
        json=users_answer({None: page([user("a"), user("b")], "c2"), "c2": page([user("c")])}),
    )
    two_directories.post(
        f"{V2}/directories/{IDP}/users/search",
        json=users_answer(
            {None: page([user("b", status="suspended", membershipStatus="suspended"), user("z")])}
        ),
    )
    found = {u["accountId"]: u for u in hook().iter_directory_users()}
    assert sorted(found) == ["a", "b", "c", "z"]
    assert (found["b"]["directoryIds"], found["b"]["status"]) == ([LOCAL, IDP], "active")
    assert found["z"]["directoryIds"] == [IDP]
    searched = [r.url for r in two_directories.request_history if r.method == "POST"]
    assert set(searched) == {f"{V2}/directories/{d}/users/search" for d in (LOCAL, IDP)}


def test_a_failing_directory_fails_the_whole_listing(two_directories: rm.Mocker) -> None:
    two_directories.post(f"{V2}/directories/{LOCAL}/users/search", json=page([user("a"), user("b")]))
    two_directories.post(
        f"{V2}/directories/{IDP}/users/search",
        [{"json": page([user("x")], "c2")}] + [{"status_code": 500, "json": {}}] * 20,
    )
    listed: list[str] = []
    with pytest.raises(AtlassianApiError):
        listed.extend(u["accountId"] for u in hook().iter_directory_users())
    assert listed == []  # never "a" and "b" alone, as if everyone else had gone


def test_a_looping_directory_cursor_fails_the_whole_listing(two_directories: rm.Mocker) -> None:
    two_directories.post(f"{V2}/directories/{LOCAL}/users/search", json=page([user("a")]))
    two_directories.post(f"{V2}/directories/{IDP}/users/search", json=page([user("x")], "same"))
    with pytest.raises(AtlassianPaginationError, match="already returned"):
        list(hook().iter_directory_users())


# -- writes in the account's directories ----------------------------------------------------------------


@pytest.fixture
def in_idp_only(two_directories: rm.Mocker) -> rm.Mocker:
    two_directories.get(f"{V2}/directories?accountId=a1", json=page([DIRECTORIES[1]]))
    return two_directories


def test_suspend_targets_the_directories_that_list_the_account(in_idp_only: rm.Mocker) -> None:
    in_idp_only.post(f"{V2}/directories/{IDP}/users/a1/suspend", status_code=204)
    hook().suspend_user("a1")
    writes = [r.url for r in in_idp_only.request_history if r.method != "GET"]
    assert writes == [f"{V2}/directories/{IDP}/users/a1/suspend"]


def test_an_account_in_both_directories_is_suspended_and_restored_in_both(two_directories: rm.Mocker) -> None:
    two_directories.get(f"{V2}/directories?accountId=a2", json=page(DIRECTORIES))
    for directory in (LOCAL, IDP):
        for verb in ("suspend", "restore"):
            two_directories.post(f"{V2}/directories/{directory}/users/a2/{verb}", status_code=204)
    admin = hook()
    admin.suspend_user("a2")
    admin.restore_user("a2")
    writes = [r.path.rsplit("/", 4)[-4:] for r in two_directories.request_history if r.method == "POST"]
    assert writes == [
        [LOCAL, "users", "a2", "suspend"],
        [IDP, "users", "a2", "suspend"],
        [LOCAL, "users", "a2", "restore"],
        [IDP, "users", "a2", "restore"],
    ]


def test_an_account_outside_the_configured_directories_is_not_found_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch, requests_mock: rm.Mocker
) -> None:
    set_admin(monkeypatch, directory_id=[LOCAL, IDP])
    requests_mock.get(f"{V2}/directories", json=page(DIRECTORIES))
    requests_mock.get(f"{V2}/directories?accountId=a9", json=page([{"directoryId": "d-other", "name": "X"}]))
    with pytest.raises(AtlassianNotFoundError, match="none of the directories"):
        hook().remove_user("a9")
    assert all(r.method == "GET" for r in requests_mock.request_history)


def test_group_writes_go_to_the_directory_that_lists_the_group(two_directories: rm.Mocker) -> None:
    two_directories.post(
        f"{V2}/directories/{LOCAL}/groups/search", json=page([{"id": "g-local", "name": "l"}])
    )
    two_directories.post(f"{V2}/directories/{IDP}/groups/search", json=page([{"id": "g-idp", "name": "i"}]))
    two_directories.post(f"{V2}/directories/{IDP}/groups/g-idp/memberships", status_code=204)
    admin = hook()
    assert [g["id"] for g in admin.iter_groups()] == ["g-local", "g-idp"]
    assert [g["id"] for g in admin.iter_groups()] == ["g-local", "g-idp"]  # a second listing too
    admin.add_group_member("g-idp", "a1")
    assert two_directories.request_history[-1].url == f"{V2}/directories/{IDP}/groups/g-idp/memberships"


def test_progress_counts_every_directory_and_role_reads_span_all(two_directories: rm.Mocker) -> None:
    two_directories.post(f"{V2}/directories/{LOCAL}/users/search", json=page([user("a"), user("b")]))
    two_directories.post(f"{V2}/directories/{IDP}/users/search", json=page([user("b")]))
    two_directories.get(f"{V2}/directories/-/users/a/role-assignments", json=page([{"resourceId": "r"}]))
    seen: list[tuple[int, int]] = []
    admin = hook()
    assert len(list(admin.iter_directory_users(on_page=lambda p, n: seen.append((p, n))))) == 2
    assert max(seen) == (2, 3)  # two pages, three listings (b twice), whichever directory came first
    assert admin.get_user_role_assignments("a") == [{"resourceId": "r"}]
