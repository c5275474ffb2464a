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
    from atlassian_cleanup.operators.cleanup import ExtractUsersOperator

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


@pytest.fixture
def own_sandbox(smtp_sink, monkeypatch, request):
    """A sandbox of this test's own (its state may be changed), wired into the connections."""
    from atlassian_sandbox import SandboxConfig, SandboxServer
    from tests.integration.conftest import AS_OF
    from tools.airflow_env import connection_env

    knobs = getattr(request, "param", {})
    with SandboxServer(SandboxConfig(users=60, seed=99, as_of=AS_OF, **knobs)) as server:
        for key, value in connection_env(server.info, smtp_sink.port).items():
            monkeypatch.setenv(key, value)
        yield server


@pytest.mark.parametrize(
    "own_sandbox",
    [{"never_used_product_entry": "absent"}, {"never_used_product_entry": "null"}],
    indirect=True,
    ids=["absent", "null"],
)
def test_product_access_is_what_the_groups_grant_with_the_reported_dates(own_sandbox) -> None:
    """Whichever way Atlassian lists a never-opened product, each user's products are those the
    sandbox grants through groups (its ground truth), dated by the activity it recorded."""
    from atlassian_cleanup.decisions.products import canonical_product
    from atlassian_cleanup.decisions.records import parse_timestamp

    table, _stats = _operator(site_conn_id=None).extract()
    extracted = {record["account_id"]: record for record in table.records()}
    never_opened = 0
    for user in sandbox_users(own_sandbox):
        if user["account_id"] not in extracted:
            continue  # portal customers are not directory users
        truth = {canonical_product(p): parse_timestamp(seen) for p, seen in user["product_access"].items()}
        got = extracted[user["account_id"]]["product_access"]  # epoch seconds, None = never opened
        assert set(got) == set(truth), user["account_id"]
        for product, seen in truth.items():
            if seen is None:
                never_opened += 1
                assert got[product] is None
            else:
                assert got[product] == pytest.approx(seen.timestamp())
    assert never_opened, "the seed has never-opened products"


def test_extract_stops_when_no_group_grants_a_product(own_sandbox) -> None:
    """A broken answer (no group holds a product role, e.g. a key that cannot read role
    assignments) must not read as "nobody has any product": the extraction stops and says why."""
    from airflow.sdk.exceptions import AirflowFailException

    with own_sandbox.state.lock:
        for group in own_sandbox.state.groups.values():
            group.roles = []
    with pytest.raises(AirflowFailException, match="grants a product role"):
        _operator(site_conn_id=None).extract()
