"""The state store's schema: column types, tables, append-only guards and migrations.

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


Migrations
----------
:data:`MIGRATIONS` is an ordered list of steps; a new schema version is one appended
:class:`Migration`. On construction the missing steps are applied in one transaction while
holding a lock (PostgreSQL: an advisory transaction lock; SQLite: ``BEGIN IMMEDIATE``), so two
processes opening a fresh database at once apply each step exactly once. When adding a version,
leave earlier steps untouched (an old database replays them) and update the query tables below.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from atlassian_cleanup.review.schema import review_tables
from atlassian_cleanup.store_db import JSONText, UTCDateTime, normalise_url, sqlite_engine

__all__ = ["JSONText", "UTCDateTime", "normalise_url", "sqlite_engine"]

#: Journal outcomes. ``intent`` is the row before the API call; the rest are results.
OUTCOMES: tuple[str, ...] = ("intent", "succeeded", "failed", "skipped")
RESULT_OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "skipped")
_PG_LOCK_MIGRATE = 0x6163_755F_6D69_67  # "acu_mig": serialises schema migrations across processes

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


def _migration_3(conn: Connection) -> None:
    metadata = sa.MetaData()
    metadata.create_all(conn, tables=list(review_tables(metadata).values()))


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
    Migration(3, "review queue and review decisions", _migration_3),
]


def apply_migrations(conn: Connection, migrations: Sequence[Migration], target: int | None) -> None:
    """Apply the missing steps of ``migrations`` (up to ``target``) inside ``conn``'s transaction."""
    steps = sorted(migrations, key=lambda m: m.version)
    if [m.version for m in steps] != list(range(1, len(steps) + 1)):
        raise RuntimeError("MIGRATIONS must be numbered 1, 2, 3 ... without gaps")
    if target is not None:
        steps = [m for m in steps if m.version <= target]
    if conn.dialect.name == "postgresql":
        # Held to the end of the transaction: a second process waits here, then finds the
        # steps applied. (SQLite: BEGIN IMMEDIATE in sqlite_engine is the lock.)
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_MIGRATE)))
    MIGRATIONS_TABLE.create(conn, checkfirst=True)
    applied = set(conn.execute(sa.select(MIGRATIONS_TABLE.c.version)).scalars())
    newest_known = max((m.version for m in migrations), default=0)
    if applied and max(applied) > newest_known:
        raise RuntimeError(
            f"the state database is at schema version {max(applied)}, newer than this code "
            f"knows ({newest_known}); upgrade the package instead of downgrading the database"
        )
    for step in steps:
        if step.version in applied:
            continue
        step.apply(conn)
        conn.execute(MIGRATIONS_TABLE.insert().values(version=step.version, description=step.description))
