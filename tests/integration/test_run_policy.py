"""A run is decided once: the policy and params it started with govern every task of the run.

The daily DAG runs against its own sandbox org (``LiveOrg`` of the live-lifecycle tests); the
policy file is edited while the run is in flight, between ``compute_inactivity`` and the tasks
that write, the way an admin (or a deploy) could change it on a shared volume.
"""

# The live-lifecycle fixtures are imported by name, and pytest passes them as arguments of the same name.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from atlassian_cleanup.actions.notifications import HEADER_KIND
from tests.integration.test_live_lifecycle import (  # noqa: F401 - fixtures used by name
    HIGH_CAPS,
    _states,
    _successful,
    live_org,
    sqlite_state,
)

pytestmark = pytest.mark.integration


def _latest_manifest() -> dict:
    manifests = sorted(
        Path(os.environ["ATLASSIAN_CLEANUP_AUDIT_DIR"]).glob("*.manifest.json"),
        key=lambda p: p.stat().st_mtime,
    )
    return json.loads(manifests[-1].read_text(encoding="utf-8"))


def _edit_policy_after_compute(monkeypatch, path: Path, **changes: object) -> list[str]:
    """Rewrite the policy file as soon as ``compute_inactivity`` has planned (in-process run)."""
    from atlassian_cleanup.operators.cleanup import ComputeInactivityOperator

    original = ComputeInactivityOperator.execute
    edited: list[str] = []

    def execute(self, context):
        result = original(self, context)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key, value in changes.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        edited.append(context["run_id"])
        return result

    monkeypatch.setattr(ComputeInactivityOperator, "execute", execute)
    return edited


def test_a_policy_edited_mid_run_does_not_change_the_run(live_org, monkeypatch):
    from atlassian_cleanup.operators.cleanup import resolve_policy
    from atlassian_cleanup.reports.audit import policy_fingerprint

    org = live_org
    # Dry run, tight caps, no warnings: the plan suspends more users than the caps allow, which a
    # live run would have to stop for.
    org.write_policy(dry_run=True, warning={"lead_days": []}, safety={"max_actions_per_run": 1})
    started_with = resolve_policy(str(org.policy_path), {})
    edited = _edit_policy_after_compute(
        monkeypatch, org.policy_path, dry_run=False, safety={**HIGH_CAPS, "on_cap_exceeded": "fail"}
    )
    seq = org.last_seq()
    mails = len(org.smtp_sink.messages())

    run = org.run(0)

    assert edited, "the policy file was not edited during the run"
    assert resolve_policy(str(org.policy_path), {}).dry_run is False  # the file now says live
    assert str(run.state) == "success", _states(run)
    # The run stayed the dry run it was planned as: nothing written, nobody e-mailed but the admins.
    assert org.write_calls(seq) == []
    assert [m for m in org.smtp_sink.messages()[mails:] if m.get(HEADER_KIND) == "warning"] == []
    manifest = _latest_manifest()
    assert manifest["mode"] == "dry_run"
    assert manifest["summary"]["by_action"]["suspend"] > started_with.safety.max_actions_per_run
    # The manifest describes the policy that made the plan, not the file as it is now.
    assert manifest["policy"] == started_with.to_dict()
    assert manifest["policy_sha256"] == policy_fingerprint(started_with.to_dict())
    assert manifest["policy"]["safety"]["max_actions_per_run"] == 1
    assert manifest["policy_file"] == str(org.policy_path)


def test_a_live_run_keeps_its_caps_when_the_file_raises_them(live_org, monkeypatch):
    org = live_org
    org.write_policy(
        warning={"lead_days": []},
        safety={"max_actions_per_run": 1, "max_action_share": 0.01, "on_cap_exceeded": "fail"},
    )
    _edit_policy_after_compute(monkeypatch, org.policy_path, safety=HIGH_CAPS)
    seq = org.last_seq()

    run = org.run(0)

    states = _states(run)
    assert str(run.state) == "failed", states
    assert states["approve_plan"] == "failed", states
    assert org.write_calls(seq) == []
    manifest = _latest_manifest()
    assert manifest["policy"]["safety"]["max_actions_per_run"] == 1
    assert manifest["approval"]["decision"] == "stopped"
    assert manifest["approval"]["required"] is True


def test_a_run_goes_live_only_when_asked_and_says_who_asked(live_org):
    org = live_org
    org.write_policy(dry_run=True, warning={"lead_days": []})
    seq = org.last_seq()

    run = org.run(0, run_conf={"mode": "live", "max_actions_per_run": 500, "max_action_share": 1.0})

    assert str(run.state) == "success", _states(run)
    assert [c for c in _successful(org.write_calls(seq)) if c["path"].endswith("/suspend")]
    manifest = _latest_manifest()
    assert manifest["mode"] == "live"
    assert manifest["overrides"] == {"mode": "live", "max_actions_per_run": 500, "max_action_share": 1.0}
    # dag.test() records its runs as triggered by the user "dag_test".
    assert manifest["triggered_by"] == "dag_test"
    assert manifest["run_type"] == "manual"
    assert manifest["approval"]["decision"] == "not_needed"


@pytest.mark.parametrize("conf", [{"dryrun": True}, {"mode": "live", "max_action_per_run": 5}])
def test_an_unknown_conf_key_fails_the_run_before_any_call(live_org, conf):
    org = live_org
    org.write_policy(dry_run=False)
    org.sandbox.clear_calls()
    mails = len(org.smtp_sink.messages())

    run = org.run(0, run_conf=conf)

    states = _states(run)
    assert str(run.state) == "failed", states
    assert states["extract_users"] == "failed", states
    assert org.sandbox.calls() == []
    assert [m for m in org.smtp_sink.messages()[mails:] if m.get(HEADER_KIND) == "warning"] == []


def test_a_toggled_back_dry_run_switch_no_longer_goes_live(live_org):
    org = live_org
    org.write_policy(dry_run=True)
    org.sandbox.clear_calls()

    # What the old form's switch submitted after being switched on and off again.
    run = org.run(0, run_conf={"dry_run": False})

    assert str(run.state) == "failed", _states(run)
    assert _states(run)["extract_users"] == "failed"
    assert org.sandbox.calls() == []


def test_a_mistyped_fallback_alert_address_fails_the_run_before_any_call(live_org, monkeypatch):
    # Semicolons are how addresses are separated in some mail clients; here they make one entry
    # that no mail server accepts, noticed only on the day the policy breaks. The run says so first.
    org = live_org
    org.write_policy(dry_run=False)
    monkeypatch.setenv("ATLASSIAN_CLEANUP_ALERT_EMAILS", "ops@acme.example; security@acme.example")
    org.sandbox.clear_calls()

    run = org.run(0)

    states = _states(run)
    assert str(run.state) == "failed", states
    assert states["extract_users"] == "failed", states
    assert org.sandbox.calls() == []
