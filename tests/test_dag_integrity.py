"""The DAG files import cleanly, fast, with the documented shape and only known pools."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from atlassian_cleanup.settings import ATLASSIAN_POOL

REPO = Path(__file__).resolve().parents[1]
CLEANUP_TASKS = [
    "extract_users",
    "compute_inactivity",
    "approve_plan",
    "notify_warnings",
    "apply_actions",
    "delete_dormant",
    "export_audit",
]


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", ATLASSIAN_POOL})


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "atlassian_user_cleanup" in dagbag.dag_ids


def test_no_warnings_about_missing_pools(dagbag):
    assert dagbag.dag_warnings == set()


def test_unknown_pool_would_be_reported():
    # Proves the check above has teeth: without the pool registered, Airflow flags it.
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool"})
    assert any(ATLASSIAN_POOL in str(warning.message) for warning in bag.dag_warnings)


def test_parse_time_is_small(dagbag):
    # Parse time is measured by Airflow itself; a DAG file doing network or pandas work at import
    # would show up here long before it slows the dag-processor.
    slowest = max(stat.duration.total_seconds() for stat in dagbag.dagbag_stats)
    assert slowest < 5.0


def test_cleanup_tasks_run_in_the_documented_order(dagbag):
    dag = dagbag.dags["atlassian_user_cleanup"]
    assert [task.task_id for task in dag.topological_sort()] == CLEANUP_TASKS
    for upstream, downstream in pairwise(CLEANUP_TASKS):
        assert downstream in dag.get_task(upstream).downstream_task_ids


def test_api_tasks_use_the_atlassian_pool(dagbag):
    dag = dagbag.dags["atlassian_user_cleanup"]
    for task_id in ("extract_users", "apply_actions", "delete_dormant"):
        assert dag.get_task(task_id).pool == ATLASSIAN_POOL


@pytest.mark.parametrize("dag_id", ["atlassian_user_cleanup", "atlassian_access_restoration"])
def test_params_default_to_the_policy_file(dagbag, dag_id):
    from airflow.sdk.exceptions import ParamValidationError

    from atlassian_cleanup.decisions.policy import RUN_ONLY_PARAMS, apply_overrides, keeps_policy, load_policy

    dag = dagbag.dags[dag_id]
    assert "mode" in dag.params
    assert "dry_run" not in dag.params  # a switch toggled on and off again submits false
    # Untouched, every field keeps include/policy.yaml: a default never switches a run live.
    defaults = {name: dag.params[name] for name in dag.params}
    assert all(keeps_policy(value) for value in defaults.values()), defaults
    policy = load_policy(REPO / "include" / "policy.yaml")
    assert apply_overrides(policy, defaults) == policy
    for name in dag.params:
        schema = dag.params.get_param(name).schema
        types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
        assert "boolean" not in types or name in RUN_ONLY_PARAMS, name  # see test_policy
        if "enum" in schema:  # a dropdown: every choice has a readable label
            assert set(schema["values_display"]) == set(schema["enum"]), name
            # The form's dropdown can be cleared (it then submits null): refused, never "live".
            with pytest.raises(ParamValidationError):
                dag.params.get_param(name).resolve(None)


def test_cleanup_dag_schedule(dagbag):
    dag = dagbag.dags["atlassian_user_cleanup"]
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert dag.catchup is False


@pytest.mark.parametrize(
    ("dag_id", "first"),
    [("atlassian_user_cleanup", "extract_users"), ("atlassian_access_restoration", "fetch_requests")],
)
def test_every_later_task_uses_the_policy_of_the_first_task(dagbag, dag_id, first):
    from airflow.sdk import XComArg

    from atlassian_cleanup.operators.cleanup import RUN_POLICY_KEY

    dag = dagbag.dags[dag_id]
    for task in dag.tasks:
        if task.task_id in (first, "approve_plan"):
            continue  # approve_plan judges the gate compute_inactivity made under that policy
        wired = task.run_policy
        assert isinstance(wired, XComArg), task.task_id
        assert (wired.operator.task_id, wired.key) == (first, RUN_POLICY_KEY), task.task_id


def test_audit_tasks_produce_their_own_assets(dagbag):
    from atlassian_cleanup.settings import AUDIT_ASSET, RESTORE_AUDIT_ASSET

    cleanup = dagbag.dags["atlassian_user_cleanup"].get_task("export_audit")
    restore = dagbag.dags["atlassian_access_restoration"].get_task("export_audit")
    assert cleanup.outlets == [AUDIT_ASSET]
    assert restore.outlets == [RESTORE_AUDIT_ASSET]
    assert AUDIT_ASSET.name != RESTORE_AUDIT_ASSET.name
    assert AUDIT_ASSET.uri != RESTORE_AUDIT_ASSET.uri


def test_restoration_dag_shape_and_pools(dagbag):
    restore_tasks = [
        "fetch_requests",
        "evaluate_rules",
        "restore_access",
        "comment_and_resolve",
        "ask_for_approval",
        "announce_approvals",
        "export_audit",
    ]
    assert "atlassian_access_restoration" in dagbag.dag_ids
    dag = dagbag.dags["atlassian_access_restoration"]
    assert [task.task_id for task in dag.topological_sort()] == restore_tasks
    for upstream, downstream in pairwise(restore_tasks):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task_id in restore_tasks[:4]:  # the tasks that call Atlassian
        assert dag.get_task(task_id).pool == ATLASSIAN_POOL
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.schedule == "*/10 * * * *"


def test_requests_no_rule_allows_wait_in_a_dag_of_their_own(dagbag):
    # The restore DAG runs one at a time with a 30-minute run timeout: an admin's wait of hours
    # must live elsewhere, or it would stop every later request from being handled.
    from airflow.providers.standard.operators.hitl import HITLOperator

    from atlassian_cleanup.settings import RESTORE_APPROVAL_ASSET

    restore = dagbag.dags["atlassian_access_restoration"]
    assert not any(isinstance(t, HITLOperator) for t in restore.tasks)
    assert restore.get_task("announce_approvals").outlets == [RESTORE_APPROVAL_ASSET]
    approval = dagbag.dags["atlassian_restore_approval"]
    assert RESTORE_APPROVAL_ASSET.name in repr(approval.timetable.asset_condition)
    assert approval.dagrun_timeout is None
    assert approval.max_active_runs > 1
    wait = approval.get_task("await_admin")
    assert wait.is_mapped  # one prompt per request, each answered on its own
    assert issubclass(wait.operator_class, HITLOperator)
    assert wait.upstream_task_ids == {"collect_approvals"}


def test_dag_files_do_not_import_pandas_at_parse_time():
    # The dag-processor re-parses these files every few minutes: heavy imports (pandas, numpy)
    # belong inside tasks. Checked in a fresh interpreter, since this test process has them loaded.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r}, known_pools={{'default_pool', 'atlassian_api'}})\n"
        "assert bag.import_errors == {}, bag.import_errors\n"
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


#: Tasks that call Atlassian, per DAG: each must be stoppable by an execution_timeout.
ATLASSIAN_TASKS = {
    "atlassian_user_cleanup": ("extract_users", "apply_actions", "delete_dormant"),
    "atlassian_access_restoration": (
        "fetch_requests",
        "evaluate_rules",
        "restore_access",
        "comment_and_resolve",
    ),
}


def _timeouts(bag: DagBag) -> dict[str, object]:
    return {
        f"{dag_id}.{task_id}": bag.dags[dag_id].get_task(task_id).execution_timeout
        for dag_id, task_ids in ATLASSIAN_TASKS.items()
        for task_id in task_ids
    }


def test_every_atlassian_task_has_the_policys_execution_timeout(dagbag):
    from datetime import timedelta

    # include/policy.yaml documents 120 minutes.
    assert set(_timeouts(dagbag).values()) == {timedelta(minutes=120)}


def test_execution_timeout_follows_the_policy_file_and_survives_a_broken_one(tmp_path, monkeypatch):
    from datetime import timedelta

    custom = tmp_path / "policy.yaml"
    custom.write_text("safety:\n  task_timeout_minutes: 9\n", encoding="utf-8")
    monkeypatch.setenv("ATLASSIAN_CLEANUP_POLICY", str(custom))
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", ATLASSIAN_POOL})
    assert bag.import_errors == {}
    assert set(_timeouts(bag).values()) == {timedelta(minutes=9)}

    custom.write_text("safety:\n  task_timeout_minutes: nine\n", encoding="utf-8")
    bag = DagBag(dag_folder=str(REPO / "dags"), known_pools={"default_pool", ATLASSIAN_POOL})
    assert bag.import_errors == {}
    assert set(_timeouts(bag).values()) == {timedelta(minutes=120)}


def test_approval_and_planning_tasks_have_no_execution_timeout(dagbag):
    # A human approval may take a day; the planner calls no API.
    dag = dagbag.dags["atlassian_user_cleanup"]
    assert dag.get_task("approve_plan").execution_timeout is None
    assert dag.get_task("compute_inactivity").execution_timeout is None
