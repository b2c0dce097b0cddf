"""Online store: the latest values per (feature set version, entity) in one SQL table.

- Rows hold a version's feature values in its registered feature order: raw float64 bytes
  for all-numeric versions (decoded for a whole batch with one `np.frombuffer`), JSON
  otherwise.
- Materialization compares event/created timestamps with what is stored, vectorized, and
  upserts only the rows that are newer, with the dialect's `INSERT .. ON CONFLICT DO UPDATE
  .. WHERE newer` (SQLite, Postgres), so concurrent writers never move a value backwards.
  Each write bumps the version's generation and the store-wide change counter.
- Lookups are served from an in-process cache per version: a matrix of values plus a dict
  from key to row. The cache is keyed by the resolved version id and tagged with that
  version's generation; before every lookup the change counter is checked (`changes.py`),
  and a changed generation drops the cache. So a moved alias (another version id) or a new
  materialization (another generation) can never serve a stale value. Versions small
  enough are loaded whole on first use; larger ones fill per key, negative answers included.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from feature_platform.errors import (
    ConcurrentChangeError,
    InvalidArgumentError,
    SchemaMismatchError,
)
from feature_platform.store.changes import change_feed
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction
from feature_platform.store.feature_set import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureSetVersion,
    is_numeric_dtype,
)

online_values = sa.Table(
    "online_feature_values",
    metadata,
    sa.Column("feature_set", sa.String(260), primary_key=True),  # "name@version"
    sa.Column("entity_key", sa.String(200), primary_key=True),
    sa.Column("event_ns", sa.BigInteger, nullable=False),  # UTC nanoseconds
    sa.Column("created_ns", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

online_generations = sa.Table(
    "online_feature_sets",
    metadata,
    sa.Column("feature_set", sa.String(260), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

applied_snapshots = sa.Table(
    "online_applied_snapshots",
    metadata,
    sa.Column("feature_set", sa.String(260), primary_key=True),
    sa.Column("snapshot", sa.String(300), primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)

_BATCH = 500  # keys per IN (...) query, below every backend's parameter limit
_FAST_KEY_TYPES = frozenset({str, int, np.int64, np.int32, np.str_})
_MISSING = 0  # row 0 of every cache matrix: the all-missing row


def entity_key(value: object) -> str:
    """One text form per key, whatever its Python type (numpy ints included)."""
    return str(value.item() if hasattr(value, "item") else value)


def _int_alias(text: str) -> int | None:
    """5 for '5', so a lookup with int keys hits entries stored as text."""
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        number = int(text)
        if str(number) == text:
            return number
    return None


def _copy_text(value: str) -> str:
    """A value in Postgres' COPY text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def online_keys(keys: object) -> list[object]:
    """`keys` as a list, refusing what would be looked up wrongly: a bare string (its
    characters would become keys), None or a scalar, and missing keys inside the list."""
    if keys is None or isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise InvalidArgumentError(
            f"Online lookups take a list of keys; got {type(keys).__name__} {keys!r:.60}. "
            f"For one key, pass [{keys!r:.60}]."
        )
    out = keys if isinstance(keys, list) else list(keys)
    missing = [i for i, key in enumerate(out) if _is_missing(key)]
    if missing:
        raise InvalidArgumentError(
            f"Online lookups need a key at every position; position {missing[0]} holds "
            f"{out[missing[0]]!r} ({len(missing)} missing in all)."
        )
    return out


def _plain(value: object) -> object:
    """JSON for numpy scalars and timestamps."""
    return value.item() if hasattr(value, "item") else str(value)


class _KnownIndex(dict):
    """key -> cache row of a fully loaded version: any other key is not stored (row 0)."""

    __slots__ = ()

    def __missing__(self, key: object) -> int:
        return _MISSING


class _PartialIndex(dict):
    """key -> cache row of a version cached key by key: -1 means "not fetched yet"."""

    __slots__ = ()

    def __missing__(self, key: object) -> int:
        return -1


