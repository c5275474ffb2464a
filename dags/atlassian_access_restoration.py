"""
### Atlassian self-service access restoration

Every few minutes (policy `restore.schedule`, default every 10 minutes): read the open "Restore my
access" requests of the configured JSM service desk, decide per request with the policy's rules
(`restore.allowed_domains`, `restore.allowed_groups`, judged on the groups the user had *before*
the cleanup acted), restore the reporter's own account the way it was actioned (directory restore,
lifecycle enable, groups re-added, deletion cancelled within Atlassian's 14-day window), answer the
request with a public comment and resolve it. Requests no rule allows are answered, left open,
and (live runs) put to an admin in Airflow's Required Actions by the `atlassian_restore_approval`
DAG (scheduled by the `atlassian_restore_approvals` Asset this DAG announces); a later run
restores an approved one, answers a rejected one, or says nobody answered within
`restore.approval_timeout_hours`. Each request is handled once (journalled in the state store); at most
`restore.max_restores_per_run` restores per run. Dry run (the policy's `dry_run`, or the run's
`mode`) changes nothing. The policy is read once, by the run's first task, and that copy governs
the whole run.

Restore on demand: trigger with `accounts` (account ids or e-mail addresses) and `restore_reason`.
Such a run reads no JSM request; every entry is checked against the directory and the state store
before the first write (one bad entry fails the run with nothing changed), then each account is
restored the way this tool actioned it, journalled once, and audited with who triggered the run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, chain, dag

from atlassian_cleanup.decisions.policy import PARAM_SCHEMAS
from atlassian_cleanup.decisions.policy_params import RESTORE_PARAM_SCHEMAS
from atlassian_cleanup.operators.cleanup import RUN_POLICY_KEY
from atlassian_cleanup.operators.dag_setup import dag_setup
from atlassian_cleanup.operators.restore import (
    CommentAndResolveOperator,
    EvaluateRestoreRulesOperator,
    ExportRestoreAuditOperator,
    FetchRestoreRequestsOperator,
    RestoreAccessOperator,
)
from atlassian_cleanup.operators.restore_approval import AnnounceApprovalsOperator, AskForApprovalOperator
from atlassian_cleanup.settings import (
    ATLASSIAN_POOL,
    RESTORE_APPROVAL_ASSET,
    RESTORE_AUDIT_ASSET,
    RESTORE_DAG_ID,
    audit_dir,
)

#: Policy path, task timeout, schedule and failure alert, read once at parse time (never fails parsing).
SETUP = dag_setup()
POLICY_PATH = SETUP.policy_path
#: ``execution_timeout`` of the tasks that call Atlassian (policy ``safety.task_timeout_minutes``).
ATLASSIAN_TASK_TIMEOUT = SETUP.atlassian_task_timeout


@dag(
    dag_id=RESTORE_DAG_ID,
    schedule=SETUP.restore_schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    doc_md=__doc__,
    tags=["atlassian", "user-cleanup", "restore"],
    # Like the daily DAG, a run may choose its mode; the default keeps the policy's dry_run. Named
    # accounts make it a restore on demand.
    params={
        "mode": Param(**PARAM_SCHEMAS["mode"]),
        **{name: Param(**schema) for name, schema in RESTORE_PARAM_SCHEMAS.items()},
    },
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": SETUP.failure_callbacks(),
    },
)
def atlassian_access_restoration() -> None:
    calls_atlassian = {"pool": ATLASSIAN_POOL, "execution_timeout": ATLASSIAN_TASK_TIMEOUT}
    fetch = FetchRestoreRequestsOperator(task_id="fetch_requests", policy_path=POLICY_PATH, **calls_atlassian)
    # The policy is resolved once, by the first task; every later task uses that copy.
    run_policy = fetch.output[RUN_POLICY_KEY]
    evaluate = EvaluateRestoreRulesOperator(
        task_id="evaluate_rules", requests=fetch.output, run_policy=run_policy, **calls_atlassian
    )
    restore = RestoreAccessOperator(
        task_id="restore_access", decisions=evaluate.output, run_policy=run_policy, **calls_atlassian
    )
    answer = CommentAndResolveOperator(
        task_id="comment_and_resolve", decisions=restore.output, run_policy=run_policy, **calls_atlassian
    )
    # Requests no rule allows: an admin is asked once per request; the wait is another DAG's.
    ask = AskForApprovalOperator(task_id="ask_for_approval", decisions=answer.output, run_policy=run_policy)
    announce = AnnounceApprovalsOperator(
        task_id="announce_approvals",
        asked=ask.output["asked"],
        run_policy=run_policy,
        outlets=[RESTORE_APPROVAL_ASSET],
    )
    export = ExportRestoreAuditOperator(
        task_id="export_audit",
        stages=[evaluate.output, restore.output, answer.output, ask.output],
        run_policy=run_policy,
        audit_dir=audit_dir(),
        outlets=[RESTORE_AUDIT_ASSET],
        # The audit is written whatever happened upstream, and fails the run last if a task failed.
        trigger_rule=TriggerRule.ALL_DONE,
    )
    chain(fetch, evaluate, restore, answer, ask, announce, export)


atlassian_access_restoration()
