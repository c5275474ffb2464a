# ruff: noqa: E501
"""Degenerate Atlassian answers and faults, one row each, through the real hooks, extraction and engine.

Each case scripts a loopback server (:mod:`tests.fake_atlassian`) and runs the product's own code
path against it: the directory extraction (``ExtractUsersOperator.extract``), a hook listing, or the
enforcement engine. Every case asserts

* bounded time: ``pytest.mark.timeout`` fails a case that hangs (a limit, not a speed measurement);
* zero writes where the read was bad (the server records every call);
* a clear error naming the endpoint (``METHOD /path``), or the safe outcome stated in the table.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from atlassian_cleanup.client.retry import (
    AtlassianApiError,
    AtlassianAuthError,
    AtlassianPaginationError,
    AtlassianPermissionError,
    AtlassianRetryExhausted,
)
from tests.fake_atlassian import (
    ADMIN_KEY,
    GROUP_SEARCH,
    NOT_FOUND,
    SEARCH,
    SITE_EMAIL,
    SITE_TOKEN,
    Directory,
    FakeAtlassian,
    Reply,
    Request,
    page,
    rows,
    user,
)

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
JIRA_USERS = "/rest/api/3/users/search"
GROUP_BULK = "/rest/api/3/group/bulk"
JQL = "/rest/api/3/search/jql"
JSM_DESKS = "/rest/servicedeskapi/servicedesk"
HTML = "text/html; charset=utf-8"


def by_cursor(*replies: Reply | dict[str, Any], path: str = SEARCH) -> Callable[[Request], Reply]:
    """Answer ``path`` with the i-th reply for cursor ``c<i>`` (no cursor = the first)."""

    def script(request: Request) -> Reply:
        if request.path != path:
            return NOT_FOUND
        index = int(str(request.cursor)[1:]) if request.cursor else 0
        reply = replies[min(index, len(replies) - 1)]
        return reply if isinstance(reply, Reply) else Reply(body=reply)

    return script


def always(reply: Reply, path: str = SEARCH) -> Callable[[Request], Reply]:
    return lambda request: reply if request.path == path else NOT_FOUND


def by_attempt(*replies: Reply, path: str = SEARCH) -> Callable[[Request], Reply]:
    """The n-th request to ``path`` gets the n-th reply (the last one repeats)."""
    return lambda request: replies[min(request.seen, len(replies) - 1)] if request.path == path else NOT_FOUND


def endless(make: Callable[[int], Reply], path: str = SEARCH) -> Callable[[Request], Reply]:
    return lambda request: make(request.seen) if request.path == path else NOT_FOUND


def applied_then(
    status: int, body: Any = None, delay: float = 0.0
) -> Callable[[Directory, str, Request], Reply]:
    """The suspend takes effect, then the answer is an error (or comes too late)."""

    def answer(directory: Directory, account_id: str, _request: Request) -> Reply:
        directory.status[account_id] = "suspended"
        return Reply(status, body, delay=delay)

    return answer


# -- the table ------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    script: Callable[[Request], Reply]
    run: str = "extract"
    error: type[BaseException] | None = None
    says: tuple[str, ...] = ()
    check: Callable[[Any, FakeAtlassian], None] | None = None
    writes: int = 0
    conn: dict[str, Any] = field(default_factory=dict)


def users_read(count: int) -> Callable[[Any, FakeAtlassian], None]:
    def check(result: Any, _fake: FakeAtlassian) -> None:
        table, stats = result
        assert len(table) == count
        assert stats["directory_users"] == count

    return check


def calls_to(path: str, at_most: int) -> Callable[[Any, FakeAtlassian], None]:
    def check(_result: Any, fake: FakeAtlassian) -> None:
        assert 1 <= len([c for c in fake.calls if c.path == path]) <= at_most

    return check


def outcomes(expected: dict[str, str], detail: str = "") -> Callable[[Any, FakeAtlassian], None]:
    def check(result: Any, _fake: FakeAtlassian) -> None:
        assert {o.account_id: o.result for o in result} == expected
        for outcome in result:
            assert detail in outcome.detail

    return check


def no_secret_in(text: str) -> None:
    from atlassian_cleanup.client.retry import credential_forms

    for form in credential_forms(ADMIN_KEY) + credential_forms(SITE_TOKEN, SITE_EMAIL):
        assert form not in text


def echo_headers(status: int) -> Callable[[Request], Reply]:
    """A proxy error page that echoes the request headers (Authorization included)."""

    def script(request: Request) -> Reply:
        echoed = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return Reply(status, {"message": f"upstream refused the request with headers {echoed}"})

    return script


U1, U2 = user("u1"), user("u2")
RETRY_ONCE = {"retry": {"base_delay": 0.01, "max_backoff": 0.05, "max_attempts": 3}}

CASES = [
    # -- garbage instead of JSON --------------------------------------------------------------------
    Case("html_page_with_200", always(Reply(200, "<html><body>Atlassian</body></html>", HTML)),
         error=AtlassianApiError, says=(f"POST {SEARCH}", "expected JSON but got text/html")),
    Case("html_page_with_502", always(Reply(502, "<html><h1>502 Bad Gateway</h1></html>", HTML)),
         error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "3 attempts", "502")),
    Case("truncated_json", always(Reply(200, '{"data": [{"accountId": "u1", "ema', "application/json")),
         error=AtlassianApiError, says=(f"POST {SEARCH}", "expected JSON")),
    Case("json_sent_as_text_plain", always(Reply(200, json.dumps(page([U1])), "text/plain")),
         check=users_read(1)),
    Case("xml_sent_as_json", always(Reply(200, "<users><user/></users>", "application/json")),
         error=AtlassianApiError, says=(f"POST {SEARCH}", "expected JSON")),
    Case("empty_body_with_200", always(Reply(200, b"")),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "expected a JSON object page")),
    Case("page_is_a_bare_array", always(Reply(200, [U1, U2])),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "expected a JSON object page")),
    # -- missing, null and wrongly typed fields -------------------------------------------------------
    Case("data_missing_on_the_only_page", always(Reply(body={"links": {}})), check=users_read(0)),
    Case("data_null_with_a_cursor_forever", endless(lambda n: Reply(body=page(None, f"c{n + 1}"))),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "empty pages in a row")),
    Case("data_is_an_object", always(Reply(body={"data": {"accountId": "u1"}, "links": {}})),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "expected a list under 'data'")),
    Case("user_without_account_id", always(Reply(body=page([U1, {"name": "ghost"}]))),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "user 2 of a page has no accountId")),
    Case("user_with_null_account_id", always(Reply(body=page([{**U1, "accountId": None}]))),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "no accountId")),
    Case("null_optional_fields", always(Reply(body=page([{
        "accountId": "u1", "email": None, "name": None, "status": None, "productAccess": None,
        "groups": None, "platformRoles": None}]))), check=users_read(1)),
    # -- paging that would never end ------------------------------------------------------------------
    Case("same_user_on_two_pages", by_cursor(page([U1], "c1"), page([U1, U2])),
         error=AirflowException, says=("listed 1 account(s) on more than one page", "u1")),
    Case("cursor_repeats_itself", by_cursor(page([U1], "c1"), page([U2], "c1")),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "already returned")),
    Case("cursor_loop_a_b_a", by_cursor(page([U1], "c1"), page([U2], "c2"), page([user("u3")], "c1")),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "already returned")),
    Case("empty_pages_with_new_cursors", endless(lambda n: Reply(body=page([], f"c{n + 1}"))),
         error=AtlassianPaginationError, says=(f"POST {SEARCH}", "4 empty pages in a row")),
    Case("shrinking_directory_28_of_300", always(Reply(body=page([user(f"u{i}") for i in range(28)]))),
         run="extract_then_gate", check=lambda problems, _f: problems and "300" in problems[0]),
    Case("jira_ignores_start_at", run="jira_users", script=always(Reply(body=[{"accountId": "j1"}]), JIRA_USERS),
         error=AtlassianPaginationError, says=(f"GET {JIRA_USERS}", "ignored startAt")),
    Case("jira_groups_never_last", run="jira_groups", script=endless(
        lambda n: Reply(body={"values": [{"name": f"g{n}"}], "isLast": False, "total": 2}), GROUP_BULK),
         error=AtlassianPaginationError, says=(f"GET {GROUP_BULK}", "reported a total of 2")),
    Case("jql_token_loop", run="jql", script=endless(
        lambda n: Reply(body={"issues": [{"key": f"I-{n}"}], "nextPageToken": f"t{n % 2}", "isLast": False}), JQL),
         error=AtlassianPaginationError, says=(f"POST {JQL}", "already returned")),
    Case("jsm_ignores_start", run="jsm", script=always(
        Reply(body={"values": [{"id": "1"}], "isLastPage": False, "size": 1}), JSM_DESKS),
         error=AtlassianPaginationError, says=(f"GET {JSM_DESKS}", "ignored start")),
    # -- credentials and permissions mid-run ----------------------------------------------------------
    Case("401_on_page_two", by_cursor(page([U1], "c1"), Reply(401, {"code": 401, "message": "Unauthorized"})),
         error=AtlassianAuthError, says=(f"POST {SEARCH}", "401", "connection 'atlassian_admin'"),
         check=calls_to(SEARCH, 2)),
    Case("403_on_page_two", by_cursor(page([U1], "c1"), Reply(403, {"errors": [{"code": "ADMIN-403",
         "title": "Forbidden"}]})), error=AtlassianPermissionError, says=(f"POST {SEARCH}", "403")),
    Case("401_body_echoes_the_bearer_key", echo_headers(401), error=AtlassianAuthError,
         says=(f"POST {SEARCH}", "401", "***")),
    Case("500_body_echoes_the_basic_credential", run="jira_users", script=lambda r: echo_headers(500)(r)
         if r.path == JIRA_USERS else NOT_FOUND, error=AtlassianRetryExhausted, says=(f"GET {JIRA_USERS}", "500")),
    # -- waits ----------------------------------------------------------------------------------------
    Case("absurd_retry_after", always(Reply(429, {"message": "slow down"}, headers={"Retry-After": "999999999"})),
         error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "more than the 300s"), check=calls_to(SEARCH, 1)),
    Case("retry_after_date_in_a_year", always(Reply(429, {"message": "slow down"},
         headers={"Retry-After": "Fri, 26 Nov 2027 10:00:00 GMT"})),
         error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "more than the 300s"), check=calls_to(SEARCH, 1)),
    Case("unparseable_retry_after", always(Reply(429, {"message": "slow down"}, headers={"Retry-After": "soon"})),
         error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "3 attempts", "429"), check=calls_to(SEARCH, 3)),
    Case("503_then_fine", by_attempt(Reply(503, {"message": "busy"}, headers={"Retry-After": "0"}),
         Reply(body=page([U1]))), check=users_read(1)),
    # -- transport faults -----------------------------------------------------------------------------
    Case("response_slower_than_the_timeout", always(Reply(body=page([U1]), delay=1.5)),
         conn={"timeout": [1.0, 0.5]}, error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "ReadTimeout")),
    Case("connection_dropped_mid_body", always(Reply(body=page([U1, U2]), cut_after=25)),
         error=AtlassianRetryExhausted, says=(f"POST {SEARCH}", "3 attempts")),
    # Extraction's first call is the group search (access comes from groups), so that is the one named.
    Case("nothing_listening", always(Reply()), run="extract_closed_port",
         error=AtlassianRetryExhausted, says=(f"POST {GROUP_SEARCH}", "ConnectionError")),
    # -- the enforcement engine: bad re-reads write nothing; ambiguous writes are re-checked ----------
    Case("reread_is_an_html_page", Directory(search=lambda r: Reply(200, "<html>maintenance</html>", HTML)),
         run="apply", error=AtlassianApiError, says=(f"POST {SEARCH}", "expected JSON")),
    Case("reread_is_forbidden", Directory(search=lambda r: Reply(403, {"errors": [{"title": "Forbidden"}]})),
         run="apply", error=AtlassianPermissionError, says=(f"POST {SEARCH}", "403")),
    Case("reread_no_longer_lists_the_user", Directory(search=lambda r: Reply(body=page([]))),
         run="apply", check=outcomes({"u1": "skipped_changed", "u2": "skipped_changed"})),
    Case("500_after_the_write_took_effect", Directory(suspend=applied_then(500, {"message": "oops"})),
         run="apply", writes=2, check=outcomes({"u1": "done", "u2": "done"})),
    Case("write_answer_slower_than_the_timeout", Directory(suspend=applied_then(204, delay=1.5)),
         run="apply", writes=2, conn={"timeout": [1.0, 0.5]}, check=outcomes({"u1": "done", "u2": "done"})),
    Case("401_on_the_first_write", Directory(suspend=lambda d, a, r: Reply(401, {"message": "expired"})),
         run="apply", writes=-1, error=AtlassianAuthError, says=("/suspend", "401")),
]  # fmt: skip


def _run(case: Case, fake: FakeAtlassian, tmp_path: Path) -> Any:
    from atlassian_cleanup.actions.enforcement import Enforcer
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.client.hooks import AtlassianAdminHook, AtlassianSiteHook
    from atlassian_cleanup.operators.cleanup import ExtractUsersOperator

    if case.run.startswith("extract"):
        operator = ExtractUsersOperator(task_id="extract_users", policy_path="unused", site_conn_id=None)
        result = operator.extract()
        if case.run == "extract_then_gate":
            from atlassian_cleanup.decisions.gates import sanity_problems
            from atlassian_cleanup.decisions.policy import Policy

            _table, stats = result
            return sanity_problems(
                user_count=stats["directory_users"],
                previous_user_count=300,
                missing_activity_share=0.0,
                policy=Policy(),
            )
        return result
    if case.run == "apply":
        with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
            engine = Enforcer(AtlassianAdminHook, store, run_id="hostile", at=AT, concurrency=2)
            return engine.apply(rows("u1", "u2"))
    with AtlassianSiteHook() as site:
        listing = {
            "jira_users": site.iter_users,
            "jira_groups": site.iter_groups,
            "jql": lambda: site.iter_jql("project = ITH"),
            "jsm": site.iter_service_desks,
        }[case.run]
        return list(listing())


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_answer(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeAtlassian(case.script) as fake:
        env = fake.connections(**case.conn)
        if case.run == "extract_closed_port":
            admin = json.loads(env["AIRFLOW_CONN_ATLASSIAN_ADMIN"])
            admin["host"] = _closed_port()
            env["AIRFLOW_CONN_ATLASSIAN_ADMIN"] = json.dumps(admin)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

        if case.error is not None:
            with pytest.raises(case.error) as raised:
                _run(case, fake, tmp_path)
            text = str(raised.value)
            for fragment in case.says:
                assert fragment in text, text
            no_secret_in(text)
            result = None
        else:
            result = _run(case, fake, tmp_path)
        if case.check is not None:
            assert case.check(result, fake) is not False
        writes = fake.writes()
        if case.writes >= 0:
            assert len(writes) == case.writes, [(w.method, w.path) for w in writes]
        else:
            assert len(writes) <= 2  # the credential failed: the batch stops at the first answers


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
