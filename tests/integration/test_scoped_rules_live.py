"""A scoped rule, live: its population is actioned under its own settings, everybody else is not."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import AS_OF
from tests.integration.test_cleanup_dag import CONTRACTORS_RULE
from tests.integration.test_live_lifecycle import LiveOrg, _memberships_left, _states, _successful

pytestmark = pytest.mark.integration


@pytest.fixture
def org(airflow_db, smtp_sink, tmp_path, monkeypatch) -> Iterator[LiveOrg]:
    from atlassian_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(users=80, seed=314, as_of=AS_OF)) as sandbox:
        state = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
        yield LiveOrg(sandbox, tmp_path, monkeypatch, smtp_sink, state)


def _audit_rows() -> dict[str, dict[str, str]]:
    audits = sorted(
        Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.csv"), key=lambda p: p.stat().st_mtime
    )
    with audits[-1].open(encoding="utf-8", newline="") as handle:
        return {row["account_id"]: row for row in csv.DictReader(handle)}


def test_contractors_lose_product_access_on_day_0_while_everybody_else_is_only_warned(org: LiveOrg):
    contractors = CONTRACTORS_RULE
    org.write_policy(rules=[contractors])
    before = org.users()
    selected = {
        a
        for a, u in before.items()
        if (u["email"] or "").endswith("@partner.example") and u["claim_status"] == "unmanaged"
    }
    assert selected, "the seed has unmanaged contractors on partner.example"

    seq = org.last_seq()
    run = org.run(0)
    assert str(run.state) == "success", _states(run)

    calls = org.write_calls(seq)
    removed = set(_memberships_left(calls))
    assert removed, "no contractor lost product access"
    # Every Atlassian write of the run is a contractor's product removal: the default population
    # has no warning history, so it is only warned.
    assert {c["account_id"] for c in _successful(calls)} == removed
    assert removed <= selected
    after = org.users()
    for account_id in removed:
        assert set(after[account_id]["product_access"]) < set(before[account_id]["product_access"])
    rows = _audit_rows()
    for account_id in removed:
        row = rows[account_id]
        assert (row["policy_rule"], row["proposed_action"], row["result"]) == (
            "contractors",
            "remove_product_access",
            "done",
        ), row
    warned = {a for a, row in rows.items() if row["proposed_action"] == "warn"}
    assert warned, "nobody of the default population was warned"
    assert {rows[a]["policy_rule"] for a in warned} == {"default"}
    assert {row["policy_rule"] for a, row in rows.items() if a not in selected} == {"default"}
