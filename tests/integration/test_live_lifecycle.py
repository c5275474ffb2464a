"""Live runs of the daily DAG over simulated days: warn → act → delete, exactly once.

Each test gets its own sandbox org and state database, and moves the sandbox clock together with
the runs' logical dates, so the Atlassian side and our memory agree on what "today" is.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.conftest import AS_OF
from tools.airflow_env import connection_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY0 = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC)
WRITE_TEMPLATES = ("/suspend", "/restore", "/memberships", "/lifecycle/", "/users/{accountId}")
HIGH_CAPS = {"max_actions_per_run": 10_000, "max_action_share": 1.0}


class LiveOrg:
    """A sandbox org, a state DB and a policy file wired into Airflow's connections."""

    def __init__(self, sandbox, tmp_path: Path, monkeypatch, smtp_sink, state_conn: dict) -> None:
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.smtp_sink = smtp_sink
        env = connection_env(sandbox.info, smtp_sink.port)
        admin = json.loads(env["AIRFLOW_CONN_ATLASSIAN_ADMIN"])
        # Fast backoff: the sandbox's chaos waits are short and the tests must stay quick.
        admin["extra"]["retry"] = {"base_delay": 0.05, "max_backoff": 0.2, "max_attempts": 8}
        env["AIRFLOW_CONN_ATLASSIAN_ADMIN"] = json.dumps(admin)
        env["AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE"] = json.dumps(state_conn)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        self.policy_path = tmp_path / "policy.yaml"
        self.write_policy()

    def write_policy(self, **changes: object) -> None:
        data = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
        data["dry_run"] = False
        data["protected"]["groups"] = ["vip-executives"]
        # A one-day notice, so one simulated day goes from the final warning to the action; the
        # shipped notice (the largest lead day) has its own test.
        data["warning"] = {"lead_days": [3, 1], "min_notice_days": 1}
        data["delete_after_days"] = 7
        data["safety"].update(HIGH_CAPS)
        data.update(changes)
        self.policy_path.write_text(yaml.safe_dump(data), encoding="utf-8")

    def run(self, day: int, run_conf: dict | None = None):
        from airflow.dag_processing.dagbag import DagBag

        self.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(self.policy_path))
        bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
        assert bag.import_errors == {}
        return bag.dags["atlassian_user_cleanup"].test(
            logical_date=DAY0 + timedelta(days=day), run_conf=run_conf or {}
        )

    def run_restoration(self, at: datetime):
        """One run of the self-service restore DAG (``atlassian_access_restoration``)."""
        from airflow.dag_processing.dagbag import DagBag

        self.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(self.policy_path))
        bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
        assert bag.import_errors == {}
        return bag.dags["atlassian_access_restoration"].test(logical_date=at)

    def ask_for_access(self, account_id: str) -> str:
        """A "Restore my access" request in JSM, raised on the user's behalf (they are the reporter)."""
        from atlassian_cleanup.client.hooks import AtlassianSiteHook

        info = self.sandbox.info
        with AtlassianSiteHook() as site:
            created = site.create_request(
                info["service_desk_id"],
                info["restore_request_type_id"],
                "Please restore my access",
                "I need Jira again.",
                raise_on_behalf_of=account_id,
            )
        return str(created["issueKey"])

    def restore(self, account_id: str, *, day: int) -> None:
        from atlassian_cleanup.actions.state import StateStore
        from atlassian_cleanup.client.hooks import AtlassianAdminHook
        from atlassian_cleanup.operators.cleanup import state_store_url

        with AtlassianAdminHook() as hook:
            hook.restore_user(account_id)
        with StateStore(state_store_url("atlassian_cleanup_state")) as store:
            store.record_event(account_id, "restored", at=DAY0 + timedelta(days=day), run_id="admin-restore")

    def stage(self, account_id: str) -> str | None:
        from atlassian_cleanup.actions.state import StateStore
        from atlassian_cleanup.operators.cleanup import state_store_url

        with StateStore(state_store_url("atlassian_cleanup_state")) as store:
            history = store.history([account_id]).get(account_id)
        return history.stage if history else None

    def restore_audit(self) -> list[str]:
        audits = sorted(
            (Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]) / "restore").glob("*.csv"),
            key=lambda p: p.stat().st_mtime,
        )
        return audits[-1].read_text(encoding="utf-8").splitlines()

    def audit_row(self, account_id: str) -> dict[str, str]:
        import csv

        audits = sorted(
            Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.csv"), key=lambda p: p.stat().st_mtime
        )
        with audits[-1].open(encoding="utf-8", newline="") as handle:
            return next(row for row in csv.DictReader(handle) if row["account_id"] == account_id)

    def advance_clock(self, days: int) -> None:
        requests.post(
            f"{self.sandbox.url}/_sim/clock", json={"advance_days": days}, timeout=10
        ).raise_for_status()

    def users(self) -> dict[str, dict]:
        response = requests.get(f"{self.sandbox.url}/_sim/users", timeout=30)
        response.raise_for_status()
        return {user["account_id"]: user for user in response.json()["users"]}

    def write_calls(self, since: int = 0) -> list[dict]:
        return [
            call
            for call in self.sandbox.calls(since=since)
            if call["method"] in {"POST", "DELETE"}
            and not call["path_template"].endswith("/search")
            and call["family"] in {"admin", "usermgmt"}
        ]

    def last_seq(self) -> int:
        calls = self.sandbox.calls()
        return calls[-1]["seq"] if calls else 0


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _successful(calls: list[dict]) -> list[dict]:
    return [c for c in calls if (c["status"] and 200 <= c["status"] < 300) or c["injected"] == "drop_after"]


