"""Test-wide set-up.

Airflow reads its configuration when first imported, so the environment is pointed at a private,
throw-away AIRFLOW_HOME here, before any test module imports airflow. The settings are the ones
`make demo` uses (tools.airflow_env), including the object-storage XCom backend.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tools.airflow_env import airflow_env

_SCRATCH = Path(tempfile.mkdtemp(prefix="atlassian-cleanup-tests-"))
for _name in ("airflow", "audit", "xcom"):
    (_SCRATCH / _name).mkdir()
os.environ.update(airflow_env(_SCRATCH / "airflow", audit_dir=_SCRATCH / "audit", xcom_dir=_SCRATCH / "xcom"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

SCRATCH_DIR = _SCRATCH


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_atlassian_task() -> None:
    """Each test is a new task: no stop request and no per-task memo (discovered directory) carries over."""
    from atlassian_cleanup.client.retry import begin_atlassian_calls

    begin_atlassian_calls()
