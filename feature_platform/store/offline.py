"""Offline store: append-only Parquet snapshots per feature set version, point-in-time reads.

Layout: `<root>/<name>/<version>/snapshot-<created>-<content digest>.parquet`, one file per
write, each row carrying `event_timestamp` (when the value became true) and
`created_timestamp` (when it was written). Spark, DuckDB or Polars can read a version's folder
directly. The root is a local directory or an S3-compatible bucket (`s3://bucket/prefix`,
see `offline_fs`), so workers on several machines can share one offline store.

Writes are idempotent: re-writing the same rows (e.g. an ingest re-run after a crash between
the offline and the online write) finds the snapshot by its content digest instead of
appending a duplicate. Parquet pages carry CRC checksums, and a damaged file is named in the
error.

Reads go through an in-process cache of each version's rows, sorted once by (entity, event
time, write time) and keyed by the exact list of snapshot files (name, size, mtime): a new
snapshot, from any process, is a new key. Point-in-time retrieval is then vectorized, with
no per-row Python: for short histories (the common case) a few steps over per-step time
tables (`_StepTables`, saved with the index), otherwise a binary search; the feature values
are gathered in one sweep into the block the output frame is built on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api.internals import create_dataframe_from_blocks  # public since pandas 3

from feature_platform.errors import (
    FeaturePlatformError,
    SchemaMismatchError,
    UnknownFeatureError,
    closest,
)
from feature_platform.names import check_name, path_under
from feature_platform.store.db import utcnow
from feature_platform.store.feature_set import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureSetVersion,
    is_numeric_dtype,
    output_dtype,
)
from feature_platform.store.offline_fs import HashingWriter, OfflineLocation, checksum

TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
INDEX_FORMAT = 3  # bump when `_Prepared`'s arrays or the index files change meaning
_NO_ROW = -1
_STAMP = "%Y%m%dT%H%M%S%f"
# Exactly the temporary names `write_snapshot` makes: cleaning never touches anything else.
_ORPHAN = re.compile(r"\.snapshot-\d{8}T\d{12}-[0-9a-f]{8,16}(-[0-9a-f]{8})?\.parquet\.tmp\Z")
_INDEX_STAGING = re.compile(r"\.tmp-[0-9a-f]{8}\Z")

log = logging.getLogger(__name__)


class SnapshotReadError(FeaturePlatformError, OSError):
    """A snapshot file that cannot be read (damaged, truncated or unreachable)."""


class OfflineIndexWarning(UserWarning):
    """A persisted index failed its checksum and was rebuilt from the Parquet snapshots."""


@dataclass(frozen=True)
class SnapshotInfo:
    feature_set: str
    path: PurePath  # a Path on a local disk; bucket/key on object storage
    rows: int
    created_at: datetime
    written: bool = True  # False: the same rows were already stored (an idempotent re-run)


def to_utc(values: pd.Series, what: str) -> pd.Series:
    """Timestamps as UTC nanoseconds; naive values are taken to be UTC (as Feast does)."""
    if len(values) and values.dtype.kind in "iufb":
        # pandas would read integers as nanoseconds since 1970 (seconds become 1970-01-01).
        raise SchemaMismatchError(
            f"{what} holds numbers, not timestamps: seconds, milliseconds and nanoseconds "
            f"since 1970 cannot be told apart; convert first, e.g. "
            f"pd.to_datetime(values, unit='s', utc=True)."
        )
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) and dtype.unit == "ns":
        # Aware nanoseconds are stored as UTC already: naming the zone UTC (whichever
        # object spells it: zoneinfo, pytz, datetime) relabels them without a pass over rows.
        return values if dtype.tz is UTC else values.dt.tz_convert(UTC)
    try:
        with warnings.catch_warnings():  # a dateutil fallback notice for text is noise here
            warnings.simplefilter("ignore", UserWarning)
            ts = pd.to_datetime(values)
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
        return ts.astype(TIMESTAMP_DTYPE)
    except (ValueError, TypeError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise SchemaMismatchError(f"{what} holds values that are not timestamps: {exc}") from exc


def _nanos(ts: pd.Series) -> np.ndarray:
    return ts.astype(TIMESTAMP_DTYPE).array.asi8


def normalize_keys(values: pd.Series | np.ndarray, what: str) -> pd.Series:
    """Entity keys as int64 (integer keys) or str (anything else textual)."""
    series = pd.Series(values, copy=False) if not isinstance(values, pd.Series) else values
    if series.isna().any():
        rows = np.flatnonzero(series.isna().to_numpy())[:10].tolist()
        raise SchemaMismatchError(f"{what}: the entity key is empty in rows {rows}.")
    kind = series.dtype.kind
    if kind in "iu":
        return series.astype("int64")
    if kind in "fcbmM":
        raise SchemaMismatchError(
            f"{what}: entity keys must be integers or strings, not {series.dtype}."
        )
    return series.astype(str)


class _OnFirstUse:
    """A `_Prepared` array given outright or as a loader called on first use: a saved index
    maps only what the short-history search reads, the rest when something asks for it, and
    serves its values once their check (begun when the index was opened) has passed."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}"

    def __get__(self, obj: Any, objtype: type | None = None) -> np.ndarray:
        if obj is None:
            raise AttributeError(self._slot)  # for dataclasses: a field without a default
        value = obj.__dict__[self._slot]
        if callable(value):
            value = obj.__dict__[self._slot] = value()
        return value

    def __set__(self, obj: Any, value: np.ndarray | Callable[[], np.ndarray] | None) -> None:
        obj.__dict__[self._slot] = value


