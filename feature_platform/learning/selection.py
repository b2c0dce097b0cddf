"""What a query strategy needs from the stores beyond the pool's class probabilities.

Strategies that look at the feature space (cluster_margin, kcenter, committee, a k-means cold
start) need the pool's feature matrix, and some need the labeled set. This module reads them
from the feature store, from the same feature set version the program trains on, so
`rounds.open_batch` (and the Dagster asset that calls it) can stay one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.learning import strategies
from feature_platform.learning.training import (
    build_training_set,
    feature_matrix,
    resolve_feature_set,
)
from feature_platform.store.db import utcnow

if TYPE_CHECKING:
    from feature_platform.programs.model import Program


def strategy_options(settings: Mapping[str, Any] | None) -> strategies.StrategyOptions:
    """`Program.strategy_options` (plain values, as logged to MLflow) as StrategyOptions."""
    settings = dict(settings or {})
    known = {"committee_size", "candidate_factor", "cold_start"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise FeaturePlatformError(f"Unknown strategy option(s) {unknown}; known: {sorted(known)}.")
    return strategies.StrategyOptions(**settings)


def selection_inputs(
    store: FeatureStore,
    program: Program,
    keys: Sequence[str],
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `strategies.select` beyond the probabilities.

    Reads only what the program's strategy uses: the pool's features for feature-space
    strategies or a k-means cold start, the labeled set (latest label snapshot joined with the
    training feature set version) for strategies that need it, and the labels alone otherwise
    so too few labels for the classes triggers a cold start.
    """
    options = strategy_options(getattr(program, "strategy_options", None))
    inputs: dict[str, Any] = {"options": options}
    fsv = resolve_feature_set(store, program.feature_set)
    # A k-means cold start needs features too (the random control never takes one).
    wants_features = program.strategy in strategies.NEEDS_FEATURES or (
        options.cold_start == "kmeans" and program.strategy != "random"
    )
    if wants_features and keys:
        inputs["features"] = feature_matrix(store, fsv, list(keys), as_of or utcnow())
    snapshot = store.labels.latest()
    if snapshot is None:
        return inputs
    if program.strategy in strategies.NEEDS_LABELED:
        training_set = build_training_set(store, snapshot, fsv.id)
        inputs["labeled_features"] = training_set.X
        inputs["labeled_labels"] = training_set.y.tolist()
    elif program.strategy in strategies.NEEDS_MODEL:
        inputs["labeled_labels"] = snapshot.labels["label"].astype(str).tolist()
    return inputs
