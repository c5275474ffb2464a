"""The state store: this tool's own memory of what it did to whom, on SQLite or PostgreSQL.

Atlassian cannot tell us when *we* warned, suspended or restored someone, so every such fact lives
here (DESIGN §3). The store is SQLAlchemy Core over any URL: an embedded SQLite file by default,
PostgreSQL when the Airflow connection says so. Nothing here imports Airflow or reads the clock
for logic: every method takes ``at`` (timezone-aware) from the caller; only the technical
``recorded_at`` / ``applied_at`` / ``updated_at`` columns use the database clock.

Tables (prefixed ``acu_`` so they can share a database or schema with other applications)
------------------------------------------------------------------------------------------
``acu_schema_migrations``
    ``version`` (PK), ``description``, ``applied_at``: one row per applied migration step.
``acu_runs``
    ``run_id`` (PK), ``as_of``, ``mode``, ``user_count``, ``missing_activity_share``,
    ``started_at``, ``finished_at``, ``summary`` (JSON text), ``seq`` (start order, for
    :meth:`StateStore.previous_run`), ``directory_user_count`` (version 2: the users the
    directory itself listed, before Jira's back-fill; what the sanity gate compares).
``acu_store_identity`` (version 2)
    ``store_id`` (PK, a random UUID), ``created_at``: one row, written with the schema. A store
    that was deleted, truncated or swapped for an empty one gets a new id, which is how a live run
    tells lost memory from its own (:meth:`StateStore.store_id`).
``acu_user_state``
    ``account_id`` (PK), ``stage``, ``cycle``, ``warned_at``, ``last_warned_lead_days``,
    ``actioned_at``, ``actioned_action``, ``actioned_products`` (JSON), ``restored_at``,
    ``updated_at`` (the ``at`` of the last transition), ``updated_run_id``.
``acu_journal``
    Append-only, one row per intended write or observation: ``id``, ``run_id``, ``account_id``,
    ``idempotency_key``, ``cycle``, ``action``, ``lead_days``, ``products`` (JSON), ``reason``,
    ``evidence`` (JSON, per-product last active), ``before`` (JSON, groups/roles before the
    action), ``intent_at``, ``outcome`` (``intent`` | ``succeeded`` | ``failed`` | ``skipped``),
    ``api_status``, ``detail``, ``result_at``, ``result_source`` (``api``: completed by the caller
    that made the call; ``recheck``: resolved by re-checking the live API after a crash;
    ``observation``: no API write), ``event`` and ``stage_after`` (the transition applied),
    ``recorded_at``. The result is written into the intent row itself: the *only* update a row
    ever sees is ``intent`` -> a result, once; database triggers reject every other update and
    every delete, so the journal cannot be rewritten by this code or by accident.
``acu_claims``
    ``idempotency_key`` (PK), ``account_id``, ``journal_id``, ``status`` (the outcome of the
    latest journal row for the key), ``updated_at``. The primary key is what makes two concurrent
    claims of one key impossible to both win.

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

Migrations
----------
:data:`MIGRATIONS` is an ordered list of steps; a new schema version is one appended
:class:`Migration`. On construction the missing steps are applied in one transaction while
holding a lock (PostgreSQL: an advisory transaction lock; SQLite: ``BEGIN IMMEDIATE``), so two
processes opening a fresh database at once apply each step exactly once. When adding a version,
leave earlier steps untouched (an old database replays them) and update the query tables below.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine, make_url

from atlassian_cleanup.actions.transitions import apply_event, starts_new_cycle
from atlassian_cleanup.decisions.account_facts import LIFECYCLE_DELETE, REMOVE_FROM_DIRECTORY, is_removal
from atlassian_cleanup.decisions.records import UserHistory, format_timestamp

__all__ = [
    "CLAIM_STATUSES",
    "MIGRATIONS",
    "OUTCOMES",
    "Claim",
    "JournalEntry",
    "Migration",
    "RunRecord",
    "StateStore",
    "normalise_url",
]

#: Journal outcomes. ``intent`` is the row before the API call; the rest are results.
OUTCOMES: tuple[str, ...] = ("intent", "succeeded", "failed", "skipped")
RESULT_OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "skipped")
#: What :meth:`StateStore.claim` returns.
CLAIM_STATUSES: tuple[str, ...] = ("new", "done", "uncertain")
ClaimStatus = Literal["new", "done", "uncertain"]

# Journal action for each observed event (record_event): the audit reads actions, not events.
_EVENT_ACTIONS = {
    "warned": "warn",
    "delete_requested": "delete",
    "deleted": "deleted",
    "delete_cancelled": "cancel_delete",
    "activity_seen": "activity_seen",
    "restored": "restore",
}
#: Stages whose history carries the journal's deletion facts (see StateStore.history).
_DELETION_STAGES = ("actioned", "pending_delete", "deleted")
_CHUNK = 1000  # IN-list size: far below SQLite's and PostgreSQL's bind-parameter limits
_PG_LOCK_MIGRATE = 0x6163_755F_6D69_67  # "acu_mig": serialises schema migrations across processes
_PG_LOCK_RUNS = 0x6163_755F_7275_6E  # "acu_run": makes the runs' start order gap-free and unique


# --------------------------------------------------------------------------------------------------
# Column types
# --------------------------------------------------------------------------------------------------


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text, read back as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamps must be timezone-aware (got {value!r})")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JSONText(sa.types.TypeDecorator):
    """JSON kept as text (UTF-8, not escaped) so it reads the same on every backend."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value)
    if hasattr(value, "item"):  # numpy / pandas scalars from a plan summary
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------------