@dataclass
class _Prepared:
    """One version's rows: keys and times sorted by (entity code, event time, write time,
    file order) for the search; feature values left in file order (column-major, one
    contiguous array per feature) and reached through `order`, so loading never reorders
    them and a retrieval gathers each output column in one contiguous sweep."""

    files: tuple
    entity_dtype: str  # "int64" or "str"
    uniques: pd.Index  # entity keys; codes index into it
    rows: int  # stored rows; row `rows` of `values` is the all-missing one
    codes: np.ndarray = _OnFirstUse()
    event_ns: np.ndarray = _OnFirstUse()
    created_ns: np.ndarray = _OnFirstUse()
    ts_unique: np.ndarray = _OnFirstUse()  # sorted distinct event times
    # code * (len(ts_unique) + 1) + rank of event time, ascending
    search_key: np.ndarray = _OnFirstUse()
    order: np.ndarray = _OnFirstUse()  # sorted position -> row in file order
    numeric: list[str]
    # (rows + 1, numeric features) float64, row-major, last row all NaN; None when the
    # version is larger than memory allows: `reader` then fetches the rows asked for.
    values: np.ndarray | None = _OnFirstUse()
    others: dict[str, Any]  # non-numeric feature -> array in file order
    reader: _RowReader | None = None
    _text_index: pd.Index | None = None
    _segments: tuple | None = None
    _steps: _StepTables | None | bool = False  # False: not built yet; None: not applicable

    def segments(self) -> tuple[np.ndarray, int]:
        """(start of each entity's rows, with the end appended; the longest history)."""
        if self._segments is None:
            counts = np.bincount(self.codes, minlength=len(self.uniques))
            starts = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=starts[1:])
            self._segments = (starts, int(counts.max(initial=0)))
        return self._segments

    def step_tables(self) -> _StepTables | None:
        """The short-history search tables (see `_StepTables`), or None when histories are
        long or so uneven that padding every entity to the longest would waste memory."""
        if self._steps is False:
            self._steps = _StepTables.build(self)
        if self._steps is not None and self._steps.longest > _LINEAR_SCAN_MAX:
            return None  # saved under a larger limit than this process uses
        return self._steps

    def last_rows(self) -> np.ndarray:
        """Position of each entity's newest row (latest event time, then latest write)."""
        if self.rows == 0:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(np.r_[self.codes[1:] != self.codes[:-1], True])

    def text_keys(self, rows: np.ndarray) -> np.ndarray:
        """The keys at `rows` in their text form ('5' for 5), as in the online store."""
        return self.text_index().to_numpy(dtype=object)[self.codes[rows]]

    def source_rows(self, rows: np.ndarray) -> np.ndarray:
        """File-order rows for sorted positions `rows`; -1 becomes the all-missing row."""
        missing = self.rows
        if self.rows == 0:
            return np.full(len(rows), missing, dtype=np.int64)
        return np.where(rows >= 0, self.order[np.clip(rows, 0, None)], missing)

    def feature_rows(self, fsv: FeatureSetVersion, rows: np.ndarray) -> np.ndarray:
        """Every feature of `fsv` at sorted positions `rows`, one row each, in its feature
        order: float64 when all are numeric, else an object matrix."""
        source = self.source_rows(rows)
        if self.reader is not None:
            fetched = self.reader.take(source, fsv.feature_names)
            if len(self.numeric) == len(fsv.features):
                return np.ascontiguousarray(np.vstack(list(fetched.values())).T)
            out = np.empty((len(rows), len(fsv.features)), dtype=object)
            for j, feature in enumerate(fsv.feature_names):
                out[:, j] = np.asarray(fetched[feature], dtype=object)
            return out
        if len(self.numeric) == len(fsv.features):
            return np.take(self.values, source, axis=0, mode="clip")
        out = np.empty((len(rows), len(fsv.features)), dtype=object)
        for j, feature in enumerate(fsv.feature_names):
            if feature in self.others:
                out[:, j] = np.asarray(self.others[feature].take(source), dtype=object)
            else:
                out[:, j] = self.values[source, self.numeric.index(feature)]
        return out

    def text_index(self) -> pd.Index:
        if self._text_index is None:
            self._text_index = pd.Index(self.uniques.astype(str))
        return self._text_index

    def codes_of(self, keys: pd.Series) -> np.ndarray:
        """Code of each key (-1: not stored). Integer and text keys match by their text form
        ('5' finds 5), as in the online store; an empty key matches nothing."""
        if self.entity_dtype == "int64" and isinstance(keys.dtype, np.dtype):
            if keys.dtype.kind in "iu" and len(self.uniques):  # no missing keys possible
                return self.uniques.get_indexer(keys.to_numpy().astype(np.int64, copy=False))
        codes = np.full(len(keys), -1, dtype=np.int64)
        if len(self.uniques) == 0 or len(keys) == 0:
            return codes
        present = keys.notna().to_numpy()
        wanted = keys if present.all() else keys[present]
        kind = wanted.dtype.kind
        if self.entity_dtype == "int64" and kind in "iu":
            found = self.uniques.get_indexer(wanted.to_numpy().astype(np.int64))
        elif self.entity_dtype == "int64" and kind == "f":
            values = wanted.to_numpy()
            integral = np.isfinite(values) & (values == np.round(values))
            found = np.full(len(values), -1, dtype=np.int64)
            found[integral] = self.uniques.get_indexer(values[integral].astype(np.int64))
        elif self.entity_dtype == "int64":
            found = self.text_index().get_indexer(wanted.astype(str))
        else:
            found = self.uniques.get_indexer(wanted.astype(str))
        codes[present] = found
        return codes


_PAD_NS = np.iinfo(np.int64).max  # after every time: padding never counts as "at or before"


@dataclass(frozen=True)
class _StepTables:
    """Point-in-time search for short histories in a few vectorized steps.

    `times[k, code]` is the event time of entity `code`'s k-th row (ascending; padded after
    its last row, and one extra all-padding column for keys not stored), one contiguous row
    per step, so step k gathers from a small array that stays in cache. For a request row,
    `count` = how many of its entity's rows are at or before its time; `sources[code *
    (longest + 1) + count]` is then its value's file-order row (the missing row when count is
    0) and `positions` the same in sorted order (-1 when none), for the TTL check. A count
    past an entity's last row (a time equal to the padding) maps to that last row."""

    ARRAYS = ("step_times", "step_positions", "step_sources")  # names in a saved index

    longest: int
    times: np.ndarray  # (longest, entities + 1) int64
    positions: np.ndarray  # ((entities + 1) * (longest + 1),) int64
    sources: np.ndarray  # same shape: file-order row, len(order) for none

    @classmethod
    def build(cls, prepared: _Prepared) -> _StepTables | None:
        starts, longest = prepared.segments()
        entities, rows = len(prepared.uniques), prepared.rows
        # Padding to the longest history must stay within a few times the rows themselves.
        if not 0 < longest <= _LINEAR_SCAN_MAX or (entities + 1) * longest > 4 * rows + 4096:
            return None
        codes = prepared.codes
        # Sorted row i is step (i - start of its entity) of its entity: filled entity by
        # entity (ascending cells, a sequential write), then turned to one row per step.
        cell = np.arange(rows, dtype=np.int64)
        cell -= starts[codes]
        cell += codes * longest
        by_entity = np.full((entities + 1, longest), _PAD_NS, dtype=np.int64)
        np.put(by_entity, cell, prepared.event_ns)
        times = np.ascontiguousarray(by_entity.T)
        width = longest + 1
        positions = np.empty((entities + 1, width), dtype=np.int64)
        np.minimum(np.arange(width), np.diff(starts)[:, None], out=positions[:-1])
        positions[:-1] += starts[:-1, None] - 1
        positions[:-1, 0] = -1
        positions[-1] = -1
        # Position -1 (no row) picks the appended all-missing row.
        sources = np.append(prepared.order, rows).take(positions.ravel())
        return cls(longest, times, positions.ravel(), sources)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.times, self.positions, self.sources

    def counts(self, codes: np.ndarray, left_ns: np.ndarray) -> np.ndarray:
        """Flat table index (code * (longest + 1) + count) of each request row."""
        padding = self.times.shape[1] - 1
        column = np.where(codes >= 0, codes, padding)
        count = np.zeros(len(codes), dtype=np.uint8)  # longest <= _LINEAR_SCAN_MAX < 256
        times = np.empty(len(codes), dtype=np.int64)
        hit = np.empty(len(codes), dtype=bool)
        for step in range(self.longest):
            np.take(self.times[step], column, mode="clip", out=times)
            np.less_equal(times, left_ns, out=hit)
            count += hit
        column *= self.longest + 1
        column += count
        return column


