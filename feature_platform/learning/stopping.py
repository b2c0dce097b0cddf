"""Stopping rules: when another labeling round is no longer worth its labels.

Each rule is a plain function of the per-round history returning `(stop, reason)`:

- `label_budget_rule`: the program's label budget is spent.
- `target_accuracy_rule`: the latest model reaches the target accuracy on the validation split.
- `stabilizing_predictions_rule`: the models stop changing their predictions on a fixed stop
  set (Cohen's kappa at or above a threshold), after Bloodgood & Vijay-Shanker, "A method for
  stopping active learning based on stabilizing predictions" (CoNLL 2009): once predictions
  stop changing, more labels stop changing the model. It needs no labels, so it also works
  where a validation split is small or absent.
- `plateau_rule`: validation accuracy has stopped improving.

Windows are measured in labels, not rounds: "the last 3 rounds" is 15 labels at batch 5 and
120 at batch 40, so round-based rules stopped small batches far too early and large ones far
too late (issue 14). With a window of W labels, stabilizing asks every model trained in the
last W labels to agree with the latest one, and plateau compares the mean accuracy of the
models in the last W labels with the mean over the W labels before (means, not maxima: with
small batches a window holds more noisy scores, and a maximum would grow with their number).
The defaults were calibrated on six data sets at batch sizes 5, 10, 20 and 40
(`benchmarks/stopping_calibration.py`). The round-based windows (`window=`, `patience=`;
`StoppingRules.kappa_window`, `plateau_patience`) still work as before when given.

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


# Calibrated defaults: benchmarks/stopping_calibration.py (margin; digits, breast_cancer, wine,
# iris, a 5-class imbalanced set, a 10 %-flipped-labels set; batch 5/10/20/40; 10 seeds).
# Stabilizing at kappa >= 0.98 over 20 labels had the lowest cost (labels past the plateau +
# accuracy lost before it): 0.54 against 0.88 for the earlier 0.99 over 3 rounds, which fired
# at 192 labels on digits at batch 5 and 480 at batch 40 (plateau 215-240); now 200-280.
# The plateau rule's best setting (60 labels, 0.01) cost 0.99 and, first to fire alongside
# stabilizing, raised the cost to 0.61 (too early on the imbalanced set): off by default.
KAPPA_THRESHOLD = 0.98
KAPPA_WINDOW_LABELS = 20
PLATEAU_LABELS = 60  # the window plateau_rule uses when none is given
PLATEAU_MIN_DELTA = 0.01


@dataclass(frozen=True)
class StoppingRules:
    """The program's stopping settings; a rule set to None is off.

    Windows are in labels (`kappa_window_labels`, `plateau_labels`). The round-based
    `kappa_window` / `plateau_patience` of earlier versions still work: when given (not None)
    they replace the label window of their rule with a window of that many rounds. Changed
    defaults: kappa_threshold 0.99 -> 0.98, kappa_window 3 (rounds) -> None (20 labels),
    plateau_min_delta 0.005 -> 0.01; the plateau rule stays off unless a window is set.
    """

    label_budget: int | None = None
    target_accuracy: float | None = None
    kappa_threshold: float | None = KAPPA_THRESHOLD
    kappa_window: int | None = None  # rounds (deprecated: use kappa_window_labels)
    plateau_patience: int | None = None  # rounds (deprecated: use plateau_labels)
    plateau_min_delta: float = PLATEAU_MIN_DELTA
    kappa_window_labels: int = KAPPA_WINDOW_LABELS
    plateau_labels: int | None = None  # off by default; PLATEAU_LABELS is its calibrated window

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
        for name in ("kappa_window", "plateau_patience", "kappa_window_labels", "plateau_labels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FeaturePlatformError(f"{name} must be at least 1, got {value}.")
        if self.plateau_min_delta < 0:
            raise FeaturePlatformError(
                f"plateau_min_delta must not be negative, got {self.plateau_min_delta}."
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
    return _kappa(a, b), len(shared)


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two label arrays (scikit-learn's cohen_kappa_score, without its
    input checks: the rules compare every model of a window on every sensor tick)."""
    codes = np.unique(np.concatenate([a, b]), return_inverse=True)[1]
    x, y = codes[: len(a)], codes[len(a) :]
    k = int(codes.max()) + 1
    observed = float(np.mean(x == y))
    expected = float(np.dot(np.bincount(x, minlength=k), np.bincount(y, minlength=k))) / len(a) ** 2
    if expected >= 1.0:  # one constant class on both sides (agreement() answers that first)
        return 1.0
    return (observed - expected) / (1.0 - expected)


