"""FeatureStore: the one entry object (like Feast's), over the registry, offline and online
stores, raw sources, the labeling queue, the label set versions, the label store and the
machine labels."""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from feature_platform.errors import (
    InvalidArgumentError,
    InvalidRetrievalTokenError,
    SchemaMismatchError,
    UnknownFeatureError,
    UnknownFeatureSetError,
    closest,
)
from feature_platform.governance.identity import Actor
from feature_platform.labeling.label_sets import LabelSets
from feature_platform.labeling.label_store import LabelStore
from feature_platform.labeling.machine_labels import MachineLabelStore
from feature_platform.labeling.queue import TaskQueue
from feature_platform.learning.round_attempts import RoundAttempts
from feature_platform.settings import Settings
from feature_platform.store.db import create_engine
from feature_platform.store.feature_set import (
    EVENT_TIMESTAMP,
    FeatureSetSpec,
    FeatureSetVersion,
    is_numeric_dtype,
    output_dtype,
)
from feature_platform.store.lineage import LineageGraph
from feature_platform.store.offline import OfflineStore, SnapshotInfo
from feature_platform.store.online import OnlineStore, online_keys
from feature_platform.store.refs import parse_feature_set, parse_reference
from feature_platform.store.registry import Registry, Usage
from feature_platform.store.retrieval_token import RetrievalToken
from feature_platform.store.sources import SourceStore

_STRING_KEYS = pd.StringDtype("python", na_value=np.nan)
STRONG, EVENTUAL = "strong", "eventual"  # the read consistencies of online lookups


def staleness_bound(consistency: str, max_staleness: timedelta | float | None) -> float | None:
    """Seconds an online read may lag committed writes: None for "strong" (never), the
    positive `max_staleness` for "eventual"; a clear error for anything else."""
    if not isinstance(consistency, str) or consistency not in (STRONG, EVENTUAL):
        raise InvalidArgumentError(
            f"consistency must be {STRONG!r} (read-your-writes, the default) or {EVENTUAL!r} "
            f"(with max_staleness); got {consistency!r:.60}."
        )
    if consistency == STRONG:
        if max_staleness is not None:
            raise InvalidArgumentError(
                f"max_staleness={max_staleness!r} applies to consistency='eventual' only; a "
                f"'strong' read is never stale. Drop it or pass consistency='eventual'."
            )
        return None
    if max_staleness is None:
        raise InvalidArgumentError(
            "consistency='eventual' needs max_staleness: how old the served values may be, "
            "as a timedelta or seconds (e.g. max_staleness=timedelta(seconds=5))."
        )
    if isinstance(max_staleness, timedelta):
        seconds = max_staleness.total_seconds()
    elif isinstance(max_staleness, numbers.Real) and not isinstance(max_staleness, bool):
        seconds = float(max_staleness)
    else:
        raise InvalidArgumentError(
            f"max_staleness must be a timedelta or a number of seconds, not "
            f"{type(max_staleness).__name__} {max_staleness!r:.60}."
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(
            f"max_staleness must be positive and finite, got {max_staleness!r}; for reads "
            f"that are never stale use consistency='strong'."
        )
    return seconds


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


@dataclass(frozen=True)
class _OnlinePart:
    fsv: FeatureSetVersion
    positions: list[int] | None  # feature positions in the version; None: all, in order
    placement: Any  # output column positions, in the form the frame builder takes
    names: tuple[str, ...]  # output column names
    numeric: bool


@dataclass(frozen=True)
class _Plan:
    """A resolved request, valid while the registry's change token is unchanged."""

    token: int
    resolved: ResolvedFeatures
    deprecated: list[FeatureSetVersion]
    entity: str | None = None
    parts: list[_OnlinePart] = field(default_factory=list)
    columns: pd.Index | None = None
    feature_sets: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)  # "name@selector" -> version id