def _tables_v1(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The schema as of version 1 (frozen: migration 1 creates exactly this)."""
    now = sa.func.current_timestamp()
    migrations = sa.Table(
        "acu_schema_migrations",
        metadata,
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False, server_default=now),
    )
    runs = sa.Table(
        "acu_runs",
        metadata,
        sa.Column("run_id", sa.String(250), primary_key=True),
        sa.Column("as_of", UTCDateTime, nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("user_count", sa.Integer, nullable=False),
        sa.Column("missing_activity_share", sa.Float, nullable=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("summary", JSONText, nullable=True),
        sa.Index("acu_runs_as_of_seq", "as_of", "seq"),
    )
    user_state = sa.Table(
        "acu_user_state",
        metadata,
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False, server_default="0"),
        sa.Column("warned_at", UTCDateTime, nullable=True),
        sa.Column("last_warned_lead_days", sa.Integer, nullable=True),
        sa.Column("actioned_at", UTCDateTime, nullable=True),
        sa.Column("actioned_action", sa.String(32), nullable=True),
        sa.Column("actioned_products", JSONText, nullable=True),
        sa.Column("restored_at", UTCDateTime, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_run_id", sa.String(250), nullable=True),
        sa.CheckConstraint(
            "stage IN ('active', 'warned', 'actioned', 'pending_delete', 'deleted', 'restored')",
            name="acu_user_state_stage",
        ),
    )
    journal = sa.Table(
        "acu_journal",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("lead_days", sa.Integer, nullable=True),
        sa.Column("products", JSONText, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("evidence", JSONText, nullable=True),
        sa.Column("before", JSONText, nullable=True),
        sa.Column("intent_at", UTCDateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("api_status", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("result_at", UTCDateTime, nullable=True),
        sa.Column("result_source", sa.String(16), nullable=True),
        sa.Column("event", sa.String(32), nullable=True),
        sa.Column("stage_after", sa.String(32), nullable=True),
        sa.Column("recorded_at", UTCDateTime, nullable=False, server_default=now),
        sa.CheckConstraint(
            "outcome IN ('intent', 'succeeded', 'failed', 'skipped')", name="acu_journal_outcome"
        ),
        sa.Index("acu_journal_account", "account_id", "id"),
        sa.Index("acu_journal_run_outcome", "run_id", "outcome"),
        sa.Index("acu_journal_key", "idempotency_key"),
    )
    claims = sa.Table(
        "acu_claims",
        metadata,
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("journal_id", sa.Integer, sa.ForeignKey("acu_journal.id"), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=now),
    )
    return {
        "migrations": migrations,
        "runs": runs,
        "user_state": user_state,
        "journal": journal,
        "claims": claims,
    }


def _store_identity_table(metadata: sa.MetaData) -> sa.Table:
    """Version 2: the store's identity, one row created with the schema."""
    return sa.Table(
        "acu_store_identity",
        metadata,
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.current_timestamp()),
    )