class OfflineStore:
    def __init__(
        self,
        root: str | Path,
        cache_versions: int = 8,
        persist_index_min_bytes: int | None = 1 << 20,
        orphan_grace: timedelta = timedelta(hours=1),
        in_memory_max_bytes: int | None = 2 << 30,
    ) -> None:
        """`root`: a directory, or `s3://bucket/prefix` (see `offline_fs`). `cache_versions`:
        sorted versions kept in memory. `persist_index_min_bytes`: a version's sorted index
        is also saved next to its snapshots (`.index/`, numpy files with their checksums,
        read back memory-mapped on a local disk) once its values take at least this many
        bytes, so a new process skips re-reading and re-sorting the Parquet; None turns that
        off. `orphan_grace`: temporary files a crashed write left behind are deleted once
        older than this (a younger one may belong to a write still running).
        `in_memory_max_bytes`: a version whose feature values would take more is kept
        out of core: only its keys and times are loaded and sorted, and each retrieval reads
        just the Parquet row groups holding the rows it returns (None: always in memory)."""
        self.location = OfflineLocation(root)
        self.root = Path(root) if self.location.local else str(root)
        self.cache_versions = cache_versions
        self.persist_index_min_bytes = persist_index_min_bytes
        self.orphan_grace = orphan_grace
        self.in_memory_max_bytes = in_memory_max_bytes
        self._cache: OrderedDict[str, _Prepared] = OrderedDict()
        self._lock = threading.Lock()

    def _dir(self, fsv: FeatureSetVersion) -> str:
        if self.location.local:
            return str(path_under(self.location.base, fsv.name, fsv.version, what="feature set"))
        for name in (fsv.name, fsv.version):
            check_name(name, "feature set")
        return self.location.join(fsv.name, fsv.version)

    # -- writing ---------------------------------------------------------------------------
    def conform(self, fsv: FeatureSetVersion, frame: pd.DataFrame) -> pd.DataFrame:
        """Check `frame` against the registered schema and cast it; raise naming each problem."""
        if not isinstance(frame, pd.DataFrame):
            raise SchemaMismatchError(
                f"Rows written to {fsv.id} must be a pandas DataFrame, not {type(frame).__name__}."
            )
        expected = [fsv.entity, EVENT_TIMESTAMP, *fsv.feature_names]
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected and c != CREATED_TIMESTAMP]
        if missing or extra:
            raise SchemaMismatchError(
                f"Rows written to {fsv.id} do not match its schema: missing columns {missing}, "
                f"unexpected columns {extra}. Nothing was written."
            )
        if frame.columns.duplicated().any():
            dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
            raise SchemaMismatchError(f"Rows written to {fsv.id} repeat columns {dupes}.")
        out = frame[expected].reset_index(drop=True)
        out[fsv.entity] = normalize_keys(out[fsv.entity], f"Rows written to {fsv.id}")
        stored = self._stored_entity_dtype(fsv)
        written = "int64" if out[fsv.entity].dtype.kind in "iu" else "str"
        if stored is not None and stored != written:
            raise SchemaMismatchError(
                f"Rows written to {fsv.id} have {written} entity keys, but its earlier "
                f"snapshots have {stored} keys. Nothing was written."
            )
        out[EVENT_TIMESTAMP] = to_utc(out[EVENT_TIMESTAMP], f"{fsv.id}.{EVENT_TIMESTAMP}")
        if out[EVENT_TIMESTAMP].isna().any():
            rows = np.flatnonzero(out[EVENT_TIMESTAMP].isna().to_numpy())[:10].tolist()
            raise SchemaMismatchError(f"{fsv.id}: {EVENT_TIMESTAMP} is empty in rows {rows}.")
        duplicated = out.duplicated([fsv.entity, EVENT_TIMESTAMP])
        if duplicated.any():
            sample = out.loc[duplicated, fsv.entity].head(5).tolist()
            raise SchemaMismatchError(
                f"Rows written to {fsv.id} repeat (entity, {EVENT_TIMESTAMP}) pairs, e.g. for "
                f"keys {sample}: which value holds would be ambiguous. Nothing was written."
            )
        for feature, dtype in fsv.features.items():
            try:
                out[feature] = out[feature].astype(dtype)
            except (ValueError, TypeError) as exc:
                raise SchemaMismatchError(
                    f"{fsv.id}: feature '{feature}' cannot be stored as {dtype}: {exc}"
                ) from exc
        return out

    def write_snapshot(
        self, fsv: FeatureSetVersion, frame: pd.DataFrame, created_at: datetime | None = None
    ) -> SnapshotInfo:
        """Append one snapshot. The file appears whole or not at all (write, then rename;
        an object store's PUT is atomic).

        Idempotent: the name carries a digest of the rows, so the same rows with the same
        `created_at` are never stored twice, and without `created_at` rows identical to the
        newest snapshot are not appended again (a re-run after a crash); `written` is then
        False. Identical rows after other writes are appended: they may revert a change."""
        out = self.conform(fsv, frame)
        created = created_at or utcnow()
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        created = created.astimezone(UTC)
        digest = _content_digest(out)
        directory = self._dir(fsv)
        self.location.mkdir(directory)
        self._clean_orphans(directory)
        name = f"snapshot-{created.strftime(_STAMP)}-{digest}.parquet"
        stored = [n for n, _, _ in self.signature(fsv)]
        same = [n for n in stored if _digest_of(n) == digest]
        if name in same or (created_at is None and same and stored[-1] == same[-1]):
            kept = name if name in same else same[-1]
            path = self.location.pure_path(f"{directory}/{kept}")
            return SnapshotInfo(fsv.id, path, len(out), _created_of(kept), written=False)
        out[CREATED_TIMESTAMP] = pd.Series(pd.Timestamp(created), index=out.index).astype(
            TIMESTAMP_DTYPE
        )
        final = f"{directory}/{name}"
        # Its own temporary name: two processes writing the same rows never share a file.
        unique = f".{name.removesuffix('.parquet')}-{uuid.uuid4().hex[:8]}.parquet.tmp"
        target = f"{directory}/{unique}" if self.location.local else final
        # Dictionary pages only where values repeat (text); for floats they cost time for
        # nothing and slow reads down. Page checksums let a read tell damage from data.
        text = [c for c in out.columns if out[c].dtype.kind not in "iufbmM"]
        pq.write_table(
            pa.Table.from_pandas(out, preserve_index=False),
            target,
            use_dictionary=text,
            write_page_checksum=True,
            filesystem=self.location.fs,
        )
        if target != final:
            self.location.move(target, final)
        self._index_large_version(fsv)
        return SnapshotInfo(fsv.id, self.location.pure_path(final), len(out), created)

    def _clean_orphans(self, directory: str) -> None:
        """Delete temporary snapshot files a killed write left (only names this store makes,
        only once older than `orphan_grace`: a younger one may be a write in progress)."""
        if not self.location.local:
            return  # object stores write in place: there are no temporary files
        cutoff = time.time_ns() - int(self.orphan_grace.total_seconds() * 1e9)
        for entry in self.location.list(directory):
            if _ORPHAN.match(entry.name) and entry.mtime_ns < cutoff:
                log.info("Deleting %s, left by an interrupted snapshot write.", entry.name)
                self.location.delete_file(f"{directory}/{entry.name}")

    def _index_large_version(self, fsv: FeatureSetVersion) -> None:
        """Build and save a large version's sorted index at write time, as a database builds
        an index on insert, so the first point-in-time read of any process is already fast.
        Small versions are indexed on first read instead (cheap, and writes stay cheap)."""
        threshold = self.persist_index_min_bytes
        if threshold is None:
            return
        stored = sum(size for _, size, _ in self.signature(fsv))
        if self.in_memory_max_bytes is not None and stored > self.in_memory_max_bytes:
            return  # kept out of core: values are never held, so there is nothing to save
        if stored >= threshold:
            self._prepared(fsv)

    def _stored_entity_dtype(self, fsv: FeatureSetVersion) -> str | None:
        files = self.snapshots(fsv)
        if not files:
            return None
        path = str(files[0])
        try:
            schema = pq.read_schema(path, filesystem=self.location.fs)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._unreadable(fsv, path, exc) from exc
        field = schema.field(fsv.entity)
        return "int64" if pa.types.is_integer(field.type) else "str"

    def _unreadable(self, fsv: FeatureSetVersion, path: str, exc: Exception) -> SnapshotReadError:
        return SnapshotReadError(
            f"Offline snapshot {self.location.url(path)} of {fsv.id} cannot be read "
            f"(damaged, truncated or unreachable): {exc}. Restore the file, or move it away "
            f"and re-ingest its rows."
        )

    def _read_table(self, fsv: FeatureSetVersion, path: str, columns: list[str]) -> pa.Table:
        """One snapshot's columns; any failure names the file."""
        return self._read(fsv, path, self._parquet_file(fsv, path), columns)

    def _parquet_file(self, fsv: FeatureSetVersion, path: str) -> pq.ParquetFile:
        """A snapshot opened with its footer read (page checksums verified on reads)."""
        try:
            return pq.ParquetFile(
                path, filesystem=self.location.fs, page_checksum_verification=True
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._unreadable(fsv, path, exc) from exc

    def _read(
        self, fsv: FeatureSetVersion, path: str, parquet: pq.ParquetFile, columns: list[str]
    ) -> pa.Table:
        try:
            return parquet.read(columns=columns)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._unreadable(fsv, path, exc) from exc

    # -- reading ---------------------------------------------------------------------------
    def snapshots(self, fsv: FeatureSetVersion) -> list[PurePath]:
        """The version's snapshot files, oldest first (Paths on a local disk)."""
        directory = self._dir(fsv)
        return [self.location.pure_path(f"{directory}/{n}") for n, _, _ in self.signature(fsv)]

    def read_files(
        self, fsv: FeatureSetVersion, files: Sequence[PurePath], features: list[str] | None = None
    ) -> pd.DataFrame:
        """The rows of the given snapshot files (in order), with UTC timestamps."""
        features = fsv.feature_names if features is None else features
        self._check_features(fsv, features)
        columns = [fsv.entity, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *features]
        if not files:
            empty = pd.DataFrame(
                {
                    fsv.entity: pd.Series(dtype="int64"),
                    EVENT_TIMESTAMP: pd.Series(dtype=TIMESTAMP_DTYPE),
                    CREATED_TIMESTAMP: pd.Series(dtype=TIMESTAMP_DTYPE),
                    **{f: pd.Series(dtype=fsv.features[f]) for f in features},
                }
            )
            return empty[columns]
        tables = [self._read_table(fsv, str(f), columns) for f in files]
        frame = pa.concat_tables(tables).to_pandas() if len(tables) > 1 else tables[0].to_pandas()
        for column in (EVENT_TIMESTAMP, CREATED_TIMESTAMP):
            frame[column] = frame[column].astype(TIMESTAMP_DTYPE)
        return frame

    def read(self, fsv: FeatureSetVersion, features: list[str] | None = None) -> pd.DataFrame:
        """Every stored row of a version (all snapshots, in write order)."""
        return self.read_files(fsv, self.snapshots(fsv), features)

    def latest(self, fsv: FeatureSetVersion, features: list[str] | None = None) -> pd.DataFrame:
        """The newest value per entity (by event time, then write time)."""
        features = fsv.feature_names if features is None else features
        self._check_features(fsv, features)
        prepared = self._prepared(fsv)
        last = prepared.last_rows()
        frame = pd.DataFrame(
            {
                fsv.entity: prepared.uniques.take(prepared.codes[last]).to_numpy(),
                EVENT_TIMESTAMP: pd.to_datetime(prepared.event_ns[last], utc=True),
                CREATED_TIMESTAMP: pd.to_datetime(prepared.created_ns[last], utc=True),
            }
        )
        values = self._take(fsv, prepared, prepared.source_rows(last), features)
        frame = pd.concat([frame, values], axis=1) if features else frame
        order = np.lexsort((frame[CREATED_TIMESTAMP].array.asi8, frame[EVENT_TIMESTAMP].array.asi8))
        return frame.take(order).reset_index(drop=True)

    def point_in_time(
        self,
        entity_df: pd.DataFrame,
        requests: list[tuple[FeatureSetVersion, list[str]]],
        *,
        timestamp_column: str = EVENT_TIMESTAMP,
        ttl: timedelta | Mapping[str, timedelta] | None = None,
        column_names: dict[tuple[str, str], str] | None = None,
        snapshots: Mapping[str, Sequence[str]] | None = None,
    ) -> pd.DataFrame:
        """For each entity row, the latest value at or before its timestamp (within `ttl`).

        A value counts for a row when its event time is at or before the row's timestamp
        (and, with a TTL, no older than the TTL); of those the latest event time wins, ties
        going to the later write (created timestamp), so a backfill corrects a value from
        its event time on but never reaches rows before it. The entity frame's index, row
        order and extra columns are kept (its timestamp column comes back in UTC); rows with
        no eligible value get NaN (numeric features are float64). `ttl` may be one timedelta
        or a mapping from feature set name or id to timedelta.

        `snapshots`: per version id, the snapshot file names to read (a replay reads exactly
        the files an earlier retrieval read); default every snapshot. The result's
        `attrs["snapshots"]` names, per version id, the files read.
        """
        if not isinstance(entity_df, pd.DataFrame):
            raise SchemaMismatchError(
                f"The entity frame must be a pandas DataFrame, not {type(entity_df).__name__}."
            )
        if timestamp_column not in entity_df.columns:
            raise SchemaMismatchError(
                f"The entity frame has no '{timestamp_column}' column; point-in-time retrieval "
                f"needs one timestamp per row. Columns: {list(entity_df.columns)}."
            )
        timestamps = to_utc(entity_df[timestamp_column], f"entity frame '{timestamp_column}'")
        if timestamps.isna().any():
            rows = np.flatnonzero(timestamps.isna().to_numpy())[:10].tolist()
            raise SchemaMismatchError(f"The entity frame has empty timestamps in rows {rows}.")
        names = column_names or {}
        outputs: list[str] = []
        for fsv, features in requests:
            self._check_features(fsv, features)
            if fsv.entity not in entity_df.columns:
                raise SchemaMismatchError(
                    f"The entity frame has no '{fsv.entity}' column, the entity key of {fsv.id}. "
                    f"Columns: {list(entity_df.columns)}."
                )
            outputs += [names.get((fsv.id, f), f) for f in features]
        clashes = sorted({c for c in outputs if c in entity_df.columns} | _repeated(outputs))
        if clashes:
            raise SchemaMismatchError(
                f"Feature columns {clashes} would overwrite entity frame columns or each "
                f"other; rename them or pass full_feature_names=True."
            )
        left_ns = timestamps.array.asi8
        parts = []
        read: dict[str, list[str]] = {}
        for fsv, features in requests:
            prepared = self._prepared(fsv, None if snapshots is None else snapshots[fsv.id])
            read[fsv.id] = [name for name, _, _ in prepared.files]
            keys = entity_df[fsv.entity].reset_index(drop=True)
            source = self._as_of(prepared, keys, left_ns, _ttl_for(ttl, fsv))
            values = self._take(fsv, prepared, source, features)
            values.columns = [names.get((fsv.id, f), f) for f in features]
            parts.append(values)
        # A shallow copy: copy-on-write keeps the caller's frame unchanged by what follows.
        result = entity_df.copy(deep=False)
        result[timestamp_column] = timestamps.array  # positional; no per-row conversion
        result.attrs["snapshots"] = read
        if not parts:
            return result
        index = result.index
        # Joined by position: the entity frame's index may repeat values.
        result = pd.concat([result.reset_index(drop=True), *parts], axis=1)
        result.index = index
        result.attrs["snapshots"] = read
        return result

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _check_features(fsv: FeatureSetVersion, features: list[str]) -> None:
        for feature in features:
            if feature not in fsv.features:
                raise UnknownFeatureError(
                    f"Feature set {fsv.id} has no feature {feature!r}."
                    f"{closest(feature, fsv.feature_names)}"
                )

    @staticmethod
    def _as_of(
        prepared: _Prepared, keys: pd.Series, left_ns: np.ndarray, ttl: timedelta | None
    ) -> np.ndarray:
        """File-order row holding each entity row's value, or `prepared.rows` (the
        all-missing row) where there is none."""
        codes = prepared.codes_of(keys)
        missing = prepared.rows
        if missing == 0 or len(codes) == 0:
            return np.full(len(codes), missing, dtype=np.int64)
        ttl_ns = None if ttl is None else pd.Timedelta(ttl).value
        steps = prepared.step_tables()
        if steps is not None:
            flat = steps.counts(codes, left_ns)
            if ttl_ns is None:
                return steps.sources.take(flat, mode="clip")
            found = steps.positions.take(flat, mode="clip")
            safe = np.maximum(found, 0)
            valid = (found >= 0) & ((left_ns - prepared.event_ns[safe]) <= ttl_ns)
            return np.where(valid, steps.sources.take(flat, mode="clip"), missing)
        # Rank of each row time among stored event times: stored time <= row time exactly
        # when its rank <= the row's rank, so (code, rank) pairs compare like (key, time).
        starts, longest = prepared.segments()
        if longest <= _SEGMENT_SEARCH_MAX:
            found = _segment_search(prepared, starts, codes, left_ns)
        else:
            rank = np.searchsorted(prepared.ts_unique, left_ns, side="right")
            span = len(prepared.ts_unique) + 1
            wanted = np.where(codes >= 0, codes, 0) * span + rank
            found = np.searchsorted(prepared.search_key, wanted, side="right") - 1
        safe = np.clip(found, 0, None)
        valid = (codes >= 0) & (found >= 0) & (prepared.codes[safe] == codes)
        if ttl_ns is not None:
            valid &= (left_ns - prepared.event_ns[safe]) <= ttl_ns
        return prepared.source_rows(np.where(valid, found, _NO_ROW))

    @staticmethod
    def _take(
        fsv: FeatureSetVersion, prepared: _Prepared, source: np.ndarray, features: list[str]
    ) -> pd.DataFrame:
        """Feature values at file-order rows `source` (`prepared.rows`: missing), in
        output dtypes (see `_Prepared.source_rows`)."""
        if prepared.reader is not None:
            fetched = prepared.reader.take(source, features)
            numeric = [f for f in features if f in prepared.numeric]
            frame = pd.DataFrame(index=pd.RangeIndex(len(source)))
            if numeric:  # the reader filled one block: the frame's, without a copy
                frame = _frame_from_block(fetched[numeric[0]].base, numeric)
            for f in features:
                if f not in prepared.numeric:
                    frame[f] = pd.Series(fetched[f], dtype=output_dtype(fsv.features[f])).array
            return frame[features] if list(frame.columns) != features else frame
        numeric = [f for f in features if f in prepared.numeric]
        frame = pd.DataFrame(index=pd.RangeIndex(len(source)))
        if numeric:
            positions = [prepared.numeric.index(f) for f in numeric]
            # `source` is always in bounds: 'clip' skips numpy's per-index bounds check.
            if positions == list(range(len(prepared.numeric))):
                # Whole rows (each contiguous) gathered at once; the frame's block is
                # their transpose, no copy.
                rows = _pooled_empty((len(source), len(numeric)))
                block = np.take(prepared.values, source, axis=0, mode="clip", out=rows).T
            else:
                block = prepared.values[np.ix_(source, positions)].T
            frame = _frame_from_block(block, numeric)
        others = {
            f: pd.Series(
                prepared.others[f].take(
                    np.where(source < prepared.rows, source, -1), allow_fill=True
                ),
                dtype=output_dtype(fsv.features[f]),
            )
            for f in features
            if f in prepared.others
        }
        if others:
            frame = pd.concat([frame, pd.DataFrame(others)], axis=1)
        return frame[features] if list(frame.columns) != features else frame

    def signature(self, fsv: FeatureSetVersion) -> tuple:
        """The version's snapshot set as (name, size, mtime) entries: equal while no snapshot
        is added, replaced or removed (what this store's own caches are keyed by)."""
        entries = self.location.list(self._dir(fsv))
        return tuple(
            sorted(
                (e.name, e.size, e.mtime_ns)
                for e in entries
                if e.name.startswith("snapshot-") and e.name.endswith(".parquet")
            )
        )

    def prepared(self, fsv: FeatureSetVersion) -> _Prepared:
        """Every row of `fsv`, sorted and indexed (cached; see `load`)."""
        return self._prepared(fsv)

    def _prepared(self, fsv: FeatureSetVersion, only: Sequence[str] | None = None) -> _Prepared:
        """`only`: just these snapshot names (a replay), cached under their own key and
        never persisted (a persisted index is the current set's)."""
        signature = self.signature(fsv)
        key = f"{self.root}|{fsv.id}|{fsv.fingerprint}"
        current = only is None or [n for n, _, _ in signature] == list(only)
        if not current:
            signature = self._subset(fsv, signature, only)
            key += "|" + hashlib.sha256(json.dumps(signature).encode()).hexdigest()[:20]
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.files == signature:
                self._cache.move_to_end(key)
                return cached
        prepared = self._prepare(fsv, signature, persist=current)
        with self._lock:
            self._cache[key] = prepared
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_versions:
                self._cache.popitem(last=False)
        return prepared

    def _subset(self, fsv: FeatureSetVersion, signature: tuple, only: Sequence[str]) -> tuple:
        stored = {entry[0]: entry for entry in signature}
        missing = [name for name in only if name not in stored]
        if missing:
            raise FeaturePlatformError(
                f"Snapshots {missing[:3]} of {fsv.id} are not in the offline store at "
                f"{self.location.url(self._dir(fsv))}; it holds {len(stored)} others."
            )
        return tuple(sorted(stored[name] for name in set(only)))

    def _prepare(self, fsv: FeatureSetVersion, signature: tuple, persist: bool = True) -> _Prepared:
        directory = self._dir(fsv)
        saved = self._load_index(fsv, signature)
        if saved is not None:
            return saved
        self._clean_orphans(directory)
        prepared = self.load(fsv, [f"{directory}/{name}" for name, _, _ in signature], signature)
        if persist:
            self._save_index(fsv, prepared)
        return prepared

    # -- persisted index: a derived, disposable cache of `_Prepared` ------------------------
    _INDEX_ARRAYS = ("codes", "event_ns", "created_ns", "ts_unique", "search_key", "order")

    def _index_dir(self, fsv: FeatureSetVersion, signature: tuple) -> str:
        digest = hashlib.sha256(
            json.dumps([fsv.fingerprint, INDEX_FORMAT, signature]).encode()
        ).hexdigest()[:20]
        return f"{self._dir(fsv)}/.index/{digest}"

    def _save_index(self, fsv: FeatureSetVersion, prepared: _Prepared) -> None:
        """Write the index's arrays, each with its checksum in `meta.json` (written last: an
        index without its meta is never read). Locally in a staging folder renamed at the
        end; on object storage in place."""
        threshold = self.persist_index_min_bytes
        if threshold is None or not prepared.files or prepared.others or prepared.values is None:
            return  # off, nothing stored, text features (numpy holds numbers), out of core
        if prepared.values.nbytes < threshold:
            return
        loc = self.location
        final = self._index_dir(fsv, prepared.files)
        parent, _, leaf = final.rpartition("/")
        if loc.exists(f"{final}/meta.json"):
            return
        staging = f"{parent}/.tmp-{uuid.uuid4().hex[:8]}" if loc.local else final
        uniques = prepared.uniques.to_numpy()
        arrays = {name: getattr(prepared, name) for name in self._INDEX_ARRAYS + ("values",)}
        arrays["uniques"] = uniques if prepared.entity_dtype == "int64" else uniques.astype(str)
        steps = prepared.step_tables()  # saved too: a new process skips building them
        if steps is not None:
            arrays.update(zip(_StepTables.ARRAYS, steps.arrays(), strict=True))
        try:
            loc.mkdir(staging)
            checksums = {}
            for name, array in arrays.items():
                with loc.open_output(f"{staging}/{name}.npy") as stream:
                    writer = HashingWriter(stream)
                    np.save(writer, np.ascontiguousarray(array), allow_pickle=False)
                checksums[name] = writer.hexdigest()
            meta = {
                "format": INDEX_FORMAT,
                "fingerprint": fsv.fingerprint,
                "files": prepared.files,
                "entity_dtype": prepared.entity_dtype,
                "numeric": prepared.numeric,
                "step_longest": steps.longest if steps is not None else None,
                "xxh3_128": checksums,
            }
            loc.write_bytes(f"{staging}/meta.json", json.dumps(meta).encode())
            if staging != final:
                loc.move(staging, final)  # whole or not at all; a concurrent writer may have won
        except OSError:
            if staging != final:
                loc.delete_dir(staging)
            return
        cutoff = time.time_ns() - int(self.orphan_grace.total_seconds() * 1e9)
        for name in loc.list_dirs(parent):  # older signatures: no longer readable anyway
            if name == leaf:
                continue
            if _INDEX_STAGING.match(name) and not self._older_than(f"{parent}/{name}", cutoff):
                continue  # another process may be writing it
            loc.delete_dir(f"{parent}/{name}")

    def _older_than(self, path: str, cutoff_ns: int) -> bool:
        mtime = self.location.fs.get_file_info(path).mtime_ns
        return mtime is not None and mtime < cutoff_ns

    def _load_index(self, fsv: FeatureSetVersion, signature: tuple) -> _Prepared | None:
        """The saved index for exactly these snapshot files, or None. An index that does not
        match its checksums is deleted and reported (warning + log), never served."""
        if self.persist_index_min_bytes is None or not signature:
            return None
        loc = self.location
        directory = self._index_dir(fsv, signature)
        try:
            meta_bytes = loc.read_bytes(f"{directory}/meta.json")
        except FileNotFoundError:
            return None  # not built yet
        except OSError as exc:
            return self._discard_index(fsv, directory, f"meta.json unreadable ({exc})")
        try:
            meta = json.loads(meta_bytes)
            checksums = meta["xxh3_128"]
            if (
                meta["format"] != INDEX_FORMAT
                or meta["fingerprint"] != fsv.fingerprint
                or tuple(tuple(f) for f in meta["files"]) != signature
                or meta["numeric"] != [f for f in fsv.feature_names]
                or meta["entity_dtype"] not in ("int64", "str")
            ):
                return self._discard_index(fsv, directory, "meta.json describes other data")
            # An index from before step tables were saved has no "step_longest": they are
            # then built on first use, as for an index without them.
            step_longest = meta.get("step_longest", False)
            if step_longest not in (False, None) and not isinstance(step_longest, int):
                raise TypeError(f"step_longest is {step_longest!r}")
            # With step tables the search reads only them, the keys and the values: the
            # sorted arrays are mapped when something else (latest, a TTL) first asks.
            later = self._INDEX_ARRAYS if step_longest else ()
            names = ("uniques",) + (_StepTables.ARRAYS if step_longest else ())
            arrays: dict[str, Any] = {}
            for name in names + tuple(n for n in self._INDEX_ARRAYS if n not in later):
                array, digest = loc.load_array(f"{directory}/{name}.npy")
                if digest != checksums[name]:
                    return self._discard_index(fsv, directory, f"{name}.npy checksum")
                arrays[name] = array
            # The values, most of the index, are checked in the background while the search
            # (which does not read them) runs; they are served once the check has passed.
            values, values_data = loc.map_array(f"{directory}/values.npy")
            if values.ndim != 2 or values.shape[1] != len(meta["numeric"]):
                raise ValueError(f"values.npy has shape {values.shape}")
            if step_longest:  # the tables' shapes must agree with what meta.json says
                columns = arrays["step_times"].shape[-1]
                cells = columns * (step_longest + 1)
                if arrays["step_times"].shape != (step_longest, columns) or any(
                    arrays[name].shape != (cells,) for name in _StepTables.ARRAYS[1:]
                ):
                    raise ValueError("step tables do not have the shape meta.json gives")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return self._discard_index(fsv, directory, f"unreadable ({exc})")
        uniques = arrays.pop("uniques")
        steps: _StepTables | None | bool = None if step_longest is None else False
        if step_longest:
            saved = [arrays.pop(name) for name in _StepTables.ARRAYS]
            steps = _StepTables(step_longest, *saved)
        mapped_later = _IndexArrays(self, fsv, directory, signature, checksums)
        for name in later:
            arrays[name] = mapped_later.loader(name)
        arrays["values"] = mapped_later.checked_later("values", values, values_data)
        keys = pd.Index(uniques if meta["entity_dtype"] == "int64" else uniques.astype(object))
        return _Prepared(
            _steps=steps,
            files=signature,
            entity_dtype=meta["entity_dtype"],
            uniques=keys.astype("str") if meta["entity_dtype"] == "str" else keys,
            rows=values.shape[0] - 1,
            numeric=meta["numeric"],
            others={},
            **arrays,
        )

    def _discard_index(self, fsv: FeatureSetVersion, directory: str, why: str) -> None:
        message = (
            f"The offline index of {fsv.id} at {self.location.url(directory)} is damaged "
            f"({why}); it was deleted and is rebuilt from the Parquet snapshots."
        )
        log.warning(message)
        warnings.warn(message, OfflineIndexWarning, stacklevel=4)
        self.location.delete_dir(directory)
        return None

    def load(
        self, fsv: FeatureSetVersion, files: Sequence[PurePath | str], signature: tuple = ()
    ) -> _Prepared:
        """The rows of `files`, sorted for point-in-time search (straight from Arrow: no
        intermediate DataFrame)."""
        keys = [fsv.entity, EVENT_TIMESTAMP, CREATED_TIMESTAMP]
        numeric = [f for f, d in fsv.features.items() if is_numeric_dtype(d)]
        paths = [str(f) for f in files]
        parquet = [self._parquet_file(fsv, path) for path in paths]
        counts = [pf.metadata.num_rows for pf in parquet]
        limit = self.in_memory_max_bytes
        out_of_core = limit is not None and sum(counts) * len(fsv.features) * 8 > limit
        columns = keys if out_of_core else [*keys, *fsv.feature_names]
        tables = [
            self._read(fsv, path, pf, columns) for path, pf in zip(paths, parquet, strict=True)
        ]
        del parquet
        if not tables:
            return _Prepared(
                files=signature,
                entity_dtype="int64",
                uniques=pd.Index([], dtype="int64"),
                rows=0,
                codes=np.zeros(0, dtype=np.int64),
                event_ns=np.zeros(0, dtype=np.int64),
                created_ns=np.zeros(0, dtype=np.int64),
                ts_unique=np.zeros(0, dtype=np.int64),
                search_key=np.zeros(0, dtype=np.int64),
                order=np.zeros(0, dtype=np.int64),
                numeric=numeric,
                values=np.full((1, len(numeric)), np.nan),
                others={
                    f: pd.array([], dtype=fsv.features[f])
                    for f in fsv.feature_names
                    if f not in numeric
                },
            )
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        entity = table.column(fsv.entity)
        entity_dtype = "int64" if pa.types.is_integer(entity.type) else "str"
        keys = entity.to_numpy() if entity_dtype == "int64" else entity.to_pandas().astype(str)
        codes, uniques = pd.factorize(keys)
        codes = codes.astype(np.int64)
        event_ns, created_ns = (
            table.column(c).cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()
            for c in (EVENT_TIMESTAMP, CREATED_TIMESTAMP)
        )
        # Stable sort: among equal (key, event, created) the later file (then row) is last.
        order = np.lexsort((np.arange(len(codes)), created_ns, event_ns, codes))
        codes, event_ns, created_ns = codes[order], event_ns[order], created_ns[order]
        ts_unique = np.unique(event_ns)
        rank = np.searchsorted(ts_unique, event_ns, side="right")
        values, others, reader = None, {}, None
        if out_of_core:
            starts = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=starts[1:])
            reader = _RowReader(self, fsv, paths, starts)
        else:
            values = np.empty((len(codes) + 1, len(numeric)), dtype=np.float64)
            for j, feature in enumerate(numeric):
                values[:-1, j] = table.column(feature).to_numpy(zero_copy_only=False)
            values[-1] = np.nan
            others = {
                f: table.column(f).to_pandas().array for f in fsv.feature_names if f not in numeric
            }
        del table
        return _Prepared(
            files=signature,
            entity_dtype=entity_dtype,
            uniques=pd.Index(uniques),
            rows=len(codes),
            codes=codes,
            event_ns=event_ns,
            created_ns=created_ns,
            ts_unique=ts_unique,
            search_key=codes * (len(ts_unique) + 1) + rank,
            order=order,
            numeric=numeric,
            values=values,
            others=others,
            reader=reader,
        )


