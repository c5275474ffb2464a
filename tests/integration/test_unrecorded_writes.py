"""A write whose result the state store could not record is never replayed blindly.

The daily DAG runs live against its sandbox org; the state store fails to record the result of
one suspend after Atlassian applied it (a full disk, a dropped database connection). The stage
says so in its log, and its retry and the next run look at Atlassian before writing to that
user again.
"""

# The live-lifecycle fixtures are imported by name, and pytest passes them as arguments of the same name.
# ruff: noqa: F811

from __future__ import annotations

import logging

import pytest

from atlassian_cleanup.actions.state import StateStore
from tests.integration.test_live_lifecycle import (  # noqa: F401 - fixtures used by name
    _states,
    _successful,
    live_org,
    sqlite_state,
)

pytestmark = pytest.mark.integration


def test_an_unrecorded_suspend_is_announced_and_not_sent_again(live_org, monkeypatch, caplog, capfd):
    org = live_org
    org.write_policy(warning={"lead_days": []})
    original = StateStore.complete
    lost: list[str] = []

    def complete(self, *args, **kwargs):
        if not lost:
            lost.append(str(args[0] if args else kwargs))
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StateStore, "complete", complete)
    with caplog.at_level(logging.WARNING):
        run = org.run(0)
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert lost, "no result was recorded at all"
    assert "apply_actions: 1 writes of this run have no recorded result" in logged, logged[-3000:]
    suspended = [c["account_id"] for c in _successful(org.write_calls()) if c["path"].endswith("/suspend")]
    assert suspended
    assert len(suspended) == len(set(suspended))
    # The user whose result was lost failed the try; the task's retry read Atlassian, found the
    # suspend applied and recorded it without sending it again (no account is suspended twice).
    assert str(run.state) == "success", _states(run)

    # The store works again; the next day's run finds the suspend done in Atlassian and sends
    # nothing to anyone already suspended.
    monkeypatch.setattr(StateStore, "complete", original)
    org.advance_clock(1)
    seq = org.last_seq()
    run = org.run(1)
    assert str(run.state) == "success", _states(run)
    again = [
        c for c in org.write_calls(seq) if c["path"].endswith("/suspend") and c["account_id"] in suspended
    ]
    assert again == []
    assert all(org.users()[a]["status"] == "suspended" for a in suspended)
