"""Whole runs of the restore DAG (``dag.test()``) against the sandbox and a SQLite state store.

Users are first actioned through the real enforcement engine (suspend, deactivate, product
removal, suspend + delete), then ask for their access back through JSM (raised on their behalf,
so they are the reporter). Counted in the sandbox's call log: restore writes, comments and
transitions per request.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from atlassian_cleanup.actions.enforcement import Enforcer
from atlassian_cleanup.actions.state import StateStore
from atlassian_cleanup.client.hooks import AtlassianAdminHook, AtlassianSiteHook
from atlassian_cleanup.client.retry import RetryPolicy
from tests.integration.test_enforcement import _NO_CHAOS, pick, plan_rows
from tools.airflow_env import REPO, connection_env

pytestmark = pytest.mark.integration

AS_OF = date(2026, 11, 26)
ACTIONED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
RESTORE_DAY = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
RESTORE_WRITES = ("/restore", "/lifecycle/enable", "/lifecycle/cancel-delete", "/memberships")


class RestoreOrg:
    """A fresh sandbox org, a state DB and a live policy, wired into Airflow's connections."""

    def __init__(self, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sandbox = sandbox
        self.monkeypatch = monkeypatch
        self.state_path = tmp_path / "state.db"
        env = connection_env(sandbox.info, None)
        env["AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE"] = json.dumps(
            {"conn_type": "sqlite", "host": str(self.state_path)}
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        self.policy_path = tmp_path / "policy.yaml"
        self.write_policy()

    def write_policy(self, **restore: Any) -> None:
        data = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
        data["dry_run"] = False
        data.setdefault("restore", {})
        data["restore"].update({"allowed_domains": ["acme.example"], "service_desk": "ITH", **restore})
        self.policy_path.write_text(yaml.safe_dump(data), encoding="utf-8")

    def store(self) -> StateStore:
        return StateStore(f"sqlite:///{self.state_path}")

    def action(
        self, ids: list[str], action: str, products: list[str] | None = None, at: datetime = ACTIONED
    ) -> None:
        with self.store() as store:
            enforcer = Enforcer(
                lambda: AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()),
                store,
                run_id=f"daily-{at.date()}",
                at=at,
            )
            if action == "delete":
                outcomes = enforcer.delete(plan_rows(ids, "delete"))
            else:
                outcomes = enforcer.apply(plan_rows(ids, action, products))
        assert {o.result for o in outcomes} == {"done"}, [o.detail for o in outcomes]

    def ask(self, account_id: str, description: str = "I need Jira again.") -> str:
        with AtlassianSiteHook() as site:
            created = site.create_request(
                "1", "25", "Please restore my access", description, raise_on_behalf_of=account_id
            )
        return str(created["issueKey"])

    def email(self, sender: str, body: str, subject: str = "Please restore my access") -> str:
        """An e-mail to the desk: JSM's e-mail channel makes the sender's account the reporter."""
        info = self.sandbox.info
        message = {
            "from": sender,
            "subject": subject,
            "body": body,
            "serviceDeskId": info["service_desk_id"],
            "requestTypeId": info["restore_request_type_id"],
        }
        response = requests.post(f"{self.sandbox.url}/_sim/jsm/email", json=message, timeout=30)
        response.raise_for_status()
        created = response.json()
        assert created["processed"], created
        assert created["request"]["channel"] == "email", created
        return str(created["request"]["issueKey"])

    def run(self, at: datetime = RESTORE_DAY) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        self.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(self.policy_path))
        bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
        assert bag.import_errors == {}
        return bag.dags["atlassian_access_restoration"].test(logical_date=at)

    def users(self) -> dict[str, dict]:
        response = requests.get(f"{self.sandbox.url}/_sim/users", timeout=30)
        response.raise_for_status()
        return {user["account_id"]: user for user in response.json()["users"]}

    def request_status(self, key: str) -> str:
        auth = (self.sandbox.info["site_email"], self.sandbox.info["site_token"])
        url = f"{self.sandbox.url}/rest/servicedeskapi/request/{key}"
        response = requests.get(url, auth=auth, timeout=30)
        response.raise_for_status()
        return str(response.json()["currentStatus"]["status"])

    def comments(self, key: str) -> list[str]:
        auth = (self.sandbox.info["site_email"], self.sandbox.info["site_token"])
        response = requests.get(
            f"{self.sandbox.url}/rest/servicedeskapi/request/{key}/comment", auth=auth, timeout=30
        )
        response.raise_for_status()
        return [c["body"] for c in response.json()["values"]]

    def calls(self, since: int = 0) -> list[dict]:
        return [c for c in self.sandbox.calls(since) if c["status"] and 200 <= c["status"] < 300]

    def restore_writes(self, since: int = 0) -> list[dict]:
        return [c for c in self.calls(since) if c["method"] == "POST" and c["path"].endswith(RESTORE_WRITES)]

    def comment_calls(self, since: int = 0) -> Counter:
        return Counter(
            c["path"].split("/")[-2]
            for c in self.calls(since)
            if c["method"] == "POST" and c["path"].endswith("/comment")
        )

    def last_seq(self) -> int:
        calls = self.sandbox.calls()
        return calls[-1]["seq"] if calls else 0


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture(scope="module", name="server")
def restore_server() -> Iterator[Any]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=120, seed=1, as_of=AS_OF)) as sb:
        yield sb


