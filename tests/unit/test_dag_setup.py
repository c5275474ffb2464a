"""Parse-time settings of the DAG files: never an import error, and a failure alert even when the
policy is broken (README "Failure alerts")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from atlassian_cleanup.operators.dag_setup import dag_setup, fallback_alert_problem

REPO = Path(__file__).resolve().parents[2]
SHIPPED_POLICY = REPO / "include" / "policy.yaml"


@pytest.fixture
def policy_file(tmp_path: Path):
    def write(**changes: object) -> Path:
        data = yaml.safe_load(SHIPPED_POLICY.read_text(encoding="utf-8"))
        for dotted, value in changes.items():
            section, _, key = dotted.partition("__")
            if key:
                data.setdefault(section, {})[key] = value
            else:
                data[section] = value
        path = tmp_path / "policy.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return write


def _recipients(setup) -> list[str]:
    (notifier,) = setup.failure_callbacks()
    assert isinstance(notifier, SmtpNotifier)
    return list(notifier.to)


def test_the_alert_goes_to_the_policy_admins(policy_file, monkeypatch):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", "fallback@acme.example")
    path = policy_file(notifications__admin_emails=["it-admins@acme.example"])
    setup = dag_setup(str(path))
    assert _recipients(setup) == ["it-admins@acme.example"]
    assert setup.policy_problem is None


def test_a_broken_policy_still_alerts_the_fallback_recipients(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", " ops@acme.example, , oncall@acme.example ")
    broken = tmp_path / "policy.yaml"
    broken.write_text("dry_run: [", encoding="utf-8")
    setup = dag_setup(str(broken))
    assert _recipients(setup) == ["ops@acme.example", "oncall@acme.example"]
    assert setup.policy_problem
    # The defaults apply until the policy is fixed; the run's first task reports the error.
    assert setup.atlassian_task_timeout == timedelta(minutes=120)
    assert setup.restore_schedule == "*/10 * * * *"


def test_a_missing_policy_alerts_the_fallback_too(tmp_path, monkeypatch):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", "ops@acme.example")
    assert _recipients(dag_setup(str(tmp_path / "missing.yaml"))) == ["ops@acme.example"]


def test_a_policy_without_admins_uses_the_fallback(monkeypatch):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", "ops@acme.example")
    # The shipped policy names no admin_emails.
    assert _recipients(dag_setup(str(SHIPPED_POLICY))) == ["ops@acme.example"]


def test_nobody_to_tell_means_no_callback_not_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", raising=False)
    broken = tmp_path / "policy.yaml"
    broken.write_text("safety:\n  task_timeout_minutes: 0\n", encoding="utf-8")
    assert dag_setup(str(broken)).failure_callbacks() == []
    assert dag_setup(str(SHIPPED_POLICY)).failure_callbacks() == []


def test_timeout_and_schedule_come_from_the_policy(policy_file):
    path = policy_file(safety__task_timeout_minutes=7, restore__schedule="*/5 * * * *")
    setup = dag_setup(str(path))
    assert setup.atlassian_task_timeout == timedelta(minutes=7)
    assert setup.restore_schedule == "*/5 * * * *"


def test_both_dags_parse_with_a_broken_policy_and_alert_the_fallback(tmp_path, monkeypatch):
    broken = tmp_path / "policy.yaml"
    broken.write_text("inactivity:\n  days: -3\n", encoding="utf-8")
    monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(broken))
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", "ops@acme.example")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    for dag_id in ("atlassian_user_cleanup", "atlassian_access_restoration"):
        dag = bag.dags[dag_id]
        for task in dag.tasks:
            (notifier,) = task.on_failure_callback
            assert list(notifier.to) == ["ops@acme.example"], (dag_id, task.task_id)


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("ops@acme.example; security@acme.example", ["ops@acme.example; security@acme.example"]),
        ("ops@acme.example, security at acme.example", ["security at acme.example"]),
        ("ops@acme.example,<oncall@acme.example>", ["<oncall@acme.example>"]),
    ],
)
def test_a_mistyped_fallback_address_is_named_and_left_out(tmp_path, monkeypatch, value, bad):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", value)
    problem = fallback_alert_problem()
    assert problem is not None
    for entry in bad:
        assert repr(entry) in problem
    assert "Separate addresses with commas" in problem
    # The alert still reaches every mailable address meanwhile.
    setup = dag_setup(str(tmp_path / "missing.yaml"))
    good = [part.strip() for part in value.split(",") if part.strip() not in bad]
    assert _recipients(setup) == good if good else setup.failure_callbacks() == []


def test_a_clean_fallback_variable_is_no_problem(monkeypatch):
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", " ops@acme.example, , oncall@acme.example ")
    assert fallback_alert_problem() is None
    monkeypatch.delenv("ATLASSIAN_CLEANUP_ALERT_EMAILS")
    assert fallback_alert_problem() is None
