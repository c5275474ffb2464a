"""The audit page's review queue and restore form: who may write, forged writes refused, nothing
half-stored, and what a good write does."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import atlassian_cleanup.reports.review_page as review_page
from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.reports.audit_page import authorize, create_app
from atlassian_cleanup.reports.page_security import CSRF_COOKIE, Permissions, permissions
from atlassian_cleanup.review.store import ReviewStore
from tests.unit.test_review_store import _entry

HOST = "testserver"
SAME_ORIGIN = {"origin": f"http://{HOST}"}


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).close()
    with ReviewStore(url) as store:
        store.queue_pending(
            [_entry("ann"), _entry("bob"), _entry("cid", "contractors")], run_id="r1", as_of=date(2026, 12, 1)
        )
    return url


def _client(tmp_path: Path, state_url: str, perms: Permissions) -> TestClient:
    app = create_app(tmp_path / "audit", state_url=state_url)
    app.dependency_overrides[authorize] = lambda: None
    app.dependency_overrides[permissions] = lambda: perms
    return TestClient(app)


ADMIN = Permissions(user="alice", decide=True, restore=True)
VIEWER = Permissions(user="victor")


def _token(client: TestClient) -> str:
    page = client.get("/review")
    assert page.status_code == 200
    return page.cookies.get(CSRF_COOKIE) or client.cookies[CSRF_COOKIE]


def _decisions(state_url: str) -> list[tuple[str, str, str]]:
    with ReviewStore(state_url) as store:
        return sorted((d.account_id, d.decision, d.decided_by) for d in store.recent_decisions())


def test_the_queue_shows_the_evidence_and_filters(tmp_path, state_url):
    client = _client(tmp_path, state_url, ADMIN)
    page = client.get("/review").text
    for text in (
        "ann@acme.example",
        "inactive for 120 days",
        "jira (2026-08-01)",
        "2026-12-01",
        "contractors",
    ):
        assert text in page
    assert 'value="approve"' in page
    filtered = client.get("/review", params={"rule": "contractors"}).text
    assert "cid@acme.example" in filtered
    assert "ann@acme.example" not in filtered
    assert "bob@acme.example" in client.get("/review", params={"q": "BOB"}).text


def test_a_viewer_sees_the_queue_read_only_and_cannot_write(tmp_path, state_url):
    client = _client(tmp_path, state_url, VIEWER)
    page = client.get("/review").text
    assert "ann@acme.example" in page
    assert 'value="approve"' not in page
    assert 'name="accounts"' not in page
    token = client.cookies[CSRF_COOKIE]
    form = {"csrf_token": token, "account_id": ["ann"], "decision": "approve", "reason": "gone"}
    assert client.post("/review/decide", data=form, headers=SAME_ORIGIN).status_code == 403
    restore = {"csrf_token": token, "accounts": "ann@acme.example", "restore_reason": "back"}
    assert client.post("/restore", data=restore, headers=SAME_ORIGIN).status_code == 403
    assert _decisions(state_url) == []


def test_an_admin_approves_two_and_keeps_one(tmp_path, state_url):
    client = _client(tmp_path, state_url, ADMIN)
    token = _token(client)
    approved = client.post(
        "/review/decide",
        data={"csrf_token": token, "account_id": ["ann", "bob"], "decision": "approve", "reason": "left"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    assert approved.status_code == 303
    kept = client.post(
        "/review/decide",
        data={
            "csrf_token": token,
            "account_id": ["cid"],
            "decision": "keep",
            "reason": "renewed",
            "keep_until": "2027-01-31",
        },
        headers=SAME_ORIGIN,
    )
    assert kept.status_code == 200
    assert "Stored: keep: 1 people" in kept.text
    assert _decisions(state_url) == [
        ("ann", "approve", "alice"),
        ("bob", "approve", "alice"),
        ("cid", "keep", "alice"),
    ]
    with ReviewStore(state_url) as store:
        assert store.pending() == []


@pytest.mark.parametrize(
    ("headers", "token", "why"),
    [
        (SAME_ORIGIN, None, "security token"),
        (SAME_ORIGIN, "forged", "security token"),
        ({"origin": "https://evil.example"}, "cookie", "another site"),
        ({"referer": "https://evil.example/page"}, "cookie", "another site"),
        ({}, "cookie", "where it comes from"),
        ({**SAME_ORIGIN, "sec-fetch-site": "cross-site"}, "cookie", "cross-site"),
    ],
)
def test_a_forged_write_is_refused_and_stores_nothing(tmp_path, state_url, headers, token, why):
    client = _client(tmp_path, state_url, ADMIN)
    cookie = _token(client)
    form = {"account_id": ["ann"], "decision": "approve", "reason": "left"}
    if token:
        form["csrf_token"] = cookie if token == "cookie" else token
    refused = client.post("/review/decide", data=form, headers=headers)
    assert refused.status_code == 403
    assert why in refused.json()["detail"]
    assert _decisions(state_url) == []


def test_a_get_never_writes(tmp_path, state_url):
    client = _client(tmp_path, state_url, ADMIN)
    assert client.get("/review/decide").status_code == 405
    assert client.get("/review", params={"account_id": "ann", "decision": "approve"}).status_code == 200
    assert _decisions(state_url) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"account_id": ["ann"], "decision": "keep", "reason": "leave"}, "needs an expiry date"),
        (
            {"account_id": ["ann"], "decision": "keep", "reason": "leave", "keep_until": "31/01/2027"},
            "not a date",
        ),
        ({"account_id": ["ann", "ghost"], "decision": "approve", "reason": "left"}, "ghost"),
        ({"decision": "approve", "reason": "left"}, "select at least one person"),
        ({"account_id": ["ann"], "decision": "approve", "reason": "  "}, "give a reason"),
    ],
)
def test_a_bad_decision_is_shown_and_nothing_is_stored(tmp_path, state_url, form, message):
    client = _client(tmp_path, state_url, ADMIN)
    answer = client.post("/review/decide", data={**form, "csrf_token": _token(client)}, headers=SAME_ORIGIN)
    assert answer.status_code == 400
    assert message in answer.text
    assert _decisions(state_url) == []


def test_the_restore_form_triggers_the_restore_dag_with_checked_entries(tmp_path, state_url, monkeypatch):
    runs: list[tuple[dict, str]] = []
    monkeypatch.setattr(review_page, "max_restores", lambda: 5)
    monkeypatch.setattr(
        review_page, "trigger_restore_run", lambda conf, user: runs.append((conf, user)) or "manual__x"
    )
    client = _client(tmp_path, state_url, ADMIN)
    token = _token(client)
    bad = client.post(
        "/restore",
        data={
            "csrf_token": token,
            "accounts": "ann@acme.example\nbob@",
            "restore_reason": "ticket 42",
        },
        headers=SAME_ORIGIN,
    )
    assert bad.status_code == 400
    assert "Nothing was triggered" in bad.text
    assert "'bob@' is not an e-mail address" in bad.text.replace("&#39;", "'")
    too_many = client.post(
        "/restore",
        data={
            "csrf_token": token,
            "accounts": "\n".join(f"u{i}@acme.example" for i in range(6)),
            "restore_reason": "x",
        },
        headers=SAME_ORIGIN,
    )
    assert too_many.status_code == 400
    assert runs == []
    good = client.post(
        "/restore",
        data={
            "csrf_token": token,
            "accounts": "ann@acme.example\n712020:abc",
            "restore_reason": " ticket 42 ",
        },
        headers=SAME_ORIGIN,
    )
    assert good.status_code == 200
    assert runs == [
        ({"accounts": ["ann@acme.example", "712020:abc"], "restore_reason": "ticket 42"}, "alice")
    ]
    assert "manual__x" in good.text
