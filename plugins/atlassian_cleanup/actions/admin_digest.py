"""The per-run digest to admins: the run's figures, and the users who cannot be e-mailed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from atlassian_cleanup.action_kinds import DELETE_NOTICE, EMAIL_ACTIONS, LIFECYCLE_ACTIONS, NONE, WARN
from atlassian_cleanup.actions.email_templates import (
    DIGEST_HTML_TEMPLATE,
    DIGEST_TEXT_TEMPLATE,
    one_line,
    template_environment,
)
from atlassian_cleanup.decisions.records import valid_email_address
from atlassian_cleanup.outcomes import (
    DONE,
    DRY_RUN_WORDS,
    FAILED,
    MODE_LIVE,
    NOT_RUN_WORDS,
    REPORTED,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
    StageOutcome,
)

#: Order of the outcome columns in the digest (the stages' result words, then the fallbacks).
OUTCOME_ORDER: tuple[str, ...] = (
    DONE,
    DRY_RUN_WORDS,
    SKIPPED_ALREADY_DONE,
    SKIPPED_CHANGED,
    REPORTED,
    FAILED,
    NOT_RUN_WORDS,
)


def outcome_kind(outcome: StageOutcome | None) -> str:
    """The digest's column for one outcome: its result (``dry run`` in a dry run); ``not run`` when absent."""
    return outcome.heading if outcome is not None else NOT_RUN_WORDS


