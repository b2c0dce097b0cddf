"""A store-wide change counter, so in-process caches can tell cheaply whether to revalidate.

Every write that can change what a read returns (registering or retiring a version, moving
an alias, materializing online rows) bumps one counter row in the same transaction. Readers
hold caches tagged with the counter value they were built at; one indexed single-row read
on a dedicated connection tells them whether anything changed anywhere, in this process or
any other. Nothing is ever served from a cache built before a committed change the reader
could have seen.

On a SQLite file in WAL mode even that read is usually skipped: every commit rewrites the
wal-index header at the start of the database's `-shm` file (its layout is part of SQLite's
documented file format, https://www.sqlite.org/walformat.html; `iChange` counts
transactions). The feed maps that file read-only and keeps the header it saw just before its
last counter read: the same header now means no transaction has committed since, so the
counter is unchanged. That check is a 48-byte memory compare with no system call, against a
SQL read that takes file locks (~5 us here). Anything unexpected falls back to the read.

Every answer is remembered with the (monotonic) time its check began: `recent(max_age)`
returns that token while it is at most `max_age` old, without checking again. That is the
whole of eventual consistency (`FeatureStore.get_online_features(consistency="eventual")`):
a commit that finished before the check began is counted in the token, so caches valid at
that token miss no write committed more than `max_age` before the read.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import weakref
from collections.abc import Callable
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
_WAL_HEADER = 48  # bytes of one wal-index header; SQLite keeps two copies back to back
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
        self._sqlite = url.get_backend_name() == "sqlite"
        # An in-memory SQLite database exists only on the engine's own connection.
        self._dedicated = not self._sqlite or url.database not in (None, "", ":memory:")
        self._wal_index: mmap.mmap | None = None
        self._wal_probed = False  # the dedicated connection looked for a wal-index once
        # (wal-index header read just before a counter read, that counter): see the module doc.
        self._seen: tuple[bytes, int] | None = None
        # Monotonic seconds; replaceable (tests drive time without sleeping).
        self.clock: Callable[[], float] = time.monotonic
        # (clock value when a check began, the token that check returned): see `recent`.
        self._checked: tuple[float, int] | None = None

    def bump(self, conn: sa.Connection) -> None:
        """Count one change inside the caller's write transaction (commits with it)."""
        conn.execute(change_counter.update().values(counter=change_counter.c.counter + 1))
        # This process's next eventual read checks again, so it usually sees its own write
        # (not guaranteed: a read in another thread before the commit may record a check).
        self._checked = None

    def token(self) -> int:
        """The current counter. Equal tokens mean nothing changed in between."""
        began = self.clock()
        token = self._check()
        checked = self._checked
        # Any (start, token) pair is true; keep the latest start (threads may finish out of
        # order). A plain tuple assignment: readers never see half of it.
        if checked is None or began >= checked[0]:
            self._checked = (began, token)
        return token

    def recent(self, max_age: float) -> int:
        """A token whose check began at most `max_age` seconds ago (the last one if it is
        that recent, else a fresh check). Every commit that finished more than `max_age`
        seconds before this call is counted in it."""
        now = self.clock()
        checked = self._checked
        if checked is not None and now - checked[0] <= max_age:
            return checked[1]
        return self.token()

    def _check(self) -> int:
        if not self._dedicated:
            with self.engine.connect() as conn:
                return int(conn.exec_driver_sql(_COUNTER_SQL).scalar_one())
        seen, wal_index = self._seen, self._wal_index
        if seen is not None and wal_index is not None and self._pid == os.getpid():
            header = wal_index[:_WAL_HEADER]
            if header == seen[0] and header == wal_index[_WAL_HEADER : 2 * _WAL_HEADER]:
                return seen[1]
        with self._lock:
            try:
                return self._read()
            except Exception:
                # A dropped connection (server restart, network): reconnect once, then let
                # the error surface. Never answer from a cache without a fresh token.
                self._close_wal_index()
                self._connection = self._cursor = None
                return self._read()

    def _read(self) -> int:
        """The counter from the database, remembering the wal-index header that preceded it."""
        cursor = self._open_cursor()
        wal_index = self._wal_index
        header = None
        if wal_index is not None:
            header = wal_index[:_WAL_HEADER]
            if header != wal_index[_WAL_HEADER : 2 * _WAL_HEADER]:
                header = None  # a commit is rewriting it right now
        self._seen = None
        cursor.execute(_COUNTER_SQL)
        token = int(cursor.fetchone()[0])
        if header is not None:
            self._seen = (header, token)
        elif self._sqlite and not self._wal_probed:
            self._wal_probed = True
            self._open_wal_index()
        return token

    def _open_cursor(self) -> Any:
        if self._cursor is not None and self._pid == os.getpid():
            return self._cursor
        if self._connection is not None and self._pid != os.getpid():
            _inherited.append(self._connection)
        self._close_wal_index()
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # ours for good: never handed to another user of the pool
        if self.engine.dialect.name == "sqlite":
            connection.isolation_level = None  # autocommit: every read sees the latest commit
        elif hasattr(connection, "autocommit"):
            connection.autocommit = True
        self._connection, self._cursor, self._pid = pooled, connection.cursor(), os.getpid()
        return self._cursor

    def _open_wal_index(self) -> None:
        """Map the `-shm` file once the dedicated connection has read in WAL mode (its open
        connection keeps SQLite from deleting the file); without WAL there is no fast path."""
        cursor = self._cursor
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            return
        # The file this connection really opened (a relative URL depends on the cwd).
        cursor.execute("PRAGMA database_list")
        path = next((row[2] for row in cursor.fetchall() if row[1] == "main"), "")
        if not path:
            return
        try:
            with open(f"{path}-shm", "rb") as shm:
                if os.fstat(shm.fileno()).st_size >= 2 * _WAL_HEADER:
                    self._wal_index = mmap.mmap(shm.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            self._wal_index = None  # the SQL read still answers, only slower

    def _close_wal_index(self) -> None:
        # Not mmap.close(): another thread may still be comparing against it; the mapping
        # goes away with its last reference.
        self._seen, self._wal_index, self._wal_probed = None, None, False


_feeds: weakref.WeakKeyDictionary[sa.Engine, ChangeFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def change_feed(engine: sa.Engine) -> ChangeFeed:
    """The one ChangeFeed of `engine` (shared by its registry and online store)."""
    with _feeds_lock:
        feed = _feeds.get(engine)
        if feed is None:
            feed = _feeds[engine] = ChangeFeed(engine)
        return feed
