"""Online store: the latest values per (feature set version, entity) in one SQL table.

Lookups are batched; an in-process cache is keyed by the resolved version id, so moving an
alias can never serve another version's values, and materializing a version drops its entries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from feature_platform.store.db import create_tables, metadata
from feature_platform.store.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP, FeatureSetVersion

online_rows = sa.Table(
    "online_features",
    metadata,
    sa.Column("feature_set", sa.String(260), primary_key=True),  # "name@version"
    sa.Column("entity_key", sa.String(200), primary_key=True),
    sa.Column("event_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # JSON list, in the version's feature order
)

_BATCH = 500  # keys per IN (...) query, below every backend's parameter limit


def entity_key(value: object) -> str:
    """One text form per key, whatever its Python type (numpy ints included)."""
    return str(value.item() if hasattr(value, "item") else value)


class OnlineStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, online_rows)
        self._cache: dict[str, dict[str, list | None]] = {}
        self._generation: dict[str, int] = {}  # bumped per write, so a racing read is not cached
        self._lock = threading.Lock()

    def materialize(self, fsv: FeatureSetVersion, latest: pd.DataFrame) -> int:
        """Upsert the latest rows of a version; only rows newer than what is stored are
        written. Returns how many rows changed."""
        stored = self._stored_versions(fsv)
        changed = []
        for row in latest.itertuples(index=False):
            key = entity_key(getattr(row, fsv.entity))
            stamp = (getattr(row, EVENT_TIMESTAMP), getattr(row, CREATED_TIMESTAMP))
            if key in stored and stored[key] >= stamp:
                continue
            changed.append(
                {
                    "feature_set": fsv.id,
                    "entity_key": key,
                    "event_timestamp": stamp[0].to_pydatetime(),
                    "created_timestamp": stamp[1].to_pydatetime(),
                    "payload": json.dumps([float(getattr(row, f)) for f in fsv.feature_names]),
                }
            )
        if changed:
            keys = [r["entity_key"] for r in changed]
            with self.engine.begin() as conn:
                for start in range(0, len(keys), _BATCH):
                    conn.execute(
                        online_rows.delete().where(
                            online_rows.c.feature_set == fsv.id,
                            online_rows.c.entity_key.in_(keys[start : start + _BATCH]),
                        )
                    )
                conn.execute(online_rows.insert(), changed)
        with self._lock:
            self._cache.pop(fsv.id, None)
            self._generation[fsv.id] = self._generation.get(fsv.id, 0) + 1
        return len(changed)

    def _stored_versions(self, fsv: FeatureSetVersion) -> dict[str, tuple]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    online_rows.c.entity_key,
                    online_rows.c.event_timestamp,
                    online_rows.c.created_timestamp,
                ).where(online_rows.c.feature_set == fsv.id)
            )
            return {
                r.entity_key: (
                    pd.Timestamp(r.event_timestamp).tz_localize("UTC")
                    if pd.Timestamp(r.event_timestamp).tzinfo is None
                    else pd.Timestamp(r.event_timestamp),
                    pd.Timestamp(r.created_timestamp).tz_localize("UTC")
                    if pd.Timestamp(r.created_timestamp).tzinfo is None
                    else pd.Timestamp(r.created_timestamp),
                )
                for r in rows
            }

    def lookup(
        self, fsv: FeatureSetVersion, keys: Sequence[object]
    ) -> dict[str, list[float] | None]:
        """Values of every feature of `fsv` for each key (None for an unknown entity)."""
        wanted = [entity_key(k) for k in keys]
        with self._lock:
            cached = self._cache.setdefault(fsv.id, {})
            generation = self._generation.get(fsv.id, 0)
            missing = [k for k in dict.fromkeys(wanted) if k not in cached]
        if missing:
            found: dict[str, list | None] = dict.fromkeys(missing)
            with self.engine.connect() as conn:
                for start in range(0, len(missing), _BATCH):
                    rows = conn.execute(
                        sa.select(online_rows.c.entity_key, online_rows.c.payload).where(
                            online_rows.c.feature_set == fsv.id,
                            online_rows.c.entity_key.in_(missing[start : start + _BATCH]),
                        )
                    )
                    for r in rows:
                        found[r.entity_key] = json.loads(r.payload)
            with self._lock:
                # Unknown entities stay uncached so a later materialization shows them; a read
                # that raced a write is served but not cached.
                if self._generation.get(fsv.id, 0) == generation:
                    self._cache.setdefault(fsv.id, {}).update(
                        {k: v for k, v in found.items() if v is not None}
                    )
            cached = {**cached, **found}
        return {k: cached.get(k) for k in wanted}