@pytest.fixture
def sqlite_state(tmp_path) -> dict:
    return {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}


@pytest.fixture
def postgres_state() -> Iterator[dict]:
    """A throw-away database on the local PostgreSQL server (the production-like state store)."""
    import uuid

    import sqlalchemy as sa

    if os.environ.get("ATLASSIAN_CLEANUP_SKIP_POSTGRES") == "1":
        pytest.skip("ATLASSIAN_CLEANUP_SKIP_POSTGRES=1: the PostgreSQL state store is not tested in this run")
    name = f"acu_dag_{uuid.uuid4().hex[:12]}"
    admin_url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    try:
        engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(
            "PostgreSQL is not reachable on 127.0.0.1:5432; start it with "
            f"`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` ({exc})"
        )
    yield {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": name}
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_conn(request) -> dict:
    return request.getfixturevalue("sqlite_state" if request.param == "sqlite" else "postgres_state")


@pytest.fixture
def live_org(airflow_db, smtp_sink, tmp_path, monkeypatch, sqlite_state) -> Iterator[LiveOrg]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        yield LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, sqlite_state)


@pytest.fixture
def live_org_any_store(airflow_db, smtp_sink, tmp_path, monkeypatch, state_conn) -> Iterator[LiveOrg]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        yield LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, state_conn)


@pytest.fixture(params=["absent", "null"])
def live_org_any_listing(
    request, airflow_db, smtp_sink, tmp_path, monkeypatch, sqlite_state
) -> Iterator[LiveOrg]:
    """A live org under each reading of "never-opened product" in ``productAccess``: absent (the
    contract, §3.6 / §9.2, and the sandbox's default) or listed with a null date."""
    from atlassian_sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(users=80, seed=314, as_of=AS_OF, never_used_product_entry=request.param)
    with SandboxServer(config) as sandbox:
        yield LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, sqlite_state)


