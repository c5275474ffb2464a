"""The user table and the plan travel between tasks as Parquet files (operators/handoff.py).

The golden test compares the JSON-record hand-off earlier releases used with the Parquet one on the
same org: the stages get the same rows and the audit CSV and its manifest come out byte-identical.
The other tests attack the controls: a missing or altered file, a retried task, two runs of one
logical date, retention, and a misspelt object storage setting.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from atlassian_cleanup.action_kinds import DELETE, EMAIL_ACTIONS, LIFECYCLE_ACTIONS
from atlassian_cleanup.decisions.planner import plan_actions, plan_to_records, summarise_plan
from atlassian_cleanup.decisions.policy import load_policy
from atlassian_cleanup.decisions.user_table import UserTable
from atlassian_cleanup.operators import handoff
from atlassian_cleanup.operators.cleanup import ExportAuditOperator
from atlassian_cleanup.outcomes import StageOutcome
from atlassian_cleanup.reports.audit import audit_rows, verify_audit, write_audit
from atlassian_cleanup.reports.seats import seat_figures
from tools.bench_children import synthetic_users
from tools.bench_measure import AS_OF

SHIPPED = Path(__file__).resolve().parents[2] / "include" / "policy.yaml"
RUN_ID = "scheduled__2026-11-26T00:00:00+00:00"


@pytest.fixture(autouse=True)
def _local_storage(tmp_path, monkeypatch):
    """No object storage configured: the files go under $AIRFLOW_HOME."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", raising=False)


def context(run_id: str = RUN_ID, task_id: str = "compute_inactivity", dag_id: str = "cleanup") -> Any:
    return {"ti": SimpleNamespace(dag_id=dag_id, task_id=task_id), "run_id": run_id}


def org(count: int = 3000) -> UserTable:
    table = UserTable()
    for chunk in synthetic_users(count, 11, chunk=1000):
        table.extend(chunk)
    # Hand-made users with the awkward values: no name, upper-case e-mail, no e-mail, a formula.
    table.extend(
        [
            {"account_id": "odd-1", "email": " Ann@Example.COM", "name": None, "account_type": "atlassian"},
            {"account_id": "odd-2", "email": None, "name": "=HYPERLINK(1)", "groups": ["g", "h"]},
        ]
    )
    return table


def test_the_user_table_comes_back_equal_from_its_file():
    table = org(1500)
    reference = handoff.write_table(handoff.users_to_arrow(table), context(task_id="extract_users"), "users")
    back = handoff.read_users(reference)
    assert list(back.records()) == list(table.records())
    assert back.email_keys() == table.email_keys() == {1500: "ann@example.com"}
    assert back.value_counts("status") == table.value_counts("status")
    # The reference is small: it is all the metadata database holds.
    assert len(json.dumps(reference)) < 1024
    assert reference["rows"] == 1502


def test_an_older_runs_json_table_is_still_read():
    table = org(200)
    assert list(handoff.read_users(table.to_json()).records()) == list(table.records())


def _old_audit(records: list[dict[str, Any]], outcomes: dict[str, StageOutcome], policy: Any, folder: Path):
    """What export_audit did with the plan as JSON records (the release before the Parquet files)."""
    summary = summarise_plan(records)
    rows = list(audit_rows(records, outcomes, {}))
    summary["results"] = dict(sorted(Counter(row["result"] for row in rows).items()))
    summary["seats"] = seat_figures(
        rows, {row["account_id"]: row["result"] for row in rows}, policy.licensing, dry_run=True
    )
    return write_audit(
        rows,
        folder,
        run_id=RUN_ID,
        as_of=AS_OF.date().isoformat(),
        mode="dry_run",
        logical_date="2026-11-26T00:00:00Z",  # AS_OF, as the DAG run would give it
        summary=summary,
        policy=policy.to_dict(),
        run={"triggered_by": "scheduler"},
    )


