"""Stopping rules: when another labeling round is no longer worth its labels.

Each rule is a plain function of the per-round history returning `(stop, reason)`:

- `label_budget_rule`: the program's label budget is spent.
- `target_accuracy_rule`: the latest model reaches the target accuracy on the validation split.
- `stabilizing_predictions_rule`: successive models agree on a fixed stop set (Cohen's kappa
  at or above a threshold for `window` consecutive pairs of rounds), after Bloodgood &
  Vijay-Shanker, "A method for stopping active learning based on stabilizing predictions"
  (CoNLL 2009): once predictions stop changing, more labels stop changing the model. It needs
  no labels, so it also works where a validation split is small or absent.
- `plateau_rule`: validation accuracy has not improved by `min_delta` for `patience` rounds.

`should_stop(history, rules)` checks them in that order and returns the first that fires, or
a "continue" decision whose reason says where each rule stands.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import cohen_kappa_score

from feature_platform.errors import FeaturePlatformError

if TYPE_CHECKING:
    from feature_platform.feature_store import FeatureStore
    from feature_platform.learning.tracking import ModelTracker
    from feature_platform.programs.model import Program

STOP_SET_ARTIFACT = "stop_set_predictions.json"
MIN_STOP_SET = 20  # fewer shared samples than this say nothing about stability


@dataclass(frozen=True)
class RoundRecord:
    """What stopping rules need to know about one trained round."""

    round: str
    labels: int
    accuracy: float | None = None  # on the validation (held-out) split
    # sample key -> predicted class, on the stop set (keys may grow as samples arrive)
    stop_set_predictions: Mapping[str, str] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str
    rule: str | None = None  # the rule that fired, None when continuing


@dataclass(frozen=True)
class StoppingRules:
    """The program's stopping settings; a rule set to None is off."""

    label_budget: int | None = None
    target_accuracy: float | None = None
    kappa_threshold: float | None = 0.99
    kappa_window: int = 3
    plateau_patience: int | None = None
    plateau_min_delta: float = 0.005

    def __post_init__(self) -> None:
        if self.label_budget is not None and self.label_budget < 1:
            raise FeaturePlatformError(f"label_budget must be positive, got {self.label_budget}.")
        if self.target_accuracy is not None and not 0.0 < self.target_accuracy <= 1.0:
            raise FeaturePlatformError(
                f"target_accuracy must lie in (0, 1], got {self.target_accuracy}."
            )
        if self.kappa_threshold is not None and not -1.0 <= self.kappa_threshold <= 1.0:
            raise FeaturePlatformError(
                f"kappa_threshold must lie in [-1, 1], got {self.kappa_threshold}."
            )
        if self.kappa_window < 1:
            raise FeaturePlatformError(f"kappa_window must be at least 1, got {self.kappa_window}.")
        if self.plateau_patience is not None and self.plateau_patience < 1:
            raise FeaturePlatformError(
                f"plateau_patience must be at least 1, got {self.plateau_patience}."
            )

    @classmethod
    def from_program(cls, program: Program, **settings: Any) -> StoppingRules:
        """The program's label budget plus any other rule settings given here."""
        return cls(label_budget=program.label_budget, **settings)


def label_budget_rule(
    history: Sequence[RoundRecord], budget: int, labels_spent: int | None = None
) -> tuple[bool, str]:
    """Stop once `labels_spent` (default: the latest round's labels) reaches the budget."""
    spent = labels_spent if labels_spent is not None else (history[-1].labels if history else 0)
    if spent >= budget:
        return True, f"label budget spent: {spent} of {budget} labels used"
    return False, f"{spent} of {budget} labels used"


def target_accuracy_rule(history: Sequence[RoundRecord], target: float) -> tuple[bool, str]:
    scored = [r for r in history if r.accuracy is not None]
    if not scored:
        return False, f"no validation accuracy yet (target {target:.3f})"
    latest = scored[-1]
    if latest.accuracy >= target:
        return True, (
            f"target accuracy reached: {latest.round} scores {latest.accuracy:.3f} on the "
            f"validation split (target {target:.3f}) with {latest.labels} labels"
        )
    return False, f"accuracy {latest.accuracy:.3f} < target {target:.3f}"


def agreement(previous: Mapping[str, str], current: Mapping[str, str]) -> tuple[float, int]:
    """Cohen's kappa between two models' predictions on their shared stop-set samples, and how
    many samples that is. Identical constant predictions count as full agreement."""
    shared = sorted(set(previous) & set(current))
    if not shared:
        return math.nan, 0
    a = np.array([str(previous[k]) for k in shared])
    b = np.array([str(current[k]) for k in shared])
    if (a == b).all():
        return 1.0, len(shared)
    return float(cohen_kappa_score(a, b)), len(shared)


def stabilizing_predictions_rule(
    history: Sequence[RoundRecord], threshold: float = 0.99, window: int = 3
) -> tuple[bool, str]:
    """Stop when each of the last `window` pairs of successive models agrees on the stop set
    with kappa >= `threshold`."""
    with_predictions = [r for r in history if r.stop_set_predictions]
    if len(with_predictions) < window + 1:
        return False, (
            f"stop-set predictions from {len(with_predictions)} round(s); stabilizing needs "
            f"{window + 1}"
        )
    kappas = []
    recent = with_predictions[-window - 1 :]
    for previous, current in zip(recent[:-1], recent[1:], strict=True):
        kappa, shared = agreement(previous.stop_set_predictions, current.stop_set_predictions)
        if shared < MIN_STOP_SET:
            return False, (
                f"{previous.round} and {current.round} share only {shared} stop-set samples "
                f"(need {MIN_STOP_SET})"
            )
        kappas.append(kappa)
    shown = ", ".join(f"{k:.3f}" for k in kappas)
    if all(k >= threshold for k in kappas):
        last = with_predictions[-1]
        return True, (
            f"predictions stabilized: kappa between successive models on the stop set was "
            f"{shown} over the last {window} rounds (threshold {threshold}); {last.round} "
            f"has {last.labels} labels"
        )
    return False, f"stop-set kappa over the last {window} rounds {shown} (threshold {threshold})"


