"""One SQLAlchemy engine per database URL; SQLite gets the settings concurrent writers need."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from feature_platform.errors import StoreUnavailableError

metadata = sa.MetaData()

DEFAULT_BUSY_TIMEOUT_S = 30.0


def busy_timeout_s() -> float:
    """How long a SQLite writer waits for another one's lock (FP_SQLITE_BUSY_TIMEOUT_S)."""
    try:
        return max(0.0, float(os.environ.get("FP_SQLITE_BUSY_TIMEOUT_S", DEFAULT_BUSY_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT_S


def unavailable(
    exc: BaseException, url: sa.URL | str | None = None
) -> StoreUnavailableError | None:
    """The one-line StoreUnavailableError a database error stands for, or None when it is
    not about reaching the database (a constraint violation, a bug...).

    SQLite `database is locked` (another writer kept its lock past the busy timeout) and a
    lost, refused or terminated connection (Postgres) both leave the transaction rolled back."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    where = ""
    if url is not None:
        parsed = sa.engine.make_url(url) if isinstance(url, str) else url
        where = f" {parsed.render_as_string(hide_password=True)}"
    detail = " ".join(str(exc.orig).split())[:200]
    if "database is locked" in detail or "database table is locked" in detail:
        return StoreUnavailableError(
            f"The database{where} is locked by another writer (e.g. a long import) and stayed "
            f"locked for {busy_timeout_s():g} s; nothing was changed. Run this again when it "
            f"is done (FP_SQLITE_BUSY_TIMEOUT_S sets the wait)."
        )
    if isinstance(exc.orig, sqlite3.Error):
        if "disk is full" in detail or "disk I/O error" in detail:
            return StoreUnavailableError(
                f"The database{where} could not be written ({detail}); the transaction was "
                f"rolled back and nothing of it was stored. Free some space and re-run it."
            )
        lost = "unable to open database" in detail
    else:
        code = getattr(exc.orig, "pgcode", None)
        lost = exc.connection_invalidated or (
            isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
            # Postgres: no SQLSTATE (the socket went away), connection exceptions (08...),
            # operator intervention (57P01 terminated, 57P02/57P03 shutting down/starting).
            and (code is None or code.startswith(("08", "57P")))
        )
    if lost:
        return StoreUnavailableError(
            f"Lost or could not open the connection to the database{where} ({detail}); the "
            f"transaction was rolled back and nothing of it was stored. Re-run it once the "
            f"database is back."
        )
    return None


def create_engine(url: str) -> sa.Engine:
    """Engine for `url`. SQLite files get WAL and a busy timeout so several processes can write."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        timeout = busy_timeout_s()
        engine = sa.create_engine(url, connect_args={"timeout": timeout})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that holds the write lock from its first statement (SQLite).

    pysqlite opens its transaction only at the first INSERT/UPDATE/DELETE, so the reads that
    decide a write would otherwise run outside it and another process could commit between
    check and write. `BEGIN IMMEDIATE` makes read-check-write atomic; other writers wait on
    the busy timeout. On Postgres this is a plain transaction: lock checked rows FOR UPDATE.

    A lock that outlasts the busy timeout, or a connection lost midway, is rolled back and
    raised as StoreUnavailableError (one line, its own exit code on the command line).
    """
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
    except sa.exc.DBAPIError as exc:
        problem = unavailable(exc, engine.url)
        if problem is None:
            raise
        raise problem from exc


def create_tables(engine: sa.Engine, *tables: sa.Table) -> None:
    """Make sure `tables` exist at the current schema: the database is upgraded (or created
    and stamped) through the Alembic migrations once per process; `create_all` then only
    adds a table no revision knows yet (a definition added since the last revision)."""
    from feature_platform.store.migrations import ensure_schema

    ensure_schema(engine)
    metadata.create_all(engine, tables=list(tables))


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