def test_golden_json_records_and_parquet_give_the_same_stages_and_audit(tmp_path):
    policy = load_policy(SHIPPED)
    table = org()
    users_ref = handoff.write_table(handoff.users_to_arrow(table), context(task_id="extract_users"), "users")
    frame = plan_actions(handoff.read_users(users_ref), policy, AS_OF)
    records = plan_to_records(plan_actions(table, policy, AS_OF))
    assert plan_to_records(frame) == records
    reference = handoff.write_table(handoff.plan_to_arrow(frame), context(), "plan")
    assert reference["rows"] == len(records)

    outcomes: dict[str, StageOutcome] = {}
    stages = (frozenset(EMAIL_ACTIONS), frozenset(LIFECYCLE_ACTIONS), frozenset({DELETE}))
    for actions in stages:
        old = [row for row in records if row.get("proposed_action") in actions]
        new = handoff.plan_rows(reference, actions)
        assert new == old
        for index, row in enumerate(new):  # a mix of results, as a live run would leave
            result = ("done", "failed", "reported")[index % 3]
            outcomes[row["account_id"]] = StageOutcome(result, f"{result} for {row['account_id']}")
    assert len(outcomes) > 100  # the org has warnings and actions to compare

    old = _old_audit(records, outcomes, policy, tmp_path / "old")
    task = ExportAuditOperator(
        task_id="export_audit",
        plan=None,
        outcomes=[],
        run_policy=None,
        audit_dir=str(tmp_path / "new"),
        policy_path=str(SHIPPED),
    )
    run_context = {**context(task_id="export_audit"), "logical_date": AS_OF}
    new, summary = task._write_audit(
        run_context, policy, reference, outcomes, [], None, {"triggered_by": "scheduler"}
    )
    old_csv, new_csv = Path(old.csv_path).read_bytes(), Path(new.csv_path).read_bytes()
    assert new_csv == old_csv
    assert (
        (new.rows, new.sha256)
        == (old.rows, old.sha256)
        == (len(records), hashlib.sha256(old_csv).hexdigest())
    )
    assert new.summary == old.summary == summary
    assert verify_audit(new.csv_path).rows == len(records)


def test_the_stage_reads_only_its_rows_and_nothing_for_no_actions():
    reference = handoff.write_table(
        handoff.plan_to_arrow(plan_actions(org(500), load_policy(SHIPPED), AS_OF)), context(), "plan"
    )
    rows = handoff.plan_rows(reference, {"warn"})
    assert rows
    assert {row["proposed_action"] for row in rows} == {"warn"}
    assert handoff.plan_rows(reference, set()) == []


def _plan_reference() -> dict[str, Any]:
    return handoff.write_table(
        handoff.plan_to_arrow(plan_actions(org(300), load_policy(SHIPPED), AS_OF)), context(), "plan"
    )


def _file(reference: dict[str, Any]) -> Path:
    return Path(reference["path"].removeprefix("file://"))


def test_a_missing_plan_file_fails_the_stage_instead_of_acting_on_nothing():
    reference = _plan_reference()
    _file(reference).unlink()  # a wiped object store, or another worker's local folder
    with pytest.raises(AirflowFailException, match=r"plan file .* is missing.*xcom_objectstorage_path"):
        handoff.plan_rows(reference, set(LIFECYCLE_ACTIONS))
    with pytest.raises(AirflowFailException, match="is missing"):
        list(handoff.iter_plan(reference))


def test_an_altered_plan_file_fails_with_both_checksums():
    reference = _plan_reference()
    other = handoff.write_table(
        handoff.plan_to_arrow(plan_actions(org(100), load_policy(SHIPPED), AS_OF)), context(), "other"
    )
    _file(reference).write_bytes(_file(other).read_bytes())  # a valid Parquet file, not this one
    with pytest.raises(AirflowFailException, match=f"does not match its SHA-256.*{other['sha256']}"):
        handoff.plan_rows(reference, {"warn"})