def test_warn_then_act_then_delete_each_exactly_once(live_org_any_store):
    from atlassian_cleanup.actions.notifications import HEADER_ACCOUNT, HEADER_KIND

    org = live_org_any_store
    restore_url = "https://help.acme.example/servicedesk/restore"
    org.write_policy(
        delete_notice_days=3,
        notifications={"request_access_url": restore_url, "admin_emails": ["it-admins@acme.example"]},
    )
    mails_before = len(org.smtp_sink.messages())

    # Day 0: nobody was ever warned, so due users get a final warning and nobody is suspended.
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    assert not [c for c in org.write_calls() if "/suspend" in c["path"]]
    warned_mails = org.smtp_sink.messages()[mails_before:]
    assert warned_mails, "day 0 sent no warning"
    warned_to = {m["To"] for m in warned_mails}

    # Someone who got a warning comes back before the action date.
    truth = org.users()
    returning = next(
        u
        for u in truth.values()
        if u["email"] in warned_to and u["status"] == "active" and u["claim_status"] == "managed"
    )
    requests.post(
        f"{org.sandbox.url}/_sim/activity",
        json={"accountId": returning["account_id"], "product": "jira-software", "at": "2026-11-26T18:00:00Z"},
        timeout=10,
    ).raise_for_status()

    # Day 1: the final warnings have run their notice; those users are suspended, once each.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    suspends = [c for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")]
    assert suspends, "day 1 suspended nobody"
    per_account = Counter(c["account_id"] for c in suspends)
    assert max(per_account.values()) == 1, per_account
    after_day1 = org.users()
    for account_id in per_account:
        assert after_day1[account_id]["status"] == "suspended"
        assert after_day1[account_id]["email"] in warned_to, "suspended without a prior warning"
    assert returning["account_id"] not in per_account
    assert after_day1[returning["account_id"]]["status"] == "active"

    # The same day again: everything is journalled, so nothing is written or e-mailed twice.
    seq = org.last_seq()
    mails = len(org.smtp_sink.messages())
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    assert _successful(org.write_calls(seq)) == []
    assert [m for m in org.smtp_sink.messages()[mails:] if m[HEADER_KIND] != "digest"] == []

    # An admin gives one suspended user their access back (what the restore DAG will do): the
    # restore is recorded, so the user gets the restored grace instead of being deleted.
    restored_id = next(a for a in sorted(per_account) if after_day1[a]["claim_status"] == "managed")
    org.restore(restored_id, day=1)

    # Deletion is due on day 8 (7 days after the suspensions); the notice goes 3 days ahead.
    to_delete = set(per_account) - {restored_id}

    def notices(since: int) -> list:
        return [m for m in org.smtp_sink.messages()[since:] if m[HEADER_KIND] == "deletion_notice"]

    def deletes(since: int) -> list:
        return [
            c
            for c in _successful(org.write_calls(since))
            if c["path"].endswith("/lifecycle/delete") or c["method"] == "DELETE"
        ]

    # Day 4: four days before the deletion: no notice yet, nothing deleted.
    org.advance_clock(3)
    seq, mails = org.last_seq(), len(org.smtp_sink.messages())
    assert str(org.run(4).state) == "success"
    assert notices(mails) == []
    assert deletes(seq) == []

    # Day 5: each account to be deleted gets the notice, once, with the request-access link.
    org.advance_clock(1)
    seq, mails = org.last_seq(), len(org.smtp_sink.messages())
    run = org.run(5)
    assert str(run.state) == "success", _states(run)
    sent = notices(mails)
    assert Counter(m[HEADER_ACCOUNT] for m in sent) == dict.fromkeys(to_delete, 1)
    assert deletes(seq) == []  # a notice, not a deletion
    deletion_day = (DAY0 + timedelta(days=8)).date().isoformat()
    for message in sent:
        account = after_day1[message[HEADER_ACCOUNT]]
        assert message["To"] == account["email"]
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert f"deletion date {deletion_day}" in text
        assert restore_url in text
        deleted = account["claim_status"] == "managed" and not account["scim_managed"]
        if account["claim_status"] != "managed":
            assert "will be removed from the directory" in message["Subject"]
        elif deleted:
            assert "will be deleted" in message["Subject"]
    row = org.audit_row(sent[0][HEADER_ACCOUNT])
    assert (row["rule"], row["proposed_action"], row["result"]) == (
        "deletion_notice",
        "delete_notice",
        "done",
    )
    assert row["planned_action"] == "delete"
    assert row["action_date"] == deletion_day
    digest = next(m for m in org.smtp_sink.messages()[mails:] if m[HEADER_KIND] == "digest")
    digest_text = digest.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert f"  - delete_notice: {len(to_delete)}\n" in digest_text

    # Day 5 again (a re-run): the journal says the notices went out; none is sent twice.
    mails = len(org.smtp_sink.messages())
    assert str(org.run(5).state) == "success"
    assert notices(mails) == []

    def noticed_again(since: int) -> list:
        # Users suspended after day 1 get their own notice later; these ones never get a second.
        return [m for m in notices(since) if m[HEADER_ACCOUNT] in to_delete]

    # Day 8: seven days after the suspensions and three after the notice, the still-dormant
    # accounts are deleted (managed: lifecycle delete with Atlassian's 14-day grace; unmanaged:
    # removed from the directory).
    org.advance_clock(3)
    seq, mails = org.last_seq(), len(org.smtp_sink.messages())
    run = org.run(8)
    assert str(run.state) == "success", _states(run)
    assert noticed_again(mails) == []
    deleted = deletes(seq)
    assert {c["account_id"] for c in deleted} == to_delete
    assert max(Counter(c["account_id"] for c in deleted).values()) == 1
    final = org.users()
    assert final[restored_id]["status"] == "active"
    assert org.audit_row(restored_id)["rule"] == "restored_grace"
    for account_id in set(per_account) - {restored_id}:
        user = final.get(account_id)
        # Atlassian only lets the API delete managed accounts that no identity provider manages;
        # the others are removed from the directory instead.
        if after_day1[account_id]["claim_status"] == "managed" and not after_day1[account_id]["scim_managed"]:
            assert user is not None, account_id
            assert user["status"] == "for_deletion", user
        else:
            assert user is None or user["status"] in {"not_invited", "for_deletion"}, user


