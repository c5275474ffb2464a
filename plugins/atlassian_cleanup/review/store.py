"""The review queue and the admins' decisions, kept in the state database.

Used by ``compute_inactivity`` (reads the decisions in force, replaces the queue after planning) and
by the audit page's review view (lists the queue, stores decisions). It imports SQLAlchemy and the
pure review rules only, so the page never loads the engine. The tables are created by the state
store's schema migration 3: until a run has opened the state store, the queue is empty and
deciding is refused with a message saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from atlassian_cleanup.decisions.reviews import (
    KEEP,
    PendingReview,
    ReviewDecision,
    decision_problems,
    in_force,
)
from atlassian_cleanup.review.schema import DECISIONS_TABLE, QUEUE
from atlassian_cleanup.store_db import open_engine


class ReviewNotReady(RuntimeError):
    """The state database has no review tables yet (no cleanup run has opened it)."""


class ReviewStore:
    """The queue and the decisions, on the state store's database (same URL)."""

    def __init__(self, url: str | URL) -> None:
        self.engine = open_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ready(self) -> bool:
        """The review tables exist (a cleanup run has migrated the state database)."""
        inspector = sa.inspect(self.engine)
        return inspector.has_table(QUEUE.name) and inspector.has_table(DECISIONS_TABLE.name)

    # --- the cleanup run's side ----------------------------------------------------------------------

    def queue_pending(self, entries: Sequence[PendingReview], *, run_id: str, as_of: date) -> int:
        """Make ``entries`` the queue: new people join on ``as_of``, people already in keep their
        ``queued_on``, people not in ``entries`` drop out. Returns how many are queued."""
        wanted = {entry.account_id: entry for entry in entries}
        with self.engine.begin() as conn:
            known = dict(conn.execute(sa.select(QUEUE.c.account_id, QUEUE.c.queued_on)).all())
            gone = [account_id for account_id in known if account_id not in wanted]
            for chunk in _chunks(gone):
                conn.execute(QUEUE.delete().where(QUEUE.c.account_id.in_(chunk)))
            for chunk in _chunks(list(known.keys() & wanted.keys())):
                conn.execute(QUEUE.delete().where(QUEUE.c.account_id.in_(chunk)))
            rows = [
                _queue_row(entry, queued_on=known.get(account_id, as_of), run_id=run_id, as_of=as_of)
                for account_id, entry in wanted.items()
            ]
            if rows:
                conn.execute(QUEUE.insert(), rows)
        return len(rows)

    def decisions_in_force(self, as_of: date) -> dict[str, ReviewDecision]:
        """The decisions the planner honours on ``as_of`` (see ``decisions.reviews.in_force``)."""
        if not self.ready():
            return {}
        with self.engine.connect() as conn:
            queued_on = dict(conn.execute(sa.select(QUEUE.c.account_id, QUEUE.c.queued_on)).all())
            return in_force(self._latest(conn), queued_on, as_of)

    # --- the admins' side ------------------------------------------------------------------------------

    def pending(self, *, rule: str | None = None, search: str | None = None) -> list[PendingReview]:
        """People in the queue with no decision in force, earliest due first."""
        if not self.ready():
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(QUEUE)).mappings().all()
            latest = self._latest(conn)
        today = max((row["seen_on"] for row in rows), default=None)
        decided = (
            in_force(latest, {row["account_id"]: row["queued_on"] for row in rows}, today) if today else {}
        )
        needle = (search or "").strip().lower()
        out = []
        for row in rows:
            entry = _pending(row)
            if entry.account_id in decided or (rule and entry.rule != rule):
                continue
            haystack = " ".join(filter(None, (entry.account_id, entry.email, entry.display_name))).lower()
            if needle and needle not in haystack:
                continue
            out.append(entry)
        return sorted(out, key=lambda e: (e.due_on or date.max, e.account_id))

    def queued(self) -> list[PendingReview]:
        """Everyone in the queue, decided or not."""
        if not self.ready():
            return []
        with self.engine.connect() as conn:
            return [_pending(row) for row in conn.execute(sa.select(QUEUE)).mappings().all()]

    def decide(
        self,
        account_ids: Sequence[str],
        *,
        decision: str,
        reason: str,
        decided_by: str,
        decided_at: datetime,
        keep_until: date | None = None,
    ) -> list[ReviewDecision]:
        """Store one decision for each person, all or none.

        :raises ValueError: every problem with the batch, each with its fix; nothing is stored.
        :raises ReviewNotReady: no cleanup run has created the review tables yet.
        """
        if not self.ready():
            raise ReviewNotReady("the review queue is empty: no live cleanup run has filled it yet")
        with self.engine.begin() as conn:
            rules = dict(conn.execute(sa.select(QUEUE.c.account_id, QUEUE.c.policy_rule)).all())
            problems = decision_problems(
                list(account_ids),
                decision=decision,
                reason=reason,
                decided_by=decided_by,
                decided_at=decided_at,
                keep_until=keep_until,
                queued=rules.keys(),
            )
            if problems:
                raise ValueError("nothing was stored: " + "; ".join(problems))
            made = [
                ReviewDecision(
                    account_id=account_id,
                    decision=decision,
                    reason=reason.strip(),
                    decided_by=decided_by.strip(),
                    decided_at=decided_at,
                    keep_until=keep_until if decision == KEEP else None,
                    rule=rules.get(account_id),
                )
                for account_id in account_ids
            ]
            conn.execute(DECISIONS_TABLE.insert(), [_decision_row(d) for d in made])
        return made

    def recent_decisions(self, limit: int = 200) -> list[ReviewDecision]:
        """The latest decisions, newest first."""
        if not self.ready():
            return []
        query = sa.select(DECISIONS_TABLE).order_by(DECISIONS_TABLE.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_decision(row) for row in conn.execute(query).mappings().all()]

    @staticmethod
    def _latest(conn: sa.Connection) -> dict[str, ReviewDecision]:
        newest = (
            sa.select(sa.func.max(DECISIONS_TABLE.c.id))
            .group_by(DECISIONS_TABLE.c.account_id)
            .scalar_subquery()
        )
        rows = conn.execute(sa.select(DECISIONS_TABLE).where(DECISIONS_TABLE.c.id.in_(newest))).mappings()
        return {row["account_id"]: _decision(row) for row in rows}


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _queue_row(entry: PendingReview, *, queued_on: date, run_id: str, as_of: date) -> dict[str, Any]:
    return {
        "account_id": entry.account_id,
        "queued_on": queued_on,
        "email": entry.email,
        "display_name": entry.display_name,
        "policy_rule": entry.rule,
        "action": entry.action,
        "reason": entry.reason,
        "products": list(entry.products),
        "last_active": dict(entry.last_active),
        "due_on": entry.due_on,
        "run_id": run_id,
        "seen_on": as_of,
    }


def _pending(row: Any) -> PendingReview:
    return PendingReview(
        account_id=row["account_id"],
        email=row["email"],
        display_name=row["display_name"],
        rule=row["policy_rule"],
        action=row["action"],
        reason=row["reason"],
        products=tuple(row["products"] or ()),
        last_active=dict(row["last_active"] or {}),
        due_on=row["due_on"],
        queued_on=row["queued_on"],
    )


def _decision_row(decision: ReviewDecision) -> dict[str, Any]:
    return {
        "account_id": decision.account_id,
        "decision": decision.decision,
        "reason": decision.reason,
        "keep_until": decision.keep_until,
        "decided_by": decision.decided_by,
        "decided_at": decision.decided_at,
        "policy_rule": decision.rule,
    }


def _decision(row: Any) -> ReviewDecision:
    return ReviewDecision(
        account_id=row["account_id"],
        decision=row["decision"],
        reason=row["reason"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        keep_until=row["keep_until"],
        rule=row["policy_rule"],
    )
