"""The state store: this tool's own memory of what it did to whom, on SQLite or PostgreSQL.

Atlassian cannot tell us when *we* warned, suspended or restored someone, so every such fact lives
here (DESIGN §3). The store is SQLAlchemy Core over any URL: an embedded SQLite file by default,
PostgreSQL when the Airflow connection says so. Nothing here imports Airflow or reads the clock
for logic: every method takes ``at`` (timezone-aware) from the caller; only the technical
``recorded_at`` / ``applied_at`` / ``updated_at`` columns use the database clock.

The tables, their append-only guards and the migrations are in
:mod:`~atlassian_cleanup.actions.state_schema`; the records handed to callers in
:mod:`~atlassian_cleanup.actions.state_records` (both re-exported here).

Idempotency
-----------
:meth:`StateStore.claim` derives a key from ``(account_id, cycle, action, lead_days, products)``
(``products`` only when given, for product-by-product removal) as a JSON array, e.g.
``["557058:f1c2", 3, "warn", 7, []]``. ``cycle`` is the user's inactivity cycle, bumped by the
events that start a new one (:func:`~atlassian_cleanup.actions.transitions.starts_new_cycle`), so a user
is never warned, suspended or deleted twice in one cycle, yet can be warned again after coming
back. The claim is ``new`` (an intent row is committed; call the API, then :meth:`complete`),
``done`` (a succeeded row exists; skip) or ``uncertain`` (an intent without result: the process
died between intent and result, or another worker holds the key right now; re-check the live API
and :meth:`resolve`). A ``failed`` or ``skipped`` key may be claimed again. Workers should
partition work by account so that ``uncertain`` only ever means a crash.

"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection

from atlassian_cleanup.action_kinds import DELETE, WARN
from atlassian_cleanup.actions.state_records import (
    CLAIM_STATUSES,
    Claim,
    ClaimStatus,
    JournalEntry,
    RunRecord,
    default_event_data,
    entry_from_row,
    first_warned,
    for_update,
    history_from_row,
    idempotency_key,
    journal_fields,
    run_from_row,
    scoped_idempotency_key,
    transition_user,
    user_cycle,
    utc,
    with_deletion_facts,
)
from atlassian_cleanup.actions.state_schema import (
    CLAIMS,
    JOURNAL,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    OUTCOMES,
    RESULT_OUTCOMES,
    RUNS,
    STORE_IDENTITY,
    USER_STATE,
    Migration,
    apply_migrations,
    normalise_url,
    sqlite_engine,
)
from atlassian_cleanup.decisions.records import UserHistory, format_timestamp

__all__ = [
    "CLAIMS",
    "CLAIM_STATUSES",
    "JOURNAL",
    "MIGRATIONS",
    "OUTCOMES",
    "RUNS",
    "USER_STATE",
    "Claim",
    "ClaimStatus",
    "JournalEntry",
    "Migration",
    "RunRecord",
    "StateStore",
    "normalise_url",
]

# Journal action for each observed event (record_event): the audit reads actions, not events.
_EVENT_ACTIONS = {
    "warned": WARN,
    "delete_requested": DELETE,
    "deleted": "deleted",
    "delete_cancelled": "cancel_delete",
    "activity_seen": "activity_seen",
    "restored": "restore",
}
_CHUNK = 1000  # IN-list size: far below SQLite's and PostgreSQL's bind-parameter limits
_PG_LOCK_RUNS = 0x6163_755F_7275_6E  # "acu_run": makes the runs' start order gap-free and unique


class StateStore:
    """Per-user state, the run list and the append-only journal, on one SQLAlchemy engine.

    Thread-safe: every public method runs in its own connection and transaction, so several
    threads (and processes) may claim and complete at once. ``schema_version`` is for tests that
    need an old database: migrate only up to that version.
    """

    def __init__(self, url: str | URL, *, schema_version: int | None = None) -> None:
        self.url = normalise_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = sqlite_engine(self.url)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, future=True)
        self._migrate(schema_version)

    # --- engine & transactions -----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(acu_read_only=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- migrations --------------------------------------------------------------------------------

    def _migrate(self, target: int | None) -> None:
        # MIGRATIONS is read from this module at call time, so a test can extend the schema.
        with self._write() as conn:
            apply_migrations(conn, MIGRATIONS, target)

    def store_id(self) -> str:
        """This store's identity: a random id written once, with the schema (see the module doc)."""
        with self._read() as conn:
            return str(conn.execute(sa.select(STORE_IDENTITY.c.store_id)).scalar_one())

    def knows_run(self, run_id: str, *, mode: str | None = None) -> bool:
        """Whether the store recorded the run (optionally: in this mode)."""
        query = sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)
        if mode is not None:
            query = query.where(RUNS.c.mode == mode)
        with self._read() as conn:
            return conn.execute(query).first() is not None

    def schema_version(self) -> int:
        """The highest schema version applied to this database (0 when none)."""
        with self._read() as conn:
            return conn.execute(sa.select(sa.func.max(MIGRATIONS_TABLE.c.version))).scalar() or 0

    # --- per-user state ----------------------------------------------------------------------------

    def history(self, account_ids: Iterable[str] | None = None) -> dict[str, UserHistory]:
        """What the store knows per user (users never recorded are absent: the planner's default).

        ``None`` loads every user in one query; a list is looked up in chunks of 1000 ids.
        """
        columns = (
            USER_STATE.c.account_id,
            USER_STATE.c.stage,
            USER_STATE.c.actioned_at,
            USER_STATE.c.actioned_action,
            USER_STATE.c.restored_at,
            USER_STATE.c.last_warned_lead_days,
            USER_STATE.c.warned_at,
            USER_STATE.c.actioned_products,
        )
        result: dict[str, UserHistory] = {}
        with self._read() as conn:
            warned_first = first_warned(conn)
            if account_ids is None:
                for row in conn.execute(sa.select(*columns)):
                    result[row.account_id] = history_from_row(row, warned_first.get(row.account_id))
                return with_deletion_facts(conn, result)
            ids = sorted({str(a) for a in account_ids})
            if len(ids) > 20 * _CHUNK:
                # A whole-org lookup: one scan beats a hundred round-trips of IN lists.
                wanted = set(ids)
                for row in conn.execute(sa.select(*columns)):
                    if row.account_id in wanted:
                        result[row.account_id] = history_from_row(row, warned_first.get(row.account_id))
                return with_deletion_facts(conn, result)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                for row in conn.execute(sa.select(*columns).where(USER_STATE.c.account_id.in_(chunk))):
                    result[row.account_id] = history_from_row(row, warned_first.get(row.account_id))
            return with_deletion_facts(conn, result)

    def user_state(self, account_id: str) -> dict[str, Any] | None:
        """The full ``acu_user_state`` row, JSON-native, or ``None`` (for audit pages and tests)."""
        with self._read() as conn:
            row = conn.execute(sa.select(USER_STATE).where(USER_STATE.c.account_id == account_id)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = format_timestamp(value)
        return data

    # --- runs --------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        as_of: datetime,
        mode: str,
        user_count: int,
        missing_activity_share: float | None,
        summary: Any = None,
        at: datetime | None = None,
        directory_user_count: int | None = None,
    ) -> RunRecord:
        """Record (or, for a retried task, update) a run; the first start keeps its order.

        ``at`` is when the run started (default: the database clock; it is only shown, never used
        for decisions; the order of starts is kept by ``seq``). ``user_count`` is every account
        planned; ``directory_user_count`` the ones the directory itself listed (default: all).
        """
        as_of = utc(as_of, "as_of")
        values: dict[str, Any] = {
            "as_of": as_of,
            "mode": mode,
            "user_count": int(user_count),
            "directory_user_count": int(user_count if directory_user_count is None else directory_user_count),
            "missing_activity_share": missing_activity_share,
            "summary": summary,
        }
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_RUNS)))
            existing = conn.execute(
                sa.select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)
            ).scalar_one_or_none()
            if existing is None:
                seq = conn.execute(sa.select(sa.func.coalesce(sa.func.max(RUNS.c.seq), 0) + 1)).scalar_one()
                started = utc(at) if at is not None else sa.func.current_timestamp()
                conn.execute(RUNS.insert().values(run_id=run_id, seq=seq, started_at=started, **values))
            else:
                conn.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(**values))
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).one()
        return run_from_row(row)

    def finish_run(self, run_id: str, *, at: datetime, summary: Any) -> RunRecord:
        """Mark the run finished at ``at`` with its final summary (repeatable)."""
        with self._write() as conn:
            done = conn.execute(
                RUNS.update().where(RUNS.c.run_id == run_id).values(finished_at=utc(at), summary=summary)
            )
            if done.rowcount != 1:
                raise KeyError(f"run {run_id!r} was never started in the state store")
        finished = self.get_run(run_id)
        assert finished is not None  # updated above
        return finished

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or ``None`` when it was never started in this store."""
        with self._read() as conn:
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).first()
        return None if row is None else run_from_row(row)

    def previous_run(self, run_id: str, *, as_of: datetime | None = None) -> RunRecord | None:
        """The latest *other* run with ``as_of`` ≤ this run's ``as_of`` (then by start order).

        ``as_of`` is needed only when ``run_id`` is not recorded yet (the sanity gate runs before
        :meth:`start_run`); without either, the latest other run is returned.
        """
        with self._read() as conn:
            this = conn.execute(sa.select(RUNS.c.as_of, RUNS.c.seq).where(RUNS.c.run_id == run_id)).first()
            query = sa.select(RUNS).where(RUNS.c.run_id != run_id)
            limit_as_of = this.as_of if this is not None else (utc(as_of, "as_of") if as_of else None)
            if limit_as_of is not None:
                query = query.where(RUNS.c.as_of <= limit_as_of)
            if this is not None:
                # Same logical date: only a run started before this one counts as "previous".
                query = query.where(sa.or_(RUNS.c.as_of < this.as_of, RUNS.c.seq < this.seq))
            row = conn.execute(query.order_by(RUNS.c.as_of.desc(), RUNS.c.seq.desc()).limit(1)).first()
        return None if row is None else run_from_row(row)

    # --- journal: claim / complete / resolve -------------------------------------------------------

    def claim(
        self,
        *,
        run_id: str,
        account_id: str,
        action: str,
        at: datetime,
        lead_days: int | None = None,
        reason: str = "",
        evidence: Any = None,
        before: Any = None,
        products: Iterable[str] | None = None,
        scope: str | None = None,
    ) -> Claim:
        """Claim one write before making it (see the module docstring, "Idempotency").

        ``action`` is the write: ``warn`` (needs ``lead_days``), ``suspend``, ``deactivate``,
        ``remove_product_access``, ``delete``, ``restore``, ``cancel_delete`` ... (free text, it is
        part of the key). ``evidence`` is the per-product last activity, ``before`` the groups and
        roles the user had before the write (JSON-native values).

        ``new`` is returned only after the intent row is committed, so a crash during the API call
        leaves an ``uncertain`` row behind rather than no trace. ``products`` (optional) joins the
        key for product-by-product removal and its warnings.

        ``scope`` (optional) replaces the user's cycle in the key with a caller-chosen subject, for
        writes that belong to something outside the user's lifecycle and must happen once for it
        whatever the cycle: the restore DAG handles each service request once (``"jsm:ITH-12"``),
        although the restore itself starts a new cycle.
        """
        at = utc(at)
        if not action:
            raise ValueError("claim needs an action")
        if action == WARN and lead_days is None:
            raise ValueError("a warn claim needs lead_days (the warning bucket is part of its key)")
        product_list = sorted(set(products)) if products is not None else None
        with self._write() as conn:
            cycle = user_cycle(conn, account_id)
            key = (
                idempotency_key(account_id, cycle, action, lead_days, product_list)
                if scope is None
                else scoped_idempotency_key(account_id, scope, action, lead_days, product_list)
            )
            claim = self._locked_claim(conn, key, account_id)
            if claim is not None and claim.journal_id is not None:
                if claim.status == "succeeded":
                    return Claim(claim.journal_id, key, "done")
                if claim.status == "intent":
                    return Claim(claim.journal_id, key, "uncertain")
            fields = journal_fields(
                run_id, cycle, action, lead_days, product_list, reason, evidence, before, at
            )
            entry_id = self._journal_entry(conn, claim, key, account_id, outcome="intent", **fields)
        return Claim(entry_id, key, "new")

    def _journal_entry(self, conn: Connection, claim: Any, key: str, account_id: str, **values: Any) -> int:
        """Append one journal row under ``key`` and point the claim at it; its id."""
        entry_id = int(
            conn.execute(
                JOURNAL.insert()
                .values(idempotency_key=key, account_id=account_id, **values)
                .returning(JOURNAL.c.id)
            ).scalar_one()
        )
        self._point_claim(conn, claim, key, account_id, entry_id, values["outcome"])
        return entry_id

    def _locked_claim(self, conn: Connection, key: str, account_id: str) -> Any:
        """The claim row of ``key`` (or None), locked for the rest of ``conn``'s transaction."""
        if self.dialect == "postgresql":
            # The primary key makes exactly one concurrent insert win; everyone then queues on
            # the row lock and sees the winner's committed intent.
            conn.execute(
                postgresql.insert(CLAIMS)
                .values(idempotency_key=key, account_id=account_id, status="open")
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
        return conn.execute(
            for_update(
                conn, sa.select(CLAIMS.c.journal_id, CLAIMS.c.status).where(CLAIMS.c.idempotency_key == key)
            )
        ).first()

    @staticmethod
    def _point_claim(
        conn: Connection, claim: Any, key: str, account_id: str, entry_id: int, status: str
    ) -> None:
        """Make the claim of ``key`` point at journal row ``entry_id`` with ``status``."""
        if claim is None:
            conn.execute(
                CLAIMS.insert().values(
                    idempotency_key=key, account_id=account_id, journal_id=entry_id, status=status
                )
            )
        else:
            conn.execute(
                CLAIMS.update()
                .where(CLAIMS.c.idempotency_key == key)
                .values(journal_id=entry_id, status=status, updated_at=sa.func.current_timestamp())
            )

    def complete(
        self,
        entry_id: int,
        *,
        outcome: str,
        at: datetime,
        api_status: int | None = None,
        detail: str = "",
        event: str | None = None,
        event_data: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        """Write the result of the API call for a ``new`` claim.

        With ``event`` and outcome ``succeeded`` the transition is applied to the user's state in
        the same transaction; ``event_data`` defaults from the entry (``lead_days`` for ``warned``,
        ``action`` and ``products`` for ``actioned``). An invalid transition rolls everything back
        and raises :class:`~atlassian_cleanup.actions.transitions.InvalidTransition`.
        """
        return self._finish(entry_id, outcome, at, api_status, detail, event, event_data, source="api")

    def resolve(
        self,
        entry_id: int,
        *,
        outcome: str,
        at: datetime,
        api_status: int | None = None,
        detail: str = "",
        event: str | None = None,
        event_data: Mapping[str, Any] | None = None,
    ) -> JournalEntry:
        """Like :meth:`complete`, for an ``uncertain`` entry settled by re-checking the live API.

        The row's ``result_source`` says ``recheck``, so the audit shows the result was inferred
        after a crash, not seen in the original API response.
        """
        return self._finish(entry_id, outcome, at, api_status, detail, event, event_data, source="recheck")

    def _finish(
        self,
        entry_id: int,
        outcome: str,
        at: datetime,
        api_status: int | None,
        detail: str,
        event: str | None,
        event_data: Mapping[str, Any] | None,
        *,
        source: str,
    ) -> JournalEntry:
        if outcome not in RESULT_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(RESULT_OUTCOMES)} (got {outcome!r})")
        at = utc(at)
        with self._write() as conn:
            row = conn.execute(for_update(conn, sa.select(JOURNAL).where(JOURNAL.c.id == entry_id))).first()
            if row is None:
                raise KeyError(f"journal entry {entry_id} does not exist")
            if row.outcome != "intent":
                raise ValueError(
                    f"journal entry {entry_id} already has its result ({row.outcome}); "
                    "a result is written once"
                )
            stage_after = None
            applied = event if event is not None and outcome == "succeeded" else None
            if applied is not None:
                data = default_event_data(applied, row)
                data.update(event_data or {})
                stage_after = transition_user(conn, row.account_id, applied, at, row.run_id, data)
            conn.execute(
                JOURNAL.update()
                .where(JOURNAL.c.id == entry_id)
                .values(
                    outcome=outcome,
                    api_status=api_status,
                    detail=detail or "",
                    result_at=at,
                    result_source=source,
                    event=applied,
                    stage_after=stage_after,
                )
            )
            conn.execute(
                CLAIMS.update()
                .where(CLAIMS.c.idempotency_key == row.idempotency_key, CLAIMS.c.journal_id == entry_id)
                .values(status=outcome, updated_at=sa.func.current_timestamp())
            )
            final = conn.execute(sa.select(JOURNAL).where(JOURNAL.c.id == entry_id)).one()
        return entry_from_row(final)

    def record_event(
        self,
        account_id: str,
        event: str,
        *,
        at: datetime,
        run_id: str,
        reason: str = "",
        evidence: Any = None,
        before: Any = None,
        **data: Any,
    ) -> Claim:
        """Journal an observation (no API write) and apply its transition, in one transaction.

        For e.g. ``activity_seen`` seen by the planner, ``deleted`` once Atlassian's grace is over,
        ``restored`` by the restoration DAG. Idempotent per run: the key is
        ``(account_id, "event:<event>", run_id, data)``, so a retried task gets ``done`` back
        instead of a second transition; otherwise ``new`` (recorded now). Invalid transitions
        raise :class:`~atlassian_cleanup.actions.transitions.InvalidTransition` and write nothing.
        """
        at = utc(at)
        action = data.get("action") if event == "actioned" else _EVENT_ACTIONS.get(event, event)
        key = json.dumps(
            [account_id, f"event:{event}", run_id, data], ensure_ascii=False, sort_keys=True, default=str
        )
        with self._write() as conn:
            claim = self._locked_claim(conn, key, account_id)
            if claim is not None and claim.status == "succeeded":
                return Claim(claim.journal_id, key, "done")
            cycle = user_cycle(conn, account_id)
            stage_after = transition_user(conn, account_id, event, at, run_id, data)
            products = data.get("products")
            product_list = sorted(set(products)) if products is not None else None
            fields = journal_fields(
                run_id, cycle, action, data.get("lead_days"), product_list, reason, evidence, before, at
            )
            entry_id = self._journal_entry(
                conn,
                claim,
                key,
                account_id,
                outcome="succeeded",
                result_at=at,
                result_source="observation",
                event=event,
                stage_after=stage_after,
                **fields,
            )
        return Claim(entry_id, key, "new")

    # --- journal: queries --------------------------------------------------------------------------

    def journal(self, account_id: str | None = None, run_id: str | None = None) -> list[JournalEntry]:
        """Journal rows, oldest first, optionally for one account and/or one run."""
        query = sa.select(JOURNAL).order_by(JOURNAL.c.id)
        if account_id is not None:
            query = query.where(JOURNAL.c.account_id == account_id)
        if run_id is not None:
            query = query.where(JOURNAL.c.run_id == run_id)
        with self._read() as conn:
            return [entry_from_row(row) for row in conn.execute(query)]

    def uncertain_entries(self, run_id: str | None = None) -> list[JournalEntry]:
        """Intent rows without a result (a crash between intent and result, or a write in flight)."""
        query = sa.select(JOURNAL).where(JOURNAL.c.outcome == "intent").order_by(JOURNAL.c.id)
        if run_id is not None:
            query = query.where(JOURNAL.c.run_id == run_id)
        with self._read() as conn:
            return [entry_from_row(row) for row in conn.execute(query)]

    def write_counts(self, run_id: str | None = None) -> dict[str, int]:
        """Succeeded API writes by action (observations not counted), e.g. ``{"warn": 3}``."""
        query = (
            sa.select(JOURNAL.c.action, sa.func.count())
            .where(JOURNAL.c.outcome == "succeeded", JOURNAL.c.result_source.in_(("api", "recheck")))
            .group_by(JOURNAL.c.action)
        )
        if run_id is not None:
            query = query.where(JOURNAL.c.run_id == run_id)
        with self._read() as conn:
            return {action: int(count) for action, count in conn.execute(query)}