@pytest.fixture(name="org")
def restore_org(airflow_db, server, tmp_path, monkeypatch) -> RestoreOrg:
    server.configure(**_NO_CHAOS, jsm_request_channel=True)
    server.reset(users=120, seed=1, as_of=AS_OF)
    server.clear_calls()
    return RestoreOrg(server, tmp_path, monkeypatch)


def test_each_action_kind_is_restored_once_and_the_rest_is_answered(org: RestoreOrg) -> None:
    suspended, deleted, asked_about = pick(org.sandbox, "inactive_180", 3)
    deactivated = pick(org.sandbox, "inactive_400", 1)[0]
    removed = pick(org.sandbox, "jira_active_confluence_dormant", 1)[0]
    contractor = pick(org.sandbox, "unmanaged_contractor", 1)[0]
    bystander = pick(org.sandbox, "active", 1)[0]
    org.action([suspended, deleted, asked_about, contractor], "suspend")
    org.action([deactivated], "deactivate")
    org.action([removed], "remove_product_access", ["confluence"])
    org.action([deleted], "delete")
    before = org.users()
    assert before[removed]["groups"] != []
    assert "confluence-users-acme" not in before[removed]["groups"]
    assert before[deleted]["status"] == "for_deletion"

    keys = {
        "suspend": org.ask(suspended),
        "deactivate": org.ask(deactivated),
        "remove": org.ask(removed),
        "delete": org.ask(deleted),
        # A contractor on a domain no rule allows: answered, left open for an admin.
        "refused": org.ask(contractor),
        # Someone never actioned asks for another (actioned) account: only the reporter counts.
        "other": org.ask(bystander, f"Please restore {asked_about} and {before[asked_about]['email']}"),
    }
    seeded_open = ["ITH-1", "ITH-2"]  # seeded by the sandbox: suspended by someone else, never by us
    seq = org.last_seq()

    run = org.run()
    assert str(run.state) == "success", _states(run)

    after = org.users()
    assert after[suspended]["status"] == "active"
    assert after[deactivated]["status"] == "active"
    assert "confluence-users-acme" in after[removed]["groups"]
    assert after[deleted]["status"] == "active"
    assert after[deleted]["for_deletion"] is False
    assert after[asked_about]["status"] == "suspended"  # named in someone else's request: untouched
    assert after[contractor]["status"] == "suspended"

    writes = org.restore_writes(seq)
    # A membership POST names the user in its body, not its path: counted apart.
    memberships = [c for c in writes if c["path"].endswith("/memberships")]
    assert len(memberships) == 1
    assert org.sandbox.info["groups"]["confluence-users-acme"] in memberships[0]["path"]
    by_account = Counter(c["account_id"] for c in writes if c not in memberships)
    assert set(by_account) == {suspended, deactivated, deleted}
    assert by_account[suspended] == 1  # one directory restore
    assert by_account[deactivated] == 1  # one lifecycle enable
    assert by_account[deleted] == 2  # cancel-delete, then the directory restore of the suspension

    comments = org.comment_calls(seq)
    for key in [*keys.values(), *seeded_open]:
        assert comments[key] == 1, (key, comments)
    for kind in ("suspend", "deactivate", "remove", "delete"):
        assert org.request_status(keys[kind]) == "Resolved", kind
        assert "restored" in org.comments(keys[kind])[-1]
    for key in (keys["refused"], keys["other"], *seeded_open):
        assert org.request_status(key) != "Resolved", key
        assert "administrator will review" in org.comments(key)[-1]

    with org.store() as store:
        history = store.history([suspended, deactivated, removed, deleted, asked_about, bystander])
        for account_id in (suspended, deactivated, removed, deleted):
            assert history[account_id].stage == "restored"
            assert history[account_id].restored_at == RESTORE_DAY
        assert history[asked_about].stage == "actioned"
        assert bystander not in history or history[bystander].stage == "active"
        # Every decision is journalled: the refusal too.
        refusal = [e for e in store.journal(account_id=contractor) if e.action == "answer:refused"]
        assert len(refusal) == 1
        assert refusal[0].outcome == "succeeded"

    audit = sorted((Path(__import__("os").environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]) / "restore").glob("*.csv"))[
        -1
    ]
    text = audit.read_text(encoding="utf-8")
    for key in keys.values():
        assert key in text
    assert "domain:acme.example" in text
    assert "no_rule" in text

    # A re-run (and the next scheduled run) does nothing twice.
    for at in (RESTORE_DAY, RESTORE_DAY + timedelta(minutes=10)):
        seq = org.last_seq()
        again = org.run(at)
        assert str(again.state) == "success", _states(again)
        assert org.restore_writes(seq) == []
        assert org.comment_calls(seq) == Counter()