def test_a_first_live_run_over_a_backlog_gives_the_full_notice(live_org, caplog, capfd):
    import csv

    from atlassian_cleanup.actions.notifications import HEADER_ACCOUNT, HEADER_WARNING

    org = live_org
    # The shipped notice: the largest lead day (3 here), from each user's FIRST warning.
    org.write_policy(warning={"lead_days": [3, 1]})
    mails_before = len(org.smtp_sink.messages())

    # Day 0, the first live run: the backlog of long-overdue users is warned, nobody is suspended,
    # and every warning announces an action date three days away.
    with caplog.at_level(logging.WARNING):
        run = org.run(0)
    assert str(run.state) == "success", _states(run)
    # The test policy's caps allow actioning the whole org: accepted, with a warning in the log.
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "compute_inactivity: 1 policy plausibility warning(s), accepted" in logged, logged[-3000:]
    assert "safety caps: one run may action up to" in logged
    assert not [c for c in org.write_calls() if "/suspend" in c["path"]]
    audits = sorted(
        Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.csv"), key=lambda p: p.stat().st_mtime
    )
    with audits[-1].open(encoding="utf-8", newline="") as handle:
        finals = [r for r in csv.DictReader(handle) if r["rule"] == "final_warning"]
    assert finals, "day 0 found no overdue user"
    day3 = (DAY0 + timedelta(days=3)).date().isoformat()
    assert {(r["action_date"], r["warning_lead_days"]) for r in finals} == {(day3, "3")}
    warned_day0 = {m[HEADER_ACCOUNT] for m in org.smtp_sink.messages()[mails_before:] if m[HEADER_WARNING]}
    assert {r["account_id"] for r in finals} <= warned_day0

    # Day 2: still within the notice; the 1-day warnings of the countdown go out, nothing else.
    org.advance_clock(2)
    seq, mails = org.last_seq(), len(org.smtp_sink.messages())
    run = org.run(2)
    assert str(run.state) == "success", _states(run)
    assert _successful(org.write_calls(seq)) == []
    day2 = [m for m in org.smtp_sink.messages()[mails:] if m[HEADER_WARNING]]
    assert {m[HEADER_ACCOUNT] for m in day2 if m[HEADER_WARNING] == "1"} >= {r["account_id"] for r in finals}

    # Day 3: three days after their first warning, the overdue users are suspended.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(3)
    assert str(run.state) == "success", _states(run)
    suspended = {c["account_id"] for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")}
    assert suspended, "day 3 suspended nobody"
    assert suspended <= warned_day0, "suspended less than three days after a first warning"


def test_the_daily_dag_leaves_a_user_restored_through_jsm_alone(live_org):
    org = live_org
    # No warnings: a due user is suspended on the first run, and would be again on the next one
    # if the restore were forgotten (a warning would be an e-mail, not an Atlassian write).
    org.write_policy(
        warning={"lead_days": []},
        restore={"service_desk": org.sandbox.info["service_desk_id"], "allowed_domains": ["acme.example"]},
    )
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    truth = org.users()
    suspended = sorted(
        c["account_id"] for c in _successful(org.write_calls()) if c["path"].endswith("/suspend")
    )
    restored_id = next(
        a
        for a in suspended
        if truth[a]["claim_status"] == "managed" and truth[a]["email_domain"] == "acme.example"
    )
    assert truth[restored_id]["status"] == "suspended"

    # The user asks through JSM; the restore DAG gives their access back the same day.
    key = org.ask_for_access(restored_id)
    restore_run = org.run_restoration(DAY0 + timedelta(hours=12))
    assert str(restore_run.state) == "success", _states(restore_run)
    restored = org.users()[restored_id]
    assert restored["status"] == "active"
    assert org.stage(restored_id) == "restored"
    assert any(key in line for line in org.restore_audit())

    # The next day the user is still as inactive as before, but inside the restored grace.
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    assert [c for c in org.write_calls(seq) if c["account_id"] == restored_id] == []
    assert org.audit_row(restored_id)["rule"] == "restored_grace"
    after = org.users()[restored_id]
    assert after["status"] == "active"
    assert after["groups"] == restored["groups"]


def test_cap_stops_the_run_before_any_write(live_org):
    org = live_org
    org.write_policy(
        safety={"max_actions_per_run": 1, "max_action_share": 0.01, "on_cap_exceeded": "fail"},
        warning={"lead_days": []},
    )
    seq = org.last_seq()

    run = org.run(0)

    assert str(run.state) == "failed"
    states = _states(run)
    assert states["approve_plan"] == "failed", states
    assert states["apply_actions"] in {"upstream_failed", "skipped"}, states
    assert org.write_calls(seq) == []
    # The audit is still written (the run failed, and the export says so by failing last).
    assert states["export_audit"] == "failed", states
    audits = sorted(
        Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.manifest.json"),
        key=lambda p: p.stat().st_mtime,
    )
    manifest = json.loads(audits[-1].read_text(encoding="utf-8"))
    assert manifest["mode"] == "live"
    assert manifest["summary"]["failed_tasks"] == [
        "apply_actions",
        "approve_plan",
        "delete_dormant",
        "notify_warnings",
    ]


def test_sanity_gate_stops_when_the_org_seems_to_shrink(live_org):
    org = live_org
    org.write_policy(warning={"lead_days": []})
    run = org.run(0, run_conf={"dry_run": True})
    assert str(run.state) == "success", _states(run)

    # Most of the org vanishes from the API (say, a permission change on the key).
    requests.post(
        f"{org.sandbox.url}/_sim/reset",
        json={"users": 20, "seed": 314, "as_of": AS_OF.isoformat()},
        timeout=30,
    ).raise_for_status()
    seq = org.last_seq()
    run = org.run(1)

    assert str(run.state) == "failed"
    assert _states(run)["compute_inactivity"] == "failed"
    assert org.write_calls(seq) == []


class _Approver:
    """Answers the run's approval request through Airflow's REST API, as the UI's button does."""

    def __init__(self, api, choice: str) -> None:
        import threading

        self.api = api
        self.choice = choice
        self.subject: str | None = None
        self.body: str | None = None
        self.status: int | None = None
        self.responder: str | None = None
        self.asked_at = datetime.min.replace(tzinfo=UTC)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._answer, daemon=True)

    def __enter__(self) -> _Approver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _answer(self) -> None:
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session
        from sqlalchemy import select

        while not self._stop.wait(0.2):
            with create_session() as session:
                detail = session.scalars(select(HITLDetail).where(HITLDetail.responded_at.is_(None))).first()
                if detail is None:
                    continue
                ti = detail.task_instance
                if ti is None or ti.state != "awaiting_input":
                    # A human answers a parked task; answering before the task has parked is a
                    # race the UI never runs into (and Airflow would not resume the task).
                    continue
                self.subject, self.body = detail.subject, detail.body
                path = (
                    f"/api/v2/dags/{ti.dag_id}/dagRuns/{ti.run_id}/taskInstances/{ti.task_id}/"
                    f"{ti.map_index}/hitlDetails"
                )
            self.asked_at = datetime.now(UTC).replace(microsecond=0)
            response = self.api.patch(path, json={"chosen_options": [self.choice], "params_input": {}})
            self.status = response.status_code
            self.responder = (response.json().get("responded_by") or {}).get("name")
            return


