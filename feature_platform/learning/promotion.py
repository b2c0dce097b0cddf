"""Champion / challenger promotion.

The rule: every round's model is the challenger. It becomes champion when its held-out
accuracy is at least the champion's minus a tolerance (default 0.01); the first model is
always promoted. The tolerance keeps the pool scored by the newest model (trained on the most
labels) unless it is clearly worse, rather than pinning the pool on a model that was lucky on a
small validation split. In MLflow the registered-model aliases `challenger` and `champion`
point at the versions; each challenger's version is tagged with the decision and its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from feature_platform.errors import FeaturePlatformError
from feature_platform.learning.tracking import CHALLENGER, CHAMPION, ModelTracker, TrackedModel

if TYPE_CHECKING:
    from feature_platform.feature_store import FeatureStore
    from feature_platform.programs.model import Program

DEFAULT_TOLERANCE = 0.01
DEFAULT_METRIC = "accuracy"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    challenger_score: float
    champion_score: float | None  # None when there was no champion


def decide_promotion(
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    tolerance: float = DEFAULT_TOLERANCE,
    metric: str = DEFAULT_METRIC,
) -> PromotionDecision:
    """Promote when challenger[metric] >= champion[metric] - tolerance, or when there is no
    champion yet."""
    if tolerance < 0:
        raise FeaturePlatformError(f"The promotion tolerance must be >= 0, got {tolerance}.")
    if metric not in challenger_metrics:
        raise FeaturePlatformError(
            f"The challenger has no {metric!r} metric to compare; it has "
            f"{sorted(challenger_metrics)}."
        )
    score = float(challenger_metrics[metric])
    if champion_metrics is None:
        return PromotionDecision(
            True, f"first model: promoted to champion ({metric} {score:.4f})", score, None
        )
    if metric not in champion_metrics:
        raise FeaturePlatformError(
            f"The champion has no {metric!r} metric to compare; it has {sorted(champion_metrics)}."
        )
    best = float(champion_metrics[metric])
    bar = best - tolerance
    # A hair of slack so a challenger exactly at the bar is not lost to float rounding.
    if score >= bar - 1e-12:
        return PromotionDecision(
            True,
            f"promoted: challenger {metric} {score:.4f} >= champion {best:.4f} - tolerance "
            f"{tolerance} = {bar:.4f}",
            score,
            best,
        )
    return PromotionDecision(
        False,
        f"kept the champion: challenger {metric} {score:.4f} < champion {best:.4f} - tolerance "
        f"{tolerance} = {bar:.4f}",
        score,
        best,
    )


def promote(
    tracker: ModelTracker,
    challenger: TrackedModel,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    metric: str = DEFAULT_METRIC,
    champion_metrics: Mapping[str, float] | None = None,
) -> PromotionDecision:
    """Point the `challenger` alias at `challenger`, apply the rule against the current
    `champion` and move `champion` if it wins. Metrics come from the versions' MLflow runs;
    pass `champion_metrics` to compare against the champion re-scored on the challenger's
    held-out split instead (see `champion_metrics_on`). The decision and its reason are tagged
    on the challenger's model version (`promotion`, `promotion_reason`)."""
    tracker.set_alias(CHALLENGER, challenger.version)
    champion = tracker.by_alias(CHAMPION)
    challenger_metrics = tracker.run(challenger.run_id).data.metrics
    if champion is None or champion.version == challenger.version:
        decision = decide_promotion(challenger_metrics, None, tolerance, metric)
    else:
        if champion_metrics is None:
            champion_metrics = tracker.run(champion.run_id).data.metrics
        decision = decide_promotion(challenger_metrics, champion_metrics, tolerance, metric)
    if decision.promote:
        tracker.set_alias(CHAMPION, challenger.version)
    tracker.tag_version(
        challenger.version,
        {
            "promotion": "promoted" if decision.promote else "rejected",
            "promotion_reason": decision.reason,
            "promotion_champion_before": champion.label if champion else "",
        },
    )
    return decision


def champion_metrics_on(
    store: FeatureStore,
    program: Program,
    tracker: ModelTracker,
    as_of: datetime,
    *,
    label_set_version: int | None = None,
) -> dict[str, float] | None:
    """The current champion re-evaluated on the held-out split as of `as_of` (the challenger's
    label snapshot time), read from the champion's own feature set version, with the true
    labels in the challenger's label set version (a champion that still answers in renamed or
    merged classes loses those samples), so both models are judged on the same samples and
    labels. None when there is no champion."""
    from feature_platform.learning.training import (
        evaluate,
        holdout_split,
        in_label_set,
        resolve_feature_set,
    )

    champion = tracker.by_alias(CHAMPION)
    if champion is None:
        return None
    version = tracker.version_tags(champion.version).get("feature_set_version")
    if not version:
        raise FeaturePlatformError(
            f"Champion {champion.label} has no feature_set_version tag; cannot re-score it."
        )
    fsv = resolve_feature_set(store, version)
    _, X, y = holdout_split(store, program, fsv, as_of)  # noqa: N806
    X, y = in_label_set(store, X, y, label_set_version)  # noqa: N806
    return evaluate(tracker.load(champion), X, y)
