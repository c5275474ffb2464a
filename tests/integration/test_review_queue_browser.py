"""The review queue in a real browser, through a real Airflow api-server.

A live run of the daily DAG with ``review: true`` fills the queue; an admin logs in through
Airflow's login form, keeps one person and approves two on the audit page's review view; a viewer
sees the queue without buttons and is refused (403) when writing anyway; the next live run
suspends exactly the two approved people and protects the kept one.
"""

# The browser fixture is imported by name, and pytest passes it as an argument of the same name.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import AS_OF
from tests.integration.test_audit_page_browser import _wait, browser  # noqa: F401 - fixture
from tests.integration.test_live_lifecycle import LiveOrg, _states, _successful
from tools.airflow_env import airflow_env
from tools.airflow_stack import AirflowStack, simple_auth_env

pytestmark = pytest.mark.integration

ADMIN = ("reviewer", "review-pass-1")  # SimpleAuthManager role "user": may edit DAGs
VIEWER = ("auditor", "audit-pass-1")  # role "viewer": read-only


@pytest.fixture
def queued_org(airflow_db, smtp_sink, tmp_path, monkeypatch) -> Iterator[LiveOrg]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    monkeypatch.setenv("ATLASSIAN_CLEANUP_AUDIT_DIR", str(tmp_path / "audit"))
    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        org = LiveOrg(
            sandbox,
            tmp_path,
            monkeypatch,
            smtp_sink,
            {"conn_type": "sqlite", "host": str(tmp_path / "state.db")},
        )
        org.write_policy(warning={"lead_days": []}, review=True)
        run = org.run(0)
        assert str(run.state) == "success", _states(run)
        assert _successful(org.write_calls()) == []
        yield org


@pytest.fixture
def api_server(queued_org: LiveOrg, tmp_path: Path) -> Iterator[AirflowStack]:
    home = tmp_path / "api-home"
    env = {
        **airflow_env(home, audit_dir=tmp_path / "audit", xcom_dir=tmp_path / "xcom"),
        **simple_auth_env(home, {ADMIN[0]: (ADMIN[1], "user"), VIEWER[0]: (VIEWER[1], "viewer")}),
        # The api-server reads the same policy and state store connection as the DAGs.
        "ATLASSIAN_CLEANUP_POLICY": str(queued_org.policy_path),
        "AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE": json.dumps(
            {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
        ),
    }
    stack = AirflowStack(env, home, components=("api-server",))
    stack.cli("db", "migrate")
    # The restore form creates a run of the restore DAG, which must be known to the metadata DB.
    stack.cli("dags", "reserialize")
    with stack:
        yield stack


def _log_in(browser, base: str, who: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(base + "/auth/login/")
    _wait(lambda: browser.find_elements(By.NAME, "username"), what="the login form").pop().send_keys(who[0])
    browser.find_element(By.NAME, "password").send_keys(who[1])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(lambda: browser.get_cookie("_token"), what="the session cookie")


def _decide(browser, accounts: list[str], button: str, reason: str, keep_until: str = "") -> None:
    from selenium.webdriver.common.by import By

    for account in accounts:
        browser.find_element(By.CSS_SELECTOR, f'input[name="account_id"][value="{account}"]').click()
    browser.find_element(By.NAME, "reason").send_keys(reason)
    if keep_until:
        # A date input's typed format depends on the browser's locale; set the ISO value directly.
        field = browser.find_element(By.NAME, "keep_until")
        browser.execute_script("arguments[0].value = arguments[1]", field, keep_until)
    browser.find_element(By.ID, button).click()
    _wait(lambda: browser.find_elements(By.ID, "done"), what=f"the {button} confirmation")


def test_admin_keeps_one_approves_two_and_the_next_run_follows(queued_org, api_server, browser):
    from selenium.webdriver.common.by import By

    from atlassian_cleanup.review.store import ReviewStore

    org, base = queued_org, api_server.base_url
    state_url = f"sqlite:///{org.tmp_path / 'state.db'}"
    with ReviewStore(state_url) as store:
        waiting = sorted(entry.account_id for entry in store.pending())
    assert len(waiting) >= 3
    kept, approved = waiting[0], waiting[1:3]

    # Not logged in: 401, nothing to see.
    assert requests.get(f"{base}/atlassian-audit/review", timeout=30).status_code == 401

    # The admin decides in the browser.
    _log_in(browser, base, ADMIN)
    browser.get(base + "/atlassian-audit/")
    browser.find_element(By.ID, "review-link").click()
    rows = _wait(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#pending tr[data-account]"), what="the queue"
    )
    assert sorted(row.get_attribute("data-account") for row in rows) == waiting
    keep_until = (AS_OF + timedelta(days=10)).isoformat()
    _decide(browser, [kept], "keep", "back from leave in January", keep_until)
    _decide(browser, approved, "approve", "left the company")
    recent = browser.find_element(By.ID, "recent").text
    assert ADMIN[0] in recent
    assert "back from leave in January" in recent
    with ReviewStore(state_url) as store:
        decided = {d.account_id: (d.decision, d.decided_by) for d in store.recent_decisions()}
    assert decided == {kept: ("keep", ADMIN[0]), **{a: ("approve", ADMIN[0]) for a in approved}}

    # Restore on demand from the same page: a run of the restore DAG with the checked entries.
    target = org.users()[kept]["email"]
    browser.find_element(By.NAME, "accounts").send_keys(target)
    browser.find_element(By.NAME, "restore_reason").send_keys("asked at the service desk")
    browser.find_element(By.ID, "restore-submit").click()
    done = _wait(lambda: browser.find_elements(By.ID, "restore-done"), what="the restore confirmation")[0]
    run_id = done.find_element(By.TAG_NAME, "code").text
    token = {"_token": browser.get_cookie("_token")["value"]}
    dag_run = requests.get(
        f"{base}/api/v2/dags/atlassian_access_restoration/dagRuns/{run_id}", cookies=token, timeout=30
    ).json()
    assert dag_run["conf"] == {"accounts": [target], "restore_reason": "asked at the service desk"}
    assert dag_run["triggering_user_name"] == ADMIN[0]

    # A viewer sees the queue read-only, and a crafted write with a valid token is still refused.
    _log_in(browser, base, VIEWER)
    browser.get(base + "/atlassian-audit/review")
    _wait(lambda: browser.find_elements(By.ID, "read-only"), what="the read-only notice")
    assert browser.find_elements(By.ID, "approve") == []
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    forged = requests.post(
        f"{base}/atlassian-audit/review/decide",
        data={
            "csrf_token": cookies["acu_csrf"],
            "account_id": waiting[3:4],
            "decision": "approve",
            "reason": "x",
        },
        cookies=cookies,
        headers={"Origin": base},
        timeout=30,
    )
    assert forged.status_code == 403
    with ReviewStore(state_url) as store:
        assert len(store.recent_decisions()) == 3

    # The next live run follows the decisions.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    suspended = sorted(
        c["account_id"] for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")
    )
    assert suspended == sorted(approved)
    assert org.audit_row(kept)["rule"] == "kept_in_review"
