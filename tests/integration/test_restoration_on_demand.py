"""Restore on demand through the real restore DAG (``dag.test()`` with a run conf) against the sandbox.

An admin names accounts (e-mail or account id) and a reason in the trigger form. The accounts are
actioned first through the real enforcement engine; the sandbox's call log and the state store's
journal show what the run wrote.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_enforcement import pick
from tests.integration.test_restoration_dag import (  # noqa: F401 (the restore tests' fixtures)
    RESTORE_DAY,
    RestoreOrg,
    _states,
    restore_org,
    restore_server,
)
from tools.airflow_env import REPO

pytestmark = pytest.mark.integration

REASON = "Contract renewed (ticket OPS-7)"


def trigger(org: RestoreOrg, conf: dict[str, Any], at=RESTORE_DAY) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    org.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(org.policy_path))
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
    assert bag.import_errors == {}
    return bag.dags["atlassian_access_restoration"].test(logical_date=at, run_conf=conf)


def audit_rows() -> list[dict[str, str]]:
    folder = Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]) / "restore"
    latest = max(folder.glob("*.csv"), key=lambda p: p.stat().st_mtime)
    with latest.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def restores_in_journal(org: RestoreOrg, account_id: str) -> list[Any]:
    with org.store() as store:
        return [e for e in store.journal(account_id=account_id) if e.action == "restore"]


def test_an_admin_restores_an_account_by_email_once(org: RestoreOrg) -> None:
    # An unmanaged contractor: no self-service rule allows its domain, the admin does.
    contractor = pick(org.sandbox, "unmanaged_contractor", 1)[0]
    bystander = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([contractor, bystander], "suspend")
    jsm_key = org.ask(bystander)  # an open JSM request: not read by an on-demand run
    email = org.users()[contractor]["email"]
    seq = org.last_seq()

    run = trigger(org, {"mode": "live", "accounts": email.upper(), "restore_reason": REASON})

    assert str(run.state) == "success", _states(run)
    users = org.users()
    assert users[contractor]["status"] == "active"
    assert users[bystander]["status"] == "suspended"
    assert [c["account_id"] for c in org.restore_writes(seq)] == [contractor]
    assert org.comment_calls(seq) == Counter()  # no JSM request to answer, the open one untouched
    assert org.request_status(jsm_key) != "Resolved"
    with org.store() as store:
        assert store.history([contractor])[contractor].stage == "restored"
    (restore,) = restores_in_journal(org, contractor)
    assert restore.outcome == "succeeded"
    (row,) = audit_rows()
    assert (row["account_id"], row["email"]) == (contractor, email)
    assert row["proposed_action"] == "restore"
    assert row["rule"] == "on_demand:dag_test"  # the run's triggering user (dag.test names itself so)
    assert row["reason"].startswith(f"Restore on demand by dag_test: {REASON}.")
    assert "restored" in row["outcome"]

    # Two more runs naming the same account (by id now): nothing is restored twice.
    for at in (RESTORE_DAY, RESTORE_DAY + timedelta(minutes=10)):
        seq = org.last_seq()
        again = trigger(org, {"mode": "live", "accounts": [contractor], "restore_reason": REASON}, at)
        assert str(again.state) == "success", _states(again)
        assert org.restore_writes(seq) == []
        assert len(restores_in_journal(org, contractor)) == 1
    assert audit_rows()[0]["proposed_action"] == "already_restored"


def test_a_dry_run_on_demand_writes_nothing(org: RestoreOrg) -> None:
    suspended = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([suspended], "suspend")
    seq = org.last_seq()

    run = trigger(org, {"mode": "dry_run", "accounts": suspended, "restore_reason": REASON})

    assert str(run.state) == "success", _states(run)
    assert org.restore_writes(seq) == []
    assert org.users()[suspended]["status"] == "suspended"
    assert restores_in_journal(org, suspended) == []
    (row,) = audit_rows()
    assert row["proposed_action"] == "restore"
    assert "dry run: would restore_user" in row["outcome"]


def said(capfd: pytest.CaptureFixture[str]) -> str:
    """What the tasks printed since the last call (dag.test logs the task failures to the console)."""
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_one_bad_entry_restores_nobody(org: RestoreOrg, capfd: pytest.CaptureFixture[str]) -> None:
    good, never_actioned = pick(org.sandbox, "inactive_180", 2)
    org.action([good], "suspend")
    emails = {account_id: user["email"] for account_id, user in org.users().items()}
    seq = org.last_seq()

    bad = f"{emails[good]}, nobody@acme.example, not an entry!, 712020:no-such-account"
    run = trigger(org, {"mode": "live", "accounts": bad, "restore_reason": REASON})
    assert str(run.state) == "failed", _states(run)
    assert _states(run)["fetch_requests"] == "failed"
    # Every problem is named at once (the form's and the directory's), with what to fix.
    printed = said(capfd)
    assert "e-mail 'nobody@acme.example' matches no account. Fix: check the spelling" in printed
    assert "'not' is neither an account id nor an e-mail address" in printed
    assert "'entry!' is neither an account id nor an e-mail address" in printed
    assert "account id '712020:no-such-account' is not in the organisation's directory" in printed

    # An account this tool never actioned is refused by the rules, before the first write.
    both = [emails[good], never_actioned]
    run = trigger(org, {"mode": "live", "accounts": both, "restore_reason": REASON})
    assert _states(run)["evaluate_rules"] == "failed"
    assert f"{emails[never_actioned]} cannot be restored by this tool (not_actioned)" in said(capfd)

    # Over restore.max_restores_per_run, and a missing reason.
    org.write_policy(max_restores_per_run=1)
    run = trigger(org, {"mode": "live", "accounts": both, "restore_reason": REASON})
    assert _states(run)["fetch_requests"] == "failed"
    assert "more than restore.max_restores_per_run (1)" in said(capfd)
    run = trigger(org, {"mode": "live", "accounts": [good]})
    assert _states(run)["fetch_requests"] == "failed"
    assert "restore_reason: empty" in said(capfd)
    # A reason without accounts is no ordinary JSM run either.
    run = trigger(org, {"mode": "live", "restore_reason": REASON})
    assert _states(run)["fetch_requests"] == "failed"
    assert "restore_reason is set but accounts is empty" in said(capfd)

    assert org.restore_writes(seq) == []
    assert org.users()[good]["status"] == "suspended"
    assert restores_in_journal(org, good) == []
