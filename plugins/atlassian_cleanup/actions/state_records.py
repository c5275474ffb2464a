"""What the state store hands to callers, and the pure pieces its queries share.

The records (:class:`Claim`, :class:`RunRecord`, :class:`JournalEntry`), how rows become records,
the claim keys, and the journal reads that complete a user's history (deletion facts, first
warning of the cycle).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from atlassian_cleanup.action_kinds import DELETE, DELETE_NOTICE, REMOVE_PRODUCT_ACCESS
from atlassian_cleanup.actions.state_schema import JOURNAL, USER_STATE
from atlassian_cleanup.actions.transitions import apply_event, starts_new_cycle
from atlassian_cleanup.decisions.account_facts import LIFECYCLE_DELETE, REMOVE_FROM_DIRECTORY, is_removal
from atlassian_cleanup.decisions.records import UserHistory, format_timestamp

#: What :meth:`StateStore.claim` returns.
CLAIM_STATUSES: tuple[str, ...] = ("new", "done", "uncertain")
ClaimStatus = Literal["new", "done", "uncertain"]
#: Stages whose history carries the journal's deletion facts (see StateStore.history).
_DELETION_STAGES = ("actioned", "pending_delete", "deleted")


@dataclass(frozen=True)
class Claim:
    """Answer of :meth:`StateStore.claim`: what the caller may do with one intended write.

    ``status``: ``new`` (intent committed as journal row ``entry_id``: call the API, then
    :meth:`StateStore.complete`), ``done`` (row ``entry_id`` already succeeded: skip) or
    ``uncertain`` (row ``entry_id`` has no result: re-check the live API, then
    :meth:`StateStore.resolve`).
    """

    entry_id: int
    idempotency_key: str
    status: ClaimStatus


@dataclass(frozen=True)
class RunRecord:
    """One DAG run as the store saw it."""

    run_id: str
    as_of: datetime
    mode: str
    user_count: int
    missing_activity_share: float | None
    started_at: datetime
    finished_at: datetime | None
    summary: Any
    seq: int
    #: Users the directory itself listed (before Jira's back-fill); None for runs recorded
    #: before schema version 2.
    directory_user_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": format_timestamp(self.as_of),
            "mode": self.mode,
            "user_count": self.user_count,
            "missing_activity_share": self.missing_activity_share,
            "started_at": format_timestamp(self.started_at),
            "finished_at": format_timestamp(self.finished_at),
            "summary": self.summary,
            "seq": self.seq,
            "directory_user_count": self.directory_user_count,
        }


@dataclass(frozen=True)
class JournalEntry:
    """One journal row (the columns are described in :mod:`~atlassian_cleanup.actions.state_schema`)."""

    entry_id: int
    run_id: str
    account_id: str
    idempotency_key: str
    cycle: int
    action: str
    lead_days: int | None
    products: list[str] | None
    reason: str
    evidence: Any
    before: Any
    intent_at: datetime
    outcome: str
    api_status: int | None
    detail: str
    result_at: datetime | None
    result_source: str | None
    event: str | None
    stage_after: str | None
    recorded_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-native form (timestamps as ISO-8601 UTC strings)."""
        return {
            "entry_id": self.entry_id,
            "run_id": self.run_id,
            "account_id": self.account_id,
            "idempotency_key": self.idempotency_key,
            "cycle": self.cycle,
            "action": self.action,
            "lead_days": self.lead_days,
            "products": self.products,
            "reason": self.reason,
            "evidence": self.evidence,
            "before": self.before,
            "intent_at": format_timestamp(self.intent_at),
            "outcome": self.outcome,
            "api_status": self.api_status,
            "detail": self.detail,
            "result_at": format_timestamp(self.result_at),
            "result_source": self.result_source,
            "event": self.event,
            "stage_after": self.stage_after,
            "recorded_at": format_timestamp(self.recorded_at),
        }


def entry_from_row(row: Any) -> JournalEntry:
    return JournalEntry(
        entry_id=row.id,
        run_id=row.run_id,
        account_id=row.account_id,
        idempotency_key=row.idempotency_key,
        cycle=row.cycle,
        action=row.action,
        lead_days=row.lead_days,
        products=row.products,
        reason=row.reason,
        evidence=row.evidence,
        before=row.before,
        intent_at=row.intent_at,
        outcome=row.outcome,
        api_status=row.api_status,
        detail=row.detail,
        result_at=row.result_at,
        result_source=row.result_source,
        event=row.event,
        stage_after=row.stage_after,
        recorded_at=row.recorded_at,
    )


