"""
### Atlassian inactive-user cleanup

Daily: pull every user of the organisation with per-product last-active dates, plan who is
inactive under `include/policy.yaml` (overridable per run in the trigger form), warn, act, delete
dormant accounts, and write an audit CSV with a SHA-256 manifest.

**Dry run is the default**: the plan and the audit CSV are produced, nothing in Atlassian changes.
Live, `approve_plan` stops the run before the first write when the plan exceeds the safety caps
(fail, or wait for approval in the UI, as the policy says), and every write is journalled in the
state store so retries never warn, suspend or delete anyone twice.
Each task log has one summary line with counts; the audit CSV has one row per user with the rule
that fired and a plain-language reason.

Connections: `atlassian_admin` (org Admin API key, `org_id` extra), `atlassian_site` (Jira site,
email + API token), `smtp_default` (your relay: warning e-mails, the admin digest and failure
alerts to the policy's `notifications.admin_emails`). See the README for the policy keys and how
to point this at a real org.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, chain, dag

from atlassian_cleanup.decisions.policy import PARAM_SCHEMAS
from atlassian_cleanup.operators.cleanup import (
    RUN_POLICY_KEY,
    ApplyActionsOperator,
    ComputeInactivityOperator,
    DeleteDormantOperator,
    ExportAuditOperator,
    ExtractUsersOperator,
    NotifyWarningsOperator,
    PlanApprovalOperator,
)
from atlassian_cleanup.operators.dag_setup import dag_setup
from atlassian_cleanup.settings import (
    ATLASSIAN_POOL,
    AUDIT_ASSET,
    CLEANUP_DAG_ID,
    audit_dir,
)

#: Policy path, task timeout and failure alert, read once at parse time (never fails parsing).
SETUP = dag_setup()
POLICY_PATH = SETUP.policy_path
#: ``execution_timeout`` of the tasks that call Atlassian (policy ``safety.task_timeout_minutes``).
ATLASSIAN_TASK_TIMEOUT = SETUP.atlassian_task_timeout


@dag(
    dag_id=CLEANUP_DAG_ID,
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    doc_md=__doc__,
    tags=["atlassian", "user-cleanup"],
    params={name: Param(**schema) for name, schema in PARAM_SCHEMAS.items()},
    default_args={
        "owner": "platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "on_failure_callback": SETUP.failure_callbacks(),
    },
)
def atlassian_user_cleanup() -> None:
    # Every task that calls Atlassian shares the pool and the policy's timeout (as in the restore DAG).
    calls_atlassian = {"pool": ATLASSIAN_POOL, "execution_timeout": ATLASSIAN_TASK_TIMEOUT}
    extract = ExtractUsersOperator(
        task_id="extract_users",
        policy_path=POLICY_PATH,
        **calls_atlassian,
    )
    # The policy is resolved once, by the first task; every later task uses that copy.
    run_policy = extract.output[RUN_POLICY_KEY]
    compute = ComputeInactivityOperator(
        task_id="compute_inactivity", users=extract.output, run_policy=run_policy, audit_dir=audit_dir()
    )
    approve = PlanApprovalOperator(task_id="approve_plan", gate=compute.output["gate"])
    notify = NotifyWarningsOperator(
        task_id="notify_warnings", plan=compute.output, run_policy=run_policy, policy_path=POLICY_PATH
    )
    apply = ApplyActionsOperator(
        task_id="apply_actions",
        plan=compute.output,
        run_policy=run_policy,
        policy_path=POLICY_PATH,
        **calls_atlassian,
    )
    delete = DeleteDormantOperator(
        task_id="delete_dormant",
        plan=compute.output,
        run_policy=run_policy,
        policy_path=POLICY_PATH,
        **calls_atlassian,
    )
    export = ExportAuditOperator(
        task_id="export_audit",
        plan=compute.output,
        outcomes=[notify.output, apply.output, delete.output],
        run_policy=run_policy,
        approval=approve.output,
        audit_dir=audit_dir(),
        policy_path=POLICY_PATH,
        outlets=[AUDIT_ASSET],
        # The audit is written whatever happened upstream: a failed or rejected run is exactly
        # the one an auditor needs to see.
        trigger_rule=TriggerRule.ALL_DONE,
    )
    chain(extract, compute, approve, notify, apply, delete, export)


atlassian_user_cleanup()