class _IndexArrays:
    """The arrays of one saved index that `_load_index` left to be mapped on first use, or
    mapped but still being checked (the values). Each is served only once its checksum
    matches; one that is damaged or gone (the index was replaced meanwhile) is reported like
    a damaged index, and every array left comes from one rebuild from the same Parquet
    snapshots (the sort is deterministic, so the rebuilt arrays are the ones the index held;
    the rebuild is saved as the index again)."""

    def __init__(
        self,
        store: OfflineStore,
        fsv: FeatureSetVersion,
        directory: str,
        signature: tuple,
        checksums: Mapping[str, str],
    ) -> None:
        self._store, self._fsv, self._directory = store, fsv, directory
        self._signature, self._checksums = signature, checksums
        self._rebuilt: _Prepared | None = None
        self._lock = threading.Lock()

    def loader(self, name: str) -> Callable[[], np.ndarray]:
        return lambda: self._array(name)

    def checked_later(self, name: str, array: np.ndarray, data: Any) -> Callable[[], np.ndarray]:
        """A loader for `name`, already mapped as `array` over `data`: the checksum of `data`
        is computed from now on in a background thread, and the first call waits for it."""
        digest = _InBackground(lambda: checksum(data))
        return lambda: self._array(name, (array, digest))

    def _array(
        self, name: str, checking: tuple[np.ndarray, _InBackground] | None = None
    ) -> np.ndarray:
        with self._lock:
            if self._rebuilt is None:
                try:
                    if checking is None:
                        path = f"{self._directory}/{name}.npy"
                        array, digest = self._store.location.load_array(path)
                    else:
                        array, digest = checking[0], checking[1].result()
                    if digest == self._checksums[name]:
                        return array
                    why = f"{name}.npy checksum"
                except (OSError, ValueError) as exc:
                    why = f"{name}.npy unreadable ({exc})"
                self._store._discard_index(self._fsv, self._directory, why)
                directory = self._store._dir(self._fsv)
                files = [f"{directory}/{entry[0]}" for entry in self._signature]
                self._rebuilt = self._store.load(self._fsv, files, self._signature)
                self._store._save_index(self._fsv, self._rebuilt)  # whole again for the next
            return getattr(self._rebuilt, name)