def plateau_rule(
    history: Sequence[RoundRecord], patience: int, min_delta: float = 0.005
) -> tuple[bool, str]:
    """Stop when the last `patience` rounds beat the best accuracy before them by < min_delta."""
    scored = [r for r in history if r.accuracy is not None]
    if len(scored) <= patience:
        return False, f"{len(scored)} scored round(s); a plateau needs more than {patience}"
    before = max(r.accuracy for r in scored[:-patience])
    recent = max(r.accuracy for r in scored[-patience:])
    if recent - before < min_delta:
        return True, (
            f"accuracy plateaued: the best of the last {patience} rounds ({recent:.3f}) is not "
            f"{min_delta} better than the best before them ({before:.3f})"
        )
    return False, f"accuracy still improving ({before:.3f} -> {recent:.3f})"


def should_stop(
    history: Sequence[RoundRecord], rules: StoppingRules, labels_spent: int | None = None
) -> StopDecision:
    """Whether to stop opening rounds, and why. `history` is oldest round first;
    `labels_spent` counts labels used or queued (default: the latest round's labels)."""
    checks: list[tuple[str, tuple[bool, str]]] = []
    if rules.label_budget is not None:
        checks.append(
            ("label_budget", label_budget_rule(history, rules.label_budget, labels_spent))
        )
    if rules.target_accuracy is not None:
        checks.append(("target_accuracy", target_accuracy_rule(history, rules.target_accuracy)))
    if rules.kappa_threshold is not None:
        checks.append(
            (
                "stabilizing_predictions",
                stabilizing_predictions_rule(history, rules.kappa_threshold, rules.kappa_window),
            )
        )
    if rules.plateau_patience is not None:
        checks.append(
            ("plateau", plateau_rule(history, rules.plateau_patience, rules.plateau_min_delta))
        )
    for name, (stop, reason) in checks:
        if stop:
            return StopDecision(True, reason, name)
    status = "; ".join(reason for _, (_, reason) in checks) or "no stopping rule is set"
    return StopDecision(False, f"continue: {status}")


# -- the stop set and the history as the pipeline records it ---------------------------------


def stop_set_predictions(
    store: FeatureStore, program: Program, model: Any, feature_set: str, as_of: datetime
) -> dict[str, str]:
    """The model's predictions on the stop set: the held-out split's samples that have arrived
    by `as_of` (fixed, never labeled for training; their labels are not used here), read from
    `feature_set` (the explicit version the model was trained on)."""
    from feature_platform.learning.training import holdout_split, resolve_feature_set

    keys, X, _ = holdout_split(store, program, resolve_feature_set(store, feature_set), as_of)  # noqa: N806
    if not keys:
        return {}
    predicted = np.asarray(model.predict(X)).astype(str)
    return dict(zip(keys, predicted.tolist(), strict=True))


def log_stop_set_predictions(
    tracker: ModelTracker, run_id: str, predictions: Mapping[str, str]
) -> None:
    """Store the predictions with the model's MLflow run (read back by history_from_tracker)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / STOP_SET_ARTIFACT
        path.write_text(json.dumps(dict(predictions), sort_keys=True))
        tracker.log_artifact(run_id, path)


def history_from_tracker(tracker: ModelTracker) -> list[RoundRecord]:
    """One record per round that has a registered model version (its latest, when a round
    was retrained), oldest round first: labels and accuracy from its run's metrics,
    stop-set predictions from its artifact."""
    latest: dict[str, Any] = {}
    for version in tracker.client.search_model_versions(f"name='{tracker.model_name}'"):
        round_name = version.tags.get("round")
        if round_name and (
            round_name not in latest or int(version.version) > int(latest[round_name].version)
        ):
            latest[round_name] = version
    records = []
    for round_name in sorted(latest, key=lambda n: (len(n), n)):
        run_id = latest[round_name].run_id
        metrics = tracker.run(run_id).data.metrics
        records.append(
            RoundRecord(
                round=round_name,
                labels=int(metrics.get("labels", 0)),
                accuracy=metrics.get("accuracy"),
                stop_set_predictions=_read_predictions(tracker, run_id),
            )
        )
    return records


# A logged artifact never changes, and sensors ask for every round's on every tick: keep the
# ones found (not the misses: an artifact may still be on its way).
_PREDICTIONS: dict[tuple[str, str], dict[str, str]] = {}


def _read_predictions(tracker: ModelTracker, run_id: str) -> dict[str, str] | None:
    key = (tracker.tracking_uri, run_id)
    if key in _PREDICTIONS:
        return _PREDICTIONS[key]
    names = {a.path for a in tracker.client.list_artifacts(run_id)}
    if STOP_SET_ARTIFACT not in names:
        return None
    with tempfile.TemporaryDirectory() as folder:
        local = tracker.client.download_artifacts(run_id, STOP_SET_ARTIFACT, folder)
        predictions = json.loads(Path(local).read_text())
    if len(_PREDICTIONS) > 10_000:
        _PREDICTIONS.clear()
    _PREDICTIONS[key] = predictions
    return predictions
