"""Rate limits, chaos, eventual consistency, the call log and the /_sim endpoints."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from atlassian_sandbox.middleware import SimulatedConnectionDrop


def test_admin_rate_limit_answers_429_with_admin_headers(make_api: Any) -> None:
    api = make_api(rate_limit_enabled=True, rate_limit_per_second=0.5, rate_limit_burst=2)
    path = f"/admin/v1/orgs/{api.org}"
    ok = [api.get(path) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["X-RateLimit-Limit"] == "2"
    assert ok[1].headers["X-RateLimit-Remaining"] == "0"
    limited = api.get(path)
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == "ADMIN-429-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", limited.headers["X-RateLimit-Reset"])
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "2"
    # Buckets are per path template and method: another endpoint still answers.
    assert api.get(f"/admin/v2/orgs/{api.org}/directories").status_code == 200
    assert api.client.get("/_sim/health").status_code == 200


def test_admin_retry_after_can_be_switched_off(make_api: Any) -> None:
    api = make_api(
        rate_limit_enabled=True, rate_limit_per_second=0.1, rate_limit_burst=1, admin_retry_after=False
    )
    api.get(f"/admin/v1/orgs/{api.org}")
    limited = api.get(f"/admin/v1/orgs/{api.org}")
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert "X-RateLimit-Reset" in limited.headers


def test_jira_rate_limit_headers(make_api: Any) -> None:
    api = make_api(rate_limit_enabled=True, rate_limit_per_second=0.5, rate_limit_burst=1)
    assert api.get("/rest/api/3/users/search").status_code == 200
    limited = api.get("/rest/api/3/users/search")
    assert limited.status_code == 429
    assert limited.headers["RateLimit-Reason"] == "jira-burst-based"
    assert int(limited.headers["Retry-After"]) >= 1
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(limited.headers)
    assert limited.json()["errorMessages"]
    jsm = api.get("/rest/servicedeskapi/servicedesk")
    assert jsm.status_code == 200  # separate bucket


LAST_ACTIVE = "GET /admin/v1/orgs/{org_id}/directory/users/{account_id}/last-active-dates"


def test_an_endpoint_can_have_its_own_rate(make_api: Any) -> None:
    # Atlassian publishes no Admin API numbers; scripts document a slower per-user endpoint.
    api = make_api(
        rate_limit_enabled=True,
        rate_limit_per_second=0.5,
        rate_limit_burst=1,
        rate_limit_endpoints={LAST_ACTIVE: 0.1},
    )
    account_id = api.state.user_order[0]
    last_active = f"/admin/v1/orgs/{api.org}/directory/users/{account_id}/last-active-dates"
    org = f"/admin/v1/orgs/{api.org}"
    assert api.get(last_active).status_code == 200
    assert api.get(org).status_code == 200
    slow, default = api.get(last_active), api.get(org)
    assert (slow.status_code, default.status_code) == (429, 429)
    # Retry-After is the time to the next token at each endpoint's own rate.
    assert 9 <= int(slow.headers["Retry-After"]) <= 10
    assert 1 <= int(default.headers["Retry-After"]) <= 2
    # Another user's last-active-dates shares the route's bucket (per path template).
    other = f"/admin/v1/orgs/{api.org}/directory/users/{api.state.user_order[1]}/last-active-dates"
    assert api.get(other).status_code == 429


def test_endpoint_rates_are_checked_against_the_routes_and_applied_all_or_nothing(make_api: Any) -> None:
    api = make_api()
    config = api.client.get("/_sim/config").json()
    assert LAST_ACTIVE in config["endpoints"]
    assert not any(key.split(" ", 1)[1].startswith("/_sim") for key in config["endpoints"])

    typo = api.client.post(
        "/_sim/config",
        json={"latency_ms": 7, "rate_limit_endpoints": {"GET /admin/v1/orgs/{org_id}/last-active": 1}},
    )
    assert typo.status_code == 400
    assert "no route 'GET /admin/v1/orgs/{org_id}/last-active'" in typo.json()["error"]
    assert api.rt.config.latency_ms == 0.0  # the valid knob in the same request was not applied
    for bad, says in (
        ({"/admin/v1/orgs": 1}, "must be '<METHOD> <route template>'"),
        ({LAST_ACTIVE: 0}, "positive number of requests/s"),
        ({LAST_ACTIVE: "fast"}, "rate_limit_endpoints"),
        ([LAST_ACTIVE], "expected an object"),
    ):
        response = api.client.post("/_sim/config", json={"rate_limit_endpoints": bad})
        assert response.status_code == 400, bad
        assert says in response.json()["error"], (bad, response.json())
    assert api.rt.config.rate_limit_endpoints == {}

    # Method case and spacing are normalised; the answer echoes the stored key.
    ok = api.client.post("/_sim/config", json={"rate_limit_endpoints": {"get  " + LAST_ACTIVE[4:]: 3.5}})
    assert ok.status_code == 200
    assert ok.json()["config"]["rate_limit_endpoints"] == {LAST_ACTIVE: 3.5}


def test_a_knobs_file_naming_no_route_stops_the_sandbox_at_startup(make_api: Any) -> None:
    with pytest.raises(ValueError, match="no route 'POST /admin/v9/nothing'"):
        make_api(rate_limit_endpoints={"POST /admin/v9/nothing": 1})


def test_chaos_errors_carry_retry_after_and_are_reproducible(make_api: Any) -> None:
    api = make_api(chaos_503=1.0, chaos_retry_after=3)
    response = api.get(f"/admin/v1/orgs/{api.org}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert api.client.get("/_sim/info").status_code == 200  # never injected into /_sim

    def sequence() -> list[int]:
        chaotic = make_api(chaos_seed=11, chaos_429=0.3, chaos_500=0.2)
        return [chaotic.get("/rest/api/3/users/search").status_code for _ in range(30)]

    first = sequence()
    assert first == sequence()
    assert {429, 500, 200} <= set(first)


def test_chaos_scoped_to_methods_and_paths(make_api: Any) -> None:
    api = make_api(chaos_500=1.0, chaos_methods=["POST"], chaos_path_regex="/suspend$")
    user = api.population("active")[0]
    assert api.get(api.v2(f"/users/{user.account_id}")).status_code == 200
    response = api.post(api.v2(f"/users/{user.account_id}/suspend"))
    assert response.status_code == 500
    assert response.json()["errors"][0]["code"] == "ADMIN-500-1"
    assert user.membership == "active"


def test_drop_after_applies_the_write_in_process(make_api: Any) -> None:
    api = make_api(chaos_drop_after=1.0)
    user = api.population("inactive_90")[0]
    with pytest.raises(SimulatedConnectionDrop):
        api.post(api.v2(f"/users/{user.account_id}/suspend"))
    assert user.membership == "suspended"
    call = api.rt.calls.since(0)[-1]
    assert (call["injected"], call["status"]) == ("drop_after", 204)


def test_eventual_consistency_delays_reads(make_api: Any) -> None:
    api = make_api(eventual_consistency_ms=300)
    user = api.population("active")[0]
    assert api.post(api.v2(f"/users/{user.account_id}/suspend")).status_code == 204
    assert api.get(api.v2(f"/users/{user.account_id}")).json()["data"]["status"] == "active"
    time.sleep(0.35)
    assert api.get(api.v2(f"/users/{user.account_id}")).json()["data"]["status"] == "suspended"


def test_latency_knob_slows_calls(make_api: Any) -> None:
    api = make_api(latency_ms=60)
    started = time.perf_counter()
    api.get(f"/admin/v1/orgs/{api.org}")
    assert time.perf_counter() - started >= 0.06


def test_call_log_records_writes_templates_and_accounts(api: Any) -> None:
    user = api.population("inactive_90")[0]
    group = api.group_id("marketing-team")
    api.get(api.v2(f"/users/{user.account_id}"))
    api.post(api.v2(f"/groups/{group}/memberships"), json={"accountId": user.account_id})
    api.get("/rest/api/3/user/groups", params={"accountId": user.account_id})
    api.client.get("/_sim/info")
    body = api.client.get("/_sim/calls").json()
    calls = body["calls"]
    assert [c["seq"] for c in calls] == [1, 2, 3]
    assert body["last_seq"] == 3
    read, write, jira = calls
    assert read["path_template"] == "/admin/v2/orgs/{org_id}/directories/{directory_id}/users/{account_id}"
    assert (read["family"], read["status"], read["account_id"]) == ("admin", 200, user.account_id)
    assert "body" not in read
    assert write["method"] == "POST"
    assert write["body"] == {"accountId": user.account_id}
    assert write["group_id"] == group
    assert write["status"] == 204
    assert (jira["family"], jira["account_id"]) == ("jira", user.account_id)
    assert [c["seq"] for c in api.client.get("/_sim/calls", params={"since": 2}).json()["calls"]] == [3]
    api.client.delete("/_sim/calls")
    assert api.client.get("/_sim/calls").json()["calls"] == []


def test_sim_info_users_config_and_reset(api: Any) -> None:
    info = api.client.get("/_sim/info").json()
    assert {"org_id", "directory_id", "admin_api_key", "site_email", "site_token", "as_of", "users", "seed",
            "base_url"} <= set(info)  # fmt: skip
    assert info["base_url"] == "http://testserver"
    assert info["org_id"] == api.org
    truth = api.client.get("/_sim/users").json()["users"]
    assert len(truth) == len(api.state.users)
    sample = truth[0]
    expected = {
        "account_id", "account_type", "status", "groups", "product_access", "last_active", "platform_roles",
        "claim_status", "added_to_org", "for_deletion", "deletion_scheduled_at", "populations",
    }  # fmt: skip
    assert expected <= set(sample)
    apps = api.client.get("/_sim/users", params={"population": "app_service"}).json()["users"]
    assert apps
    assert all(u["account_type"] == "app" for u in apps)

    assert api.client.post("/_sim/config", json={"latency_ms": 5}).json()["config"]["latency_ms"] == 5
    assert api.client.get("/_sim/config").json()["latency_ms"] == 5
    assert api.client.post("/_sim/config", json={"no_such_knob": 1}).status_code == 400
    assert api.client.post("/_sim/config", json={"users": 5}).status_code == 400

    reset = api.client.post("/_sim/reset", json={"users": 60, "seed": 9, "as_of": "2026-12-01"}).json()
    assert (reset["users"], reset["seed"], reset["as_of"]) == (60, 9, "2026-12-01")
    assert len(api.state.users) == 60
    assert api.client.get("/_sim/health").json()["status"] == "ok"


def test_activity_hook_updates_last_active(api: Any) -> None:
    user = api.population("inactive_400")[0]
    response = api.client.post("/_sim/activity", json={"accountId": user.account_id, "product": "jira"})
    assert response.status_code == 200
    assert response.json()["last_active"]["jira-software"] == "2026-11-26T09:00:00Z"


def test_a_request_repeated_before_its_announced_wait_is_flagged_in_the_call_log(make_api: Any) -> None:
    api = make_api(chaos_503=1.0, chaos_retry_after=30)
    search = api.v2("/users/search")
    assert api.post(search, json={"limit": 5}).status_code == 503  # told to come back in 30 s
    api.post(search, json={"limit": 5})  # the identical request, at once: early
    api.post(search, json={"limit": 6})  # another request to the same endpoint: not a repeat
    calls = [c for c in api.client.get("/_sim/calls").json()["calls"] if c["path"] == search]
    assert [bool(c.get("early_repeat")) for c in calls] == [False, True, False]
    assert calls[1]["early_by_ms"] > 25_000


def test_a_request_repeated_after_its_announced_wait_is_not_flagged(make_api: Any) -> None:
    api = make_api(rate_limit_enabled=True, rate_limit_per_second=20, rate_limit_burst=1)
    path = "/rest/api/3/users/search"
    assert api.get(path).status_code == 200
    limited = api.get(path)
    assert limited.status_code == 429
    time.sleep(float(limited.headers["Retry-After"]) + 0.05)
    api.get(path)
    calls = [c for c in api.client.get("/_sim/calls").json()["calls"] if c["path"] == path]
    assert len(calls) == 3
    assert not any(c.get("early_repeat") for c in calls)