def stabilizing_predictions_rule(
    history: Sequence[RoundRecord],
    threshold: float = KAPPA_THRESHOLD,
    window: int | None = None,
    *,
    window_labels: int | None = None,
) -> tuple[bool, str]:
    """Stop once predictions on the stop set have stopped changing.

    With `window_labels` (the default, KAPPA_WINDOW_LABELS): every model trained within the
    last `window_labels` labels (from the last one at or before latest - window_labels) agrees
    with the latest model at kappa >= `threshold`. With `window` (rounds, the earlier form):
    each of the last `window` pairs of successive models does."""
    if window is None:
        return _stable_over_labels(
            history, threshold, KAPPA_WINDOW_LABELS if window_labels is None else window_labels
        )
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


def _stable_over_labels(
    history: Sequence[RoundRecord], threshold: float, window_labels: int
) -> tuple[bool, str]:
    with_predictions = [r for r in history if r.stop_set_predictions]
    if not with_predictions:
        return False, f"no stop-set predictions yet; stabilizing needs {window_labels} labels"
    latest = with_predictions[-1]
    since = latest.labels - window_labels
    anchors = [i for i, r in enumerate(with_predictions[:-1]) if r.labels <= since]
    if not anchors:
        first = with_predictions[0].labels
        return False, (
            f"stop-set predictions span {latest.labels - first} labels ({first} -> "
            f"{latest.labels}); stabilizing needs {window_labels}"
        )
    kappas = []
    for earlier in with_predictions[anchors[-1] : -1]:
        kappa, shared = agreement(earlier.stop_set_predictions, latest.stop_set_predictions)
        if shared < MIN_STOP_SET:
            return False, (
                f"{earlier.round} and {latest.round} share only {shared} stop-set samples "
                f"(need {MIN_STOP_SET})"
            )
        kappas.append(kappa)
    lowest = min(kappas)
    scope = (
        f"the {len(kappas)} model(s) of the last {window_labels} labels "
        f"({with_predictions[anchors[-1]].labels} -> {latest.labels})"
    )
    if lowest >= threshold:
        return True, (
            f"predictions stabilized: {scope} agree with {latest.round} on the stop set at "
            f"kappa >= {lowest:.3f} (threshold {threshold}); {latest.round} has "
            f"{latest.labels} labels"
        )
    return False, (
        f"stop-set kappa of {scope} with the latest: lowest {lowest:.3f} (threshold {threshold})"
    )


def plateau_rule(
    history: Sequence[RoundRecord],
    patience: int | None = None,
    min_delta: float = PLATEAU_MIN_DELTA,
    *,
    window_labels: int | None = None,
) -> tuple[bool, str]:
    """Stop once validation accuracy stops improving.

    With `window_labels` (the default, PLATEAU_LABELS): the mean accuracy of the rounds within
    the last `window_labels` labels is less than `min_delta` above the mean of the rounds in
    the `window_labels` labels before them. With `patience` (rounds, the earlier form): the
    best of the last `patience` rounds beats the best before them by < `min_delta`."""
    scored = [r for r in history if r.accuracy is not None]
    if patience is None:
        return _plateau_over_labels(
            scored, PLATEAU_LABELS if window_labels is None else window_labels, min_delta
        )
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


def _plateau_over_labels(
    scored: Sequence[RoundRecord], window_labels: int, min_delta: float
) -> tuple[bool, str]:
    if not scored:
        return False, f"no validation accuracy yet; a plateau needs {2 * window_labels} labels"
    latest = scored[-1].labels
    recent = [r.accuracy for r in scored if r.labels > latest - window_labels]
    start, middle = latest - 2 * window_labels, latest - window_labels
    before = [r.accuracy for r in scored if start < r.labels <= middle]
    if not before or scored[0].labels > start:
        return False, (
            f"scored rounds span {latest - scored[0].labels} labels; a plateau compares the "
            f"last {window_labels} labels with the {window_labels} before them"
        )
    now, then = float(np.mean(recent)), float(np.mean(before))
    if now - then < min_delta:
        return True, (
            f"accuracy plateaued: mean {now:.3f} over the last {window_labels} labels is not "
            f"{min_delta} better than {then:.3f} over the {window_labels} before them "
            f"({latest} labels)"
        )
    return False, (
        f"accuracy still improving: mean {then:.3f} -> {now:.3f} over successive "
        f"{window_labels}-label windows"
    )


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
                stabilizing_predictions_rule(
                    history,
                    rules.kappa_threshold,
                    rules.kappa_window,
                    window_labels=rules.kappa_window_labels,
                ),
            )
        )
    if rules.plateau_patience is not None or rules.plateau_labels is not None:
        checks.append(
            (
                "plateau",
                plateau_rule(
                    history,
                    rules.plateau_patience,
                    rules.plateau_min_delta,
                    window_labels=rules.plateau_labels,
                ),
            )
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