def run_from_row(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        as_of=row.as_of,
        mode=row.mode,
        user_count=row.user_count,
        missing_activity_share=row.missing_activity_share,
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=row.summary,
        seq=row.seq,
        directory_user_count=row._mapping.get("directory_user_count"),
    )


def history_from_row(row: Any, first_warned_at: datetime | None = None) -> UserHistory:
    removed = getattr(row, "actioned_products", None)
    if row.actioned_action != REMOVE_PRODUCT_ACCESS:
        removed = None
    return UserHistory(
        stage=row.stage,
        actioned_at=row.actioned_at,
        actioned_action=row.actioned_action,
        restored_at=row.restored_at,
        last_warned_lead_days=row.last_warned_lead_days,
        warned_at=row.warned_at,
        first_warned_at=first_warned_at,
        removed_products=tuple(removed or ()),
    )


def idempotency_key(
    account_id: str, cycle: int, action: str, lead_days: int | None, products: Iterable[str] | None
) -> str:
    """The claim key: a JSON array, unambiguous whatever characters the account id holds."""
    return json.dumps([account_id, cycle, action, lead_days, sorted(set(products or ()))], ensure_ascii=False)


def scoped_idempotency_key(
    account_id: str, scope: str, action: str, lead_days: int | None, products: Iterable[str] | None
) -> str:
    """The claim key of a scoped claim: ``"scope"`` in the cycle's place cannot collide with a cycle."""
    return json.dumps(
        [account_id, "scope", scope, action, lead_days, sorted(set(products or ()))], ensure_ascii=False
    )


def utc(value: datetime, name: str = "at") -> datetime:
    """``value`` in UTC; a naive datetime (or none at all) is refused rather than guessed."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime (got {type(value).__name__})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (pass the run's logical date or action time)")
    return value.astimezone(UTC)


def default_event_data(event: str, row: Any) -> dict[str, Any]:
    """Event data implied by the claimed write, so callers need not repeat it."""
    if event == "warned" and row.lead_days is not None:
        return {"lead_days": row.lead_days}
    if event == "actioned":
        data: dict[str, Any] = {"action": row.action}
        if row.products is not None:
            data["products"] = list(row.products)
        return data
    return {}


def with_deletion_facts(conn: Connection, result: dict[str, UserHistory]) -> dict[str, UserHistory]:
    """Fill the journal's deletion facts of the current cycle into the histories that have them.

    One query over the succeeded ``delete_notice`` / ``delete`` / ``deleted`` rows of users at
    a stage after an action (few rows: only users this tool is deleting or deleted), and their
    ``actioned`` rows: only the facts after the latest action count.
    """
    if not any(h.stage in _DELETION_STAGES for h in result.values()):
        return result
    query = (
        sa.select(
            JOURNAL.c.account_id,
            JOURNAL.c.action,
            JOURNAL.c.event,
            JOURNAL.c.result_at,
            JOURNAL.c.intent_at,
            JOURNAL.c.evidence,
        )
        .select_from(
            JOURNAL.join(
                USER_STATE,
                sa.and_(
                    JOURNAL.c.account_id == USER_STATE.c.account_id, JOURNAL.c.cycle == USER_STATE.c.cycle
                ),
            )
        )
        .where(
            USER_STATE.c.stage.in_(_DELETION_STAGES),
            JOURNAL.c.outcome == "succeeded",
            sa.or_(JOURNAL.c.action.in_((DELETE_NOTICE, DELETE, "deleted")), JOURNAL.c.event == "actioned"),
        )
        .order_by(JOURNAL.c.id)
    )
    facts: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        if row.account_id not in result:
            continue
        found = facts.setdefault(row.account_id, {})
        if row.event == "actioned":
            # A later action restarts the deletion clock (as in transitions.apply_event).
            found.clear()
        elif row.action == DELETE_NOTICE:
            found["delete_notice_at"] = row.result_at
        elif row.event == "delete_requested":
            found.update(delete_requested_at=row.result_at, deletion_kind=LIFECYCLE_DELETE)
        elif row.event == "deleted" and is_removal(row._mapping, found.get("delete_requested_at")):
            found["deletion_kind"] = REMOVE_FROM_DIRECTORY
    for account_id, found in facts.items():
        result[account_id] = replace(result[account_id], **found)
    return result


def first_warned(conn: Connection) -> dict[str, datetime]:
    """When each user at stage ``warned`` got the first warning of their current warning cycle.

    Read from the append-only journal, so it survives reruns and crashes: the earliest
    ``warned`` transition in the user's current cycle (and, after a partial product removal,
    after that action). A warning recorded for a user without a visible e-mail address (listed
    to the admins instead) is such a transition too, so their notice starts at the first listing.
    """
    j, us = JOURNAL, USER_STATE
    query = (
        sa.select(us.c.account_id, sa.func.min(j.c.result_at).label("first"))
        .select_from(us.join(j, j.c.account_id == us.c.account_id))
        .where(
            us.c.stage == "warned",
            j.c.cycle == us.c.cycle,
            j.c.event == "warned",
            j.c.stage_after == "warned",
            sa.or_(us.c.actioned_at.is_(None), j.c.result_at >= us.c.actioned_at),
        )
        .group_by(us.c.account_id)
    )
    out: dict[str, datetime] = {}
    for row in conn.execute(query):
        first = row.first
        if isinstance(first, str):  # SQLite may hand an aggregate back as text
            first = datetime.fromisoformat(first)
        if first is not None:
            out[row.account_id] = first if first.tzinfo else first.replace(tzinfo=UTC)
    return out


def user_cycle(conn: Connection, account_id: str) -> int:
    """The user's inactivity cycle (0 for a user never recorded)."""
    cycle = conn.execute(sa.select(USER_STATE.c.cycle).where(USER_STATE.c.account_id == account_id)).scalar()
    return int(cycle or 0)