class _InBackground:
    """`work()` run in a daemon thread from construction; `result()` waits for it and
    returns its value or raises its exception. A thread per call rather than a pool: a
    pool's workers do not survive a fork (Celery's prefork workers). A process forked while
    the thread ran has no such thread: `result()` there does the work itself."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work, self._value, self._error, self._done = work, None, None, False
        self._thread = threading.Thread(target=self._run, name="fp-offline-index", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # handed to whoever waits in result()
            self._error = exc
        self._done = True

    def result(self) -> Any:
        self._thread.join()
        if not self._done:
            self._run()
        if self._error is not None:
            raise self._error
        return self._value


class _RowReader:
    """Feature values of an out-of-core version, fetched on demand: for the file-order rows
    asked for, only the row groups holding them are read, one at a time, and only those
    rows are kept (memory: the answer plus one row group)."""

    def __init__(
        self, store: OfflineStore, fsv: FeatureSetVersion, paths: list[str], starts: np.ndarray
    ) -> None:
        self.store, self.fsv, self.paths, self.starts = store, fsv, paths, starts

    def take(self, source: np.ndarray, features: list[str]) -> dict[str, Any]:
        """{feature: values at `source`} (rows past the end: missing). Numeric features come
        back float64 with NaN, as rows of one (numeric features, rows) block (a frame can
        use it without a copy), others as object arrays with None."""
        n = len(source)
        numeric = [f for f in features if is_numeric_dtype(self.fsv.features[f])]
        block = np.full((len(numeric), n), np.nan)
        out: dict[str, Any] = {f: block[j] for j, f in enumerate(numeric)}
        out.update({f: np.full(n, None, dtype=object) for f in features if f not in out})
        if not features:
            return out
        wanted = np.flatnonzero(source < self.starts[-1])
        rows = source[wanted]
        by_row = np.argsort(rows, kind="stable")
        rows, wanted = rows[by_row], wanted[by_row]
        file_of = np.searchsorted(self.starts, rows, side="right") - 1
        for number in np.unique(file_of):
            lo, hi = np.searchsorted(file_of, [number, number + 1])
            local, dest = rows[lo:hi] - self.starts[number], wanted[lo:hi]
            path = self.paths[number]
            parquet = self.store._parquet_file(self.fsv, path)
            meta = parquet.metadata
            group_starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
            np.cumsum(
                [meta.row_group(g).num_rows for g in range(meta.num_row_groups)],
                out=group_starts[1:],
            )
            group_of = np.searchsorted(group_starts, local, side="right") - 1
            for group in np.unique(group_of):
                a, b = np.searchsorted(group_of, [group, group + 1])
                try:
                    table = parquet.read_row_group(int(group), columns=features)
                except (pa.ArrowException, OSError, ValueError) as exc:
                    raise self.store._unreadable(self.fsv, path, exc) from exc
                picked = table.take(pa.array(local[a:b] - group_starts[group]))
                del table
                for feature in features:
                    column = picked.column(feature)
                    if feature in numeric:
                        out[feature][dest[a:b]] = column.to_numpy(zero_copy_only=False)
                    else:
                        out[feature][dest[a:b]] = column.to_pandas().to_numpy(dtype=object)
        return out


_SEGMENT_SEARCH_MAX = 4096  # longer histories: one global binary search is as fast
_LINEAR_SCAN_MAX = 16  # short histories: a few vectorized steps beat a binary search's


def _segment_search(
    prepared: _Prepared, starts: np.ndarray, codes: np.ndarray, left_ns: np.ndarray
) -> np.ndarray:
    """Last sorted position within each row's entity segment whose event time is at or
    before the row's time (-1 if none): a vectorized binary search over the short
    per-entity ranges instead of the whole array (fewer steps, each within one entity)."""
    event_ns = prepared.event_ns
    present = codes >= 0
    safe_codes = np.where(present, codes, 0)
    first = starts[safe_codes]
    lo, hi = first.copy(), np.where(present, starts[safe_codes + 1], first)
    last = len(event_ns) - 1
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        right = active & (event_ns[np.minimum(mid, last)] <= left_ns)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return np.where(present & (lo > first), lo - 1, -1)


def _pooled_empty(shape: tuple[int, int]) -> np.ndarray:
    """An uninitialized, writable float64 array in Arrow's memory pool. The pool reuses the
    pages an earlier result freed, where a fresh allocation this large gets new pages the
    kernel zeroes first: a third of the time of gathering a 100k x 50 result. (The array
    keeps its Arrow buffer alive; freeing the frame returns it to the pool.)"""
    buffer = pa.allocate_buffer(shape[0] * shape[1] * 8)
    return np.frombuffer(buffer, dtype=np.float64).reshape(shape)


def _frame_from_block(block: np.ndarray, names: list[str]) -> pd.DataFrame:
    """A float64 frame over a (columns, rows) block without copying it."""
    return create_dataframe_from_blocks(
        [(block, np.arange(len(names)))],
        index=pd.RangeIndex(block.shape[1]),
        columns=pd.Index(names),
    )


def _content_digest(frame: pd.DataFrame) -> str:
    """A digest of a conformed frame's columns, types and values (row order included)."""
    digest = hashlib.sha256(json.dumps([[c, str(frame[c].dtype)] for c in frame]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _digest_of(name: str) -> str:
    """The content digest in a snapshot's name ('' for names from before digests)."""
    tail = name.removesuffix(".parquet").rpartition("-")[2]
    return tail if len(tail) == 16 else ""


def _created_of(name: str) -> datetime:
    stamp = name.removeprefix("snapshot-").split("-", 1)[0]
    return datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC)


def _repeated(names: list[str]) -> set[str]:
    seen: set[str] = set()
    return {n for n in names if n in seen or seen.add(n)}


def _ttl_for(
    ttl: timedelta | Mapping[str, timedelta] | None, fsv: FeatureSetVersion
) -> timedelta | None:
    if ttl is None:
        return None
    if isinstance(ttl, Mapping):
        value = ttl.get(fsv.id, ttl.get(fsv.name))
        return _ttl_for(value, fsv) if value is not None else None
    if pd.Timedelta(ttl) < pd.Timedelta(0):
        raise SchemaMismatchError(f"The TTL for {fsv.id} is negative ({ttl}).")
    return ttl