class _VersionCache:
    """Values of one version at one generation: `values[index[key]]`; row 0 is 'missing'."""

    def __init__(self, fsv: FeatureSetVersion, generation: int, complete: bool) -> None:
        self.generation = generation
        self.complete = complete  # every stored key is loaded: a miss means "not stored"
        self.numeric = all(is_numeric_dtype(d) for d in fsv.features.values())
        self.width = len(fsv.features)
        self.index: dict[object, int] = _KnownIndex() if complete else _PartialIndex()
        dtype = np.float64 if self.numeric else object
        self.values = np.full((1, self.width), np.nan if self.numeric else None, dtype=dtype)
        self.size = 1
        self.lock = threading.Lock()

    def add(self, keys: Sequence[str], rows: np.ndarray, absent: Iterable[str] = ()) -> None:
        """Store decoded rows for `keys` (and remember `absent` keys as missing)."""
        with self.lock:
            fresh = [i for i, k in enumerate(keys) if k not in self.index.keys()]
            if fresh:
                start = self.size
                needed = start + len(fresh)
                if needed > len(self.values):
                    grown = np.empty(
                        (max(needed, 2 * len(self.values)), self.width), self.values.dtype
                    )
                    grown[:start] = self.values[:start]
                    self.values = grown
                self.values[start:needed] = rows[fresh] if len(fresh) != len(keys) else rows
                self.size = needed
                for offset, i in enumerate(fresh):
                    self._index(keys[i], start + offset)
            for key in absent:
                if key not in self.index.keys():
                    self._index(key, _MISSING)

    def _index(self, key: str, row: int) -> None:
        self.index[key] = row
        number = _int_alias(key)
        if number is not None:
            self.index[number] = row