@pytest.mark.parametrize("broken", [{"rows": 7}, {"path": None}, {"sha256": None}])
def test_a_damaged_reference_fails_clearly(broken):
    reference = {**_plan_reference(), **broken}
    reference = {key: value for key, value in reference.items() if value is not None}
    with pytest.raises(AirflowFailException, match=r"reference says 7|lacks (path|sha256)"):
        handoff.plan_rows(reference, {"warn"})


def test_a_retried_task_writes_the_same_file_again():
    first = _plan_reference()
    second = _plan_reference()
    assert first == second
    assert sorted(p.name for p in _file(first).parent.iterdir()) == ["compute_inactivity.plan.parquet"]


def test_runs_of_one_logical_date_never_share_a_folder():
    a = handoff.run_folder("cleanup", "manual__2026-09-14T00:00:00+00:00")
    b = handoff.run_folder("cleanup", "scheduled__2026-09-14T00:00:00+00:00")
    c = handoff.run_folder("cleanup", "manual__2026-09-14T00_00_00_00_00")  # same after cleaning
    assert len({str(a), str(b), str(c)}) == 3
    assert str(a).startswith(str(handoff.dag_folder("cleanup")))


def test_retention_keeps_this_run_and_removes_earlier_ones_of_this_dag_only():
    for run_id in ("run-1", "run-2", "run-3"):
        handoff.write_table(
            handoff.plan_to_arrow(plan_actions(org(20), load_policy(SHIPPED), AS_OF)),
            context(run_id=run_id),
            "plan",
        )
    other_dag = handoff.write_table(
        handoff.users_to_arrow(org(20)), context(run_id="run-1", dag_id="other"), "users"
    )
    assert handoff.remove_earlier_runs("cleanup", "run-3") == 2
    folder = Path(str(handoff.dag_folder("cleanup")).removeprefix("file://"))
    assert [p.name for p in folder.iterdir()] == [handoff.run_folder("cleanup", "run-3").name]
    assert _file(other_dag).is_file()
    assert handoff.remove_earlier_runs("never-ran", "run-1") == 0


def test_the_files_go_to_the_xcom_object_storage_when_it_is_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", f"file://{tmp_path}/xcom")
    reference = handoff.write_table(handoff.users_to_arrow(org(10)), context(), "users")
    assert reference["path"].startswith(f"file://{tmp_path}/xcom/{handoff.FOLDER}/")
    assert _file(reference).stat().st_size == reference["bytes"]


def test_without_object_storage_the_files_go_under_airflow_home(tmp_path):
    reference = handoff.write_table(handoff.users_to_arrow(org(10)), context(), "users")
    assert reference["path"].startswith(f"file://{tmp_path / 'home' / handoff.FOLDER}/")


def test_a_misspelt_object_storage_protocol_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", "fiel:///opt/airflow/xcom")
    with pytest.raises(AirflowFailException, match=r"xcom_objectstorage_path = 'fiel:///opt/airflow/xcom'"):
        handoff.write_table(handoff.users_to_arrow(org(10)), context(), "users")