def test_answers_say_what_was_done_and_when(org: RestoreOrg) -> None:
    """The posted comments state the real writes and their dates, from the journal.

    A managed account suspended on 11-26 and lifecycle-deleted on 12-03 is told both dates and the
    window (14 days from the deletion request); an unmanaged contractor, whose "deletion" became a
    removal from the directory, is told that no window applies, two days after the removal.
    """
    managed = pick(org.sandbox, "inactive_180", 1)[0]
    contractor = pick(org.sandbox, "unmanaged_contractor", 1)[0]
    org.action([managed, contractor], "suspend")
    deleted_on = ACTIONED + timedelta(days=7)
    org.action([managed, contractor], "delete", at=deleted_on)
    users = org.users()
    assert users[managed]["status"] == "for_deletion"
    assert users[contractor]["status"] != "for_deletion"
    keys = {"managed": org.ask(managed), "contractor": org.ask(contractor)}

    run = org.run(deleted_on + timedelta(days=2))

    assert str(run.state) == "success", _states(run)
    assert org.comments(keys["managed"])[-1] == (
        "Your access has been restored. After a long period without activity, your account was suspended in "
        "the organization's directory on 2026-11-26 and its deletion was requested on 2026-12-03. "
        "The deletion "
        "was cancelled within Atlassian's 14-day window, which would have ended on 2026-12-17. The "
        "suspension "
        "was lifted: your groups and roles are back as they were. The inactive-user cleanup will leave your "
        "account alone for 30 days."
    )
    assert org.comments(keys["contractor"])[-1] == (
        "After a long period without activity, your account was suspended in the organization's directory on "
        "2026-11-26 and then removed from the organization's directory on 2026-12-03. This was not "
        "a deletion "
        "and no 14-day window applies: your Atlassian account still exists, but it is no longer a member of "
        "the organization and lost its groups and roles, so it cannot be restored automatically. "
        "If access is "
        "approved, an administrator will invite you again and re-add your groups (this tool recorded them). "
        "An administrator will review your request."
    )
    assert org.request_status(keys["managed"]) == "Resolved"
    assert org.request_status(keys["contractor"]) != "Resolved"
    assert org.users()[managed]["status"] == "active"


