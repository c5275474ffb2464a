"""``ExtractUsersOperator.extract`` against the sandbox: what it reads, and what it leaves behind.

The extraction tunes the whole task process while it runs (a shorter GIL switch interval, the
pre-existing heap frozen out of garbage collection). Both are process-wide, so both must be undone
when it returns and when it fails, or every later task in the process would inherit them.
"""

from __future__ import annotations

import gc
import sys

import pytest

from tests.integration.conftest import sandbox_users
from tools.airflow_env import REPO

pytestmark = pytest.mark.integration

POLICY = str(REPO / "include" / "policy.yaml")


def _operator(**kwargs: object) -> object:
    from atlassian_cleanup.operators import ExtractUsersOperator

    return ExtractUsersOperator(task_id="extract_users", policy_path=POLICY, **kwargs)


def test_extract_reads_every_user_and_restores_the_process_settings(sandbox, sandbox_env) -> None:
    switch_interval = sys.getswitchinterval()
    assert gc.get_freeze_count() == 0

    table, stats = _operator().extract()

    truth = {user["account_id"] for user in sandbox_users(sandbox)}
    assert set(table.account_ids) <= truth
    assert len(table) == stats["directory_users"] + stats["added"]
    assert stats["directory_users"] > 0
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch_interval


def test_a_failed_extract_restores_the_process_settings_too(sandbox, sandbox_env, monkeypatch) -> None:
    switch_interval = sys.getswitchinterval()
    # A wrong key: the Admin API answers 401 and the extraction raises.
    monkeypatch.setenv(
        "AIRFLOW_CONN_ATLASSIAN_ADMIN",
        sandbox_env["AIRFLOW_CONN_ATLASSIAN_ADMIN"].replace("sandbox-admin-key", "wrong-key"),
    )
    with pytest.raises(Exception, match="401"):
        _operator(site_conn_id=None).extract()
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch_interval