@pytest.fixture(scope="module")
def airflow_api(airflow_db):
    """Airflow's own REST API (what the UI calls), with login turned off for the test."""
    from fastapi.testclient import TestClient

    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-only-secret-of-the-approval-tests-" + "x" * 32)
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app()) as client:
        yield client
    mp.undo()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("choice", "expect_writes"), [("Approve", True), ("Reject", False)])
def test_capped_run_waits_for_an_admin(live_org, airflow_api, choice, expect_writes):
    org = live_org
    org.write_policy(
        safety={"max_actions_per_run": 1, "max_action_share": 0.01, "on_cap_exceeded": "approve"},
        warning={"lead_days": []},
    )
    seq = org.last_seq()

    with _Approver(airflow_api, choice) as approver:
        run = org.run(0)

    states = _states(run)
    assert approver.subject, "the run never asked for approval"
    assert approver.status == 200
    assert "exceeds the safety caps" in (approver.body or "")
    assert states["approve_plan"] == "success", states
    suspends = [c for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")]
    if expect_writes:
        assert str(run.state) == "success", states
        assert len(suspends) > 1  # more than the cap, because a human said so
    else:
        assert states["apply_actions"] == "skipped", states
        assert suspends == []
    assert states["export_audit"] == "success", states
    # Who approved or rejected, and when, is on the record (Airflow's HITL response).
    manifest = json.loads(
        max(
            Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.manifest.json"),
            key=lambda p: p.stat().st_mtime,
        ).read_text(encoding="utf-8")
    )
    approval = manifest["approval"]
    assert approval["required"] is True
    assert approval["decision"] == ("approved" if expect_writes else "rejected")
    assert approver.responder  # the user the API says answered
    assert approval["by"] == approver.responder
    assert datetime.fromisoformat(approval["at"].replace("Z", "+00:00")) >= approver.asked_at
    assert approval["summary"].startswith(f"{approval['decision']} by {approver.responder} at ")


def _ground_truth_seats(users: dict[str, dict]) -> int:
    """Seats Atlassian bills, from the sandbox's own model (not from our plan)."""
    from atlassian_cleanup.decisions.products import canonical_product

    return sum(
        len({canonical_product(p) for p in user["product_access"]})
        for user in users.values()
        if user["billable"]
    )


def test_audit_rows_and_seat_figures_match_what_atlassian_did(live_org_any_listing):
    import csv

    org = live_org_any_listing
    org.write_policy(licensing={"billing": "monthly", "currency": "EUR", "seat_price": 8.6})
    assert str(org.run(0).state) == "success"
    org.advance_clock(1)
    before = org.users()
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    after = org.users()
    suspended = {c["account_id"] for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")}
    assert suspended, "day 1 suspended nobody"

    audits = sorted(
        Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.csv"), key=lambda p: p.stat().st_mtime
    )
    with audits[-1].open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle)}
    manifest = json.loads(
        audits[-1].with_name(audits[-1].name.removesuffix(".csv") + ".manifest.json").read_text()
    )

    # Every suspended account's row says done, with the API's status and when it happened.
    for account_id in suspended:
        row = rows[account_id]
        assert row["result"] == "done", row
        assert row["mode"] == "live"
        assert 200 <= int(row["api_status"]) < 300, row
        assert row["intent_at"] <= row["result_at"], row
        assert row["logical_date"].startswith("2026-11-27"), row
    assert {
        a for a, r in rows.items() if r["result"] == "done" and r["proposed_action"] == "suspend"
    } == suspended
    assert manifest["summary"]["results"]["done"] == sum(1 for r in rows.values() if r["result"] == "done")

    # Seats: our figures equal Atlassian's own billing model before and after the run.
    seats = manifest["summary"]["seats"]
    assert seats["total_before"] == _ground_truth_seats(before)
    assert seats["total_after"] == _ground_truth_seats(after)
    assert seats["total_reclaimed"] == seats["total_before"] - seats["total_after"] > 0
    assert seats["projected"] is False
    assert seats["estimated_saving_per_month"] == pytest.approx(seats["total_reclaimed"] * 8.6)
    assert seats["currency"] == "EUR"


