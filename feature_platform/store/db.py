"""One SQLAlchemy engine per database URL; SQLite gets the settings concurrent writers need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()


def create_engine(url: str) -> sa.Engine:
    """Engine for `url`. SQLite files get WAL and a busy timeout so several processes can write."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
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
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def create_tables(engine: sa.Engine, *tables: sa.Table) -> None:
    metadata.create_all(engine, tables=list(tables))


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