def transition_user(
    conn: Connection,
    account_id: str,
    event: str,
    at: datetime,
    run_id: str,
    data: Mapping[str, Any],
) -> str:
    """Apply ``event`` to the user's row inside ``conn``'s transaction; return the new stage."""
    if conn.dialect.name == "postgresql":
        # Make the row exist so that FOR UPDATE has something to lock for a first-time user.
        conn.execute(
            postgresql.insert(USER_STATE)
            .values(account_id=account_id, stage="active", cycle=0, updated_at=at)
            .on_conflict_do_nothing(index_elements=["account_id"])
        )
    row = conn.execute(
        for_update(conn, sa.select(USER_STATE).where(USER_STATE.c.account_id == account_id))
    ).first()
    before = history_from_row(row) if row is not None else None
    # Raises InvalidTransition: the caller's transaction (journal result included) rolls back.
    after = apply_event(before, event, at, **data)
    cycle = int(row.cycle) if row is not None else 0
    if starts_new_cycle(event):
        cycle += 1
    products = row.actioned_products if row is not None else None
    if event == "actioned":
        new = sorted(set(data.get("products") or ()))
        # Product-by-product removal accumulates (also across the warning before the next
        # product) until a restore gives the access back; any other action replaces the record.
        if (
            before is not None
            and data.get("action") == before.actioned_action == REMOVE_PRODUCT_ACCESS
            and not (before.restored_at is not None and before.restored_at >= before.actioned_at)
        ):
            new = sorted(set(products or ()) | set(new))
        products = new
    values = {
        "stage": after.stage,
        "cycle": cycle,
        "warned_at": after.warned_at,
        "last_warned_lead_days": after.last_warned_lead_days,
        "actioned_at": after.actioned_at,
        "actioned_action": after.actioned_action,
        "actioned_products": products,
        "restored_at": after.restored_at,
        "updated_at": at,
        "updated_run_id": run_id,
    }
    if row is None:
        conn.execute(USER_STATE.insert().values(account_id=account_id, **values))
    else:
        conn.execute(USER_STATE.update().where(USER_STATE.c.account_id == account_id).values(**values))
    return after.stage


def for_update(conn: Connection, stmt: sa.Select) -> sa.Select:
    """``stmt`` locking its rows until the transaction ends, where the database needs it."""
    # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock.
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


def journal_fields(
    run_id: str,
    cycle: int,
    action: str | None,
    lead_days: int | None,
    products: list[str] | None,
    reason: str | None,
    evidence: Any,
    before: Any,
    at: datetime,
) -> dict[str, Any]:
    """The journal columns every entry has, claimed write or observed event alike."""
    return {
        "run_id": run_id,
        "cycle": cycle,
        "action": action,
        "lead_days": lead_days,
        "products": products,
        "reason": reason or "",
        "evidence": evidence,
        "before": before,
        "intent_at": at,
    }
