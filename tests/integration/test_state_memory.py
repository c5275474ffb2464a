"""Bad input and lost memory never turn into e-mails or writes (live runs against the sandbox).

* The sanity gate judges what the directory itself listed, before Jira's user list fills accounts
  back in: a directory listing that collapses while Jira's list does not stops the run.
* A live run whose state store was deleted or truncated (and so came back empty, with a new
  identity) stops before any e-mail or write; an acknowledgement lets one run start afresh; a dry
  run is never blocked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from atlassian_cleanup.actions.notifications import HEADER_KIND
from tests.integration.conftest import AS_OF, forget_store_witness
from tests.integration.test_live_lifecycle import (  # noqa: F401
    LiveOrg,
    _states,
    _successful,
    live_org,
    postgres_state,
    sqlite_state,
)

pytestmark = pytest.mark.integration


def _state_file() -> Path:
    return Path(json.loads(os.environ["AIRFLOW_CONN_ATLASSIAN_CLEANUP_STATE"])["host"])


def _damage(path: Path, how: str) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(b"")


def _warnings_sent(org: LiveOrg, since: int) -> list:
    return [m for m in org.smtp_sink.messages()[since:] if m[HEADER_KIND] == "warning"]


# --- the gate judges the source ----------------------------------------------------------------------


def test_a_collapsed_directory_stops_the_run_even_when_jira_fills_it_back(live_org, capfd):  # noqa: F811
    org = live_org
    org.write_policy(warning={"lead_days": [3, 1]})
    run = org.run(0, run_conf={"dry_run": True})
    assert str(run.state) == "success", _states(run)

    # The directory search now lists a handful of users; Jira's user list still has everyone.
    org.sandbox.configure(directory_search_max_users=10)
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    capfd.readouterr()
    run = org.run(1)

    assert str(run.state) == "failed"
    states = _states(run)
    assert states["extract_users"] == "success"  # the listing itself looked fine page by page
    assert states["compute_inactivity"] == "failed"
    assert states["notify_warnings"] == "upstream_failed"
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []
    # Jira's list really did fill the table back up: the gate fired on the directory's own count.
    log = capfd.readouterr()
    text = log.out + log.err
    assert "The directory listed 10 users" in text
    assert "Jira's user list added" in text

    # The listing is whole again: the next run goes ahead.
    org.sandbox.configure(directory_search_max_users=None)
    run = org.run(1)
    assert str(run.state) == "success", _states(run)


# --- lost memory is detected ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "witness"),
    [("delete", "variable"), ("truncate", "manifest")],
    ids=["deleted-store-variable-witness", "truncated-store-manifest-witness"],
)
def test_a_live_run_with_a_lost_store_stops_before_any_email_or_write(live_org, damage, witness):  # noqa: F811
    org = live_org
    run = org.run(0)
    assert str(run.state) == "success", _states(run)
    assert _warnings_sent(org, 0), "day 0 warned nobody: the test proves nothing"

    _damage(_state_file(), damage)
    if witness == "manifest":
        # Airflow's metadata lost the record too: the audit manifests still witness the store.
        forget_store_witness()
    org.advance_clock(1)
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    run = org.run(1)

    assert str(run.state) == "failed"
    states = _states(run)
    assert states["compute_inactivity"] == "failed"
    assert {states[t] for t in ("notify_warnings", "apply_actions", "delete_dormant")} == {"upstream_failed"}
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []


def test_acknowledging_a_new_store_lets_one_run_go_ahead(live_org, capfd):  # noqa: F811
    org = live_org
    assert str(org.run(0).state) == "success"
    _damage(_state_file(), "delete")
    org.advance_clock(1)

    # A dry run is never blocked (it writes nothing); it only warns in its log.
    seq = org.last_seq()
    capfd.readouterr()
    run = org.run(1, run_conf={"dry_run": True})
    assert str(run.state) == "success", _states(run)
    assert org.write_calls(seq) == []
    out = capfd.readouterr()
    assert "a live run would stop here" in out.out + out.err
    assert "is not the one the last live run" in out.out + out.err

    # A live run without the acknowledgement stops; a form toggled back (false) is no acknowledgement.
    for conf in ({}, {"acknowledge_new_state_store": False}, {"acknowledge_new_state_store": None}):
        mails = len(org.smtp_sink.messages())
        run = org.run(1, run_conf=conf)
        assert str(run.state) == "failed", conf
        assert _states(run)["compute_inactivity"] == "failed", conf
        assert org.smtp_sink.messages()[mails:] == [], conf
    # A value that is not a boolean is refused before a run exists.
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="acknowledge_new_state_store"):
        org.run(1, run_conf={"acknowledge_new_state_store": "yes"})

    # With the acknowledgement, this one run starts afresh from the empty store (and warns again).
    mails = len(org.smtp_sink.messages())
    run = org.run(1, run_conf={"acknowledge_new_state_store": True})
    assert str(run.state) == "success", _states(run)
    assert _warnings_sent(org, mails), "the acknowledged run sent no warning"

    # The next run needs no acknowledgement: the new store is now the one live runs use, and its
    # memory holds: nothing is warned twice.
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    assert _warnings_sent(org, mails) == []
    assert _successful(org.write_calls(seq)) == []


def test_a_store_restored_from_a_backup_older_than_the_last_live_run_stops(live_org, capfd):  # noqa: F811
    org = live_org
    assert str(org.run(0).state) == "success"
    state = _state_file()
    backup = {suffix: Path(f"{state}{suffix}") for suffix in ("", "-wal", "-shm")}
    saved = {suffix: path.read_bytes() for suffix, path in backup.items() if path.exists()}
    org.advance_clock(1)
    assert str(org.run(1).state) == "success"

    # The day-0 backup comes back: same store id, but day 1's warnings and actions are unknown to it.
    for suffix, path in backup.items():
        path.unlink(missing_ok=True)
        if suffix in saved:
            path.write_bytes(saved[suffix])
    org.advance_clock(1)
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    capfd.readouterr()
    run = org.run(2)

    assert str(run.state) == "failed"
    assert _states(run)["compute_inactivity"] == "failed"
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []
    out = capfd.readouterr()
    assert "has no record of the last live run" in out.out + out.err


@pytest.mark.parametrize("stage", ["notify_warnings", "apply_actions", "delete_dormant"])
def test_a_stage_refuses_a_store_that_did_not_plan_its_run(live_org, stage):  # noqa: F811
    """The embedded store of another worker: it never saw compute_inactivity record this run."""
    from airflow.sdk.exceptions import AirflowFailException

    from atlassian_cleanup.operators.cleanup import (
        ApplyActionsOperator,
        DeleteDormantOperator,
        NotifyWarningsOperator,
        resolve_policy,
        run_policy_record,
    )

    org = live_org
    user = next(u for u in org.users().values() if u["email"] and u["status"] == "active")
    row = {
        "account_id": user["account_id"],
        "email": user["email"],
        "name": "Someone",
        "proposed_action": {"notify_warnings": "warn", "apply_actions": "suspend"}.get(stage, "delete"),
        "planned_action": "suspend",
        "action_date": "2026-12-01",
        "warning_lead_days": 3,
        "reason": "inactive",
    }
    operator_class = {
        "notify_warnings": NotifyWarningsOperator,
        "apply_actions": ApplyActionsOperator,
        "delete_dormant": DeleteDormantOperator,
    }[stage]
    policy_path = str(org.policy_path)
    run_policy = run_policy_record(resolve_policy(policy_path, {}), policy_path, {})
    operator = operator_class(task_id=stage, plan=[row], run_policy=run_policy, policy_path=policy_path)
    context = {"params": {}, "run_id": "scheduled__never_planned_here", "logical_date": None}
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    with pytest.raises(AirflowFailException, match="has no record of this run"):
        operator.execute(context)
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []


@pytest.fixture
def live_org_on_postgres(airflow_db, smtp_sink, tmp_path, monkeypatch, postgres_state):  # noqa: F811
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        yield LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, postgres_state), postgres_state


def test_a_recreated_postgresql_store_stops_the_next_live_run(live_org_on_postgres):
    """The compose set-up: the state database is dropped and created again (an empty volume)."""
    import sqlalchemy as sa

    org, conn = live_org_on_postgres
    assert str(org.run(0).state) == "success"
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as db:
        db.execute(sa.text(f'DROP DATABASE "{conn["schema"]}" WITH (FORCE)'))
        db.execute(sa.text(f'CREATE DATABASE "{conn["schema"]}"'))
    admin.dispose()
    org.advance_clock(1)
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    run = org.run(1)

    assert str(run.state) == "failed"
    assert _states(run)["compute_inactivity"] == "failed"
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []


def test_a_garbled_airflow_record_falls_back_to_the_audit_manifests(live_org):  # noqa: F811
    """Someone edits the Variable by hand: the manifests still witness the store."""
    from airflow.models.variable import Variable

    from atlassian_cleanup.operators.cleanup import store_witness_key
    from atlassian_cleanup.settings import CLEANUP_DAG_ID

    org = live_org
    assert str(org.run(0).state) == "success"
    Variable.set(store_witness_key(CLEANUP_DAG_ID), "{not json")
    _damage(_state_file(), "delete")
    org.advance_clock(1)
    mails, seq = len(org.smtp_sink.messages()), org.last_seq()
    run = org.run(1)

    assert str(run.state) == "failed"
    assert _states(run)["compute_inactivity"] == "failed"
    assert org.smtp_sink.messages()[mails:] == []
    assert org.write_calls(seq) == []
