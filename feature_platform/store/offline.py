"""Offline store: append-only Parquet snapshots per feature set version, point-in-time reads.

Layout: `<root>/<name>/<version>/snapshot-<created>-<id>.parquet`, one file per write, each
row carrying `event_timestamp` (when the value became true) and `created_timestamp` (when it
was written). Spark, DuckDB or Polars can read a version's folder directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_platform.errors import SchemaMismatchError
from feature_platform.store.db import utcnow
from feature_platform.store.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP, FeatureSetVersion

TIMESTAMP_DTYPE = "datetime64[ns, UTC]"


@dataclass(frozen=True)
class SnapshotInfo:
    feature_set: str
    path: Path
    rows: int
    created_at: datetime


def to_utc(values: pd.Series, what: str) -> pd.Series:
    """Timestamps as UTC; naive values are taken to be UTC (as Feast does)."""
    try:
        ts = pd.to_datetime(values)
    except (ValueError, TypeError) as exc:
        raise SchemaMismatchError(f"{what} holds values that are not timestamps: {exc}") from exc
    ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    return ts.astype(TIMESTAMP_DTYPE)


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, fsv: FeatureSetVersion) -> Path:
        return self.root / fsv.name / fsv.version

    def conform(self, fsv: FeatureSetVersion, frame: pd.DataFrame) -> pd.DataFrame:
        """Check `frame` against the registered schema and cast it; raise naming each problem."""
        expected = [fsv.entity, EVENT_TIMESTAMP, *fsv.feature_names]
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected and c != CREATED_TIMESTAMP]
        if missing or extra:
            raise SchemaMismatchError(
                f"Rows written to {fsv.id} do not match its schema: missing columns {missing}, "
                f"unexpected columns {extra}. Nothing was written."
            )
        if frame[fsv.entity].isna().any():
            rows = frame.index[frame[fsv.entity].isna()].tolist()[:10]
            raise SchemaMismatchError(f"{fsv.id}: entity key '{fsv.entity}' is empty in rows {rows}.")
        out = frame[expected].copy()
        out[EVENT_TIMESTAMP] = to_utc(out[EVENT_TIMESTAMP], f"{fsv.id}.{EVENT_TIMESTAMP}")
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
        """Append one snapshot. The file appears whole or not at all (write, then rename)."""
        out = self.conform(fsv, frame)
        created = created_at or utcnow()
        out[CREATED_TIMESTAMP] = pd.Timestamp(created).tz_convert("UTC")
        out[CREATED_TIMESTAMP] = out[CREATED_TIMESTAMP].astype(TIMESTAMP_DTYPE)
        directory = self._dir(fsv)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"snapshot-{created.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = directory / f".{name}.tmp"
        pq.write_table(pa.Table.from_pandas(out, preserve_index=False), tmp)
        tmp.rename(directory / name)
        return SnapshotInfo(fsv.id, directory / name, len(out), created)

    def snapshots(self, fsv: FeatureSetVersion) -> list[Path]:
        directory = self._dir(fsv)
        return sorted(directory.glob("snapshot-*.parquet")) if directory.exists() else []

    def read(self, fsv: FeatureSetVersion, features: list[str] | None = None) -> pd.DataFrame:
        """Every stored row of a version (all snapshots)."""
        columns = [fsv.entity, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *(features or fsv.feature_names)]
        files = self.snapshots(fsv)
        if not files:
            empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
            empty[EVENT_TIMESTAMP] = empty[EVENT_TIMESTAMP].astype(TIMESTAMP_DTYPE)
            empty[CREATED_TIMESTAMP] = empty[CREATED_TIMESTAMP].astype(TIMESTAMP_DTYPE)
            return empty
        table = pq.read_table([str(f) for f in files], columns=columns) if len(files) > 1 else (
            pq.read_table(files[0], columns=columns)
        )
        frame = table.to_pandas()
        for column in (EVENT_TIMESTAMP, CREATED_TIMESTAMP):
            frame[column] = frame[column].astype(TIMESTAMP_DTYPE)
        return frame

    def latest(self, fsv: FeatureSetVersion, features: list[str] | None = None) -> pd.DataFrame:
        """The newest value per entity (by event time, then write time)."""
        frame = self.read(fsv, features)
        frame = frame.sort_values([EVENT_TIMESTAMP, CREATED_TIMESTAMP], kind="stable")
        return frame.drop_duplicates(fsv.entity, keep="last").reset_index(drop=True)

    def point_in_time(
        self,
        entity_df: pd.DataFrame,
        requests: list[tuple[FeatureSetVersion, list[str]]],
        *,
        timestamp_column: str = EVENT_TIMESTAMP,
        ttl: timedelta | None = None,
        column_names: dict[tuple[str, str], str] | None = None,
    ) -> pd.DataFrame:
        """For each entity row, the latest value at or before its timestamp (within `ttl`).

        Ties on event time go to the later-written row. The entity frame's row order and
        extra columns are kept; rows with no eligible value get NaN.
        """
        if timestamp_column not in entity_df.columns:
            raise SchemaMismatchError(
                f"The entity frame has no '{timestamp_column}' column; point-in-time retrieval "
                f"needs one timestamp per row. Columns: {list(entity_df.columns)}."
            )
        timestamps = to_utc(entity_df[timestamp_column], f"entity frame '{timestamp_column}'")
        if timestamps.isna().any():
            rows = np.flatnonzero(timestamps.isna().to_numpy())[:10].tolist()
            raise SchemaMismatchError(f"The entity frame has empty timestamps in rows {rows}.")
        result = entity_df.copy()
        result[timestamp_column] = timestamps.to_numpy()
        for fsv, features in requests:
            if fsv.entity not in entity_df.columns:
                raise SchemaMismatchError(
                    f"The entity frame has no '{fsv.entity}' column, the entity key of {fsv.id}."
                )
            left = pd.DataFrame(
                {
                    "__row": np.arange(len(entity_df)),
                    "__ts": timestamps.to_numpy(),
                    fsv.entity: entity_df[fsv.entity].to_numpy(),
                }
            ).sort_values("__ts", kind="stable")
            right = self.read(fsv, features)
            right = right.sort_values([EVENT_TIMESTAMP, CREATED_TIMESTAMP], kind="stable")
            right = right.drop_duplicates([fsv.entity, EVENT_TIMESTAMP], keep="last")
            right = right.drop(columns=[CREATED_TIMESTAMP]).rename(columns={EVENT_TIMESTAMP: "__ts"})
            if len(right) and right[fsv.entity].dtype != left[fsv.entity].dtype:
                try:
                    left[fsv.entity] = left[fsv.entity].astype(right[fsv.entity].dtype)
                except (ValueError, TypeError) as exc:
                    raise SchemaMismatchError(
                        f"Entity key '{fsv.entity}' is {left[fsv.entity].dtype} in the entity "
                        f"frame but {right[fsv.entity].dtype} in {fsv.id}."
                    ) from exc
            merged = pd.merge_asof(
                left,
                right,
                on="__ts",
                by=fsv.entity,
                direction="backward",
                allow_exact_matches=True,
                tolerance=pd.Timedelta(ttl) if ttl is not None else None,
            ).sort_values("__row")
            for feature in features:
                name = (column_names or {}).get((fsv.id, feature), feature)
                result[name] = merged[feature].to_numpy()
        return result