class FeatureStore:
    def __init__(self, settings: Settings | None = None, actor: Actor | str | None = None) -> None:
        """`actor`: who this store's lifecycle writes act as when a call names nobody (the
        Dagster store acts as `platform`); None: `governance.current_actor()` at call time."""
        self.settings = settings or Settings.from_env()
        self.engine = create_engine(self.settings.database_url)
        self.registry = Registry(self.engine, actor=actor)
        self.privacy = self.registry.privacy  # column tags, policy, redaction (governance)
        self.offline = OfflineStore(self.settings.offline_dir)
        self.online = OnlineStore(self.engine)
        self.sources = SourceStore(self.settings.home / "sources")
        self.queue = TaskQueue(self.engine, self.registry.people)
        self.label_sets = LabelSets(self.engine, self.queue)
        self.machine_labels = MachineLabelStore(self.engine, self.registry.people)
        self.labels = LabelStore(
            self.engine, self.queue, self.label_sets, machine_labels=self.machine_labels
        )
        self.round_attempts = RoundAttempts(self.engine, self.registry.people)
        self._plans: dict[tuple, _Plan] = {}
        self._plans_lock = threading.Lock()

    # -- definitions ------------------------------------------------------------------------
    def apply(
        self, spec: FeatureSetSpec, publish: bool = True, *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        """Register a feature set version (refused if its definition changed in place) and,
        with `publish`, move a draft to active."""
        fsv = self.registry.register(spec, actor=actor)
        if publish and fsv.status == "draft":
            fsv = self.registry.set_status(spec.name, spec.version, "active", actor=actor)
        return fsv

    def set_alias(
        self, name: str, alias: str, version: str, *, actor: Actor | str | None = None
    ) -> dict[str, Any] | None:
        """Move `name@alias` to `version` atomically (recorded); pinned versions unaffected."""
        return self.registry.set_alias(name, alias, version, actor=actor)

    def publish(
        self, name: str, version: str, reason: str = "", *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        return self.registry.publish(name, version, reason, actor=actor)

    def deprecate(
        self, name: str, version: str, reason: str = "", *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        """Retire a version; refused while a registered model or an alias still uses it."""
        return self.registry.deprecate(name, version, reason, actor=actor)

    def record_usage(
        self,
        feature_set: str,
        consumer_kind: str,
        consumer_id: str,
        *,
        upstream: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Usage:
        """See Registry.record_usage: a training set or model records the version it used."""
        return self.registry.record_usage(
            feature_set, consumer_kind, consumer_id, upstream=upstream, details=details
        )

    def lineage(self, target: str) -> LineageGraph:
        """Sources -> feature set versions -> training sets -> models around `target`."""
        return self.registry.lineage(target)

    # -- writing ----------------------------------------------------------------------------
    def materialize(
        self, spec: FeatureSetSpec, source: pd.DataFrame | None = None
    ) -> MaterializationResult:
        """Compute a version from its source, append an offline snapshot, refresh online.

        The computed rows are checked against the schema before anything is registered or
        written, so a transform that returns bad rows changes nothing."""
        self.registry.check(spec)  # a changed definition fails before any computing
        frame = spec.compute(source if source is not None else self.sources.read(spec.sources[0]))
        frame = self.offline.conform(spec.as_version(), frame)
        fsv = self.apply(spec)
        snapshot = self.offline.write_snapshot(fsv, frame)
        changed = self.materialize_online(fsv)
        return MaterializationResult(fsv, snapshot, changed)

    def ingest(
        self,
        feature_set: str | FeatureSetVersion,
        frame: pd.DataFrame,
        *,
        created_at: datetime | None = None,
        online: bool = True,
    ) -> MaterializationResult:
        """Append precomputed rows (entity, event_timestamp, features) to a registered version
        (`name@version` or alias), then refresh its online rows unless `online=False`."""
        fsv = self.resolve_feature_set(feature_set)
        snapshot = self.offline.write_snapshot(fsv, frame, created_at)
        changed = self.materialize_online(fsv) if online else 0
        return MaterializationResult(fsv, snapshot, changed)

    def materialize_online(self, feature_set: str | FeatureSetVersion) -> int:
        """Bring a version's online rows up to date with its offline snapshots, reading only
        the snapshots not applied yet and writing only entities whose value is newer.
        Returns how many online rows changed."""
        fsv = self.resolve_feature_set(feature_set)
        applied = self.online.applied_snapshots(fsv)
        pending = [p for p in self.offline.snapshots(fsv) if p.name not in applied]
        if not pending:
            return 0
        # Everything pending (a new or rebuilt online table): the cached, indexed rows.
        every = len(pending) == len(self.offline.snapshots(fsv))
        loaded = self.offline.prepared(fsv) if every else self.offline.load(fsv, pending)
        last = loaded.last_rows()
        return self.online.write_latest(
            fsv,
            loaded.text_keys(last),
            loaded.event_ns[last],
            loaded.created_ns[last],
            loaded.feature_rows(fsv, last),
            snapshots=[p.name for p in pending],
        )

    def resolve_feature_set(self, feature_set: str | FeatureSetVersion) -> FeatureSetVersion:
        """The explicit version `name@version` or `name@alias` names right now."""
        if isinstance(feature_set, FeatureSetVersion):
            return feature_set
        name, selector = parse_feature_set(feature_set)
        return self.registry.resolve(name, selector)

    # -- retrieval --------------------------------------------------------------------------
    def resolve_features(
        self, features: Sequence[str], full_feature_names: bool = False
    ) -> ResolvedFeatures:
        """Parse and resolve references; aliases become the version they point at now."""
        return self._plan(features, full_feature_names).resolved

    def _plan(
        self, features: Sequence[str], full_feature_names: bool, max_age: float | None = None
    ) -> _Plan:
        """The resolved request, cached until anything in the registry changes; warns once
        per call for each deprecated version used. `max_age` (seconds; eventual reads): a
        plan at least as new as a counter check begun at most that long ago is served
        without checking again."""
        if isinstance(features, str):
            features = [features]
        key = (tuple(features), full_feature_names)
        plan = self._plans.get(key)
        if max_age is not None:
            # The online caches then answer for the plan's token: both were current then.
            recent = self.registry.changes.recent(max_age)
            if plan is not None and plan.token >= recent:
                for fsv in plan.deprecated:
                    self.registry.warn_deprecated(fsv, stacklevel=3)
                return plan
        token = self.registry.token()
        if plan is None or plan.token != token:
            plan = self._build_plan(key[0], full_feature_names, token)
            with self._plans_lock:
                if len(self._plans) > 1000:  # bound the cache against unbounded request shapes
                    self._plans.clear()
                self._plans[key] = plan
        for fsv in plan.deprecated:
            self.registry.warn_deprecated(fsv, stacklevel=3)
        return plan

    def _build_plan(self, features: tuple[str, ...], full_feature_names: bool, token: int) -> _Plan:
        if not features:
            raise UnknownFeatureError("No features requested; pass references like 'digits@v1:*'.")
        grouped: dict[str, tuple[FeatureSetVersion, list[str]]] = {}
        # Each `name@selector` resolves once per request: an alias moving between two of its
        # references must not split one response across two versions.
        versions: dict[tuple[str, str], FeatureSetVersion] = {}
        for reference in features:
            ref = parse_reference(reference)
            fsv = versions.get((ref.name, ref.selector))
            if fsv is None:
                fsv = self.registry.resolve(ref.name, ref.selector, warn=False)
                versions[(ref.name, ref.selector)] = fsv
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
        resolved = ResolvedFeatures(list(grouped.values()), columns)
        deprecated = [fsv for fsv, _ in resolved.requests if fsv.status == "deprecated"]
        chosen = {f"{name}@{selector}": fsv.id for (name, selector), fsv in versions.items()}
        entities = {fsv.entity for fsv, _ in resolved.requests}
        if len(entities) != 1:
            return _Plan(token, resolved, deprecated, versions=chosen)
        entity = entities.pop()
        parts, offset = [], 1
        for fsv, names in resolved.requests:
            positions = [fsv.feature_names.index(n) for n in names]
            parts.append(
                _OnlinePart(
                    fsv,
                    None if positions == list(range(len(fsv.features))) else positions,
                    _placement(np.arange(offset, offset + len(names))),
                    tuple(columns[(fsv.id, n)] for n in names),
                    all(is_numeric_dtype(d) for d in fsv.features.values()),
                )
            )
            offset += len(names)
        output = pd.Index([entity, *(name for part in parts for name in part.names)])
        served = tuple(resolved.feature_sets)
        return _Plan(token, resolved, deprecated, entity, parts, output, served, chosen)

    def get_historical_features(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        *,
        ttl: timedelta | Mapping[str, timedelta] | None = None,
        full_feature_names: bool = False,
        timestamp_column: str = EVENT_TIMESTAMP,
        token: str | None = None,
    ) -> pd.DataFrame:
        """Point-in-time correct features for each (entity, timestamp) row of `entity_df`:
        the latest value at or before the row's time (within `ttl`), never one stamped after
        it; ties on event time go to the later write. Row order, index and extra columns of
        `entity_df` are kept; several feature sets (versions or aliases) may be combined.

        The result states what it read: `attrs["feature_sets"]` (the versions),
        `attrs["snapshots"]` (per version, the snapshot files) and `attrs["retrieval_token"]`,
        a string that, passed back as `token` (in any process), reads exactly those versions
        and snapshots again, whatever was written or which aliases moved since: the same
        entity frame and arguments give an identical result. With `token`, every reference
        must be one the token's retrieval named; a malformed, altered or unknown token raises
        InvalidRetrievalTokenError and reads nothing."""
        if token is None:
            plan = self._plan(features, full_feature_names)
            resolved, versions, snapshots = plan.resolved, plan.versions, None
        else:
            resolved, versions, snapshots = self._replay_plan(token, features, full_feature_names)
        result = self.offline.point_in_time(
            entity_df,
            resolved.requests,
            timestamp_column=timestamp_column,
            ttl=ttl,
            column_names=resolved.columns,
            snapshots=snapshots,
        )
        read = result.attrs["snapshots"]
        result.attrs["feature_sets"] = resolved.feature_sets
        result.attrs["retrieval_token"] = RetrievalToken(
            references=versions,
            fingerprints={fsv.id: fsv.fingerprint for fsv, _ in resolved.requests},
            snapshots=read,
        ).encode()
        return result

    def _replay_plan(
        self, token: str, features: Sequence[str], full_feature_names: bool
    ) -> tuple[ResolvedFeatures, dict[str, str], dict[str, Sequence[str]]]:
        """The request resolved as the token's retrieval resolved it, with its snapshots."""
        recorded = RetrievalToken.decode(token)
        if isinstance(features, str):
            features = [features]
        pinned, versions = [], {}
        for reference in features:
            ref = parse_reference(reference)
            requested = f"{ref.name}@{ref.selector}"
            version = recorded.references.get(requested)
            if version is None:
                raise InvalidRetrievalTokenError(
                    f"The retrieval token did not read {requested!r} (from {reference!r}); it "
                    f"covers {sorted(recorded.references)}."
                )
            versions[requested] = version
            pinned.append(f"{version}:{ref.feature}")
        try:
            resolved = self.resolve_features(pinned, full_feature_names)
        except UnknownFeatureSetError as exc:
            raise InvalidRetrievalTokenError(
                f"The retrieval token names a version this store does not hold: {exc}"
            ) from exc
        for fsv, _ in resolved.requests:
            if fsv.fingerprint != recorded.fingerprints[fsv.id]:
                raise InvalidRetrievalTokenError(
                    f"{fsv.id} in this store is not the definition the token's retrieval read "
                    f"(fingerprint {fsv.fingerprint[:12]} vs {recorded.fingerprints[fsv.id][:12]});"
                    f" was the token made on another store?"
                )
            stored = {path.name for path in self.offline.snapshots(fsv)}
            missing = [n for n in recorded.snapshots[fsv.id] if n not in stored]
            if missing:
                raise InvalidRetrievalTokenError(
                    f"The retrieval token names {len(missing)} snapshot(s) of {fsv.id} this "
                    f"store does not hold (e.g. {missing[0]}); was it made on another store?"
                )
        snapshots = {fsv.id: recorded.snapshots[fsv.id] for fsv, _ in resolved.requests}
        return resolved, versions, snapshots

    def get_online_features(
        self,
        features: Sequence[str],
        entity_keys: Sequence[object],
        *,
        full_feature_names: bool = False,
        consistency: str = STRONG,
        max_staleness: timedelta | float | None = None,
    ) -> pd.DataFrame:
        """Latest values for each key; one row per key in the given order (NaN if unknown).

        Each reference resolves once per call, so one response never mixes two versions even
        while an alias moves; `result.attrs["feature_sets"]` names the versions served.

        `consistency` (default "strong"):
        - "strong": read-your-writes across processes. Before answering, the store checks
          the database's change counter, so the response reflects every materialization
          and alias move committed before the call began, by any process (for inference).
        - "eventual": answered from this process's caches without that check while they
          were last known current at most `max_staleness` ago (a timedelta or seconds,
          required). Staleness is the time since the caches were last known current, i.e.
          since the start of the last change-counter check this process made: a response
          may miss writes committed within the last `max_staleness`, never one committed
          earlier. (A write through this same store clears the last check, so its next
          eventual read usually sees it; only the bound is promised.) For exploration and
          dashboards."""
        return self.get_online_values(
            features,
            entity_keys,
            full_feature_names=full_feature_names,
            consistency=consistency,
            max_staleness=max_staleness,
        ).to_frame()

    def get_online_values(
        self,
        features: Sequence[str],
        entity_keys: Sequence[object],
        *,
        full_feature_names: bool = False,
        consistency: str = STRONG,
        max_staleness: timedelta | float | None = None,
    ) -> OnlineValues:
        """Like `get_online_features` (same `consistency` contract), without building a
        DataFrame: `.matrix` is the (keys x features) array a model can score directly;
        `.to_dict()` / `.to_frame()`."""
        if max_staleness is None and consistency == STRONG:  # the default: nothing to parse
            plan = self._plan(features, full_feature_names)
        else:
            bound = staleness_bound(consistency, max_staleness)
            plan = self._plan(features, full_feature_names, bound)
        if plan.entity is None:
            entities = sorted({fsv.entity for fsv, _ in plan.resolved.requests})
            raise SchemaMismatchError(
                f"Online lookups take features of one entity; these use {entities}."
            )
        keys = online_keys(entity_keys)
        parts = []
        for part in plan.parts:
            matrix = self.online.values(part.fsv, keys, plan.token)
            if part.positions is not None:
                matrix = matrix[:, part.positions]
            parts.append(matrix)
        return OnlineValues(plan, keys, parts)

    def warm_online(self, features: Sequence[str]) -> None:
        """Load the online caches of the versions `features` resolve to (e.g. at start-up)."""
        for fsv, _ in self.resolve_features(features).requests:
            self.online.warm(fsv)


@dataclass(frozen=True)
class OnlineValues:
    """One online response: every value from one resolved version per feature set."""

    _plan: _Plan
    keys: list
    _parts: list[np.ndarray]  # per feature set version: (keys, its requested features)

    @property
    def entity(self) -> str:
        return self._plan.entity or ""

    @property
    def columns(self) -> list[str]:
        """Feature columns, in request order (the entity column not included)."""
        return list(self._plan.columns[1:])

    @property
    def feature_sets(self) -> list[str]:
        """The explicit versions served (aliases resolved)."""
        return list(self._plan.feature_sets)

    @property
    def matrix(self) -> np.ndarray:
        """(keys, features) values: float64 when every feature is numeric (NaN: unknown
        key), else an object array."""
        if len(self._parts) == 1:
            return self._parts[0]
        return np.hstack(self._parts) if self._parts else np.empty((len(self.keys), 0))

    def to_dict(self) -> dict[str, list]:
        """{entity: keys as given, feature: list of values}, in request order, like Feast's
        `OnlineResponse.to_dict()` (an unknown key's numeric values are NaN, not None)."""
        out: dict[str, list] = {self.entity: list(self.keys)}
        for part, matrix in zip(self._plan.parts, self._parts, strict=True):
            out.update(zip(part.names, matrix.T.tolist(), strict=True))
        return out

    def to_frame(self) -> pd.DataFrame:
        plan, keys = self._plan, self.keys
        key_array = _key_array(keys)
        index = _range_index(len(keys))
        numeric = key_array is not None and all(part.numeric for part in plan.parts)
        if numeric and _FAST_FRAME is not None and isinstance(key_array, np.ndarray):
            blocks = [(key_array, _FIRST)]
            blocks += [
                (matrix.T, part.placement)
                for part, matrix in zip(plan.parts, self._parts, strict=True)
            ]
            result = _FAST_FRAME(blocks, plan.columns, index)
        elif numeric:  # public API; string keys are an extension array
            arrays = [(key_array, _positions(_FIRST))]
            arrays += [
                (matrix.T, _positions(part.placement))
                for part, matrix in zip(plan.parts, self._parts, strict=True)
            ]
            result = create_dataframe_from_blocks(arrays, index=index, columns=plan.columns)
        else:
            result = pd.DataFrame({plan.entity: keys})
            requests = plan.resolved.requests
            for (fsv, names), part, matrix in zip(requests, plan.parts, self._parts, strict=True):
                for name, values, column in zip(names, matrix.T, part.names, strict=True):
                    result[column] = pd.Series(values, dtype=output_dtype(fsv.features[name])).array
            result = result[plan.columns]
        result.attrs["feature_sets"] = self.feature_sets
        return result


def _internal_frame_builder() -> tuple[Callable | None, Callable]:
    """(builder, placement) for pandas' internal block API, the fast path of small online
    responses: the plan builds each column placement once, complete and in range, so
    pandas' per-call block checks (~5 us of a ~20 us one-key response) can be skipped.
    Internal API: used only if it imports and, on a probe, builds exactly the frame the
    public constructor builds; otherwise (None, identity) and the public API is used."""
    try:
        from pandas._libs.internals import BlockPlacement
        from pandas.core.internals import BlockManager
        from pandas.core.internals.blocks import NumpyBlock

        def build(blocks: list, columns: pd.Index, index: pd.Index) -> pd.DataFrame:
            made = tuple(NumpyBlock(a, ndim=2, placement=at) for a, at in blocks)
            manager = BlockManager(made, [columns, index], verify_integrity=False)
            return pd.DataFrame._from_mgr(manager, manager.axes)

        keys, values = np.array([[7, 8]]), np.array([[0.5, 1.5], [2.5, np.nan]])
        probe = build(
            [(keys, BlockPlacement(np.array([0]))), (values, BlockPlacement(np.arange(1, 3)))],
            pd.Index(["k", "a", "b"]),
            pd.RangeIndex(2),
        )
        expected = pd.DataFrame({"k": [7, 8], "a": [0.5, 1.5], "b": [2.5, np.nan]})
        if not probe.equals(expected) or list(probe.dtypes) != list(expected.dtypes):
            return None, _same
        probe.iloc[0, 1] = 9.0  # a frame pandas can still write to
        return build, BlockPlacement
    except Exception:  # noqa: BLE001 - any change in pandas' internals: use the public API
        return None, _same


def _same(positions: np.ndarray) -> np.ndarray:
    return positions


def _positions(placement: Any) -> np.ndarray:
    return placement if isinstance(placement, np.ndarray) else placement.as_array


_FAST_FRAME, _placement = _internal_frame_builder()
_FIRST = _placement(np.array([0]))
_RANGE_INDEXES: dict[int, pd.RangeIndex] = {}


def _range_index(length: int) -> pd.RangeIndex:
    """A shared RangeIndex per response length (indexes are immutable; saves ~2 us)."""
    index = _RANGE_INDEXES.get(length)
    if index is None:
        if len(_RANGE_INDEXES) > 256:
            _RANGE_INDEXES.clear()
        index = _RANGE_INDEXES[length] = pd.RangeIndex(length)
    return index


def _key_array(keys: list) -> Any:
    """The entity column as a block, typed as `pd.DataFrame({entity: keys})` would type it,
    or None when keys are neither all ints nor all strings (the caller then builds it so)."""
    types = set(map(type, keys))
    if types and types <= {int, np.int64}:
        try:
            return np.fromiter(keys, dtype=np.int64, count=len(keys)).reshape(1, -1)
        except OverflowError:
            return None
    if types and types <= {str}:
        return pd.array(np.array(keys, dtype=object), dtype=_STRING_KEYS)
    return None
