"""The sandbox's second directory (``idp_directory_share``): listing, per-directory users, ``-``, writes.

Expected behaviour from the API contract: §2.3 (directory list, ``accountId`` filter), §3.4 (per
directory search; ``membershipStatus=suspended`` means suspended in all directories), §4.1
(suspend in one directory; writes need a concrete id).
"""

from __future__ import annotations

from typing import Any

import pytest

from atlassian_sandbox import SandboxConfig


def directories(api: Any, **params: str) -> list[dict[str, Any]]:
    answer = api.get(f"/admin/v2/orgs/{api.org}/directories", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def search(api: Any, directory: str, **body: Any) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    request: dict[str, Any] = {"limit": 50, **body}
    while True:
        answer = api.post(f"/admin/v2/orgs/{api.org}/directories/{directory}/users/search", json=request)
        assert answer.status_code == 200, answer.text
        users.extend(answer.json()["data"])
        cursor = answer.json()["links"].get("next")
        if not cursor:
            return users
        request = {"limit": 50, "cursor": cursor}


@pytest.fixture
def two(make_api: Any) -> Any:
    return make_api(idp_directory_share=0.5)


def test_one_directory_by_default(api: Any) -> None:
    assert [d["directoryId"] for d in directories(api)] == [api.dir]


def test_two_directories_each_list_their_own_members(two: Any) -> None:
    listed = directories(two)
    assert [d["name"] for d in listed] == ["Acme directory", "Okta directory"]
    idp = listed[1]["directoryId"]
    local = {u["accountId"]: u for u in search(two, two.dir)}
    okta = {u["accountId"]: u for u in search(two, idp)}
    assert 0 < len(okta) < len(local)
    assert set(okta) <= set(local)
    assert set(okta) == set(two.state.extra_directories[idp].members)
    # Some members are suspended in the IdP directory but active locally (the seeded difference).
    differing = [
        a for a in okta if okta[a]["membershipStatus"] == "suspended" != local[a]["membershipStatus"]
    ]
    assert differing


def test_the_dash_lists_each_account_once_suspended_only_if_suspended_everywhere(two: Any) -> None:
    idp = directories(two)[1]["directoryId"]
    local = {u["accountId"]: u for u in search(two, two.dir)}
    okta = {u["accountId"]: u for u in search(two, idp)}
    every = search(two, "-")
    assert len(every) == len({u["accountId"] for u in every}) == len(local)
    for user in every:
        seen = [d[user["accountId"]]["membershipStatus"] for d in (local, okta) if user["accountId"] in d]
        expected = "active" if "active" in seen else seen[0]
        assert user["membershipStatus"] == expected, user["accountId"]


def test_the_directory_list_filtered_by_account(two: Any) -> None:
    idp = directories(two)[1]["directoryId"]
    member = next(iter(two.state.extra_directories[idp].members))
    outsider = next(a for a in two.state.user_order if a not in two.state.extra_directories[idp].members)
    assert [d["directoryId"] for d in directories(two, accountId=member)] == [two.dir, idp]
    assert [d["directoryId"] for d in directories(two, accountId=outsider)] == [two.dir]


def test_suspend_in_the_second_directory_changes_that_membership_only(two: Any) -> None:
    idp = directories(two)[1]["directoryId"]
    members = two.state.extra_directories[idp].members
    account = next(
        a for a, m in members.items() if m == "active" and two.state.users[a].membership == "active"
    )
    answer = two.post(f"/admin/v2/orgs/{two.org}/directories/{idp}/users/{account}/suspend")
    assert answer.status_code == 204
    okta = {u["accountId"]: u for u in search(two, idp, accountIds=[account])}
    local = {u["accountId"]: u for u in search(two, two.dir, accountIds=[account])}
    every = {u["accountId"]: u for u in search(two, "-", accountIds=[account])}
    assert okta[account]["membershipStatus"] == "suspended"
    assert local[account]["membershipStatus"] == "active"
    assert every[account]["membershipStatus"] == "active"
    two.post(f"/admin/v2/orgs/{two.org}/directories/{two.dir}/users/{account}/suspend")
    every = {u["accountId"]: u for u in search(two, "-", accountIds=[account])}
    assert every[account]["membershipStatus"] == "suspended"
    assert two.post(f"/admin/v2/orgs/{two.org}/directories/{idp}/users/{account}/restore").status_code == 204
    assert members[account] == "active"


def test_writes_need_a_known_concrete_directory(two: Any) -> None:
    idp = directories(two)[1]["directoryId"]
    outsider = next(a for a in two.state.user_order if a not in two.state.extra_directories[idp].members)
    base = f"/admin/v2/orgs/{two.org}/directories"
    assert two.post(f"{base}/-/users/{outsider}/suspend").status_code == 400
    assert two.post(f"{base}/no-such-directory/users/{outsider}/suspend").status_code == 404
    assert two.post(f"{base}/{idp}/users/{outsider}/suspend").status_code == 404


def test_a_share_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="idp_directory_share"):
        SandboxConfig(idp_directory_share=1.5).validate()


def test_the_same_seed_gives_the_same_second_directory(make_api: Any) -> None:
    first, second = make_api(idp_directory_share=0.3), make_api(idp_directory_share=0.3)
    assert [d["directoryId"] for d in directories(first)] == [d["directoryId"] for d in directories(second)]
    assert (
        next(iter(first.state.extra_directories.values())).members
        == next(iter(second.state.extra_directories.values())).members
    )