def _memberships_left(calls: list[dict]) -> Counter:
    return Counter(
        c["account_id"]
        for c in _successful(calls)
        if c["method"] == "DELETE" and "/memberships/" in c["path"]
    )


def _canonical(sandbox_key: str) -> str:
    from atlassian_cleanup.decisions.products import canonical_product

    return canonical_product(sandbox_key)


def _warned_accounts(messages) -> set[str]:
    from atlassian_cleanup.actions.notifications import HEADER_ACCOUNT

    return {m[HEADER_ACCOUNT] for m in messages if m[HEADER_ACCOUNT]}


def test_removed_products_include_never_opened_ones_stay_removed_and_end_in_deletion(live_org_any_listing):
    """remove_product_access, live, over simulated days, under both productAccess listings: the
    products a user never opened are removed too (their seats are the largest waste), a removed
    product is never warned about again, and a user left without products is deleted
    ``delete_after_days`` (7) days after the removal, like a suspended user."""
    org = live_org_any_listing
    # The deletion notice before the deletion is off here (it has its own tests): deletion comes
    # exactly delete_after_days after the removal.
    org.write_policy(action="remove_product_access", delete_notice_days=0)
    before = org.users()
    never_opened = {
        a: {p for p, seen in u["product_access"].items() if seen is None}
        for a, u in before.items()
        if u["status"] == "active" and any(seen is None for seen in u["product_access"].values())
    }
    assert never_opened, "the seed has users with a never-opened product"

    # Day 0: final warnings; day 1: the removals.
    assert str(org.run(0).state) == "success"
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    left = _memberships_left(org.write_calls(seq))
    assert left, "day 1 removed no product access"
    after = org.users()
    removed = {a: set(before[a]["product_access"]) - set(after[a]["product_access"]) for a in left}
    # Products the user never opened were removed (they used to stay, invisible, with their seat).
    assert any(removed[a] & never_opened.get(a, set()) for a in removed), removed
    emptied = {a for a in left if not after[a]["product_access"] and after[a]["status"] == "active"}
    assert emptied, "nobody lost every product"

    # Days 2 and 4: nothing removed is planned again: no warning, no second removal.
    for day in (2, 4):
        org.advance_clock(day - (1 if day == 2 else 2))
        mails = len(org.smtp_sink.messages())
        seq = org.last_seq()
        run = org.run(day)
        assert str(run.state) == "success", _states(run)
        assert not set(_memberships_left(org.write_calls(seq))) & emptied
        assert not _warned_accounts(org.smtp_sink.messages()[mails:]) & emptied
        for account_id in set(left) - emptied:
            # A product kept on day 1 may come due later; the removed ones are never named again.
            row = org.audit_row(account_id)
            named = set(filter(None, row["products_to_remove"].split(";")))
            named |= set(filter(None, row["inactive_products"].split(";")))
            assert not named & {_canonical(p) for p in removed[account_id]}, row
        for account_id in emptied:
            row = org.audit_row(account_id)
            assert (row["proposed_action"], row["rule"]) == ("none", "awaiting_delete"), row
            assert "Not warned yet" not in row["reason"]

    # Day 8, seven days after the removals: the users left without products are deleted.
    org.advance_clock(4)
    seq = org.last_seq()
    run = org.run(8)
    assert str(run.state) == "success", _states(run)
    deleted = {
        c["account_id"]
        for c in _successful(org.write_calls(seq))
        if c["path"].endswith("/lifecycle/delete")
        or (c["method"] == "DELETE" and "/memberships/" not in c["path"])
    }
    assert deleted == emptied
    for account_id in emptied:
        assert org.audit_row(account_id)["rule"] == "dormant_delete"


