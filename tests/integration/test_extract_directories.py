"""``extract_users`` against a sandbox whose org has two directories (a local one and an IdP one).

The oracle is the sandbox's own ``-`` (all directories) search, which lists each account once with
its memberships combined as the API contract says (§3.4); the extraction reads the two directories
separately and must arrive at the same users with the same statuses.
"""

from __future__ import annotations

import json

import pytest
import requests

from tools.airflow_env import REPO

pytestmark = pytest.mark.integration

POLICY = str(REPO / "include" / "policy.yaml")


def _operator() -> object:
    from atlassian_cleanup.operators.cleanup import ExtractUsersOperator

    return ExtractUsersOperator(task_id="extract_users", policy_path=POLICY, site_conn_id=None)


@pytest.fixture
def two_directory_sandbox(smtp_sink, monkeypatch):
    """A 2-directory sandbox; the Admin connection reads every directory (``directory_id: "*"``)."""
    from atlassian_sandbox import SandboxConfig, SandboxServer
    from tests.integration.conftest import AS_OF
    from tools.airflow_env import connection_env

    config = SandboxConfig(users=80, seed=5, as_of=AS_OF, idp_directory_share=0.5)
    with SandboxServer(config) as server:
        for key, value in connection_env(server.info, smtp_sink.port).items():
            monkeypatch.setenv(key, value)
        admin = json.loads(connection_env(server.info, smtp_sink.port)["AIRFLOW_CONN_ATLASSIAN_ADMIN"])
        admin["extra"] = {
            **admin["extra"],
            "directory_id": "*",
            "retry": {"base_delay": 0.01, "max_attempts": 2},
        }
        monkeypatch.setenv("AIRFLOW_CONN_ATLASSIAN_ADMIN", json.dumps(admin))
        yield server


def _dash_listing(server) -> dict[str, dict]:
    """Every account once, as the sandbox's ``-`` search answers (the oracle)."""
    org = server.info["org_id"]
    headers = {"Authorization": "Bearer sandbox-admin-key"}
    users: dict[str, dict] = {}
    body: dict = {"limit": 100}
    while True:
        answer = requests.post(
            f"{server.url}/admin/v2/orgs/{org}/directories/-/users/search",
            json=body,
            headers=headers,
            timeout=30,
        )
        answer.raise_for_status()
        users.update({u["accountId"]: u for u in answer.json()["data"]})
        cursor = answer.json()["links"].get("next")
        if not cursor:
            return users
        body = {"limit": 100, "cursor": cursor}


def test_both_directories_are_read_and_merged_like_the_dash_listing(two_directory_sandbox) -> None:
    state = two_directory_sandbox.state
    idp = next(iter(state.extra_directories))
    table, stats = _operator().extract()

    expected = _dash_listing(two_directory_sandbox)
    records = {r["account_id"]: r for r in table.records()}
    assert set(records) == set(expected)
    assert stats["directory_users"] == len(expected)
    assert stats["directory_id"] == f"{state.directory_id}, {idp}"
    for account_id, user in expected.items():
        assert (records[account_id]["status"], records[account_id]["membership_status"]) == (
            user["status"],
            user["membershipStatus"],
        ), account_id
    # The seeded difference is there: suspended in the IdP directory, active locally, so active.
    members = state.extra_directories[idp].members
    split = [a for a, m in members.items() if m == "suspended" and state.users[a].membership == "active"]
    assert split
    assert {records[a]["membership_status"] for a in split} == {"active"}


def test_a_directory_that_cannot_be_read_fails_the_extraction(two_directory_sandbox) -> None:
    """One directory answering 500 must not give a user list of the other directory alone."""
    from atlassian_cleanup.client.errors import AtlassianApiError

    state = two_directory_sandbox.state
    idp = next(iter(state.extra_directories))
    two_directory_sandbox.configure(chaos_500=1.0, chaos_path_regex=f"/directories/{idp}/users/search")
    with pytest.raises(AtlassianApiError):
        _operator().extract()
