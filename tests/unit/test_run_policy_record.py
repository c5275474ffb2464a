"""The run's policy record (what travels from the first task to the others) and the run's record."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.decisions.policy import LEGACY_PARAMS, PARAM_SCHEMAS
from atlassian_cleanup.operators.cleanup import (
    PlanApprovalOperator,
    policy_of_run,
    resolve_policy,
    run_policy_record,
    run_record,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = str(REPO / "include" / "policy.yaml")


def test_the_record_rebuilds_the_exact_policy_and_lists_the_overrides():
    params = {"mode": "live", "max_actions_per_run": 7, "inactivity_days": None, "action": "policy"}
    policy = resolve_policy(SHIPPED, params)
    record = run_policy_record(policy, SHIPPED, params)
    assert policy_of_run(record) == policy
    assert policy_of_run(record).dry_run is False
    assert record["overrides"] == {"mode": "live", "max_actions_per_run": 7}
    assert record["source"] == SHIPPED


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["policy"].update(dry_run=False),  # edited without its hash: refused
        lambda r: r["policy"]["safety"].update(max_actions_per_run=100000),
        lambda r: r.update(sha256="0" * 64),
        lambda r: r.pop("policy"),
    ],
)
def test_a_damaged_record_stops_the_task(damage):
    record = run_policy_record(resolve_policy(SHIPPED, {}), SHIPPED, {})
    damaged = copy.deepcopy(record)
    damage(damaged)
    with pytest.raises(AirflowFailException, match="nothing was changed"):
        policy_of_run(damaged)


@pytest.mark.parametrize("record", [None, {}, "policy", []])
def test_a_missing_record_stops_the_task(record):
    with pytest.raises(AirflowFailException, match="missing"):
        policy_of_run(record)


def test_unknown_conf_keys_fail_before_the_policy_is_read(tmp_path):
    known = list(PARAM_SCHEMAS)
    with pytest.raises(AirflowFailException) as caught:
        # The file does not even exist: the conf is judged first.
        resolve_policy(str(tmp_path / "missing.yaml"), {}, conf={"dryrun": True}, known_params=known)
    assert "'dryrun'" in str(caught.value)
    assert "did you mean 'dry_run'?" in str(caught.value)
    assert set(LEGACY_PARAMS) == {"dry_run"}


def _context(run_type: object, user: str | None) -> dict:
    return {"dag_run": SimpleNamespace(run_type=run_type, triggering_user_name=user)}


def test_the_run_record_names_who_started_it():
    record = {"overrides": {"mode": "live"}, "source": "/p.yaml"}
    scheduled = run_record(_context(SimpleNamespace(value="scheduled"), None), record)
    assert (scheduled["triggered_by"], scheduled["run_type"]) == ("scheduler", "scheduled")
    manual = run_record(_context("manual", "alice"), record, {"decision": "not_needed"})
    assert manual["triggered_by"] == "alice"
    assert manual["overrides"] == {"mode": "live"}
    assert manual["policy_file"] == "/p.yaml"
    assert manual["approval"] == {"decision": "not_needed"}
    assert run_record(_context("manual", "alice"), None)["overrides"] == {}


@pytest.mark.parametrize(
    ("event", "decision", "by", "summary"),
    [
        (
            {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "alice"}},
            "approved",
            "alice",
            "approved by alice at 2026-11-26T09:12:03Z",
        ),
        (
            {"chosen_options": ["Reject"], "responded_by_user": {"id": "8", "name": "bob"}},
            "rejected",
            "bob",
            "rejected by bob at 2026-11-26T09:12:03Z",
        ),
        (
            {"chosen_options": ["Reject"], "responded_by_user": None},
            "rejected",
            None,
            "rejected: no answer within the timeout (2026-11-26T09:12:03Z)",
        ),
        (
            {
                "chosen_options": ["Approve"],
                "responded_by_user": None,
                "error": "timeout",
                "error_type": "timeout",
            },
            "rejected",
            None,
            "rejected: no answer within the timeout (2026-11-26T09:12:03Z)",
        ),
    ],
)
def test_the_approval_record_says_who_decided_what_and_when(event, decision, by, summary):
    operator = PlanApprovalOperator(task_id="approve_plan", gate={})
    at = datetime(2026, 11, 26, 9, 12, 3, tzinfo=UTC)
    record = operator.decision_of({**event, "responded_at": at})
    assert record == {
        "required": True,
        "decision": decision,
        "by": by,
        "at": "2026-11-26T09:12:03Z",
        "summary": summary,
    }
