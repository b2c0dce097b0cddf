"""FeatureStore: the one entry object (like Feast's), over the registry, offline and online
stores, raw sources, the labeling queue and the label store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from feature_platform.errors import SchemaMismatchError, UnknownFeatureError, closest
from feature_platform.labeling.label_store import LabelStore
from feature_platform.labeling.queue import TaskQueue
from feature_platform.settings import Settings
from feature_platform.store.db import create_engine
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec, FeatureSetVersion
from feature_platform.store.offline import OfflineStore, SnapshotInfo
from feature_platform.store.online import OnlineStore, entity_key
from feature_platform.store.refs import parse_reference
from feature_platform.store.registry import Registry
from feature_platform.store.sources import SourceStore


@dataclass(frozen=True)
class MaterializationResult:
    feature_set: FeatureSetVersion
    snapshot: SnapshotInfo
    online_rows_changed: int


@dataclass(frozen=True)
class ResolvedFeatures:
    """Feature references grouped by the version they resolved to, with output column names."""

    requests: list[tuple[FeatureSetVersion, list[str]]]
    columns: dict[tuple[str, str], str]

    @property
    def feature_sets(self) -> list[str]:
        return [fsv.id for fsv, _ in self.requests]


class FeatureStore:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.engine = create_engine(self.settings.database_url)
        self.registry = Registry(self.engine)
        self.offline = OfflineStore(self.settings.offline_dir)
        self.online = OnlineStore(self.engine)
        self.sources = SourceStore(self.settings.home / "sources")
        self.queue = TaskQueue(self.engine)
        self.labels = LabelStore(self.engine, self.queue)

    # -- definitions ------------------------------------------------------------------------
    def apply(self, spec: FeatureSetSpec, publish: bool = True) -> FeatureSetVersion:
        """Register a feature set version (refused if its definition changed in place)."""
        fsv = self.registry.register(spec)
        if publish and fsv.status == "draft":
            fsv = self.registry.set_status(spec.name, spec.version, "active")
        return fsv

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.registry.set_alias(name, alias, version)

    def materialize(
        self, spec: FeatureSetSpec, source: pd.DataFrame | None = None
    ) -> MaterializationResult:
        """Compute a version from its source, append an offline snapshot, refresh online."""
        fsv = self.apply(spec)
        frame = spec.compute(source if source is not None else self.sources.read(spec.sources[0]))
        snapshot = self.offline.write_snapshot(fsv, frame)
        changed = self.online.materialize(fsv, self.offline.latest(fsv))
        return MaterializationResult(fsv, snapshot, changed)

    # -- retrieval --------------------------------------------------------------------------
    def resolve_features(
        self, features: Sequence[str], full_feature_names: bool = False
    ) -> ResolvedFeatures:
        """Parse and resolve references; aliases become the version they point at now."""
        grouped: dict[str, tuple[FeatureSetVersion, list[str]]] = {}
        for reference in features:
            ref = parse_reference(reference)
            fsv = self.registry.resolve(ref.name, ref.selector)
            _, names = grouped.setdefault(fsv.id, (fsv, []))
            if ref.feature == "*":
                names.extend(f for f in fsv.feature_names if f not in names)
            elif ref.feature not in fsv.features:
                raise UnknownFeatureError(
                    f"Feature set {fsv.id} has no feature {ref.feature!r} (from {reference!r})."
                    f"{closest(ref.feature, fsv.feature_names)}"
                )
            elif ref.feature not in names:
                names.append(ref.feature)
        columns: dict[tuple[str, str], str] = {}
        for fsv, names in grouped.values():
            for name in names:
                column = f"{fsv.id}:{name}" if full_feature_names else name
                if column in columns.values():
                    raise SchemaMismatchError(
                        f"Feature {name!r} is requested from several feature sets; pass "
                        f"full_feature_names=True to get columns named '<set>@<version>:<name>'."
                    )
                columns[(fsv.id, name)] = column
        return ResolvedFeatures(list(grouped.values()), columns)

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        *,
        ttl: timedelta | None = None,
        full_feature_names: bool = False,
        timestamp_column: str = EVENT_TIMESTAMP,
    ) -> pd.DataFrame:
        """Point-in-time correct features for each (entity, timestamp) row of `entity_df`:
        the latest value at or before the row's time, never one stamped after it."""
        resolved = self.resolve_features(features, full_feature_names)
        return self.offline.point_in_time(
            entity_df,
            resolved.requests,
            timestamp_column=timestamp_column,
            ttl=ttl,
            column_names=resolved.columns,
        )

    def get_online_features(
        self,
        features: Sequence[str],
        entity_keys: Sequence[object],
        *,
        full_feature_names: bool = False,
    ) -> pd.DataFrame:
        """Latest values for each key; one row per key in the given order (NaN if unknown)."""
        resolved = self.resolve_features(features, full_feature_names)
        entities = {fsv.entity for fsv, _ in resolved.requests}
        if len(entities) != 1:
            raise SchemaMismatchError(
                f"Online lookups take features of one entity; these use {sorted(entities)}."
            )
        keys = list(entity_keys)
        result = pd.DataFrame({entities.pop(): keys})
        key_texts = [entity_key(k) for k in keys]
        for fsv, names in resolved.requests:
            values = self.online.lookup(fsv, keys)
            rows = [values[k] for k in key_texts]
            for name in names:
                position = fsv.feature_names.index(name)
                result[resolved.columns[(fsv.id, name)]] = [
                    row[position] if row is not None else float("nan") for row in rows
                ]
        return result