def digest_context(
    *,
    plan: Iterable[Mapping[str, Any]],
    outcomes: Mapping[str, StageOutcome],
    run_id: str,
    as_of: str,
    mode: str,
    audit_file: str | None,
    audit_page_url: str | None = None,
    failed_tasks: Sequence[str] = (),
    seats: Mapping[str, Any] | None = None,
    without_email: str = "action_after_notice",
    policy_warnings: Sequence[str] = (),
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    The figures of one run for the admin digest (counts; the names are in the audit CSV, except
    for the users who cannot be e-mailed, whom the digest lists because it is their warning).

    :param plan: the plan rows of the run.
    :param outcomes: ``{account_id: outcome}`` from the stages.
    :param run_id: the Airflow run id.
    :param as_of: the run's date (ISO).
    :param mode: ``dry_run`` or ``live``.
    :param audit_file: the audit CSV's file name.
    :param audit_page_url: link to the audit page (policy ``audit_page_url``).
    :param failed_tasks: tasks of the run that failed.
    :param seats: the run's billable-seat figures (:func:`atlassian_cleanup.reports.seats.seat_figures`).
    :param without_email: the policy's ``warning.without_email`` (how those users are treated).
    :param policy_warnings: plausibility warnings about the run's policy.
    :param run: who and how (:func:`atlassian_cleanup.operators.base.run_record`): ``triggered_by``,
        ``overrides`` (param -> value) and ``approval`` (its ``summary`` is shown when an approval
        was required).
    :return: a dict for the digest templates.
    """
    rows = list(plan)
    approval = (run or {}).get("approval") or {}
    actions: Counter[str] = Counter()
    by_action: dict[str, Counter[str]] = {}
    protected = no_email = undeliverable = 0
    for row in rows:
        action = str(row.get("proposed_action") or NONE)
        actions[action] += 1
        if row.get("protected_by"):
            protected += 1
        if action == NONE:
            continue
        kind = outcome_kind(outcomes.get(str(row.get("account_id"))))
        if action in EMAIL_ACTIONS and valid_email_address(row.get("email")) is None:
            no_email += 1
        elif action in EMAIL_ACTIONS and kind == REPORTED:
            # An address the relay cannot take (SMTPUTF8 missing, an unencodable domain).
            undeliverable += 1
        by_action.setdefault(action, Counter())[kind] += 1
    outcome_rows = [
        {"action": action, "outcomes": [{"kind": k, "count": counts[k]} for k in _ordered(counts)]}
        for action, counts in sorted(by_action.items())
    ]
    failed_users = sum(counts[FAILED] for counts in by_action.values())
    unaddressable = [
        {"account_id": str(row.get("account_id")), "name": row.get("name") or "no name", "what": what}
        for row in rows
        if (what := _unaddressable_stage(row, without_email))
    ]
    return {
        "run_id": run_id,
        "as_of": as_of,
        "mode": mode,
        "dry_run": mode != MODE_LIVE,
        "users": len(rows),
        "actions": [{"action": a, "count": actions[a]} for a in sorted(actions)],
        "outcomes": outcome_rows,
        "protected": protected,
        "no_email": no_email,
        "undeliverable": undeliverable,
        "failed_users": failed_users,
        "failed_tasks": list(failed_tasks),
        "errors": failed_users + len(failed_tasks),
        "audit_file": audit_file or "",
        "audit_page_url": audit_page_url or "",
        "seats": dict(seats or {}),
        "without_email": without_email,
        "unaddressable_count": len(unaddressable),
        "unaddressable": unaddressable[:DIGEST_MAX_LISTED],
        "unaddressable_more": max(len(unaddressable) - DIGEST_MAX_LISTED, 0),
        "policy_warnings": list(policy_warnings),
        "triggered_by": str((run or {}).get("triggered_by") or "unknown"),
        "overrides": [
            {"param": name, "value": json.dumps(value) if not isinstance(value, str) else value}
            for name, value in ((run or {}).get("overrides") or {}).items()
        ],
        "approval": str(approval.get("summary") or "") if approval.get("required") else "",
    }


#: Most users without an e-mail address listed by name in one digest (the rest are in the audit CSV).
DIGEST_MAX_LISTED = 200


def _unaddressable_stage(row: Mapping[str, Any], without_email: str) -> str:
    """Where a user who cannot be e-mailed stands in the notice period ("" when nowhere).

    From the first warning stage on, such a user is listed in every digest until actioned.
    """
    if row.get("protected_by") or valid_email_address(row.get("email")) is not None:
        return ""
    action = str(row.get("proposed_action") or NONE)
    planned = str(row.get("planned_action") or NONE)
    date = row.get("action_date") or "the action date"
    if action == WARN:
        if without_email == "hold":
            return f"held: no {planned} without a warning (warning.without_email: hold)"
        return f"{row.get('warning_lead_days')}-day warning stage; {planned} on {date} at the earliest"
    if action == DELETE_NOTICE:
        if without_email == "hold":
            return "held: no deletion without a notice (warning.without_email: hold)"
        return f"deletion notice stage; deletion on {date} at the earliest"
    if action in LIFECYCLE_ACTIONS:
        return f"{action} in this run, after the notice period"
    if row.get("rule") in ("notice_period", "already_warned"):
        return f"notice period running; {planned} on {date} at the earliest"
    return ""


def _ordered(counts: Mapping[str, int]) -> list[str]:
    known = [k for k in OUTCOME_ORDER if counts.get(k)]
    return known + sorted(k for k in counts if k not in OUTCOME_ORDER and counts[k])


def render_digest(
    context: Mapping[str, Any], templates_dir: str | Path | None = None
) -> tuple[str, str, str]:
    """
    Render the admin digest.

    :return: ``(subject, html, text)``.
    """
    env = template_environment(templates_dir)
    html = env.get_template(DIGEST_HTML_TEMPLATE).render(**context)
    text = env.get_template(DIGEST_TEXT_TEMPLATE).render(**context)
    mode = "DRY RUN" if context["dry_run"] else "live"
    planned = sum(a["count"] for a in context["actions"] if a["action"] != NONE)
    subject = (
        f"Atlassian user cleanup {context['as_of']} ({mode}): {planned} planned, "
        f"{context['errors']} error{'s' if context['errors'] != 1 else ''}"
    )
    return one_line(subject), html, text