def test_the_cap_defers_the_rest_to_the_next_run(org: RestoreOrg) -> None:
    first, second = pick(org.sandbox, "inactive_180", 2)
    org.action([first, second], "suspend")
    keys = [org.ask(first), org.ask(second)]
    org.write_policy(max_restores_per_run=1)
    seq = org.last_seq()

    run = org.run()

    assert str(run.state) == "success", _states(run)
    assert len(org.restore_writes(seq)) == 1
    comments = org.comment_calls(seq)
    assert comments[keys[0]] == 1
    assert comments[keys[1]] == 0  # deferred: not answered, still open
    assert org.request_status(keys[1]) != "Resolved"
    assert org.users()[second]["status"] == "suspended"

    seq = org.last_seq()
    run = org.run(RESTORE_DAY + timedelta(minutes=10))
    assert str(run.state) == "success", _states(run)
    assert [c["account_id"] for c in org.restore_writes(seq)] == [second]
    assert org.comment_calls(seq) == Counter({keys[1]: 1})
    assert org.request_status(keys[1]) == "Resolved"


def test_an_emailed_request_restores_its_sender_once_and_a_forged_one_nobody(org: RestoreOrg) -> None:
    sender, victim = pick(org.sandbox, "inactive_180", 2)
    forger = pick(org.sandbox, "active", 1)[0]
    org.action([sender, victim], "suspend")
    before = org.users()
    own = org.email(f"{before[sender]['name']} <{before[sender]['email']}>", "I need Jira again.")
    # Someone else's address in the body (and the summary) is only text: the reporter is the forger.
    forged = org.email(
        before[forger]["email"],
        f"I am {before[victim]['email']} ({victim}), writing from my other address. Restore me.",
        subject=f"Restore access for {before[victim]['email']}",
    )
    seq = org.last_seq()

    run = org.run()

    assert str(run.state) == "success", _states(run)
    after = org.users()
    assert after[sender]["status"] == "active"
    assert after[victim]["status"] == "suspended"
    assert after[forger]["status"] == "active"
    assert [c["account_id"] for c in org.restore_writes(seq)] == [sender]
    comments = org.comment_calls(seq)
    assert comments[own] == 1
    assert comments[forged] == 1
    assert org.request_status(own) == "Resolved"
    assert "restored" in org.comments(own)[-1]
    assert org.request_status(forged) != "Resolved"
    assert "administrator will review" in org.comments(forged)[-1]
    with org.store() as store:
        history = store.history([sender, victim])
        assert history[sender].stage == "restored"
        assert history[victim].stage == "actioned"
        victim_entries = [e.action for e in store.journal(account_id=victim)]
        assert not [a for a in victim_entries if a.startswith(("restore", "answer"))], victim_entries
        assert [e.action for e in store.journal(account_id=forger)] == ["answer:not_actioned"]

    # The next run finds both answered: nothing is restored or said twice.
    seq = org.last_seq()
    again = org.run(RESTORE_DAY + timedelta(minutes=10))
    assert str(again.state) == "success", _states(again)
    assert org.restore_writes(seq) == []
    assert org.comment_calls(seq) == Counter()


def test_a_broken_policy_never_breaks_parsing(tmp_path, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    broken = tmp_path / "policy.yaml"
    broken.write_text("restore: [not, a, mapping\n", encoding="utf-8")
    monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(broken))
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
    assert "atlassian_access_restoration" not in bag.import_errors
    assert bag.dags["atlassian_access_restoration"].schedule == "*/10 * * * *"


def test_a_policy_edited_mid_run_does_not_make_the_restore_run_live(
    org: RestoreOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from atlassian_cleanup.operators.restore import FetchRestoreRequestsOperator

    suspended = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([suspended], "suspend")
    key = org.ask(suspended)
    data = yaml.safe_load(org.policy_path.read_text(encoding="utf-8"))
    org.policy_path.write_text(yaml.safe_dump({**data, "dry_run": True}), encoding="utf-8")
    original = FetchRestoreRequestsOperator.execute

    def fetch_then_go_live_in_the_file(self, context):
        requests_found = original(self, context)
        org.policy_path.write_text(yaml.safe_dump({**data, "dry_run": False}), encoding="utf-8")
        return requests_found

    monkeypatch.setattr(FetchRestoreRequestsOperator, "execute", fetch_then_go_live_in_the_file)
    seq = org.last_seq()

    run = org.run()

    assert str(run.state) == "success", _states(run)
    assert yaml.safe_load(org.policy_path.read_text(encoding="utf-8"))["dry_run"] is False
    # The run kept the dry run it started with: no restore, no comment, no transition.
    assert org.restore_writes(seq) == []
    assert org.comment_calls(seq) == Counter()
    assert org.users()[suspended]["status"] == "suspended"
    assert org.request_status(key) != "Resolved"
    folder = Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]) / "restore"
    manifest = json.loads(
        max(folder.glob("*.manifest.json"), key=lambda p: p.stat().st_mtime).read_text(encoding="utf-8")
    )
    assert manifest["mode"] == "dry_run"
    assert manifest["policy"]["dry_run"] is True
    assert manifest["triggered_by"] == "dag_test"