def test_scim_account_is_warned_of_suspension_and_suspended(live_org):
    """action: deactivate. An account its identity provider manages (SCIM) cannot be deactivated
    through the API: its warning says it will be suspended, and it is suspended."""
    from atlassian_cleanup.actions.notifications import HEADER_ACCOUNT

    org = live_org
    org.write_policy(action="deactivate")
    mails = len(org.smtp_sink.messages())
    seq = org.last_seq()
    assert str(org.run(0).state) == "success"
    sent = {m[HEADER_ACCOUNT]: m for m in org.smtp_sink.messages()[mails:]}
    # Before warning of a deactivation, the plan asked Atlassian whether it may deactivate.
    asked = {c["account_id"] for c in org.sandbox.calls(since=seq) if c["path"].endswith("/manage")}
    truth = org.users()
    scim = [a for a, u in truth.items() if u["scim_managed"] and a in sent]
    own = [
        a for a, u in truth.items() if u["claim_status"] == "managed" and not u["scim_managed"] and a in sent
    ]
    assert scim, "no SCIM-managed account was warned"
    assert own, "no deactivatable account was warned"
    for account_id in scim:
        text = sent[account_id].get_body(preferencelist=("plain",)).get_content()
        assert "will be suspended" in sent[account_id]["Subject"]
        assert "deactivat" not in text.lower()
    for account_id in own:
        assert "will be deactivated" in sent[account_id]["Subject"]
        assert account_id in asked

    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    writes = _successful(org.write_calls(seq))
    for account_id in scim:
        assert [c["path"].rsplit("/", 1)[-1] for c in writes if c["account_id"] == account_id] == ["suspend"]
        assert org.users()[account_id]["status"] == "suspended"
        assert org.audit_row(account_id)["proposed_action"] == "suspend"
    assert any(c["path"].endswith("/lifecycle/disable") for c in writes if c["account_id"] in own)