def _tables_v2(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The schema as of version 2: runs know the directory's own count; the store has an id."""
    tables = _tables_v1(metadata)
    tables["runs"].append_column(sa.Column("directory_user_count", sa.Integer, nullable=True))
    tables["store_identity"] = _store_identity_table(metadata)
    return tables


# The tables queries use: the newest schema version.
_T = _tables_v2(sa.MetaData())
MIGRATIONS_TABLE = _T["migrations"]
RUNS = _T["runs"]
USER_STATE = _T["user_state"]
JOURNAL = _T["journal"]
CLAIMS = _T["claims"]
STORE_IDENTITY = _T["store_identity"]

# The journal is append-only: a row may only go from "intent" to a result, once, touching only the
# result columns. Enforced in the database so that no code path (or hand-written SQL) can rewrite it.
_RESULT_COLUMNS = ("outcome", "api_status", "detail", "result_at", "result_source", "event", "stage_after")
_FROZEN_COLUMNS = tuple(c.name for c in JOURNAL.columns if c.name not in _RESULT_COLUMNS)

_SQLITE_GUARDS = (
    """CREATE TRIGGER acu_journal_no_delete BEFORE DELETE ON acu_journal
    BEGIN SELECT RAISE(ABORT, 'acu_journal is append-only: rows are never deleted'); END""",
    f"""CREATE TRIGGER acu_journal_result_once BEFORE UPDATE ON acu_journal
    WHEN OLD.outcome <> 'intent' OR {" OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in _FROZEN_COLUMNS)}
    BEGIN SELECT RAISE(ABORT, 'acu_journal is append-only: only an intent row gets its result, once');
    END""",
)
_PG_GUARDS = (
    f"""CREATE OR REPLACE FUNCTION acu_journal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'acu_journal is append-only: rows are never deleted';
        END IF;
        IF OLD.outcome <> 'intent'
           OR {" OR ".join(f'NEW."{c}" IS DISTINCT FROM OLD."{c}"' for c in _FROZEN_COLUMNS)} THEN
            RAISE EXCEPTION 'acu_journal is append-only: only an intent row gets its result, once';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER acu_journal_append_only BEFORE UPDATE OR DELETE ON acu_journal
    FOR EACH ROW EXECUTE FUNCTION acu_journal_guard()""",
)


@dataclass(frozen=True)
class Migration:
    """One schema version: ``apply`` runs inside the migration transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _migration_1(conn: Connection) -> None:
    metadata = sa.MetaData()
    tables = _tables_v1(metadata)
    # acu_schema_migrations exists already (created before any step, under the lock).
    metadata.create_all(conn, tables=[t for k, t in tables.items() if k != "migrations"])
    guards = _PG_GUARDS if conn.dialect.name == "postgresql" else _SQLITE_GUARDS
    if conn.dialect.name in ("postgresql", "sqlite"):
        for statement in guards:
            conn.exec_driver_sql(statement)


def _migration_2(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE acu_runs ADD COLUMN directory_user_count INTEGER")
    identity = _store_identity_table(sa.MetaData())
    identity.create(conn)
    # Created once, with the schema: a recreated (deleted, truncated, empty) store gets a new id.
    conn.execute(identity.insert().values(store_id=str(uuid.uuid4())))


#: Ordered schema steps; append, never edit or reorder a released one.
MIGRATIONS: list[Migration] = [
    Migration(1, "runs, user_state, journal (append-only) and claims", _migration_1),
    Migration(2, "store identity; runs record the directory's own user count", _migration_2),
]


# --------------------------------------------------------------------------------------------------
# Records handed to callers
# --------------------------------------------------------------------------------------------------


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
    """One journal row (see the module docstring for the columns)."""

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


def _entry(row: Any) -> JournalEntry:
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


def _run(row: Any) -> RunRecord:
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


def _history(row: Any, first_warned_at: datetime | None = None) -> UserHistory:
    removed = getattr(row, "actioned_products", None)
    if row.actioned_action != "remove_product_access":
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


def normalise_url(url: str | URL) -> URL:
    """A SQLAlchemy URL; ``postgres://`` / ``postgresql://`` use psycopg 3, a bare path is SQLite."""
    if isinstance(url, str) and "://" not in url:
        return URL.create("sqlite", database=str(Path(url).expanduser()))
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _utc(value: datetime, name: str = "at") -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a timezone-aware datetime (got {type(value).__name__})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (pass the run's logical date or action time)")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------------


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
            self.engine = self._sqlite_engine(self.url)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True, future=True)
        self._migrate(schema_version)

    # --- engine & transactions -----------------------------------------------------------------------

    @staticmethod
    def _sqlite_engine(url: URL) -> Engine:
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            # The busy timeout lets several writers queue instead of failing with "locked".
            connect_args={"check_same_thread": False, "timeout": 60},
        )

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE below is
            # the transaction SQLAlchemy commits (the documented pysqlite recipe).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 60000")
            cursor.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block the writer; synchronous NORMAL is durable enough in WAL.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers take the write lock up front: read-then-write transactions (claim, complete)
            # are then serialised, and a deferred upgrade can never deadlock into SQLITE_BUSY.
            mode = "DEFERRED" if conn.get_execution_options().get("acu_read_only") else "IMMEDIATE"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

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

    def _for_update(self, stmt: sa.Select) -> sa.Select:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs the row lock.
        return stmt.with_for_update() if self.dialect == "postgresql" else stmt

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- migrations --------------------------------------------------------------------------------

    def _migrate(self, target: int | None) -> None:
        steps = sorted(MIGRATIONS, key=lambda m: m.version)
        if [m.version for m in steps] != list(range(1, len(steps) + 1)):
            raise RuntimeError("MIGRATIONS must be numbered 1, 2, 3 ... without gaps")
        if target is not None:
            steps = [m for m in steps if m.version <= target]
        with self._write() as conn:
            if self.dialect == "postgresql":
                # Held to the end of the transaction: a second process waits here, then finds the
                # steps applied. (SQLite: BEGIN IMMEDIATE in _begin is the lock.)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_MIGRATE)))
            MIGRATIONS_TABLE.create(conn, checkfirst=True)
            applied = set(conn.execute(sa.select(MIGRATIONS_TABLE.c.version)).scalars())
            newest_known = max((m.version for m in MIGRATIONS), default=0)
            if applied and max(applied) > newest_known:
                raise RuntimeError(
                    f"the state database is at schema version {max(applied)}, newer than this code "
                    f"knows ({newest_known}); upgrade the package instead of downgrading the database"
                )
            for step in steps:
                if step.version in applied:
                    continue
                step.apply(conn)
                conn.execute(
                    MIGRATIONS_TABLE.insert().values(version=step.version, description=step.description)
                )

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
            first_warned = self._first_warned(conn)
            if account_ids is None:
                for row in conn.execute(sa.select(*columns)):
                    result[row.account_id] = _history(row, first_warned.get(row.account_id))
                return self._with_deletion_facts(conn, result)
            ids = sorted({str(a) for a in account_ids})
            if len(ids) > 20 * _CHUNK:
                # A whole-org lookup: one scan beats a hundred round-trips of IN lists.
                wanted = set(ids)
                for row in conn.execute(sa.select(*columns)):
                    if row.account_id in wanted:
                        result[row.account_id] = _history(row, first_warned.get(row.account_id))
                return self._with_deletion_facts(conn, result)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                for row in conn.execute(sa.select(*columns).where(USER_STATE.c.account_id.in_(chunk))):
                    result[row.account_id] = _history(row, first_warned.get(row.account_id))
            return self._with_deletion_facts(conn, result)

    @staticmethod
    def _with_deletion_facts(conn: Connection, result: dict[str, UserHistory]) -> dict[str, UserHistory]:
        """Fill the journal's deletion facts of the current cycle into the histories that have them.

        One query over the succeeded ``delete_notice`` / ``delete`` / ``deleted`` rows of users at
        a stage after an action (few rows: only users this tool is deleting or deleted).
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
                JOURNAL.c.action.in_(("delete_notice", "delete", "deleted")),
            )
            .order_by(JOURNAL.c.id)
        )
        facts: dict[str, dict[str, Any]] = {}
        for row in conn.execute(query):
            if row.account_id not in result:
                continue
            found = facts.setdefault(row.account_id, {})
            if row.action == "delete_notice":
                found["delete_notice_at"] = row.result_at
            elif row.event == "delete_requested":
                found.update(delete_requested_at=row.result_at, deletion_kind=LIFECYCLE_DELETE)
            elif row.event == "deleted" and is_removal(row._mapping, found.get("delete_requested_at")):
                found["deletion_kind"] = REMOVE_FROM_DIRECTORY
        for account_id, found in facts.items():
            result[account_id] = replace(result[account_id], **found)
        return result

    @staticmethod
    def _first_warned(conn: Connection) -> dict[str, datetime]:
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

    def cycle_of(self, account_id: str) -> int:
        """The user's inactivity cycle (0 for a user never recorded)."""
        with self._read() as conn:
            return self._cycle(conn, account_id)

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

    @staticmethod
    def _cycle(conn: Connection, account_id: str) -> int:
        cycle = conn.execute(
            sa.select(USER_STATE.c.cycle).where(USER_STATE.c.account_id == account_id)
        ).scalar()
        return int(cycle or 0)

    def _transition(
        self,
        conn: Connection,
        account_id: str,
        event: str,
        at: datetime,
        run_id: str,
        data: Mapping[str, Any],
    ) -> str:
        """Apply ``event`` to the user's row inside ``conn``'s transaction; return the new stage."""
        if self.dialect == "postgresql":
            # Make the row exist so that FOR UPDATE has something to lock for a first-time user.
            conn.execute(
                postgresql.insert(USER_STATE)
                .values(account_id=account_id, stage="active", cycle=0, updated_at=at)
                .on_conflict_do_nothing(index_elements=["account_id"])
            )
        row = conn.execute(
            self._for_update(sa.select(USER_STATE).where(USER_STATE.c.account_id == account_id))
        ).first()
        before = _history(row) if row is not None else None
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
                and data.get("action") == before.actioned_action == "remove_product_access"
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
        as_of = _utc(as_of, "as_of")
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
                started = _utc(at) if at is not None else sa.func.current_timestamp()
                conn.execute(RUNS.insert().values(run_id=run_id, seq=seq, started_at=started, **values))
            else:
                conn.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(**values))
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).one()
        return _run(row)

    def finish_run(self, run_id: str, *, at: datetime, summary: Any) -> RunRecord:
        """Mark the run finished at ``at`` with its final summary (repeatable)."""
        with self._write() as conn:
            done = conn.execute(
                RUNS.update().where(RUNS.c.run_id == run_id).values(finished_at=_utc(at), summary=summary)
            )
            if done.rowcount != 1:
                raise KeyError(f"run {run_id!r} was never started in the state store")
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).one()
        return _run(row)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id)).first()
        return None if row is None else _run(row)

    def previous_run(self, run_id: str, *, as_of: datetime | None = None) -> RunRecord | None:
        """The latest *other* run with ``as_of`` ≤ this run's ``as_of`` (then by start order).

        ``as_of`` is needed only when ``run_id`` is not recorded yet (the sanity gate runs before
        :meth:`start_run`); without either, the latest other run is returned.
        """
        with self._read() as conn:
            this = conn.execute(sa.select(RUNS.c.as_of, RUNS.c.seq).where(RUNS.c.run_id == run_id)).first()
            query = sa.select(RUNS).where(RUNS.c.run_id != run_id)
            limit_as_of = this.as_of if this is not None else (_utc(as_of, "as_of") if as_of else None)
            if limit_as_of is not None:
                query = query.where(RUNS.c.as_of <= limit_as_of)
            if this is not None:
                # Same logical date: only a run started before this one counts as "previous".
                query = query.where(sa.or_(RUNS.c.as_of < this.as_of, RUNS.c.seq < this.seq))
            row = conn.execute(query.order_by(RUNS.c.as_of.desc(), RUNS.c.seq.desc()).limit(1)).first()
        return None if row is None else _run(row)

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
        at = _utc(at)
        if not action:
            raise ValueError("claim needs an action")
        if action == "warn" and lead_days is None:
            raise ValueError("a warn claim needs lead_days (the warning bucket is part of its key)")
        product_list = sorted(set(products)) if products is not None else None
        with self._write() as conn:
            cycle = self._cycle(conn, account_id)
            key = (
                idempotency_key(account_id, cycle, action, lead_days, product_list)
                if scope is None
                else scoped_idempotency_key(account_id, scope, action, lead_days, product_list)
            )
            if self.dialect == "postgresql":
                # The primary key makes exactly one concurrent insert win; everyone then queues on
                # the row lock and sees the winner's committed intent.
                conn.execute(
                    postgresql.insert(CLAIMS)
                    .values(idempotency_key=key, account_id=account_id, status="open")
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                )
            claim = conn.execute(
                self._for_update(
                    sa.select(CLAIMS.c.journal_id, CLAIMS.c.status).where(CLAIMS.c.idempotency_key == key)
                )
            ).first()
            if claim is not None and claim.journal_id is not None:
                if claim.status == "succeeded":
                    return Claim(claim.journal_id, key, "done")
                if claim.status == "intent":
                    return Claim(claim.journal_id, key, "uncertain")
            entry_id = conn.execute(
                JOURNAL.insert()
                .values(
                    run_id=run_id,
                    account_id=account_id,
                    idempotency_key=key,
                    cycle=cycle,
                    action=action,
                    lead_days=lead_days,
                    products=product_list,
                    reason=reason or "",
                    evidence=evidence,
                    before=before,
                    intent_at=at,
                    outcome="intent",
                )
                .returning(JOURNAL.c.id)
            ).scalar_one()
            if claim is None:
                conn.execute(
                    CLAIMS.insert().values(
                        idempotency_key=key, account_id=account_id, journal_id=entry_id, status="intent"
                    )
                )
            else:
                conn.execute(
                    CLAIMS.update()
                    .where(CLAIMS.c.idempotency_key == key)
                    .values(journal_id=entry_id, status="intent", updated_at=sa.func.current_timestamp())
                )
        return Claim(entry_id, key, "new")

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
        at = _utc(at)
        with self._write() as conn:
            row = conn.execute(self._for_update(sa.select(JOURNAL).where(JOURNAL.c.id == entry_id))).first()
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
                data = _default_event_data(applied, row)
                data.update(event_data or {})
                stage_after = self._transition(conn, row.account_id, applied, at, row.run_id, data)
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
        return _entry(final)

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
        at = _utc(at)
        action = data.get("action") if event == "actioned" else _EVENT_ACTIONS.get(event, event)
        key = json.dumps(
            [account_id, f"event:{event}", run_id, data], ensure_ascii=False, sort_keys=True, default=str
        )
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    postgresql.insert(CLAIMS)
                    .values(idempotency_key=key, account_id=account_id, status="open")
                    .on_conflict_do_nothing(index_elements=["idempotency_key"])
                )
            claim = conn.execute(
                self._for_update(
                    sa.select(CLAIMS.c.journal_id, CLAIMS.c.status).where(CLAIMS.c.idempotency_key == key)
                )
            ).first()
            if claim is not None and claim.status == "succeeded":
                return Claim(claim.journal_id, key, "done")
            cycle = self._cycle(conn, account_id)
            stage_after = self._transition(conn, account_id, event, at, run_id, data)
            products = data.get("products")
            entry_id = conn.execute(
                JOURNAL.insert()
                .values(
                    run_id=run_id,
                    account_id=account_id,
                    idempotency_key=key,
                    cycle=cycle,
                    action=action,
                    lead_days=data.get("lead_days"),
                    products=sorted(set(products)) if products is not None else None,
                    reason=reason or "",
                    evidence=evidence,
                    before=before,
                    intent_at=at,
                    outcome="succeeded",
                    result_at=at,
                    result_source="observation",
                    event=event,
                    stage_after=stage_after,
                )
                .returning(JOURNAL.c.id)
            ).scalar_one()
            if claim is None:
                conn.execute(
                    CLAIMS.insert().values(
                        idempotency_key=key, account_id=account_id, journal_id=entry_id, status="succeeded"
                    )
                )
            else:
                conn.execute(
                    CLAIMS.update()
                    .where(CLAIMS.c.idempotency_key == key)
                    .values(journal_id=entry_id, status="succeeded", updated_at=sa.func.current_timestamp())
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
            return [_entry(row) for row in conn.execute(query)]

    def uncertain_entries(self, run_id: str | None = None) -> list[JournalEntry]:
        """Intent rows without a result (a crash between intent and result, or a write in flight)."""
        query = sa.select(JOURNAL).where(JOURNAL.c.outcome == "intent").order_by(JOURNAL.c.id)
        if run_id is not None:
            query = query.where(JOURNAL.c.run_id == run_id)
        with self._read() as conn:
            return [_entry(row) for row in conn.execute(query)]

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


def _default_event_data(event: str, row: Any) -> dict[str, Any]:
    """Event data implied by the claimed write, so callers need not repeat it."""
    if event == "warned" and row.lead_days is not None:
        return {"lead_days": row.lead_days}
    if event == "actioned":
        data: dict[str, Any] = {"action": row.action}
        if row.products is not None:
            data["products"] = list(row.products)
        return data
    return {}
