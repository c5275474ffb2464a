"""Jira platform and JSM endpoints: offset paging, group writes on shared state, JQL, requests."""

from __future__ import annotations

import base64
from typing import Any

import pytest

RESTORE_JQL = (
    'project = ITH AND "Request Type" = "Restore my access" AND statusCategory != Done ORDER BY created ASC'
)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic " + base64.b64encode(b"automation@acme.example:wrong").decode(),
        "Bearer sandbox-admin-key",
    ],
)
def test_site_endpoints_reject_bad_basic_auth(api: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = api.client.get("/rest/api/3/users/search", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["errors"] == {}
    assert body["errorMessages"]
    jsm = api.client.get("/rest/servicedeskapi/servicedesk", headers=headers)
    assert jsm.status_code == 401


def test_users_search_offset_paging_includes_apps_and_customers(api: Any) -> None:
    seen: list[str] = []
    start = 0
    while True:
        page = api.get("/rest/api/3/users/search", params={"startAt": start, "maxResults": 40}).json()
        assert isinstance(page, list)
        if not page:
            break
        seen.extend(u["accountId"] for u in page)
        start += len(page)
    assert len(seen) == len(set(seen)) == len(api.state.users)
    types = {api.state.users[a].account_type for a in seen}
    assert types == {"atlassian", "app", "customer"}
    app = api.get(
        "/rest/api/3/user", params={"accountId": api.population("app_service")[0].account_id}
    ).json()
    assert (app["accountType"], app["appType"]) == ("app", "service")


def test_get_user_with_groups_and_user_groups(api: Any) -> None:
    user = api.population("site_admin")[0]
    data = api.get(
        "/rest/api/3/user", params={"accountId": user.account_id, "expand": "groups,applicationRoles"}
    )
    names = {g["name"] for g in data.json()["groups"]["items"]}
    assert "site-admins" in names
    listed = api.get("/rest/api/3/user/groups", params={"accountId": user.account_id}).json()
    assert {g["name"] for g in listed} == names
    assert all("groupId" in g for g in listed)
    assert api.get("/rest/api/3/user", params={"accountId": "nobody"}).status_code == 404


def test_group_add_remove_share_state_with_admin_api(api: Any) -> None:
    group = api.state.group_by_name("marketing-team")
    user = api.population("active")[0]
    added = api.post(
        "/rest/api/3/group/user", params={"groupId": group.id}, json={"accountId": user.account_id}
    )
    assert added.status_code == 201
    assert added.json()["groupId"] == group.id
    admin_view = api.post(
        api.v2("/users/search"), json={"accountIds": [user.account_id], "expand": ["groups"]}
    )
    assert "marketing-team" in {g["name"] for g in admin_view.json()["data"][0]["groups"]}
    again = api.post(
        "/rest/api/3/group/user", params={"groupname": "marketing-team"}, json={"accountId": user.account_id}
    )
    assert again.status_code == 400
    assert "already a member" in again.json()["errorMessages"][0]
    removed = api.delete("/rest/api/3/group/user", params={"groupId": group.id, "accountId": user.account_id})
    assert removed.status_code == 200
    assert removed.content == b""
    assert group.id not in user.groups
    assert (
        api.delete(
            "/rest/api/3/group/user", params={"groupId": group.id, "accountId": user.account_id}
        ).status_code
        == 400
    )


def test_jira_group_writes_respect_sync_and_customers(api: Any) -> None:
    synced = api.state.group_by_name("idp-engineering")
    user = api.population("active")[0]
    assert (
        api.post(
            "/rest/api/3/group/user", params={"groupId": synced.id}, json={"accountId": user.account_id}
        ).status_code
        == 403
    )
    customer = api.population("customer")[0]
    group = api.state.group_by_name("marketing-team")
    response = api.post(
        "/rest/api/3/group/user", params={"groupId": group.id}, json={"accountId": customer.account_id}
    )
    assert response.status_code == 400
    assert not customer.groups


def test_group_member_paging_and_inactive_filter(make_api: Any) -> None:
    api = make_api(users=300)
    group = api.state.group_by_name("jira-software-users-acme")
    url = "/rest/api/3/group/member"
    first = api.get(
        url, params={"groupId": group.id, "maxResults": 500, "includeInactiveUsers": "true"}
    ).json()
    assert first["maxResults"] == 50
    assert first["isLast"] is False
    assert first["nextPage"].startswith("http://testserver")
    assert first["total"] == len(group.members)
    collected, page = [], first
    while True:
        collected.extend(v["accountId"] for v in page["values"])
        if page["isLast"]:
            break
        page = api.get(page["nextPage"].removeprefix("http://testserver")).json()
    assert set(collected) == group.members
    active_only = api.get(url, params={"groupId": group.id, "maxResults": 50}).json()
    inactive = {a for a in group.members if api.state.users[a].account_status != "active"}
    assert inactive
    assert active_only["total"] == len(group.members) - len(inactive)


def test_group_bulk_and_application_roles(api: Any) -> None:
    bulk = api.get("/rest/api/3/group/bulk", params={"accessType": "site-admin"}).json()
    assert [g["name"] for g in bulk["values"]] == ["site-admins"]
    assert bulk["isLast"] is True
    roles = {r["key"]: r for r in api.get("/rest/api/3/applicationrole").json()}
    jira = roles["jira-software"]
    assert jira["defaultGroups"] == ["jira-software-users-acme"]
    assert jira["userCount"] == api.state.seat_holders("jira-software")
    assert jira["remainingSeats"] == jira["numberOfSeats"] - jira["userCount"]
    assert "jira-servicedesk" in roles


def test_classic_search_is_gone_and_jql_search_pages(api: Any) -> None:
    assert api.get("/rest/api/3/search", params={"jql": "project = ITH"}).status_code == 410
    issues, token = [], None
    while True:
        body = {"jql": "project = ITH ORDER BY key ASC", "maxResults": 1, "fields": ["summary", "status"]}
        if token:
            body["nextPageToken"] = token
        page = api.post("/rest/api/3/search/jql", json=body).json()
        issues.extend(page["issues"])
        token = page.get("nextPageToken")
        if page["isLast"]:
            assert token is None
            break
    assert [i["key"] for i in issues] == sorted(api.state.requests, key=lambda k: int(k.split("-")[1]))
    assert all("summary" in i["fields"] for i in issues)
    default = api.get("/rest/api/3/search/jql", params={"jql": RESTORE_JQL}).json()
    assert default["issues"]
    assert "fields" not in default["issues"][0]
    assert api.get("/rest/api/3/search/jql", params={"jql": "project = ITH OR key = X"}).status_code == 400


def test_issue_transitions_resolve_a_restore_request(api: Any) -> None:
    open_before = api.get("/rest/api/3/search/jql", params={"jql": RESTORE_JQL}).json()["issues"]
    key = open_before[0]["key"]
    transitions = api.get(f"/rest/api/3/issue/{key}/transitions").json()["transitions"]
    resolve = next(t for t in transitions if t["name"] == "Resolve")
    assert resolve["to"]["statusCategory"]["key"] == "done"
    response = api.post(f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": resolve["id"]}})
    assert response.status_code == 204
    open_after = api.get("/rest/api/3/search/jql", params={"jql": RESTORE_JQL}).json()["issues"]
    assert key not in {i["key"] for i in open_after}
    bad = api.post(f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "31"}})
    assert bad.status_code == 400
    assert api.get("/rest/api/3/issue/ITH-999/transitions").status_code == 404


def test_jsm_request_comment_transition_flow(api: Any) -> None:
    desks = api.get("/rest/servicedeskapi/servicedesk").json()
    assert desks["isLastPage"] is True
    assert desks["values"][0]["projectKey"] == "ITH"
    desk_id = desks["values"][0]["id"]
    types = api.get(f"/rest/servicedeskapi/servicedesk/{desk_id}/requesttype").json()["values"]
    restore = next(t for t in types if t["name"] == "Restore my access")
    requester = api.population("suspended")[0]
    created = api.post(
        "/rest/servicedeskapi/request",
        json={
            "serviceDeskId": desk_id,
            "requestTypeId": restore["id"],
            "requestFieldValues": {"summary": "Restore please", "description": "I need Jira back"},
            "raiseOnBehalfOf": requester.email,
        },
    )
    assert created.status_code == 201
    request = created.json()
    key = request["issueKey"]
    assert request["reporter"]["accountId"] == requester.account_id
    assert request["currentStatus"]["statusCategory"] == "NEW"

    # GET /request is scoped to the caller: requests raised by others need ALL_REQUESTS.
    mine = api.get("/rest/servicedeskapi/request").json()["values"]
    assert key not in {r["issueKey"] for r in mine}
    params = {"requestOwnership": "ALL_REQUESTS", "requestStatus": "OPEN_REQUESTS"}
    everything = api.get("/rest/servicedeskapi/request", params=params).json()
    assert key in {r["issueKey"] for r in everything["values"]}
    assert api.get(f"/rest/servicedeskapi/request/{key}").json()["issueKey"] == key

    comment = api.post(
        f"/rest/servicedeskapi/request/{key}/comment", json={"body": "Restored.", "public": True}
    )
    assert comment.status_code == 201
    assert comment.json()["body"] == "Restored."
    comments = api.get(f"/rest/servicedeskapi/request/{key}/comment").json()
    assert [c["body"] for c in comments["values"]] == ["Restored."]
    assert comments["isLastPage"] is True

    transitions = api.get(f"/rest/servicedeskapi/request/{key}/transition").json()["values"]
    resolve = next(t for t in transitions if t["name"] == "Resolve")
    done = api.post(
        f"/rest/servicedeskapi/request/{key}/transition",
        json={"id": resolve["id"], "additionalComment": {"body": "Closing"}},
    )
    assert done.status_code == 204
    after = api.get(f"/rest/servicedeskapi/request/{key}").json()
    assert after["currentStatus"]["statusCategory"] == "DONE"
    assert len(api.state.requests[key].comments) == 2


def test_jsm_errors_use_the_jsm_envelope(api: Any) -> None:
    missing = api.get("/rest/servicedeskapi/request/ITH-999")
    assert missing.status_code == 404
    assert set(missing.json()) == {"errorMessage", "i18nErrorMessage"}
    no_summary = api.post("/rest/servicedeskapi/request", json={"serviceDeskId": "1", "requestTypeId": "25",
                                                               "requestFieldValues": {}})  # fmt: skip
    assert no_summary.status_code == 400
    assert "errorMessage" in no_summary.json()


def test_jsm_paging_links(api: Any) -> None:
    for _ in range(3):
        api.post("/rest/servicedeskapi/request", json={"serviceDeskId": "1", "requestTypeId": "27",
                                                       "requestFieldValues": {"summary": "x"}})  # fmt: skip
    page = api.get("/rest/servicedeskapi/request", params={"limit": 2}).json()
    assert page["size"] == 2
    assert page["isLastPage"] is False
    assert page["_links"]["next"].startswith("http://testserver/rest/servicedeskapi/request?")
    second = api.get(page["_links"]["next"].removeprefix("http://testserver")).json()
    assert second["start"] == 2
    assert second["isLastPage"] is True


def test_scoped_token_alias_and_api_user_access(api: Any) -> None:
    cloud = api.state.cloud_id
    aliased = api.client.get(f"/ex/jira/{cloud}/rest/api/3/myself", headers=api.site)
    assert aliased.status_code == 200
    assert aliased.json()["accountId"] == api.state.api_account_id
    # A DAG that suspends its own API user loses site access: the sandbox must show that.
    api.state.suspend(api.state.api_account_id)
    assert api.get("/rest/api/3/myself").status_code == 403
    api.state.restore(api.state.api_account_id)
    api.state.disable(api.state.api_account_id)
    assert api.get("/rest/api/3/myself").status_code == 401


def test_an_email_to_the_desk_becomes_the_senders_request(make_api: Any) -> None:
    api = make_api(jsm_request_channel=True)
    sender = api.population("suspended")[0]
    named = api.population("inactive_180")[0]
    users_before = len(api.state.users)

    sent = api.client.post(
        "/_sim/jsm/email",
        json={
            "from": f"{sender.name} <{sender.email.upper()}>",
            "subject": "Please restore my access",
            "body": f"Also restore {named.email}, thanks.",
        },
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["processed"] is True
    assert sent.json()["customerCreated"] is False
    request = sent.json()["request"]
    key = request["issueKey"]
    # The reporter is the sender's account; an address in the body is only text.
    assert request["reporter"]["accountId"] == sender.account_id
    assert request["serviceDeskId"] == "1"
    assert request["requestTypeId"] == "25"  # the desk's first request type: its e-mail channel's
    assert request["channel"] == "email"
    fields = {f["fieldId"]: f["value"] for f in request["requestFieldValues"]}
    assert fields["summary"] == "Please restore my access"
    assert fields["description"] == f"Also restore {named.email}, thanks."
    assert len(api.state.users) == users_before
    found = api.get("/rest/api/3/search/jql", params={"jql": RESTORE_JQL, "fields": "reporter"}).json()
    assert {i["key"]: i["fields"]["reporter"]["accountId"] for i in found["issues"]}[key] == sender.account_id

    # Other channels, when the knob exposes them: REST-raised requests are "api", seeded "portal".
    raised = api.post(
        "/rest/servicedeskapi/request",
        json={"serviceDeskId": "1", "requestTypeId": "27", "requestFieldValues": {"summary": "x"}},
    )
    assert raised.json()["channel"] == "api"
    assert api.get("/rest/servicedeskapi/request/ITH-1").json()["channel"] == "portal"
    # Off (the default): the documented CustomerRequest shape, no channel.
    api.rt.configure({"jsm_request_channel": False})
    assert "channel" not in api.get(f"/rest/servicedeskapi/request/{key}").json()

    # Explicit desk and type; bad input.
    typed = api.client.post(
        "/_sim/jsm/email",
        json={"from": sender.email, "subject": "", "serviceDeskId": "ITH", "requestTypeId": "27"},
    ).json()["request"]
    assert typed["requestTypeId"] == "27"
    assert typed["requestFieldValues"][0]["value"] == "(no subject)"
    assert api.client.post("/_sim/jsm/email", json={"subject": "x"}).status_code == 400
    assert api.client.post("/_sim/jsm/email", json={"from": "not-an-address"}).status_code == 400
    no_desk = api.client.post("/_sim/jsm/email", json={"from": sender.email, "serviceDeskId": "9"})
    assert no_desk.status_code == 404


def test_an_email_from_an_unknown_address_is_dropped_or_makes_a_customer(make_api: Any) -> None:
    api = make_api()
    requests_before = set(api.state.requests)
    stranger = "Mallory <mallory@evil.example>"

    # Default: the desk only serves existing accounts; the e-mail is not processed.
    dropped = api.client.post("/_sim/jsm/email", json={"from": stranger, "subject": "Restore me"})
    assert dropped.status_code == 200
    assert dropped.json()["processed"] is False
    assert "not a customer" in dropped.json()["reason"]
    assert set(api.state.requests) == requests_before
    assert api.state.user_by_email("mallory@evil.example") is None

    # An "anyone can email" desk: the sender becomes a portal-only customer, once.
    api.rt.configure({"jsm_email_unknown_sender": "create_customer"})
    first = api.client.post("/_sim/jsm/email", json={"from": stranger, "subject": "Restore me"}).json()
    again = api.client.post("/_sim/jsm/email", json={"from": "mallory@EVIL.example", "subject": "?"}).json()
    assert first["customerCreated"] is True
    assert again["customerCreated"] is False
    account_id = first["request"]["reporter"]["accountId"]
    assert again["request"]["reporter"]["accountId"] == account_id
    assert account_id.startswith("qm:")
    customer = api.state.users[account_id]
    assert (customer.account_type, customer.name, customer.groups) == ("customer", "Mallory", set())
    # Not a directory member, but a Jira user (accountType customer).
    directory = {u["accountId"] for u in api.search_all({"accountIds": [account_id]})}
    assert account_id not in directory
    jira = api.get("/rest/api/3/user", params={"accountId": account_id}).json()
    assert jira["accountType"] == "customer"
    with pytest.raises(ValueError, match="jsm_email_unknown_sender"):
        api.rt.configure({"jsm_email_unknown_sender": "bounce"})
