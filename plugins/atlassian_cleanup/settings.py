"""Deployment settings shared by the DAGs and the UI plugin.

Only non-secret locations live here (policy file, audit directory); credentials come exclusively
from Airflow connections. The Asset's name and URI are constants on purpose: Airflow keeps the
first (name, uri) it sees, so deriving either from the environment would orphan the asset.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset

REPO_ROOT = Path(__file__).resolve().parents[2]

#: DAG ids, shared by the DAG files and the audit page (which checks access to the cleanup DAG).
CLEANUP_DAG_ID = "atlassian_user_cleanup"
RESTORE_DAG_ID = "atlassian_access_restoration"
#: Holds the admins' approval prompts of restore requests no rule allows (a DAG of its own, so a
#: wait of hours never holds up the restore DAG's next runs).
RESTORE_APPROVAL_DAG_ID = "atlassian_restore_approval"

#: Pool every task that calls Atlassian runs in (created by `make demo` and docker-compose init).
ATLASSIAN_POOL = "atlassian_api"

AUDIT_ASSET = Asset(name="atlassian_user_audit", uri="atlassian-audit://user-cleanup/audit-csv")
#: The restore DAG's audit (``<audit dir>/restore/``), announced the same way.
RESTORE_AUDIT_ASSET = Asset(
    name="atlassian_restore_audit", uri="atlassian-audit://access-restoration/audit-csv"
)

#: Announced by the restore DAG when it asked an admin about new requests; schedules the approval DAG.
RESTORE_APPROVAL_ASSET = Asset(
    name="atlassian_restore_approvals", uri="atlassian-audit://access-restoration/approvals-asked"
)


def policy_path() -> str:
    """The policy file: ``ATLASSIAN_CLEANUP_POLICY`` or the shipped ``include/policy.yaml``."""
    return os.environ.get("ATLASSIAN_CLEANUP_POLICY") or str(REPO_ROOT / "include" / "policy.yaml")


def audit_dir() -> str:
    """Where audit CSVs go: ``ATLASSIAN_CLEANUP_AUDIT_DIR`` or ``$AIRFLOW_HOME/atlassian-audit``."""
    configured = os.environ.get("ATLASSIAN_CLEANUP_AUDIT_DIR")
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(home) / "atlassian-audit")


def restore_audit_dir(base: str | None = None) -> str:
    """Where the restore DAG's audit CSVs go: ``<audit dir>/restore``."""
    return str(Path(base or audit_dir()) / "restore")