class OnlineStore:
    def __init__(self, engine: sa.Engine, preload_max_values: int = 20_000_000) -> None:
        """`preload_max_values`: versions with at most this many values (rows x features)
        are loaded whole on first lookup; larger ones are cached key by key."""
        self.engine = engine
        create_tables(engine, online_values, online_generations, applied_snapshots)
        self.changes = change_feed(engine)
        self.preload_max_values = preload_max_values
        self._caches: dict[str, _VersionCache] = {}
        self._token: int | None = None
        self._lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------
    def materialize(
        self,
        fsv: FeatureSetVersion,
        latest: pd.DataFrame,
        snapshots: Sequence[str] = (),
    ) -> int:
        """Upsert rows of a version that are newer (event time, then created time) than what
        is stored; `latest` may hold several rows per entity (the newest counts). Records
        `snapshots` (offline file names) as applied. Returns how many rows changed."""
        columns = [fsv.entity, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *fsv.feature_names]
        missing = [c for c in columns if c not in latest.columns]
        if missing:
            raise SchemaMismatchError(
                f"Online rows for {fsv.id} lack columns {missing}. Nothing was written."
            )
        frame = self._newest_per_key(fsv, latest)
        if all(is_numeric_dtype(d) for d in fsv.features.values()):
            values = frame[fsv.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = frame[fsv.feature_names].astype(object).to_numpy()
        return self.write_latest(
            fsv,
            frame["__key"].to_numpy(),
            frame["__event"].to_numpy(),
            frame["__created"].to_numpy(),
            values,
            snapshots,
        )

    def write_latest(
        self,
        fsv: FeatureSetVersion,
        keys: np.ndarray,
        event_ns: np.ndarray,
        created_ns: np.ndarray,
        values: np.ndarray,
        snapshots: Sequence[str] = (),
    ) -> int:
        """Vectorized core of `materialize`: one row per distinct text key, values in the
        version's feature order. Writes only rows newer than the stored ones."""
        stored_event, stored_created, stored_payload = self._stored_rows(fsv, keys)
        same_event = stored_event == event_ns
        newer = (stored_event < event_ns) | (same_event & (stored_created < created_ns))
        changed = np.flatnonzero(newer)
        payloads = self._encode(fsv, values[changed]) if len(changed) else []
        if same_event[changed].any():
            # The same values written again later (a recomputed snapshot) change nothing.
            keep = [
                not (same_event[i] and payload == stored_payload[i])
                for i, payload in zip(changed.tolist(), payloads, strict=True)
            ]
            changed = changed[np.asarray(keep, dtype=bool)]
            payloads = [p for p, k in zip(payloads, keep, strict=True) if k]
        rows = list(
            zip(
                [fsv.id] * len(changed),
                keys[changed].tolist(),
                event_ns[changed].tolist(),
                created_ns[changed].tolist(),
                payloads,
                strict=True,
            )
        )
        if not rows and not snapshots:
            return 0
        now = utcnow()
        with write_transaction(self.engine) as conn:
            if rows:
                self._upsert(conn, rows)
                self._bump_generation(conn, fsv.id, now)
            if snapshots:
                done = self._applied(conn, fsv.id)
                new = [{"feature_set": fsv.id, "snapshot": s, "applied_at": now} for s in snapshots]
                new = [r for r in new if r["snapshot"] not in done]
                if new:
                    conn.execute(applied_snapshots.insert(), new)
            if rows:
                self.changes.bump(conn)  # last: keeps the counter row's lock short
        if rows:
            with self._lock:
                self._caches.pop(fsv.id, None)
        return len(rows)

    def applied_snapshots(self, fsv: FeatureSetVersion) -> set[str]:
        """Names of the offline snapshot files already materialized online."""
        with self.engine.connect() as conn:
            return self._applied(conn, fsv.id)

    @staticmethod
    def _applied(conn: sa.Connection, feature_set: str) -> set[str]:
        rows = conn.execute(
            sa.select(applied_snapshots.c.snapshot).where(
                applied_snapshots.c.feature_set == feature_set
            )
        ).scalars()
        return set(rows)

    @staticmethod
    def _newest_per_key(fsv: FeatureSetVersion, latest: pd.DataFrame) -> pd.DataFrame:
        from feature_platform.store.offline import _nanos, normalize_keys, to_utc

        frame = latest[[fsv.entity, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *fsv.feature_names]]
        frame = frame.reset_index(drop=True)
        keys = normalize_keys(frame[fsv.entity], f"Online rows for {fsv.id}")
        frame = frame.assign(
            __key=keys.astype(str).to_numpy(dtype=object),
            __event=_nanos(to_utc(frame[EVENT_TIMESTAMP], f"{fsv.id}.{EVENT_TIMESTAMP}")),
            __created=_nanos(to_utc(frame[CREATED_TIMESTAMP], f"{fsv.id}.{CREATED_TIMESTAMP}")),
        )
        if frame["__key"].duplicated().any():
            order = np.lexsort((frame["__created"].to_numpy(), frame["__event"].to_numpy()))
            frame = frame.take(order).drop_duplicates("__key", keep="last")
        return frame.reset_index(drop=True)

    def _stored_rows(
        self, fsv: FeatureSetVersion, keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list]:
        """(event_ns, created_ns, payload) stored for each key; int64 min / None where
        nothing is stored."""
        columns = (
            online_values.c.entity_key,
            online_values.c.event_ns,
            online_values.c.created_ns,
            online_values.c.payload,
        )
        with self.engine.connect() as conn:
            if len(keys) <= 10 * _BATCH:
                found = []
                for start in range(0, len(keys), _BATCH):
                    found += conn.execute(
                        sa.select(*columns).where(
                            online_values.c.feature_set == fsv.id,
                            online_values.c.entity_key.in_(keys[start : start + _BATCH].tolist()),
                        )
                    ).all()
            else:
                found = conn.execute(
                    sa.select(*columns).where(online_values.c.feature_set == fsv.id)
                ).all()
        never = np.iinfo(np.int64).min
        event, created = np.full(len(keys), never), np.full(len(keys), never)
        payload: list = [None] * len(keys)
        if found:
            stored_keys, stored_event, stored_created, stored_payload = zip(*found, strict=True)
            where = pd.Index(stored_keys).get_indexer(keys)
            hit = where >= 0
            event[hit] = np.asarray(stored_event, dtype=np.int64)[where[hit]]
            created[hit] = np.asarray(stored_created, dtype=np.int64)[where[hit]]
            for i in np.flatnonzero(hit).tolist():
                payload[i] = bytes(stored_payload[where[i]])
        return event, created, payload

    @staticmethod
    def _encode(fsv: FeatureSetVersion, values: np.ndarray) -> list[bytes]:
        if values.dtype == np.float64:
            row = np.dtype((np.void, 8 * len(fsv.features)))
            return np.ascontiguousarray(values).view(row).ravel().tolist()
        return [
            json.dumps([None if _is_missing(v) else v for v in r], default=_plain).encode()
            for r in values.tolist()
        ]

    _COLUMNS = ("feature_set", "entity_key", "event_ns", "created_ns", "payload")
    # Only ever forward: a concurrent writer that stored a newer row keeps it.
    _UPSERT = (
        "INSERT INTO online_feature_values (feature_set, entity_key, event_ns, created_ns, "
        "payload) VALUES ({p}, {p}, {p}, {p}, {p}) ON CONFLICT (feature_set, entity_key) DO "
        "UPDATE SET event_ns = excluded.event_ns, created_ns = excluded.created_ns, "
        "payload = excluded.payload WHERE excluded.event_ns > online_feature_values.event_ns "
        "OR (excluded.event_ns = online_feature_values.event_ns "
        "AND excluded.created_ns > online_feature_values.created_ns)"
    )

    def _upsert(self, conn: sa.Connection, rows: list[tuple]) -> None:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            # The driver's own executemany: no per-row parameter processing in Python.
            conn.exec_driver_sql(self._UPSERT.format(p="?"), rows)
            return
        if conn.dialect.driver == "psycopg2":
            # COPY into a transaction-scoped staging table, then one set-based upsert: Postgres
            # parses COPY rows far faster than a multi-row VALUES statement.
            cursor = conn.connection.driver_connection.cursor()
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS online_feature_stage "
                "(LIKE online_feature_values) ON COMMIT DELETE ROWS"
            )
            text = "".join(
                f"{_copy_text(f)}\t{_copy_text(k)}\t{e}\t{c}\t\\\\x{p.hex()}\n"
                for f, k, e, c, p in rows
            )
            cursor.copy_expert("COPY online_feature_stage FROM STDIN", io.StringIO(text))
            cursor.execute(
                self._UPSERT.replace(
                    "VALUES ({p}, {p}, {p}, {p}, {p})",
                    "SELECT feature_set, entity_key, event_ns, created_ns, payload "
                    "FROM online_feature_stage",
                )
            )
            cursor.execute("DELETE FROM online_feature_stage")
            return
        records = [dict(zip(self._COLUMNS, r, strict=True)) for r in rows]
        if dialect == "postgresql":
            # Core statement: SQLAlchemy batches it into multi-row VALUES (insertmanyvalues).
            insert = postgresql.insert(online_values)
            excluded, current = insert.excluded, online_values.c
            statement = insert.on_conflict_do_update(
                index_elements=[current.feature_set, current.entity_key],
                set_={
                    "event_ns": excluded.event_ns,
                    "created_ns": excluded.created_ns,
                    "payload": excluded.payload,
                },
                where=(excluded.event_ns > current.event_ns)
                | (
                    (excluded.event_ns == current.event_ns)
                    & (excluded.created_ns > current.created_ns)
                ),
            )
            conn.execute(statement, records)
            return
        keys = [r["entity_key"] for r in records]
        feature_set = records[0]["feature_set"]
        for start in range(0, len(keys), _BATCH):
            conn.execute(
                online_values.delete().where(
                    online_values.c.feature_set == feature_set,
                    online_values.c.entity_key.in_(keys[start : start + _BATCH]),
                )
            )
        conn.execute(online_values.insert(), records)

    @staticmethod
    def _bump_generation(conn: sa.Connection, feature_set: str, now: Any) -> None:
        updated = conn.execute(
            online_generations.update()
            .where(online_generations.c.feature_set == feature_set)
            .values(generation=online_generations.c.generation + 1, updated_at=now)
        )
        if updated.rowcount == 0:
            conn.execute(
                online_generations.insert().values(
                    feature_set=feature_set, generation=1, updated_at=now
                )
            )

    # -- reading ---------------------------------------------------------------------------
    def values(
        self, fsv: FeatureSetVersion, keys: Sequence[object], token: int | None = None
    ) -> np.ndarray:
        """A (len(keys), features) matrix of `fsv`'s values in its feature order; rows of
        unknown keys are NaN (None for non-numeric versions). One generation throughout.
        `token`: a change-counter value the caller read just before (saves a read)."""
        return self._locate(fsv, keys, token)[0]

    def lookup(
        self, fsv: FeatureSetVersion, keys: Sequence[object]
    ) -> dict[str, list[float] | None]:
        """Values of every feature of `fsv` for each key (None for an unknown entity)."""
        texts = [entity_key(k) for k in online_keys(keys)]
        matrix, rows = self._locate(fsv, texts)
        return {
            text: (values if row != _MISSING else None)
            for text, values, row in zip(texts, matrix.tolist(), rows.tolist(), strict=True)
        }

    def warm(self, fsv: FeatureSetVersion) -> None:
        """Build `fsv`'s cache now (a whole-version load if it is small enough)."""
        self._cache(fsv)

    def _locate(
        self, fsv: FeatureSetVersion, keys: Sequence[object], token: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(values, cache rows) for `keys`, all from one cache, i.e. one generation."""
        if not _FAST_KEY_TYPES.issuperset(map(type, keys)):
            keys = [entity_key(k) for k in keys]
        for _ in range(3):
            cache = self._cache(fsv, token)
            token = None  # a retry reads the counter afresh
            find = cache.index.__getitem__
            if cache.complete:
                rows = np.fromiter(map(find, keys), np.intp, len(keys))
                return cache.values.take(rows, axis=0), rows
            with cache.lock:
                rows = np.fromiter(map(find, keys), np.intp, len(keys))
                if not (rows < 0).any():
                    return cache.values.take(rows, axis=0), rows
            wanted = [entity_key(k) for k, r in zip(keys, rows.tolist(), strict=True) if r < 0]
            if self._fill(fsv, cache, list(dict.fromkeys(wanted))):
                with cache.lock:
                    rows = np.fromiter(map(find, keys), np.intp, len(keys))
                    return cache.values.take(rows, axis=0), rows
            with self._lock:  # changed while filling: start over from a fresh cache
                if self._caches.get(fsv.id) is cache:
                    del self._caches[fsv.id]
        raise ConcurrentChangeError(f"{fsv.id} kept changing during a lookup; try again.")

    def _cache(self, fsv: FeatureSetVersion, token: int | None = None) -> _VersionCache:
        if token is None:
            token = self.changes.token()
        if self._token is None or token > self._token:  # the counter only grows
            self._revalidate(token)
        cache = self._caches.get(fsv.id)
        if cache is not None:
            return cache
        cache = self._build(fsv)
        with self._lock:
            # Kept only if nothing changed since `token` was read; otherwise it serves this
            # call (it is at least as new as the call) and the next call builds afresh.
            if self._token == token:
                cache = self._caches.setdefault(fsv.id, cache)
        return cache

    def _revalidate(self, token: int) -> None:
        """Something changed somewhere: drop caches whose version has a new generation."""
        with self._lock:
            cached = dict(self._caches)
        current: dict[str, int] = {}
        if cached:
            with self.engine.connect() as conn:
                current = dict(
                    conn.execute(
                        sa.select(
                            online_generations.c.feature_set, online_generations.c.generation
                        ).where(online_generations.c.feature_set.in_(list(cached)))
                    ).all()
                )
        with self._lock:
            for feature_set, cache in list(self._caches.items()):
                checked = cached.get(feature_set) is cache
                if not checked or current.get(feature_set, 0) != cache.generation:
                    del self._caches[feature_set]
            if self._token is None or token > self._token:
                self._token = token

    def _generation(self, conn: sa.Connection, feature_set: str) -> int:
        found = conn.execute(
            sa.select(online_generations.c.generation).where(
                online_generations.c.feature_set == feature_set
            )
        ).scalar()
        return int(found or 0)

    def _build(self, fsv: FeatureSetVersion) -> _VersionCache:
        with self.engine.connect() as conn:
            generation = self._generation(conn, fsv.id)
            count = conn.execute(
                sa.select(sa.func.count()).where(online_values.c.feature_set == fsv.id)
            ).scalar_one()
            if count * max(len(fsv.features), 1) > self.preload_max_values:
                return _VersionCache(fsv, generation, complete=False)
            rows = conn.execute(
                sa.select(
                    online_values.c.entity_key, online_values.c.payload, self._gen_column(fsv)
                ).where(online_values.c.feature_set == fsv.id)
            ).all()
        if any(r[2] != generation for r in rows):
            # Written between the two reads: this load is consistent with the later one.
            generation = rows[0][2]
        cache = _VersionCache(fsv, generation, complete=True)
        if rows:
            keys = [r[0] for r in rows]
            cache.add(keys, self._decode(fsv, [r[1] for r in rows]))
        return cache

    @staticmethod
    def _gen_column(fsv: FeatureSetVersion) -> Any:
        return (
            sa.select(online_generations.c.generation)
            .where(online_generations.c.feature_set == fsv.id)
            .scalar_subquery()
        )

    def _fill(self, fsv: FeatureSetVersion, cache: _VersionCache, wanted: list[str]) -> bool:
        """Fetch `wanted` keys into `cache`; False if the version changed meanwhile."""
        found: list[Any] = []
        with self.engine.connect() as conn:
            if self._generation(conn, fsv.id) != cache.generation:
                return False
            for start in range(0, len(wanted), _BATCH):
                found += conn.execute(
                    sa.select(
                        online_values.c.entity_key, online_values.c.payload, self._gen_column(fsv)
                    ).where(
                        online_values.c.feature_set == fsv.id,
                        online_values.c.entity_key.in_(wanted[start : start + _BATCH]),
                    )
                ).all()
        if any(r[2] != cache.generation for r in found):
            return False
        keys = [r[0] for r in found]
        decoded = self._decode(fsv, [r[1] for r in found]) if found else None
        absent = set(wanted) - set(keys)
        cache.add(keys, decoded if decoded is not None else np.empty((0, cache.width)), absent)
        return True

    @staticmethod
    def _decode(fsv: FeatureSetVersion, payloads: list[Any]) -> np.ndarray:
        width = len(fsv.features)
        if all(is_numeric_dtype(d) for d in fsv.features.values()):
            blob = b"".join(bytes(p) for p in payloads)
            if len(blob) != 8 * width * len(payloads):
                raise SchemaMismatchError(
                    f"Online rows of {fsv.id} do not hold {width} float64 values each; the "
                    f"table was written with another schema. Re-materialize {fsv.id}."
                )
            return np.frombuffer(blob, dtype=np.float64).reshape(len(payloads), width)
        decoded = np.empty((len(payloads), width), dtype=object)
        for i, payload in enumerate(payloads):
            decoded[i] = json.loads(bytes(payload))
        return decoded
