"""Stage outcomes travel between tasks as typed values: the XCom form round-trips, and the audit
and the digest word them exactly as the README's audit table says."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from atlassian_cleanup.actions.notifications import digest_context
from atlassian_cleanup.operators.cleanup import (
    ApplyActionsOperator,
    NotifyWarningsOperator,
    resolve_policy,
    run_policy_record,
)
from atlassian_cleanup.outcomes import StageOutcome, outcomes_from_xcom, outcomes_to_xcom
from atlassian_cleanup.reports.audit import audit_rows

SHIPPED = str(Path(__file__).resolve().parents[2] / "include" / "policy.yaml")


def test_the_xcom_form_is_plain_json_and_comes_back_equal():
    outcomes = {"a1": StageOutcome("done", "Suspended"), "a2": StageOutcome("planned", "would warn a2")}
    wire = json.loads(json.dumps(outcomes_to_xcom(outcomes)))
    assert wire == {
        "a1": {"result": "done", "detail": "Suspended"},
        "a2": {"result": "planned", "detail": "would warn a2"},
    }
    assert outcomes_from_xcom(wire) == outcomes
    assert outcomes_from_xcom(None) == {}


@pytest.mark.parametrize(
    ("outcome", "sentence"),
    [
        (StageOutcome("done", "Suspended"), "done: Suspended"),
        (StageOutcome("reported", "no e-mail address"), "reported: no e-mail address"),
        (StageOutcome.planned("email a1 (Ann)"), "dry run: would email a1 (Ann)"),
    ],
)
def test_the_sentence_is_the_audit_outcome_cell(outcome, sentence):
    assert outcome.sentence == sentence


@pytest.mark.parametrize(
    ("sentence", "outcome"),
    [
        ("done: Suspended", StageOutcome("done", "Suspended")),
        ("failed: HTTP 500: try again", StageOutcome("failed", "HTTP 500: try again")),
        ("dry run: would email a1 (Ann)", StageOutcome.planned("email a1 (Ann)")),
    ],
)
def test_a_sentence_left_by_an_earlier_release_is_still_read(sentence, outcome):
    # export_audit retried after an upgrade reads the stages' XComs as the old code wrote them.
    assert StageOutcome.from_xcom(sentence) == outcome
    assert outcomes_from_xcom({"a1": sentence}) == {"a1": outcome}


@pytest.mark.parametrize(
    "value",
    ["Suspended", "maybe: Suspended", "done:Suspended", {"detail": "no result"}, {"result": "maybe"}, 42],
)
def test_anything_but_a_stage_outcome_is_refused(value):
    with pytest.raises(ValueError, match=r"not a stage outcome|unknown stage result"):
        StageOutcome.from_xcom(value)


def _row(account_id: str, action: str, **extra: object) -> dict[str, object]:
    return {
        "account_id": account_id,
        "name": "Ann",
        "email": f"{account_id}@acme.example",
        "proposed_action": action,
        "planned_action": "suspend",
        "action_date": "2026-12-10",
        "warning_lead_days": 7,
        "reason": "inactive for 120 days",
        **extra,
    }


def test_a_dry_run_stage_returns_outcomes_the_audit_and_the_digest_read(caplog):
    policy = resolve_policy(SHIPPED, {"mode": "dry_run"})
    record = run_policy_record(policy, SHIPPED, {"mode": "dry_run"})
    plan = [_row("s1", "suspend"), _row("w1", "warn"), _row("w2", "warn", email=None), _row("n1", "none")]
    context = {"params": {}, "run_id": "manual__dry", "logical_date": None}
    returned = {}
    with caplog.at_level(logging.INFO):
        for operator_class in (ApplyActionsOperator, NotifyWarningsOperator):
            task = operator_class(task_id="stage", plan=plan, run_policy=record, policy_path=SHIPPED)
            returned.update(json.loads(json.dumps(task.execute(context))))
    assert returned["s1"] == {"result": "planned", "detail": "would suspend s1 (Ann) — inactive for 120 days"}
    assert returned["w2"]["detail"].startswith("would report w2 (Ann): no visible e-mail address")
    assert "n1" not in returned

    outcomes = outcomes_from_xcom(returned)
    rows = {row["account_id"]: row for row in audit_rows(plan, outcomes)}
    assert {k: v["result"] for k, v in rows.items()} == {
        "s1": "planned",
        "w1": "planned",
        "w2": "planned",
        "n1": "no_action",
    }
    assert rows["s1"]["outcome"] == "dry run: would suspend s1 (Ann) — inactive for 120 days"
    assert rows["n1"]["outcome"] == "no action"
    digest = digest_context(
        plan=plan,
        outcomes=outcomes,
        run_id="manual__dry",
        as_of="2026-11-26",
        mode="dry_run",
        audit_file="a.csv",
    )
    counts = {row["action"]: {o["kind"]: o["count"] for o in row["outcomes"]} for row in digest["outcomes"]}
    assert counts == {"suspend": {"dry run": 1}, "warn": {"dry run": 2}}


@pytest.mark.parametrize(
    ("email", "reported"),
    [
        # What the live sender refuses (MissingEmailError / UndeliverableAddressError) the dry run
        # reports too, instead of promising an e-mail.
        ("ann smith@acme.example", "no visible e-mail address"),
        ("<ann@acme.example>", "no visible e-mail address"),
        ("ann@acme.example;bob@acme.example", "no visible e-mail address"),
        ("ann@b\u00fccher..example", "its e-mail domain cannot be encoded for sending"),
        ("ann@acme.example", None),
        ("ann@b\u00fccher.example", None),
    ],
)
def test_a_dry_run_reports_whom_a_live_run_could_not_email(email, reported):
    from atlassian_cleanup.actions.mail import UndeliverableAddressError, smtp_address
    from atlassian_cleanup.decisions.records import valid_email_address

    policy = resolve_policy(SHIPPED, {"mode": "dry_run"})
    record = run_policy_record(policy, SHIPPED, {"mode": "dry_run"})
    task = NotifyWarningsOperator(
        task_id="stage", plan=[_row("w1", "warn", email=email)], run_policy=record, policy_path=SHIPPED
    )
    detail = task.execute({"params": {}, "run_id": "manual__dry", "logical_date": None})["w1"]["detail"]
    if reported:
        assert detail.startswith(f"would report w1 (Ann): {reported}"), detail
    else:
        assert detail.startswith("would email w1 (Ann)"), detail
    # The live sender's own checks agree (an independent look at the same address).
    address = valid_email_address(email)
    live_refuses = address is None
    if address is not None:
        try:
            smtp_address(address)
        except UndeliverableAddressError:
            live_refuses = True
    assert live_refuses == bool(reported)
