"""
### Atlassian restore approvals (human-in-the-loop)

Scheduled by the `atlassian_restore_approvals` Asset, which the restore DAG announces when a live
run asked an admin about JSM restore requests that no rule (`restore.allowed_domains`,
`restore.allowed_groups`) allows. `collect_approvals` takes every asked request that is still
waiting and has no prompt yet (each claimed once in the state store), and `await_admin` puts one
prompt per request in **Required Actions** (Browse ▸ Required Actions, or the task's page): who
asks, the account, why no rule allowed it, what the restore would do, the request's link.

**Approve**: the restore DAG's next run restores the account through the journalled path (same
cap, same dry run) and resolves the request with a comment naming the approver. **Reject**: the
request is answered and resolved. No answer within `restore.approval_timeout_hours` of the ask:
the request is answered that nobody approved it in time and stays open. The answer is journalled
once per request; the wait holds no pool slot and never blocks the restore DAG.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from atlassian_cleanup.operators.dag_setup import dag_setup
from atlassian_cleanup.operators.restore_approval import CollectApprovalsOperator, RestoreApprovalOperator
from atlassian_cleanup.settings import RESTORE_APPROVAL_ASSET, RESTORE_APPROVAL_DAG_ID

SETUP = dag_setup()
POLICY_PATH = SETUP.policy_path


@dag(
    dag_id=RESTORE_APPROVAL_DAG_ID,
    schedule=[RESTORE_APPROVAL_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Each run waits for its own prompts (up to restore.approval_timeout_hours); runs started by
    # later asks must not queue behind it.
    max_active_runs=64,
    doc_md=__doc__,
    tags=["atlassian", "user-cleanup", "restore"],
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(minutes=1),
        "on_failure_callback": SETUP.failure_callbacks(),
    },
)
def atlassian_restore_approval() -> None:
    collect = CollectApprovalsOperator(
        task_id="collect_approvals", policy_path=POLICY_PATH, execution_timeout=timedelta(minutes=10)
    )
    RestoreApprovalOperator.partial(task_id="await_admin", policy_path=POLICY_PATH).expand(ask=collect.output)


atlassian_restore_approval()
