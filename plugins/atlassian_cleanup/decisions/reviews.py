"""The review queue's rules, pure: who an admin may decide for, and which decisions are in force.

With ``review: true`` (top level or a scoped rule) a person's first action waits in the review queue
instead of happening on the due date. An admin decides for several people at once:

* **approve**: the action goes ahead on the next run, with the caps and gates as usual. An approve
  counts for the stretch in which it was given: once the person leaves the queue (active again,
  actioned, gone), a later stretch needs a new decision.
* **keep**: the person is protected, warnings included, until ``keep_until`` (inclusive); after it
  they are planned as anyone else under their rule (with review on, they wait in the queue again).

Decisions are appended, never edited; the latest one of an account counts. This module imports
neither Airflow nor a database driver; :mod:`atlassian_cleanup.review.store` keeps the rows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

APPROVE = "approve"
KEEP = "keep"
DECISIONS: tuple[str, ...] = (APPROVE, KEEP)
#: The plan's ``review_decision`` of a person waiting for an admin.
AWAITING = "awaiting"
#: Longest keep an admin can give at once: a year, then they decide again.
MAX_KEEP_DAYS = 366
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class PendingReview:
    """A person in the queue, with the evidence an admin decides on."""

    account_id: str
    email: str | None
    display_name: str | None
    rule: str
    action: str
    reason: str
    products: tuple[str, ...] = ()
    last_active: Mapping[str, str | None] = field(default_factory=dict)
    due_on: date | None = None
    queued_on: date | None = None


@dataclass(frozen=True)
class ReviewDecision:
    """One admin decision for one person."""

    account_id: str
    decision: str
    reason: str
    decided_by: str
    decided_at: datetime
    keep_until: date | None = None
    rule: str | None = None

    def label(self) -> str:
        """How the plan's ``protected_by`` names a keep: ``review_keep:<admin>``."""
        return f"review_keep:{self.decided_by}"

    def as_columns(self) -> dict[str, Any]:
        """The plan's review columns for this decision."""
        return {
            "review_decision": self.decision,
            "review_by": self.decided_by,
            "review_at": self.decided_at.date().isoformat(),
            "review_reason": self.reason,
            "keep_until": self.keep_until.isoformat() if self.keep_until else None,
        }


def decision_problems(
    account_ids: Sequence[str],
    *,
    decision: str,
    reason: str,
    decided_by: str,
    decided_at: datetime,
    keep_until: date | None,
    queued: Collection[str],
) -> list[str]:
    """Everything wrong with a batch of decisions, each with its fix ([] = fine to store)."""
    problems = []
    if decision not in DECISIONS:
        problems.append(f"decision must be one of {', '.join(DECISIONS)} (got {decision!r})")
    if not account_ids:
        problems.append("select at least one person")
    if len(set(account_ids)) != len(account_ids):
        problems.append("a person is selected twice; select each once")
    unknown = [a for a in dict.fromkeys(account_ids) if a not in queued]
    if unknown:
        problems.append(
            "not in the review queue (already decided by a run, active again or gone): " + ", ".join(unknown)
        )
    text = reason.strip()
    if not text:
        problems.append("give a reason: it goes into the audit CSV with your name")
    elif len(text) > MAX_REASON_CHARS:
        problems.append(f"the reason is {len(text)} characters; keep it under {MAX_REASON_CHARS}")
    if not decided_by.strip():
        problems.append("the deciding admin is unknown; log in again")
    if decided_at.tzinfo is None:
        problems.append("the decision time must be timezone-aware")
    if decision == KEEP:
        problems.extend(_keep_problems(keep_until, decided_at.date()))
    elif decision == APPROVE and keep_until is not None:
        problems.append("an approve has no expiry; leave 'keep until' empty or choose keep")
    return problems


def _keep_problems(keep_until: date | None, today: date) -> list[str]:
    if keep_until is None:
        return ["a keep needs an expiry date (keep until), at most a year ahead"]
    if keep_until <= today:
        return [
            f"keep until {keep_until.isoformat()} is not after today ({today.isoformat()}); pick a later day"
        ]
    if (keep_until - today).days > MAX_KEEP_DAYS:
        return [
            f"keep until {keep_until.isoformat()} is more than {MAX_KEEP_DAYS} days ahead; decide again later"
        ]
    return []


def in_force(
    latest: Mapping[str, ReviewDecision], queued_on: Mapping[str, date], as_of: date
) -> dict[str, ReviewDecision]:
    """The decisions that count on ``as_of``: latest per account, keeps not expired, approves of
    the person's current stretch in the queue."""
    out = {}
    for account_id, decision in latest.items():
        if decision.decision == KEEP:
            if decision.keep_until is not None and decision.keep_until >= as_of:
                out[account_id] = decision
        elif account_id in queued_on and decision.decided_at.date() >= queued_on[account_id]:
            out[account_id] = decision
    return out