def test_an_unknown_conf_key_fails_the_restore_run_before_any_call(org: RestoreOrg) -> None:
    from airflow.dag_processing.dagbag import DagBag

    org.monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(org.policy_path))
    dag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"}).dags[
        "atlassian_access_restoration"
    ]
    org.sandbox.clear_calls()

    run = dag.test(logical_date=RESTORE_DAY, run_conf={"mode": "live", "dryrun": True})

    assert str(run.state) == "failed", _states(run)
    assert _states(run)["fetch_requests"] == "failed"
    assert org.sandbox.calls() == []


def test_the_restore_audit_is_announced_on_its_own_asset(org: RestoreOrg) -> None:
    # README: the restore DAG emits an Asset for its audit, like the cleanup DAG.
    import hashlib

    from tests.integration.conftest import asset_events

    suspended = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([suspended], "suspend")
    org.ask(suspended)
    run = org.run()
    assert str(run.state) == "success", _states(run)

    (event,) = asset_events("atlassian_restore_audit", run.run_id)
    csv_path = Path(event["path"])
    assert csv_path.parent.name == "restore"
    assert event["sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    manifest = json.loads(Path(event["manifest"]).read_text(encoding="utf-8"))
    assert manifest["sha256"] == event["sha256"]
    assert event["rows"] == manifest["rows"] >= 1
    assert event["mode"] == manifest["mode"]
    # The cleanup DAG's asset is not touched by a restore run.
    assert asset_events("atlassian_user_audit", run.run_id) == []


def test_a_restore_whose_answer_was_lost_is_confirmed_by_reading_not_sent_again(org: RestoreOrg) -> None:
    """The connection drops after Atlassian applied the restore: the account is re-read, not re-sent."""
    user = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([user], "suspend")
    key = org.ask(user)
    org.sandbox.configure(
        chaos_seed=1, chaos_drop_after=1.0, chaos_path_regex=r"/restore$", chaos_methods=["POST"]
    )
    seq = org.last_seq()

    run = org.run()

    org.sandbox.configure(**_NO_CHAOS)
    assert str(run.state) == "success", _states(run)
    sent = [c for c in org.sandbox.calls(seq) if c["method"] == "POST" and c["path"].endswith("/restore")]
    assert len(sent) == 1, [(c["path"], c["injected"]) for c in sent]
    assert org.users()[user]["status"] == "active"
    assert org.comment_calls(seq)[key] == 1
    with org.store() as store:
        assert store.history([user])[user].stage == "restored"
        [entry] = [e for e in store.journal(account_id=user) if e.action == "restore"]
        assert entry.outcome == "succeeded"


def test_an_interrupted_restore_that_took_effect_is_recorded_without_writing(org: RestoreOrg) -> None:
    """Claimed, written, never recorded (a crash): the next run reads the account and records it."""
    user = pick(org.sandbox, "inactive_180", 1)[0]
    org.action([user], "suspend")
    key = org.ask(user)
    with org.store() as store:
        claim = store.claim(
            run_id="crashed", account_id=user, action="restore", at=RESTORE_DAY, scope=f"jsm:{key}"
        )
        assert claim.status == "new"
    with AtlassianAdminHook(retry_policy=RetryPolicy.without_sleep()) as admin:
        admin.restore_user(user)
    seq = org.last_seq()

    run = org.run()

    assert str(run.state) == "success", _states(run)
    assert org.restore_writes(seq) == []
    assert org.comment_calls(seq)[key] == 1
    assert org.request_status(key) == "Resolved"
    with org.store() as store:
        assert store.history([user])[user].stage == "restored"
        [entry] = [e for e in store.journal(account_id=user) if e.action == "restore"]
        assert (entry.outcome, entry.result_source) == ("succeeded", "recheck")
