"""The state database's plumbing: column types and engines, shared by the state store and the review store.

It imports SQLAlchemy and nothing of the engine, so the audit page (which runs in the api-server)
can open the review tables of the same database without loading the enforcement engine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from atlassian_cleanup.decisions.records import format_timestamp

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
# Connecting
# --------------------------------------------------------------------------------------------------


def normalise_url(url: str | URL) -> URL:
    """A SQLAlchemy URL; ``postgres://`` / ``postgresql://`` use psycopg 3, a bare path is SQLite."""
    if isinstance(url, str) and "://" not in url:
        return URL.create("sqlite", database=str(Path(url).expanduser()))
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_engine(url: URL) -> Engine:
    """An engine for a SQLite file whose write transactions take the lock up front (WAL mode)."""
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


def open_engine(url: str | URL) -> Engine:
    """An engine for the state database at ``url`` (SQLite with its write lock up front, else pooled)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True, future=True)


class StateStoreConfigError(ValueError):
    """The state store's connection is missing or of a type that cannot hold it."""


def state_url_of(conn_id: str, conn: Any | None, *, default_conn_id: str) -> str:
    """SQLAlchemy URL of the state database in Airflow connection ``conn`` (``None``: not defined).

    A ``postgres`` connection becomes ``postgresql+psycopg://...`` (the driver this package pins);
    a ``sqlite`` connection's host is the database file. When the *default* id is not defined, an
    embedded SQLite file under ``$AIRFLOW_HOME`` is used, so a newcomer needs no database server;
    any other id that is missing is a configuration error, because silently starting from an
    empty memory could warn or action people twice.

    :raises StateStoreConfigError: what to fix.
    """
    import os

    if conn is None:
        if conn_id != default_conn_id:
            raise StateStoreConfigError(
                f"State store connection '{conn_id}' (policy state_store.conn_id) is not defined. "
                "Create it (e.g. AIRFLOW_CONN_..._STATE='postgresql://user:pass@host:5432/db') or "
                f"remove the key to use the embedded SQLite default."
            )
        home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        return f"sqlite:///{Path(home) / 'atlassian_cleanup_state.db'}"
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    if conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    raise StateStoreConfigError(
        f"State store connection '{conn_id}' has type '{conn.conn_type}'; use a postgres or sqlite "
        "connection."
    )
