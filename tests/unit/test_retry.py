"""The retry / rate-limit policy and the error mapping (contract §7.3 and §8)."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from hypothesis import given
from hypothesis import strategies as st

from atlassian_cleanup.client.errors import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianConflictError,
    AtlassianNotFoundError,
    AtlassianPermissionError,
    AtlassianRetryExhausted,
    error_from_response,
    parse_error_body,
)
from atlassian_cleanup.client.rate_limit_headers import parse_rate_limit_reset, parse_retry_after
from atlassian_cleanup.client.retry import RetryPolicy

NOW = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
ADMIN_PATH = "/admin/v2/orgs/org-1/directories/dir-1/users/search"
SITE_PATH = "/rest/api/3/group/user"


class FixedRng:
    """A jitter source pinned to the low or the high bound."""

    def __init__(self, pick: str = "low") -> None:
        self.pick = pick
        self.calls: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return low if self.pick == "low" else high


def response(
    status: int, body: object = None, headers: dict[str, str] | None = None, text: str | None = None
) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "")
    resp.headers.update(headers or {})
    if body is not None:
        resp._content = json.dumps(body).encode()
        resp.headers.setdefault("Content-Type", "application/json")
    else:
        resp._content = (text or "").encode()
    return resp


def scripted(
    *outcomes: requests.Response | BaseException,
) -> tuple[Callable[[], requests.Response], list[int]]:
    """A ``send`` that plays the outcomes in order and counts its calls."""
    calls: list[int] = []

    def send() -> requests.Response:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return send, calls


def policy(sleeps: list[float], pick: str = "low", **overrides: object) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps.append, clock=lambda: NOW, rng=FixedRng(pick), **overrides)


OK = response(200, {"data": []})


# -- 429 / 503 waits ------------------------------------------------------------------------------


@pytest.mark.parametrize(("pick", "expected"), [("low", 7.0), ("high", 7.0 * 1.3)])
def test_429_retry_after_seconds_is_a_floor_with_positive_jitter(pick: str, expected: float) -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(429, headers={"Retry-After": "7"}), OK)

    result = policy(sleeps, pick).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert result is OK
    assert len(calls) == 2
    assert sleeps == [pytest.approx(expected)]


def test_429_retry_after_http_date() -> None:
    sleeps: list[float] = []
    when = format_datetime(NOW + timedelta(seconds=20), usegmt=True)
    send, calls = scripted(response(429, headers={"Retry-After": when}), OK)

    policy(sleeps, "high").execute(send, method="GET", path=SITE_PATH, idempotent=True)

    assert len(calls) == 2
    assert sleeps == [pytest.approx(26.0)]


@pytest.mark.parametrize(
    "reset",
    [
        "2026-11-26T10:01Z",
        "2026-11-26T10:01:00Z",
        "2026-11-26T11:01:00+01:00",
        "2026-11-26T10:01:00.000Z",
        "2026-11-26T10:01:00.00Z",
    ],
)
def test_429_with_only_x_ratelimit_reset_waits_until_the_reset(reset: str) -> None:
    sleeps: list[float] = []
    headers = {"X-RateLimit-Reset": reset, "X-RateLimit-Remaining": "0"}
    send, calls = scripted(response(429, {"errors": [{"code": "ADMIN-429-1"}]}, headers), OK)

    policy(sleeps, "low").execute(send, method="POST", path=ADMIN_PATH, idempotent=False)

    assert len(calls) == 2
    assert sleeps == [pytest.approx(60.0)]


def test_jitter_stays_within_bounds_with_a_real_rng() -> None:
    sleeps: list[float] = []
    outcomes = [response(429, headers={"Retry-After": "10"}) for _ in range(4)] + [OK]
    send, _ = scripted(*outcomes)
    retry = RetryPolicy(sleep=sleeps.append, clock=lambda: NOW)

    retry.execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert len(sleeps) == 4
    assert all(10.0 <= wait <= 13.0 for wait in sleeps)


@given(st.floats(min_value=0, max_value=300), st.sampled_from(["low", "high"]))
def test_server_wait_is_never_shortened_and_never_exceeds_the_cap(seconds: float, pick: str) -> None:
    sleeps: list[float] = []
    send, _ = scripted(response(429, headers={"Retry-After": f"{seconds}"}), OK)

    policy(sleeps, pick).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert seconds <= sleeps[0] <= max(seconds, 300.0) + 1e-9


def test_exponential_backoff_without_hints_then_exhausted() -> None:
    sleeps: list[float] = []
    send, calls = scripted(*[response(503, text="upstream down") for _ in range(5)])

    with pytest.raises(AtlassianRetryExhausted) as info:
        policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert len(calls) == 5
    assert sleeps == [5.0, 10.0, 20.0, 30.0]
    assert info.value.status == 503
    assert "5 attempts" in str(info.value)
    assert "Airflow task retry" in str(info.value)


def test_503_is_retried() -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(503), OK)
    assert policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True) is OK
    assert len(calls) == 2


def test_503_with_retry_after_is_retried_even_when_not_idempotent() -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(503, headers={"Retry-After": "2"}), OK)
    assert policy(sleeps).execute(send, method="POST", path=ADMIN_PATH, idempotent=False) is OK
    assert (len(calls), sleeps) == (2, [2.0])


def test_503_without_retry_after_is_not_retried_when_not_idempotent() -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(503), OK)
    with pytest.raises(AtlassianApiError) as info:
        policy(sleeps).execute(send, method="POST", path="/users/a/manage/lifecycle/delete", idempotent=False)
    assert len(calls) == 1
    assert not isinstance(info.value, AtlassianRetryExhausted)
    assert "not idempotent" in str(info.value)


def test_500_retried_for_get_but_not_for_non_idempotent_post() -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(500, {"errors": [{"code": "ADMIN-500-1", "title": "Oops"}]}), OK)
    assert policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True) is OK
    assert len(calls) == 2

    send, calls = scripted(response(500, {"errors": [{"code": "ADMIN-500-1", "title": "Oops"}]}), OK)
    with pytest.raises(AtlassianApiError) as info:
        policy(sleeps).execute(send, method="POST", path="/users/a/manage/lifecycle/delete", idempotent=False)
    assert len(calls) == 1
    assert (info.value.status, info.value.code) == (500, "ADMIN-500-1")
    assert "check the account's current state" in str(info.value)


# -- transport errors -----------------------------------------------------------------------------


def test_connection_error_is_retried_for_idempotent_calls() -> None:
    sleeps: list[float] = []
    send, calls = scripted(requests.exceptions.ConnectionError("reset by peer"), OK)
    assert policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True) is OK
    assert (len(calls), sleeps) == (2, [5.0])


def test_connect_timeout_is_retried_even_when_not_idempotent() -> None:
    sleeps: list[float] = []
    send, calls = scripted(requests.exceptions.ConnectTimeout("no route"), OK)
    assert policy(sleeps).execute(send, method="POST", path=ADMIN_PATH, idempotent=False) is OK
    assert len(calls) == 2


def test_read_timeout_is_not_retried_when_not_idempotent() -> None:
    sleeps: list[float] = []
    send, calls = scripted(requests.exceptions.ReadTimeout("slow"), OK)
    with pytest.raises(AtlassianApiError) as info:
        policy(sleeps).execute(send, method="POST", path="/users/a/manage/lifecycle/delete", idempotent=False)
    assert len(calls) == 1
    assert info.value.status is None
    assert isinstance(info.value.__cause__, requests.exceptions.ReadTimeout)
    assert sleeps == []


def test_transport_errors_exhaust_attempts() -> None:
    sleeps: list[float] = []
    send, calls = scripted(*[requests.exceptions.ConnectionError("down")] * 3)
    with pytest.raises(AtlassianRetryExhausted) as info:
        policy(sleeps, max_attempts=3).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)
    assert len(calls) == 3
    assert sleeps == [5.0, 10.0]
    assert "ConnectionError" in str(info.value)


# -- not retried 4xx and the envelopes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message_part"),
    [
        (
            404,
            {"errors": [{"id": "x", "status": "404", "code": "ADMIN-404-8", "title": "User not found"}]},
            AtlassianNotFoundError,
            "ADMIN-404-8",
            "User not found",
        ),
        (
            409,
            {"errors": [{"code": "ADMIN-409-3", "title": "Conflict", "detail": "License limit reached"}]},
            AtlassianConflictError,
            "ADMIN-409-3",
            "License limit reached",
        ),
        (
            403,
            {"key": "forbidden.action", "context": {"reason": {"key": "externalDirectory.scim"}}},
            AtlassianPermissionError,
            "forbidden.action",
            "externalDirectory.scim",
        ),
        (
            400,
            [{"code": "lifecycle.invalid", "message": "Account is pending deletion", "link": "https://x"}],
            AtlassianApiError,
            "lifecycle.invalid",
            "Account is pending deletion",
        ),
        (
            400,
            {"errorMessages": ["Cannot add user. User is already a member of 'x'"], "errors": {}},
            AtlassianApiError,
            None,
            "already a member",
        ),
        (
            404,
            {"errorMessage": "Request does not exist", "i18nErrorMessage": {"i18nKey": "sd.request.missing"}},
            AtlassianNotFoundError,
            "sd.request.missing",
            "Request does not exist",
        ),
    ],
)
def test_client_errors_are_not_retried_and_carry_the_atlassian_code(
    status: int, body: object, cls: type[AtlassianApiError], code: str | None, message_part: str
) -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(status, body), OK)

    with pytest.raises(AtlassianApiError) as info:
        policy(sleeps).execute(send, method="POST", path=ADMIN_PATH, idempotent=True)

    assert type(info.value) is cls
    assert len(calls) == 1
    assert sleeps == []
    assert (info.value.status, info.value.code) == (status, code)
    assert message_part in info.value.message
    assert info.value.method == "POST"
    assert info.value.path == ADMIN_PATH


def test_jira_field_errors_are_part_of_the_message() -> None:
    code, message = parse_error_body({"errorMessages": [], "errors": {"accountId": "is required"}})
    assert (code, message) == (None, "accountId: is required")


def test_gateway_and_non_json_bodies() -> None:
    assert parse_error_body({"code": 401, "message": "Unauthorized"}) == (None, "Unauthorized")
    err = error_from_response(response(502, text="<html>Bad gateway</html>"), "get", "/admin/v1/orgs/o")
    assert (err.status, err.code, err.message, err.method) == (502, None, "<html>Bad gateway</html>", "GET")


@pytest.mark.parametrize(
    ("path", "where"),
    [(ADMIN_PATH, "admin.atlassian.com → Settings → API keys"), (SITE_PATH, "id.atlassian.com")],
)
def test_401_fails_fast_with_a_clear_message_without_the_token(path: str, where: str) -> None:
    sleeps: list[float] = []
    token = "ATATT-super-secret-token-value"
    denied = response(401, {"code": 401, "message": "Unauthorized; scope does not match"})
    denied.request = requests.Request("GET", "https://x" + path, headers={"Authorization": token}).prepare()
    send, calls = scripted(denied, OK)

    with pytest.raises(AtlassianAuthError) as info:
        policy(sleeps).execute(send, method="GET", path=path, idempotent=True, conn_id="atlassian_admin")

    text = str(info.value)
    assert len(calls) == 1
    assert sleeps == []
    assert "connection 'atlassian_admin'" in text
    assert "expired" in text
    assert "one year" in text
    assert where in text
    assert token not in text
    # Airflow must not retry the task either: the credential will not fix itself.
    assert isinstance(info.value, AirflowFailException)
    assert isinstance(info.value, AirflowException)


# -- the cap ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "600"}, {"X-RateLimit-Reset": "2026-11-26T11:00Z"}],
)
def test_wait_above_the_cap_raises_without_sleeping(headers: dict[str, str]) -> None:
    sleeps: list[float] = []
    send, calls = scripted(response(429, headers=headers), OK)

    with pytest.raises(AtlassianRetryExhausted) as info:
        policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert len(calls) == 1
    assert sleeps == []
    assert info.value.status == 429
    assert "300s" in str(info.value)
    assert "Airflow task retry" in str(info.value)


def test_jittered_wait_is_clamped_to_the_cap() -> None:
    sleeps: list[float] = []
    send, _ = scripted(response(429, headers={"Retry-After": "290"}), OK)
    policy(sleeps, "high").execute(send, method="GET", path=ADMIN_PATH, idempotent=True)
    assert sleeps == [300.0]


# -- rate-limit tracking and logs ------------------------------------------------------------------


def test_each_retry_logs_one_line_with_method_path_status_attempt_wait_and_remaining(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleeps: list[float] = []
    send, _ = scripted(response(429, headers={"Retry-After": "3", "X-RateLimit-Remaining": "0"}), OK)

    with caplog.at_level(logging.WARNING, logger="atlassian_cleanup.client.retry"):
        policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    line = lines[0]
    for part in ("GET", ADMIN_PATH, "429", "attempt 1/5", "3.0s", "X-RateLimit-Remaining=0"):
        assert part in line


def test_rate_limit_headers_are_tracked_and_near_limit_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    retry = policy(sleeps)
    near = {"X-RateLimit-Remaining": "12", "X-RateLimit-Limit": "100", "X-RateLimit-NearLimit": "true"}
    with caplog.at_level(logging.WARNING, logger="atlassian_cleanup.client.retry"):
        for remaining in ("12", "11", "10"):
            send, _ = scripted(response(200, {}, {**near, "X-RateLimit-Remaining": remaining}))
            retry.execute(send, method="GET", path=ADMIN_PATH, idempotent=True)

    assert retry.rate_limit.remaining == 10
    assert retry.rate_limit.limit == 100
    assert retry.rate_limit.near_limit is True
    assert sum("nearly used up" in r.getMessage() for r in caplog.records) == 1

    send, _ = scripted(response(200, {}, {"X-RateLimit-NearLimit": "false", "X-RateLimit-Remaining": "90"}))
    retry.execute(send, method="GET", path=ADMIN_PATH, idempotent=True)
    assert (retry.rate_limit.near_limit, retry.rate_limit.remaining) == (False, 90)


# -- header parsing and misc ----------------------------------------------------------------------


def test_header_parsers() -> None:
    assert parse_retry_after("12", NOW) == 12.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after(format_datetime(NOW - timedelta(seconds=5), usegmt=True), NOW) == 0.0
    assert parse_rate_limit_reset("2026-11-26T10:00:30Z", NOW) == 30.0
    assert parse_rate_limit_reset("2026-11-26T09:59Z", NOW) == -60.0
    assert parse_rate_limit_reset("garbage", NOW) is None
    assert parse_rate_limit_reset(str(NOW.timestamp() + 45), NOW) == pytest.approx(45.0)


def test_past_reset_falls_back_to_exponential_backoff() -> None:
    sleeps: list[float] = []
    send, _ = scripted(response(429, headers={"X-RateLimit-Reset": "2026-11-26T09:59Z"}), OK)
    policy(sleeps).execute(send, method="GET", path=ADMIN_PATH, idempotent=True)
    assert sleeps == [5.0]


def test_policy_validates_its_settings_and_has_a_no_sleep_variant() -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=(0.7, 1.3))
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    quick = RetryPolicy.without_sleep(max_attempts=2)
    send, calls = scripted(response(503), OK)
    assert quick.execute(send, method="GET", path=ADMIN_PATH, idempotent=True) is OK
    assert (len(calls), quick.max_attempts) == (2, 2)


def test_errors_survive_pickling() -> None:
    err = AtlassianNotFoundError("User not found", status=404, code="ADMIN-404-8", method="GET", path="/x")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is AtlassianNotFoundError
    assert (clone.status, clone.code, clone.message, str(clone)) == (
        404,
        "ADMIN-404-8",
        err.message,
        str(err),
    )
