"""Warning e-mails and the admin digest, through whole DAG runs against the sandbox and a real SMTP sink.

Three consecutive logical dates walk users through the 3 → 2 → 1 day countdown; the sandbox clock
moves with the runs. Every message is read back from the local SMTP server (aiosmtpd).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from atlassian_cleanup.actions.notifications import HEADER_ACCOUNT, HEADER_KIND, HEADER_WARNING
from tests.integration.test_live_lifecycle import DAY0, REPO, LiveOrg, _states
from tools.smtp_sink import free_port

pytestmark = pytest.mark.integration

ADMIN = "it-admins@acme.example"
AUDIT_PAGE = "https://airflow.acme.example/atlassian-audit"
REQUEST_ACCESS = "https://help.acme.example/servicedesk/restore"


class MailOrg(LiveOrg):
    """A live org whose policy has a 3-2-1 countdown, an admin digest and a request-access link."""

    def write_policy(self, **changes: object) -> None:
        notifications = {
            "smtp_conn_id": "smtp_default",
            "from_email": None,
            "templates_dir": None,
            "request_access_url": REQUEST_ACCESS,
            "admin_emails": [ADMIN],
            "audit_page_url": AUDIT_PAGE,
        }
        changes.setdefault("warning", {"lead_days": [3, 2, 1], "min_notice_days": 1})
        super().write_policy(notifications=notifications, **changes)

    def run(self, day: int, run_conf: dict | None = None):
        """Like LiveOrg.run, without Airflow task retries (a failed send must show in this run)."""
        from airflow.dag_processing.dagbag import DagBag

        self.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(self.policy_path))
        bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
        assert bag.import_errors == {}
        dag = bag.dags["atlassian_user_cleanup"]
        for task in dag.tasks:
            task.retries = 0
        return dag.test(logical_date=DAY0 + timedelta(days=day), run_conf=run_conf or {})

    def make_due_in(self, account_id: str, days: int, threshold: int = 90) -> None:
        """Set every product's last activity so the user's action date is ``days`` after day 0."""
        user = self.users()[account_id]
        at = (DAY0 - timedelta(days=threshold - days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for product in user["product_access"]:
            self.activity(account_id, product, at)

    def activity(self, account_id: str, product: str, at: str) -> None:
        requests.post(
            f"{self.sandbox.url}/_sim/activity",
            json={"accountId": account_id, "product": product, "at": at},
            timeout=10,
        ).raise_for_status()

    def audit_rows(self) -> list[dict[str, str]]:
        audits = sorted(
            Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.csv"), key=lambda p: p.stat().st_mtime
        )
        with audits[-1].open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))


@pytest.fixture
def mail_org(airflow_db, smtp_sink, tmp_path, monkeypatch) -> Iterator[MailOrg]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=DAY0.date())) as sandbox:
        state = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
        yield MailOrg(sandbox, tmp_path, monkeypatch, smtp_sink, state)
    smtp_sink.refuse()


def _candidates(org: MailOrg, count: int) -> list[dict]:
    """Recently active, managed, addressable, unprotected users (nobody would warn them today)."""
    users = [
        u
        for u in org.users().values()
        if u["populations"][:1] == ["active"]
        and u["status"] == "active"
        and u["claim_status"] == "managed"
        and u["email"]
        and u["product_access"]
        and "vip-executives" not in u["groups"]
    ]
    assert len(users) >= count, "the seeded org has too few active users for this test"
    return sorted(users, key=lambda u: u["account_id"])[:count]


def _warnings(messages: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in messages if m[HEADER_KIND] == "warning"]


def _digests(messages: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in messages if m[HEADER_KIND] == "digest"]


def _stages(messages: list[EmailMessage], account_id: str) -> list[int]:
    return [int(m[HEADER_WARNING]) for m in _warnings(messages) if m[HEADER_ACCOUNT] == account_id]


def _no_duplicates(messages: list[EmailMessage]) -> None:
    sent = Counter((m[HEADER_ACCOUNT], m[HEADER_WARNING]) for m in _warnings(messages))
    assert [key for key, count in sent.items() if count > 1] == []


def _text(message: EmailMessage) -> str:
    # SMTP carries CRLF; compare with plain newlines.
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def _digest_figures(message: EmailMessage) -> dict[str, int]:
    text = _text(message)
    block = text.split("Proposed actions:", 1)[1].split("\n\n", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^  - (\w+): (\d+)$", block, re.MULTILINE)}


def test_countdown_three_runs_once_per_stage_and_digest_matches_plan(mail_org: MailOrg) -> None:
    org = mail_org
    countdown, returning = _candidates(org, 2)
    for user in (countdown, returning):
        org.make_due_in(user["account_id"], 3)
    start = len(org.smtp_sink.messages())

    for day in range(3):
        if day:
            org.advance_clock(1)
        before = len(org.smtp_sink.messages())
        run = org.run(day)
        assert str(run.state) == "success", _states(run)
        new = org.smtp_sink.messages()[before:]

        # One digest per run, to the admins, with the same figures as the run's audit CSV.
        (digest,) = _digests(new)
        assert digest["To"] == ADMIN
        audit = org.audit_rows()
        assert _digest_figures(digest) == dict(Counter(row["proposed_action"] for row in audit))
        text = _text(digest)
        assert "LIVE" in text
        assert f"Run of {(DAY0 + timedelta(days=day)).date()}".lower() in text.lower()
        protected = sum(1 for row in audit if row["protected_by"])
        assert f"Protected accounts: {protected}\n" in text
        assert "Errors: 0" in text
        assert f"Audit page: {AUDIT_PAGE}" in text
        assert re.search(r"Audit CSV: atlassian-user-audit_\S+\.csv", text)
        warned_here = sum(
            1 for row in audit if row["outcome"].startswith("done: ") and row["proposed_action"] == "warn"
        )
        if warned_here:
            assert re.search(rf"  - warn: done {warned_here}\b", text)

        if day == 0:
            # The returning user logs in after the first warning: the countdown stops for them.
            org.activity(
                returning["account_id"], next(iter(returning["product_access"])), "2026-11-26T18:00:00Z"
            )

    mails = org.smtp_sink.messages()[start:]
    assert _stages(mails, countdown["account_id"]) == [3, 2, 1]
    assert _stages(mails, returning["account_id"]) == [3]
    _no_duplicates(mails)

    # The countdown user's e-mails: to them only, multipart, with the dates, link and product.
    first = next(m for m in _warnings(mails) if m[HEADER_ACCOUNT] == countdown["account_id"])
    assert first["To"] == countdown["email"]
    assert first.get_content_type() == "multipart/alternative"
    text = _text(first)
    html = first.get_body(preferencelist=("html",)).get_content()
    assert "action date 2026-11-29" in text
    assert f"Dates are in {countdown['timezone'] or 'UTC'} time." in text
    assert REQUEST_ACCESS in text
    assert f'href="{REQUEST_ACCESS}"' in html
    assert "last used" in text


def test_failed_sends_are_recorded_and_retried_without_duplicates(mail_org: MailOrg) -> None:
    org = mail_org
    refused, accepted = _candidates(org, 2)
    for user in (refused, accepted):
        org.make_due_in(user["account_id"], 3)
    start = len(org.smtp_sink.messages())

    # Day 0: the relay refuses one recipient. That send fails, the others go out.
    org.smtp_sink.refuse(refused["email"])
    run = org.run(0)
    org.smtp_sink.refuse()
    states = _states(run)
    assert str(run.state) == "failed", states
    assert states["notify_warnings"] == "failed", states
    assert states["export_audit"] == "failed", states  # the audit is written, the run stays red
    outcome = {row["account_id"]: row["outcome"] for row in org.audit_rows()}
    assert outcome[refused["account_id"]].startswith("failed: Warning e-mail not sent")
    assert outcome[accepted["account_id"]].startswith("done: 3-day warning e-mailed")
    mails = org.smtp_sink.messages()[start:]
    assert _stages(mails, refused["account_id"]) == []
    assert _stages(mails, accepted["account_id"]) == [3]
    (digest,) = _digests(mails)
    # Tasks that did not run because notify_warnings failed are listed too.
    assert re.search(r"^Errors: 4 \(failed tasks: .*notify_warnings", _text(digest), re.MULTILINE)
    alerts = [m for m in mails if "task notify_warnings failed" in str(m["Subject"])]
    # The failure alert (SmtpNotifier from default_args). dag.test() may fire a task callback twice
    # (in-process runner and the run's own failure handling), so only "sent, to the admins" is checked.
    assert alerts
    assert {m["To"] for m in alerts} == {ADMIN}

    # Day 0 again with the relay back: only the failed warning is sent.
    seen = len(org.smtp_sink.messages())
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    again = _warnings(org.smtp_sink.messages()[seen:])
    assert [
        m[HEADER_ACCOUNT]
        for m in again
        if m[HEADER_ACCOUNT] in {refused["account_id"], accepted["account_id"]}
    ] == [refused["account_id"]]
    _no_duplicates(org.smtp_sink.messages()[start:])

    # Day 1 with the relay unreachable (closed port): every send is recorded failed, none sent.
    org.advance_clock(1)
    good = os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    broken = json.loads(good)
    broken["port"] = free_port()
    org.monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(broken))
    seen = len(org.smtp_sink.messages())
    run = org.run(1)
    assert str(run.state) == "failed", _states(run)
    assert org.smtp_sink.messages()[seen:] == []
    outcome = {row["account_id"]: row["outcome"] for row in org.audit_rows()}
    assert "unavailable" in outcome[accepted["account_id"]]

    # Day 1 again, relay back: the 2-day warnings go out once; nothing is sent twice overall.
    org.monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", good)
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    mails = org.smtp_sink.messages()[start:]
    assert _stages(mails, refused["account_id"]) == [3, 2]
    assert _stages(mails, accepted["account_id"]) == [3, 2]
    _no_duplicates(mails)


def test_users_without_email_are_reported_not_guessed(mail_org: MailOrg) -> None:
    org = mail_org
    # A dry run shows who would be warned and whether they have an address; no e-mail to users.
    start = len(org.smtp_sink.messages())
    run = org.run(0, run_conf={"dry_run": True})
    assert str(run.state) == "success", _states(run)
    mails = org.smtp_sink.messages()[start:]
    assert _warnings(mails) == []
    (digest,) = _digests(mails)
    assert "(DRY RUN)" in str(digest["Subject"])
    text = _text(digest)
    assert "DRY RUN (nothing was changed in Atlassian and no user was e-mailed)" in text
    rows = org.audit_rows()
    no_email = [r for r in rows if r["proposed_action"] == "warn" and not r["email"]]
    for row in no_email:
        assert row["outcome"].startswith("dry run: would report")
    if no_email:
        assert f"reported in the audit): {len(no_email)}" in text


@pytest.mark.parametrize("choice", ["action_after_notice", "hold"])
def test_users_without_email_are_listed_to_the_admins_then_actioned_after_the_notice(
    mail_org: MailOrg, choice: str
) -> None:
    org = mail_org
    org.write_policy(warning={"lead_days": [3, 2, 1], "min_notice_days": 2, "without_email": choice})
    (hidden,) = _candidates(org, 1)
    account_id = hidden["account_id"]
    org.make_due_in(account_id, 0)  # due today, never warned
    org.sandbox.runtime.state.users[account_id].email = None  # Atlassian hides the address
    day2 = (DAY0 + timedelta(days=2)).date().isoformat()

    # Day 0: no e-mail can be sent; the user is listed to the admins in the digest instead.
    start = len(org.smtp_sink.messages())
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    mails = org.smtp_sink.messages()[start:]
    assert not [m for m in _warnings(mails) if m[HEADER_ACCOUNT] == account_id]
    row = next(r for r in org.audit_rows() if r["account_id"] == account_id)
    assert (row["rule"], row["proposed_action"], row["email"]) == ("final_warning", "warn", "")
    assert row["outcome"].startswith("reported: Warning e-mail not sent: no e-mail address")
    assert row["reason"].endswith(f"(warning.without_email: {choice}).")
    (digest,) = _digests(mails)
    text = _text(digest)
    assert f"(warning.without_email: {choice}): " in text
    # The test policy's caps let one run action the whole org: accepted, and said in the digest.
    assert (
        "Policy warnings (accepted, but check they are meant):\n  - safety caps: one run may action up to"
        in text
    )
    if choice == "action_after_notice":
        assert "Listed to the admins in the digest instead" in row["outcome"]
        assert (
            f"  - {account_id} ({hidden['name']}): 2-day warning stage; suspend on {day2} at the earliest"
            in text
        )
    else:
        assert "Held: never actioned without a warning" in row["outcome"]
        assert f"  - {account_id} ({hidden['name']}): held: no suspend without a warning" in text

    # Day 2: the notice has run from the first listing (action_after_notice), or it has not (hold).
    org.advance_clock(2)
    seq = org.last_seq()
    start = len(org.smtp_sink.messages())
    run = org.run(2)
    assert str(run.state) == "success", _states(run)
    suspended = {
        c["account_id"]
        for c in org.write_calls(seq)
        if c["path"].endswith("/suspend") and c["status"] and 200 <= c["status"] < 300
    }
    row = next(r for r in org.audit_rows() if r["account_id"] == account_id)
    (digest,) = _digests(org.smtp_sink.messages()[start:])
    if choice == "action_after_notice":
        assert account_id in suspended
        assert (row["proposed_action"], row["result"]) == ("suspend", "done")
        assert row["reason"].endswith("(warning.without_email: action_after_notice).")
        assert f"  - {account_id} ({hidden['name']}): suspend in this run, after the notice period" in _text(
            digest
        )
    else:
        assert account_id not in suspended
        assert (row["rule"], row["proposed_action"]) == ("final_warning", "warn")
        assert row["outcome"].startswith("reported: ")
