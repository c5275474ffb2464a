"""Operators of the daily cleanup DAG, in the order the DAG runs them.

They glue hooks (HTTP) to the pure planner and write the log lines admins read: one summary line
per stage with counts, progress lines on long loops, never a token and never a full user dump.
Each stage group has its own module (``extract``, ``compute``, ``approval``, ``stages``,
``export``) over the shared ``base``; this module names them all, so the DAG file and callers
import from one place.
"""

from __future__ import annotations

from atlassian_cleanup.operators.approval import PlanApprovalOperator, approval_record
from atlassian_cleanup.operators.base import (
    DEFAULT_STATE_CONN_ID,
    MODE_DRY_RUN,
    MODE_LIVE,
    RUN_POLICY_KEY,
    announce_audit,
    as_list,
    failed_upstream_tasks,
    mode_of,
    open_state_store,
    policy_of_run,
    resolve_large_input,
    resolve_optional_input,
    resolve_policy,
    run_as_of,
    run_policy_record,
    run_record,
    start_run_policy,
    state_store_url,
    wire_large_input,
)
from atlassian_cleanup.operators.compute import (
    ComputeInactivityOperator,
    latest_store_witness,
    record_store_witness,
    store_witness_key,
)
from atlassian_cleanup.operators.export import ExportAuditOperator
from atlassian_cleanup.operators.extract import EXTRACTION_KEY, ExtractUsersOperator, extraction_stats
from atlassian_cleanup.operators.stages import (
    ApplyActionsOperator,
    DeleteDormantOperator,
    NotifyWarningsOperator,
)

__all__ = [
    "DEFAULT_STATE_CONN_ID",
    "EXTRACTION_KEY",
    "MODE_DRY_RUN",
    "MODE_LIVE",
    "RUN_POLICY_KEY",
    "ApplyActionsOperator",
    "ComputeInactivityOperator",
    "DeleteDormantOperator",
    "ExportAuditOperator",
    "ExtractUsersOperator",
    "NotifyWarningsOperator",
    "PlanApprovalOperator",
    "announce_audit",
    "approval_record",
    "as_list",
    "extraction_stats",
    "failed_upstream_tasks",
    "latest_store_witness",
    "mode_of",
    "open_state_store",
    "policy_of_run",
    "record_store_witness",
    "resolve_large_input",
    "resolve_optional_input",
    "resolve_policy",
    "run_as_of",
    "run_policy_record",
    "run_record",
    "start_run_policy",
    "state_store_url",
    "store_witness_key",
    "wire_large_input",
]