def test_the_first_task_finds_an_unusable_storage_before_reading_anything(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should go")
    monkeypatch.setenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", f"file://{blocker}")
    with pytest.raises(AirflowFailException, match=r"cannot be created.*nothing was called"):
        handoff.prepare_run_folder(context(task_id="extract_users"))
    monkeypatch.setenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH", "fiel:///opt/airflow/xcom")
    with pytest.raises(AirflowFailException, match="xcom_objectstorage_path = 'fiel:"):
        handoff.prepare_run_folder(context(task_id="extract_users"))
    monkeypatch.delenv("AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH")
    assert Path(str(handoff.prepare_run_folder(context())).removeprefix("file://")).is_dir()


def test_the_plan_is_streamed_in_batches_in_plan_order(monkeypatch):
    monkeypatch.setattr(handoff, "BATCH_ROWS", 7)
    reference = _plan_reference()
    streamed = handoff.iter_plan(reference, ["account_id", "proposed_action"])
    assert not isinstance(streamed, list)
    whole = handoff.read_table(reference, "plan", columns=["account_id", "proposed_action"]).to_pylist()
    assert list(streamed) == whole


def _dry_run_record() -> dict[str, Any]:
    from atlassian_cleanup.operators.cleanup import resolve_policy, run_policy_record

    policy = resolve_policy(str(SHIPPED), {"mode": "dry_run"})
    return run_policy_record(policy, str(SHIPPED), {"mode": "dry_run"})


def test_a_stage_given_the_plan_file_plans_its_rows_and_a_wiped_store_fails_it():
    from atlassian_cleanup.operators.cleanup import ApplyActionsOperator, NotifyWarningsOperator

    records = plan_to_records(plan_actions(org(300), load_policy(SHIPPED), AS_OF))
    reference = _plan_reference()  # the same org
    run_context = {**context(task_id="notify_warnings"), "params": {}, "logical_date": None}
    task = NotifyWarningsOperator(
        task_id="notify_warnings", plan=reference, run_policy=_dry_run_record(), policy_path=str(SHIPPED)
    )
    from_file = task.execute(run_context)
    task.plan = records
    assert task.execute(run_context) == from_file  # the same outcomes as from the JSON records
    assert from_file  # the shipped policy warns part of the org

    _file(reference).unlink()
    apply = ApplyActionsOperator(
        task_id="apply_actions", plan=reference, run_policy=_dry_run_record(), policy_path=str(SHIPPED)
    )
    with pytest.raises(AirflowFailException, match="is missing"):
        apply.execute(run_context)


class _TaskInstance(SimpleNamespace):
    def get_task_states(self, **_: Any) -> dict[str, Any]:
        return {}  # no upstream task failed


def test_a_successful_export_keeps_its_run_files_and_removes_earlier_runs(tmp_path):
    from atlassian_cleanup.operators.cleanup import ExportAuditOperator

    earlier = handoff.write_table(handoff.users_to_arrow(org(10)), context(run_id="earlier"), "users")
    reference = _plan_reference()
    task = ExportAuditOperator(
        task_id="export_audit",
        plan=reference,
        outcomes=[],
        run_policy=_dry_run_record(),
        audit_dir=str(tmp_path / "audit"),
        policy_path=str(SHIPPED),
    )
    run_context = {
        "ti": _TaskInstance(dag_id="cleanup", task_id="export_audit"),
        "run_id": RUN_ID,
        "params": {},
        "logical_date": AS_OF,
        "dag_run": None,
    }
    result = task.execute(run_context)
    assert result["rows"] == reference["rows"]
    assert verify_audit(result["csv_path"]).sha256 == result["sha256"]
    assert _file(reference).is_file()  # this run's files stay: its tasks can still be cleared
    assert not _file(earlier).exists()


class _FailedRun(_TaskInstance):
    def get_task_states(self, **_: Any) -> dict[str, Any]:
        return {RUN_ID: {"apply_actions": "failed"}}


def test_a_failed_run_removes_no_files(tmp_path):
    from atlassian_cleanup.operators.cleanup import ExportAuditOperator

    earlier = handoff.write_table(handoff.users_to_arrow(org(10)), context(run_id="earlier"), "users")
    task = ExportAuditOperator(
        task_id="export_audit",
        plan=_plan_reference(),
        outcomes=[],
        run_policy=_dry_run_record(),
        audit_dir=str(tmp_path / "audit"),
        policy_path=str(SHIPPED),
    )
    run_context = {
        "ti": _FailedRun(dag_id="cleanup", task_id="export_audit"),
        "run_id": RUN_ID,
        "params": {},
        "logical_date": AS_OF,
        "dag_run": None,
    }
    with pytest.raises(AirflowFailException, match="failed in apply_actions"):
        task.execute(run_context)
    assert _file(earlier).is_file()  # kept until a run succeeds
