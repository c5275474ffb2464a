"""Environment for running the DAGs locally against the sandbox and the SMTP sink.

One function builds it so the demo and the integration tests configure Airflow identically:
SQLite metadata DB, this repository's dags/ and plugins/, JSON-form connections (the URI form
reads ``disable_ssl=false`` as true), and the object-storage XCom backend so large plans spill to
files instead of the metadata database.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: XCom values from this size on (JSON bytes) go to object storage instead of the metadata DB. Low on
#: purpose: what stays in the DB is then only small values and the paths of the spilled ones (about
#: 1 KB per run whatever the org size); the user table and the plan are megabytes at 100k users.
#: docker-compose.yaml sets the same value (checked by tests/unit/test_compose.py).
XCOM_SPILL_THRESHOLD_BYTES = 1024


def connection_env(sandbox_info: Mapping[str, Any], smtp_port: int | None) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing the three connections at the sandbox and SMTP sink."""
    # The shapes live in the sandbox package (include/), which `python -m tools.<x>` does not
    # have on sys.path (pytest does, through pyproject's pythonpath).
    if str(REPO / "include") not in sys.path:
        sys.path.append(str(REPO / "include"))
    from atlassian_sandbox.connections import sandbox_connections

    connections = sandbox_connections(sandbox_info, smtp_port=smtp_port)
    return {f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in connections.items()}


def airflow_env(home: Path, *, audit_dir: Path, xcom_dir: Path) -> dict[str, str]:
    """Core Airflow settings for a throw-away local AIRFLOW_HOME."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__XCOM_BACKEND": "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend",
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH": f"file://{xcom_dir}",
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD": str(XCOM_SPILL_THRESHOLD_BYTES),
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION": "gzip",
        "ATLASSIAN_CLEANUP_AUDIT_DIR": str(audit_dir),
        # Airflow signs task tokens with HS512; left unset, its generated key is shorter than the
        # 64 bytes PyJWT asks for and every task log carries an InsecureKeyLengthWarning.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
    }
