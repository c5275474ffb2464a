"""The whole daily DAG, run by Airflow against the sandbox, checked row by row."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import AS_OF, sandbox_users
from tools.demo import NEVER_ACTIONED

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "atlassian_user_cleanup"
LOGICAL_DATE = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC)
WRITE_PATH_MARKERS = ("/suspend", "/restore", "/memberships", "/lifecycle/", "/group/user")


def _policy_file(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((REPO / "include" / "policy.yaml").read_text(encoding="utf-8"))
    data.setdefault("protected", {})["groups"] = ["vip-executives"]
    data.update(changes)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run_dag(monkeypatch, policy_path: Path, run_conf: dict | None = None):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(policy_path))
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", "atlassian_api"})
    assert bag.import_errors == {}
    return bag.dags[DAG_ID].test(logical_date=LOGICAL_DATE, run_conf=run_conf or {})


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _latest_audit(audit_dir: Path) -> Path:
    files = sorted(audit_dir.glob("*.csv"), key=lambda path: path.stat().st_mtime)
    assert files, f"no audit CSV in {audit_dir}"
    return files[-1]


@pytest.fixture
def clean_audit(audit_dir):
    shutil.rmtree(audit_dir, ignore_errors=True)
    audit_dir.mkdir(parents=True)
    return audit_dir


def test_dry_run_plans_every_user_and_changes_nothing(
    airflow_db, sandbox, sandbox_env, clean_audit, tmp_path, monkeypatch, caplog, capfd
):
    from atlassian_cleanup.reports.audit import verify_audit

    sandbox.clear_calls()
    before = {user["account_id"]: user for user in sandbox_users(sandbox)}

    with caplog.at_level(logging.INFO):
        dag_run = _run_dag(monkeypatch, _policy_file(tmp_path))

    assert str(dag_run.state) == "success", _states(dag_run)
    # Each stage's summary line is there, in words and numbers: no Python dict or Counter.
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    stage_lines = [
        line
        for line in logged.splitlines()
        if any(f"{task}:" in line for task in ("extract_users", "compute_inactivity", "export_audit"))
    ]
    assert any("by status: active " in line for line in stage_lines), logged[-3000:]
    assert any("compute_inactivity: as of" in line and "actions: " in line for line in stage_lines)
    assert not [line for line in stage_lines if "{'" in line or "Counter(" in line], stage_lines
    csv_path = _latest_audit(clean_audit)
    manifest = verify_audit(csv_path)
    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle)}

    # One row per sandbox account, no more, no less, and the manifest agrees.
    assert set(rows) == set(before)
    assert manifest.rows == len(before)
    assert {row["mode"] for row in rows.values()} == {"dry_run"}
    assert {row["as_of"] for row in rows.values()} == {AS_OF.isoformat()}

    for account_id, truth in before.items():
        row = rows[account_id]
        assert row["account_type"] == truth["account_type"], account_id
        populations = set(truth["populations"])
        if populations & NEVER_ACTIONED:
            assert row["proposed_action"] == "none", (populations, row)
            assert row["protected_by"], (populations, row)
        if truth["status"] != "active":
            assert row["proposed_action"] == "none", (truth["status"], row)
        if (
            truth["status"] == "active"
            and truth["last_active_overall"]
            and truth["account_type"] == "atlassian"
        ):
            last = datetime.fromisoformat(truth["last_active_overall"].replace("Z", "+00:00"))
            # Calendar days between the UTC dates (README), not elapsed time rounded down.
            assert int(row["days_inactive"]) == (LOGICAL_DATE.date() - last.astimezone(UTC).date()).days, row
        if row["proposed_action"] != "none":
            assert row["outcome"].startswith("dry run: would"), row
            assert row["reason"], row
        else:
            assert row["outcome"] == "no action"

    actions = Counter(row["proposed_action"] for row in rows.values())
    # Without any warning history, nobody is actioned before a warning: due users get a final one.
    assert actions["warn"] > 0, actions
    assert actions["suspend"] == 0, actions
    for account_id, truth in before.items():
        if truth["populations"][0] == "inactive_400" and truth["status"] == "active":
            assert rows[account_id]["proposed_action"] == "warn", rows[account_id]

    # A dry run writes nothing to Atlassian, and uses only current endpoints.
    calls = sandbox.calls()
    assert calls, "the run made no API calls at all"
    assert not [
        c
        for c in calls
        if c["method"] in {"POST", "DELETE", "PUT"} and any(m in c["path"] for m in WRITE_PATH_MARKERS)
    ]
    assert all(c["status"] not in (404, 410) for c in calls), [c for c in calls if c["status"] in (404, 410)]
    templates = Counter(c["path_template"] for c in calls)
    assert any(t.endswith("/users/search") for t in templates)
    assert not any("last-active-dates" in t for t in templates), "bulk extraction must not loop per user"

    after = {user["account_id"]: user for user in sandbox_users(sandbox)}
    assert {k: v["status"] for k, v in after.items()} == {k: v["status"] for k, v in before.items()}
    assert {k: v["groups"] for k, v in after.items()} == {k: v["groups"] for k, v in before.items()}


def test_invalid_policy_fails_before_any_api_call(
    airflow_db, sandbox, sandbox_env, clean_audit, tmp_path, monkeypatch
):
    sandbox.clear_calls()
    bad = _policy_file(tmp_path, action="supsend", inactivity={"default_days": -3})

    dag_run = _run_dag(monkeypatch, bad)

    assert str(dag_run.state) == "failed"
    assert _states(dag_run)["extract_users"] == "failed"
    assert sandbox.calls() == []
    assert not list(clean_audit.glob("*.csv"))


def test_run_param_overrides_the_policy(airflow_db, sandbox, sandbox_env, clean_audit, tmp_path, monkeypatch):
    dag_run = _run_dag(
        monkeypatch, _policy_file(tmp_path), run_conf={"inactivity_days": 3650, "warning_lead_days": []}
    )

    assert str(dag_run.state) == "success", _states(dag_run)
    with _latest_audit(clean_audit).open(encoding="utf-8", newline="") as handle:
        actions = Counter(row["proposed_action"] for row in csv.DictReader(handle))
    # Nobody in the seeded org has been inactive for ten years.
    assert set(actions) == {"none"}, actions


def test_without_warnings_long_inactive_users_are_planned_for_suspension(
    airflow_db, sandbox, sandbox_env, clean_audit, tmp_path, monkeypatch
):
    dag_run = _run_dag(monkeypatch, _policy_file(tmp_path), run_conf={"warning_lead_days": []})

    assert str(dag_run.state) == "success", _states(dag_run)
    with _latest_audit(clean_audit).open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle)}
    for truth in sandbox_users(sandbox):
        row = rows[truth["account_id"]]
        if truth["populations"][0] == "inactive_400" and truth["status"] == "active":
            assert row["proposed_action"] == "suspend", row
            assert row["outcome"].startswith("dry run: would suspend"), row
        if row["proposed_action"] == "suspend":
            assert int(row["days_inactive"]) >= 90, row


#: The sandbox's unmanaged contractors (partner.example) under a rule of their own.
CONTRACTORS_RULE = {
    "name": "contractors",
    "match": {"email_domains": ["partner.example"], "managed": False},
    "inactivity": {"default_days": 30},
    "warning": {"lead_days": []},
    "action": "remove_product_access",
}


def test_a_scoped_rule_plans_its_population_and_the_audit_names_it(
    airflow_db, sandbox, sandbox_env, clean_audit, tmp_path, monkeypatch
):
    """The sandbox's unmanaged contractors (partner.example) get a rule of their own: 30 days, no
    warnings, product access removed; everybody else stays on the top level (``default``)."""
    contractors = CONTRACTORS_RULE
    truth = {user["account_id"]: user for user in sandbox_users(sandbox)}

    dag_run = _run_dag(monkeypatch, _policy_file(tmp_path, rules=[contractors]))

    assert str(dag_run.state) == "success", _states(dag_run)
    with _latest_audit(clean_audit).open(encoding="utf-8", newline="") as handle:
        rows = {row["account_id"]: row for row in csv.DictReader(handle)}
    selected = {
        account_id
        for account_id, user in truth.items()
        if (user["email"] or "").endswith("@partner.example") and user["claim_status"] == "unmanaged"
    }
    assert selected, "the sandbox seeds unmanaged contractors on partner.example"
    assert {a for a, row in rows.items() if row["policy_rule"] == "contractors"} == selected
    assert {row["policy_rule"] for a, row in rows.items() if a not in selected} == {"default"}
    # Idle contractors lose their product access without a warning; nobody else does.
    removed = {a for a, row in rows.items() if row["proposed_action"] == "remove_product_access"}
    assert removed
    assert removed <= selected, removed - selected
    for account_id in removed:
        row = rows[account_id]
        seen = json.loads(row["product_last_active"])
        # Each product removed was last used 30 days or more before the run (or never).
        for product in row["products_to_remove"].split(";"):
            last = seen[product]
            assert last is None or (LOGICAL_DATE.date() - date.fromisoformat(last[:10])).days >= 30, row
        assert row["outcome"].startswith("dry run: would"), row
    assert not [a for a in selected if rows[a]["proposed_action"] == "warn"]
