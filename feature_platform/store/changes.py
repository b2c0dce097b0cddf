"""A store-wide change counter, so in-process caches can tell cheaply whether to revalidate.

Every write that can change what a read returns (registering or retiring a version, moving
an alias, materializing online rows) bumps one counter row in the same transaction. Readers
hold caches tagged with the counter value they were built at; one indexed single-row read
on a dedicated connection (a few microseconds on SQLite) tells them whether anything
changed anywhere, in this process or any other. Nothing is ever served from a cache built
before a committed change the reader could have seen.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import sqlalchemy as sa

from feature_platform.store.db import create_tables, metadata

change_counter = sa.Table(
    "feature_store_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("counter", sa.BigInteger, nullable=False),
)

_COUNTER_SQL = "SELECT counter FROM feature_store_changes WHERE id = 1"
# A connection inherited through fork shares its socket with the parent; closing it in the
# child would break the parent's session, so inherited connections are kept, never closed.
_inherited: list[Any] = []


class ChangeFeed:
    """The change counter of one database, read through its own autocommit connection."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, change_counter)
        with engine.connect() as conn:
            missing = conn.execute(sa.select(change_counter.c.counter)).first() is None
        if missing:
            try:
                with engine.begin() as conn:
                    conn.execute(change_counter.insert().values(id=1, counter=0))
            except sa.exc.IntegrityError:
                pass  # another process created the row first
        self._lock = threading.Lock()
        self._connection: Any = None
        self._cursor: Any = None
        self._pid = 0
        url = engine.url
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
        # An in-memory SQLite database exists only on the engine's own connection.
        self._dedicated = not in_memory

    def bump(self, conn: sa.Connection) -> None:
        """Count one change inside the caller's write transaction (commits with it)."""
        conn.execute(change_counter.update().values(counter=change_counter.c.counter + 1))

    def token(self) -> int:
        """The current counter. Equal tokens mean nothing changed in between."""
        if not self._dedicated:
            with self.engine.connect() as conn:
                return int(conn.exec_driver_sql(_COUNTER_SQL).scalar_one())
        with self._lock:
            try:
                cursor = self._open_cursor()
                cursor.execute(_COUNTER_SQL)
                return int(cursor.fetchone()[0])
            except Exception:
                # A dropped connection (server restart, network): reconnect once, then let
                # the error surface. Never answer from a cache without a fresh token.
                self._connection = self._cursor = None
                cursor = self._open_cursor()
                cursor.execute(_COUNTER_SQL)
                return int(cursor.fetchone()[0])

    def _open_cursor(self) -> Any:
        if self._cursor is not None and self._pid == os.getpid():
            return self._cursor
        if self._connection is not None and self._pid != os.getpid():
            _inherited.append(self._connection)
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # ours for good: never handed to another user of the pool
        if self.engine.dialect.name == "sqlite":
            connection.isolation_level = None  # autocommit: every read sees the latest commit
        elif hasattr(connection, "autocommit"):
            connection.autocommit = True
        self._connection, self._cursor, self._pid = pooled, connection.cursor(), os.getpid()
        return self._cursor


_feeds: weakref.WeakKeyDictionary[sa.Engine, ChangeFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def change_feed(engine: sa.Engine) -> ChangeFeed:
    """The one ChangeFeed of `engine` (shared by its registry and online store)."""
    with _feeds_lock:
        feed = _feeds.get(engine)
        if feed is None:
            feed = _feeds[engine] = ChangeFeed(engine)
        return feed
