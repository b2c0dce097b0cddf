"""The steps of an active-learning round, shared by the Dagster assets and the plain loop.

One round = a labeling batch picked from the candidate pool (scored by the champion model),
the answers to it, and the retrain they lead to. Rounds are named `round-001`, `round-002`...
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.privacy import feature_subject, trained_on_tagged_columns
from feature_platform.labeling.label_store import LabelSnapshot
from feature_platform.labeling.machine_labels import MODEL
from feature_platform.labeling.queue import (
    ANSWERED,
    LEASED,
    PENDING,
    RESOLVED,
    Reprioritization,
    Task,
    TaskSpec,
)
from feature_platform.labeling.rules import run_rules
from feature_platform.learning import (
    auto_label_scorers,
    auto_labels,
    promotion,
    stopping,
    strategies,
)
from feature_platform.learning.selection import selection_inputs
from feature_platform.learning.stopping import StopDecision
from feature_platform.learning.tracking import CHAMPION, TrackedModel
from feature_platform.learning.training import (
    LABEL,
    TrainingSet,
    build_training_set,
    class_probabilities,
    evaluate,
    feature_matrix,
    holdout_split,
    in_label_set,
    program_samples,
    resolve_feature_set,
    train,
)
from feature_platform.programs.model import Program
from feature_platform.store.db import utcnow
from feature_platform.store.feature_set import FeatureSetVersion

__all__ = ["Program", "holdout_split"]

ROUND_PREFIX = "round-"


def round_key(number: int) -> str:
    return f"{ROUND_PREFIX}{number:03d}"


def round_number(key: str) -> int:
    if not key.startswith(ROUND_PREFIX) or not key[len(ROUND_PREFIX) :].isdigit():
        raise FeaturePlatformError(f"Round key {key!r} is not of the form 'round-001'.")
    return int(key[len(ROUND_PREFIX) :])


@dataclass(frozen=True)
class TrainedRound:
    round: str
    snapshot: LabelSnapshot
    training_set: TrainingSet
    model: Any
    metrics: dict[str, float]


PROBA_PREFIX = "proba_"
FEATURE_VERSION = "feature_set_version"


def with_current_labels(store: FeatureStore, program: Program) -> Program:
    """The program with the classes of its store's newest label set version (the template's
    until the label set first changes; see labeling/label_sets.py)."""
    classes = store.label_sets.classes(program.classes)
    return program if classes == program.classes else program.replace(classes=classes)


def pin_round(store: FeatureStore, program: Program) -> Program:
    """The program with its training reference resolved to an explicit version, now."""
    return program.pinned(resolve_feature_set(store, program.feature_set).id)


def round_feature_version(store: FeatureStore, program: Program, round_name: str) -> str:
    """The explicit feature set version a round runs on: the one its tasks recorded when the
    batch was opened, else the program's reference resolved now."""
    versions = {t.feature_version for t in store.queue.tasks(round_key=round_name)}
    if len(versions) == 1:
        return versions.pop()
    return resolve_feature_set(store, program.feature_set).id


def candidate_pool(
    store: FeatureStore,
    program: Program,
    model: Any | None,
    as_of: datetime | None = None,
    model_feature_version: str | None = None,
) -> pd.DataFrame:
    """Unlabeled samples that have arrived by `as_of`, with the model's class probabilities.

    Held-out samples, samples that already have a task and, while the program has
    auto-labels on, samples the model auto-labeled (in force; `learning/auto_labels.py`) are
    never candidates. Without a
    model (first round) the probability columns are NaN and selection falls back to cold start.
    The model reads the version it was trained on (`model_feature_version`, default the
    round's), so a champion trained before an alias move still scores the pool correctly.
    """
    as_of = as_of or utcnow()
    fsv = resolve_feature_set(store, program.feature_set)
    program = with_current_labels(store, program.pinned(fsv.id))
    excluded = store.queue.sample_keys()
    if program.auto_labels.enabled:  # off, the auto-labels are not trained on: people may ask
        excluded |= set(store.machine_labels.labels([MODEL])["sample_key"].astype(str))
    keys = [k for k in program_samples(store, program, as_of, fsv).pool if k not in excluded]
    # The version this round reads, resolved once here and carried by the pool, the batch's
    # tasks and the training set (an alias moved mid-round does not split the round).
    pool = pd.DataFrame({"sample_key": keys, FEATURE_VERSION: fsv.id})
    columns = [f"{PROBA_PREFIX}{c}" for c in program.classes]
    if model is None or not keys:
        for column in columns:
            pool[column] = np.nan
        return pool
    scored_on = resolve_feature_set(store, model_feature_version) if model_feature_version else fsv
    proba = class_probabilities(
        model, feature_matrix(store, scored_on, keys, as_of), list(program.classes)
    )
    pool[columns] = proba
    ordered = np.sort(proba, axis=1)
    pool["predicted"] = np.asarray(program.classes)[proba.argmax(axis=1)]
    pool["confidence"] = ordered[:, -1]
    pool["margin"] = ordered[:, -1] - ordered[:, -2]
    return pool


def open_batch(
    store: FeatureStore,
    program: Program,
    round_name: str,
    pool: pd.DataFrame,
    model_version: str | None,
) -> list[Task]:
    """Pick the round's batch from the pool and put it in the queue with its context.

    A round has one batch: re-running this step (a retry, a run killed after the batch was
    committed) returns the batch already opened instead of adding a second one."""
    opened = store.queue.tasks(round_name)
    if opened:
        return opened
    labeled_or_queued = len(store.queue.sample_keys())
    size = min(program.batch_size, program.label_budget - labeled_or_queued)
    if FEATURE_VERSION in pool and len(pool):
        program = program.pinned(str(pool[FEATURE_VERSION].iloc[0]))
    else:
        program = pin_round(store, program)
    label_set_version = store.label_sets.current_number()
    program = with_current_labels(store, program)
    fsv = resolve_feature_set(store, program.feature_set)
    number = round_number(round_name)
    # Reviews of the previous round's auto-labels take their places in the batch first.
    reviews = auto_labels.review_specs(
        store,
        program,
        round_name,
        round_key(number - 1) if number > 1 else None,
        fsv.id,
        model_version,
    )[: max(size, 0)]
    size = min(size - len(reviews), len(pool))
    if size <= 0 and not reviews:
        raise FeaturePlatformError(
            f"No batch for {round_name}: label budget {program.label_budget} is spent "
            f"({labeled_or_queued} samples queued or labeled) or the pool is empty."
        )
    columns = [f"{PROBA_PREFIX}{c}" for c in program.classes]
    proba = None if pool[columns].isna().all().all() else pool[columns].to_numpy()
    picks = (
        strategies.select(
            program.strategy,
            pool["sample_key"].tolist(),
            proba,
            list(program.classes),
            size,
            seed=program.seed * 1000 + number,
            **selection_inputs(store, program, pool["sample_key"].tolist()),
        )
        if size > 0
        else []
    )
    shown_fsv = resolve_feature_set(store, program.shown_feature_set)
    keys = [r.sample_key for r in reviews] + [p.key for p in picks]
    # Strong: an alias moved by another process a moment ago is what new tasks show.
    shown = store.get_online_features([f"{shown_fsv.id}:*"], keys, consistency="strong")
    shown = shown.set_index(shown_fsv.entity)
    shown_tags = store.privacy.tags(feature_subject(shown_fsv.id))
    specs = [
        dataclasses.replace(
            r,
            features_shown={k: float(v) for k, v in shown.loc[r.sample_key].items()},
            features_shown_version=shown_fsv.id,
            column_tags={c: list(t) for c, t in shown_tags.items()},
        )
        for r in reviews
    ] + [
        TaskSpec(
            sample_key=p.key,
            strategy=p.strategy or (program.strategy if proba is not None else "cold_start"),
            score=p.score,
            reason=p.reason,
            feature_version=fsv.id,
            model_version=model_version,
            features_shown={k: float(v) for k, v in shown.loc[p.key].items()},
            top_classes=p.top_classes,
            features_shown_version=shown_fsv.id,
            column_tags={c: list(t) for c, t in shown_tags.items()},
        )
        for p in picks
    ]
    return store.queue.create_batch(
        round_name,
        specs,
        program.classes,
        answers_needed=program.answers_per_task,
        label_set_version=label_set_version,
    )


def round_complete(store: FeatureStore, round_name: str) -> bool:
    counts = store.queue.counts(round_name)
    total = sum(counts.values())
    return total > 0 and counts[ANSWERED] + counts[RESOLVED] == total


def labels_so_far(store: FeatureStore) -> int:
    counts = store.queue.counts()
    return counts[ANSWERED] + counts[RESOLVED]


def budget_left(store: FeatureStore, program: Program) -> int:
    return program.label_budget - len(store.queue.sample_keys())


def holdout(store: FeatureStore, program: Program, training_set: TrainingSet, as_of: datetime):
    """The held-out split's features (same version as training) and true labels, in the
    label set version of the training set's snapshot: the ground truth is in the template's
    classes (version 1) and is mapped forward; a sample whose class was split since is left
    out. A snapshot made before label sets had versions reads the truth as it is."""
    _, X, y = holdout_split(store, program, training_set.feature_set, as_of)  # noqa: N806
    version = store.labels.get(training_set.label_snapshot_id).label_set_version
    return in_label_set(store, X, y, version)


def freeze_training_set(
    store: FeatureStore, program: Program, round_name: str
) -> tuple[LabelSnapshot, TrainingSet]:
    """Freeze every complete answer into a label snapshot and join it with the features.

    A program with weak labeling rules runs them first (their votes on samples not voted on
    by the same rule version are recorded); a program with auto-labels applies people's
    review verdicts first (a rejected auto-label is withdrawn). The snapshot uses the
    program's label sources (`Program.label_sources`: people, rules, downstream feedback and,
    with auto-labels, the model's labels in force, each with its weight); people's labels
    are still the only ones counted."""
    if not round_complete(store, round_name):
        raise FeaturePlatformError(
            f"{round_name} is not fully answered yet: {store.queue.counts(round_name)}."
        )
    version = round_feature_version(store, program, round_name)
    if program.rules:
        run_rules(store, program.pinned(version), round=round_name)
    if program.auto_labels.enabled:
        # People's review verdicts withdraw the auto-labels they rejected before the freeze.
        auto_labels.apply_review_verdicts(store)
    snapshot = store.labels.create_snapshot(note=round_name, sources=program.label_sources())
    return snapshot, build_training_set(store, snapshot, version)


def train_and_evaluate(
    store: FeatureStore, program: Program, training_set: TrainingSet, as_of: datetime
) -> tuple[Any, dict[str, float]]:
    """Train on the set and score the model on the held-out split as of `as_of`.

    The `labels` metric (the learning curve's x-axis, what stopping rules and dashboards
    read) counts the labels people stand behind; machine labels the model also trained on are
    `machine_labels`, logged only when there are any."""
    model = train(training_set, estimator=program.build_estimator())
    X, y = holdout(store, program, training_set, as_of)  # noqa: N806
    human, machine = label_counts(store, training_set)
    counts = {"labels": float(human)} | ({"machine_labels": float(machine)} if machine else {})
    return model, evaluate(model, X, y) | counts


def label_counts(store: FeatureStore, training_set: TrainingSet) -> tuple[int, int]:
    """(labels a person supports, machine-only labels) among the training set's rows."""
    snapshot = store.labels.get(training_set.label_snapshot_id)
    human = set(snapshot.human_labels["sample_key"].astype(str))
    keys = training_set.frame[training_set.entity].astype(str)
    n_human = int(keys.isin(human).sum())
    return n_human, len(keys) - n_human


def snapshot_source_params(snapshot: LabelSnapshot) -> tuple[dict[str, str], dict[str, str]]:
    """MLflow params and tags saying which label sources a run's snapshot used: params
    `label_sources` (source=weight, ...) and `label_weight_<kind>`; tags `label_votes` (votes
    per source) and `label_kinds` (labels per source kind)."""

    def listed(mapping: Mapping[str, Any]) -> str:
        return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items()))

    params = {"label_sources": listed(snapshot.sources)} | {
        f"label_weight_{key}": str(weight)
        for key, weight in snapshot.sources.items()
        if ":" not in key
    }
    tags = {
        "label_votes": listed(snapshot.source_votes),
        "label_kinds": listed(snapshot.label_kind_counts),
    }
    return params, tags


def retrain(store: FeatureStore, program: Program, round_name: str) -> TrainedRound:
    """Freeze the labels, build the training set, train and evaluate on the held-out split."""
    snapshot, training_set = freeze_training_set(store, program, round_name)
    model, metrics = train_and_evaluate(store, program, training_set, snapshot.created_at)
    return TrainedRound(round_name, snapshot, training_set, model, metrics)


@dataclass(frozen=True)
class NextRound:
    """What the round sensor should do: open `round` (or nothing, saying why)."""

    round: str | None
    reason: str


def next_round(
    store: FeatureStore,
    program: Program,
    existing: list[str],
    trained: set[str],
    stop: StopDecision | None = None,
) -> NextRound:
    """Open the first round once features exist; open round n+1 once round n's model is
    trained; stop when the label budget is spent or a stopping rule (`stop`) fired."""
    try:
        fsv = resolve_feature_set(store, program.feature_set)
    except FeaturePlatformError as exc:
        return NextRound(None, f"waiting for feature set {program.feature_set}: {exc}")
    if not store.offline.snapshots(fsv):
        return NextRound(None, f"waiting for feature set {fsv.id} to be materialized")
    left = budget_left(store, program)
    if left <= 0:
        return NextRound(
            None, f"label budget of {program.label_budget} spent ({labels_so_far(store)} labels)"
        )
    if stop is not None and stop.stop:
        return NextRound(None, f"stopped by the {stop.rule} rule: {stop.reason}")
    if not existing:
        return NextRound(round_key(1), "no round yet: opening the first (cold start)")
    latest = max(existing, key=round_number)
    if latest not in trained:
        if not store.queue.tasks(round_key=latest):
            # Added but not opened (e.g. a crash between adding the partition and launching
            # its run): ask again; the run key makes a second request for a live run a no-op.
            return NextRound(latest, f"{latest} has no tasks yet: (re)requesting its opening")
        return NextRound(None, f"waiting for {latest}'s retrain")
    return NextRound(
        round_key(round_number(latest) + 1),
        f"{latest} is trained; {left} labels of budget left",
    )


def rounds_to_retrain(store: FeatureStore, existing: list[str], trained: set[str]) -> list[str]:
    """Rounds whose batch is fully answered but whose model is not trained yet."""
    return [r for r in sorted(existing) if r not in trained and round_complete(store, r)]


def champion_drift(
    store: FeatureStore,
    program: Program,
    feature_set_version: str,
    label_snapshot_id: str,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Drift of the current unlabeled pool against the training set a champion learned from,
    both read from the same (explicit) feature set version."""
    from feature_platform.quality.drift import drift_report

    training_set = build_training_set(
        store, store.labels.get(label_snapshot_id), feature_set_version
    )
    pinned = program.pinned(training_set.feature_set.id)
    keys = candidate_pool(store, pinned, model=None, as_of=as_of)["sample_key"].tolist()
    current = pd.DataFrame(
        feature_matrix(store, training_set.feature_set, keys, as_of or utcnow()),
        columns=training_set.features,
    )
    return drift_report(training_set.frame, current, training_set.features)


def rescore_open_tasks(
    store: FeatureStore,
    program: Program,
    model: Any,
    model_version: str,
    as_of: datetime | None = None,
) -> Reprioritization | None:
    """Re-score every open (pending or leased) task with `model`, so a new champion's view
    replaces stale priorities. Returns the queue's Reprioritization, or None if none is open."""
    keys = sorted(
        {t.sample_key for state in (PENDING, LEASED) for t in store.queue.tasks(state=state)}
    )
    if not keys:
        return None
    program = with_current_labels(store, program)
    fsv = resolve_feature_set(store, program.feature_set)
    features = feature_matrix(store, fsv, keys, as_of or utcnow())
    proba = class_probabilities(model, features, list(program.classes))
    picks = strategies.select(
        program.strategy,
        keys,
        proba,
        list(program.classes),
        len(keys),
        seed=program.seed,
        **selection_inputs(store, program, keys),
    )
    return store.queue.reprioritize(
        {p.key: p.score for p in picks},
        model_version,
        top_classes={p.key: p.top_classes for p in picks},
        reasons={p.key: f"re-scored by {model_version}: {p.reason}" for p in picks},
        strategy=program.strategy,
    )


@dataclass(frozen=True)
class RoundOutcome:
    """What one round's training steps produced."""

    round: str
    training_set: TrainingSet
    model: Any
    metrics: dict[str, float]
    tracked: TrackedModel
    decision: promotion.PromotionDecision
    rescored: Reprioritization | None
    auto_labels: auto_labels.AutoLabelRound | None = None


def run_training_round(
    store: FeatureStore,
    program: Program,
    tracker: Any,
    training_set: TrainingSet,
    round_name: str,
    *,
    tags: Mapping[str, str] | None = None,
) -> RoundOutcome:
    """A round's training steps, the same for the Dagster `model` asset and the plain loop:
    train and evaluate on the held-out split, log and register the model (tagged with its
    lineage and the program's template version), record the feature set usage, log the
    stop-set predictions, apply the promotion rule and, when promoted, re-score open tasks.

    `tracker` is a `ModelTracker` (MLflow) or anything with its interface
    (`learning.loop.MemoryTracker`). Every step reads the training set's explicit version.
    """
    snapshot = store.labels.get(training_set.label_snapshot_id)
    as_of = snapshot.created_at
    pinned = program.pinned(training_set.feature_set.id)
    model, metrics = train_and_evaluate(store, pinned, training_set, as_of)
    source_params, source_tags = snapshot_source_params(snapshot)
    tagged = trained_on_tagged_columns(store.privacy, training_set.feature_set)
    tracked = tracker.log_model(
        model,
        params={**program.params(), **source_params},
        metrics=metrics,
        tags={
            **source_tags,
            "feature_set_version": training_set.feature_set.id,
            "label_snapshot_id": training_set.label_snapshot_id,
            "training_set_fingerprint": training_set.fingerprint,
            "strategy": program.strategy,
            "round": round_name,
            "program": program.name,
            "template_version": program.template_version or "",
            # Which tagged columns (governance/privacy.py) the model learned from: "none" or
            # a JSON list of "column:tag" entries.
            "trained_on_tagged_columns": json.dumps(tagged) if tagged else "none",
            **(tags or {}),
        },
        run_name=f"{program.name}-{round_name}-{program.strategy}",
    )
    store.registry.record_usage(
        training_set.feature_set.id,
        "model",
        tracked.label,
        upstream=f"training_set:{training_set.fingerprint}",
        details={
            "round": round_name,
            "label_snapshot_id": snapshot.id,
            "trained_on_tagged_columns": tagged,
        },
    )
    stopping.log_stop_set_predictions(
        tracker,
        tracked.run_id,
        stopping.stop_set_predictions(store, pinned, model, training_set.feature_set.id, as_of),
    )
    decision = promotion.promote(
        tracker,
        tracked,
        tolerance=program.promotion_tolerance,
        champion_metrics=promotion.champion_metrics_on(
            store, pinned, tracker, as_of, label_set_version=snapshot.label_set_version
        ),
    )
    rescored = rescore_open_tasks(store, pinned, model, tracked.label) if decision.promote else None
    auto = None
    if program.auto_labels.enabled:
        auto = auto_label_step(
            store, pinned, tracker, round_name, as_of, model, tracked, decision, training_set
        )
        tracker.log_metrics(tracked.run_id, auto.metrics())
    return RoundOutcome(round_name, training_set, model, metrics, tracked, decision, rescored, auto)


def auto_label_step(
    store: FeatureStore,
    program: Program,
    tracker: Any,
    round_name: str,
    as_of: datetime,
    model: Any,
    tracked: TrackedModel,
    decision: promotion.PromotionDecision,
    training_set: TrainingSet | None = None,
) -> auto_labels.AutoLabelRound:
    """The round's auto-labels, by the champion after the promotion decision (the round's
    model if promoted, else the champion it did not beat), calibrated on the held-out split
    as of the round's snapshot and applied to the unlabeled pool it scores now. With the
    `label_spreading` scorer, the round's `training_set` labels are spread over the pool and
    the held-out split instead (`spread_scores`), calibrated and applied the same way."""
    champion = None if decision.promote else tracker.by_alias(CHAMPION)
    if champion is None:
        version, label = program.feature_set, tracked.label
    else:
        model = tracker.load(champion)
        version = tracker.version_tags(champion.version)[FEATURE_VERSION]
        label = champion.label
    fsv = resolve_feature_set(store, version)
    _, X, y = holdout_split(store, program, fsv, as_of)  # noqa: N806
    # The truth is in the template's classes: map it to the label set in force.
    X, y = in_label_set(store, X, y, store.label_sets.current_number())  # noqa: N806
    settings = program.auto_labels
    pool = candidate_pool(store, program, model, model_feature_version=fsv.id)
    holdout_proba = class_probabilities(model, X, list(program.classes))
    provenance: dict[str, Any] = {}
    if settings.scorer == auto_label_scorers.LABEL_SPREADING:
        if training_set is None:
            raise FeaturePlatformError("The label_spreading scorer needs the round's training set.")
        pool, holdout_proba, provenance = spread_scores(
            store, program, training_set, fsv, as_of, pool, X, holdout_proba
        )
    return auto_labels.auto_label_round(
        store,
        program,
        round_name,
        model_version=label,
        feature_version=fsv.id,
        pool=pool,
        holdout_proba=holdout_proba,
        holdout_truth=y,
        scorer=settings.scorer,
        scorer_params=settings.resolved_scorer_params(),
        scorer_provenance=provenance,
    )


def spread_scores(
    store: FeatureStore,
    program: Program,
    training_set: TrainingSet,
    fsv: FeatureSetVersion,
    as_of: datetime,
    pool: pd.DataFrame,
    holdout_X: np.ndarray,  # noqa: N803
    champion_holdout_proba: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The `label_spreading` scorer (`learning/auto_label_scorers.py`) on one round: the
    labels people stand behind in the round's snapshot (with `machine_seeds`, every label of
    its training set) spread over one kNN graph of those samples, the unlabeled `pool` and
    the held-out split (`holdout_X`), all in the champion's feature version `fsv`. Returns
    the pool with `predicted` / `confidence` from the spreading, the held-out probabilities
    and what the labels' provenance records. With `agree_with_champion`, a sample whose
    top class by the champion (the pool's probability columns, `champion_holdout_proba`)
    differs scores 0."""
    params = program.auto_labels.resolved_scorer_params()
    classes = list(program.classes)
    frame = training_set.frame
    entity = training_set.entity
    snapshot = store.labels.get(training_set.label_snapshot_id)
    if not params.get("machine_seeds"):
        human = set(snapshot.human_labels["sample_key"].astype(str))
        frame = frame[frame[entity].astype(str).isin(human)]
    if training_set.feature_set.id == fsv.id:
        seeds = frame[training_set.features].to_numpy(dtype="float64")
    else:
        seeds = feature_matrix(store, fsv, frame[entity].astype(str).tolist(), as_of)
    labels = frame[LABEL].astype(str).to_numpy()
    known = ~np.isnan(seeds).any(axis=1)
    keys = pool["sample_key"].astype(str).tolist()
    pool_X = (  # noqa: N806
        feature_matrix(store, fsv, keys, utcnow()) if keys else np.zeros((0, seeds.shape[1]))
    )
    scored = ~np.isnan(pool_X).any(axis=1)
    pool_proba, holdout_proba = auto_label_scorers.label_spreading_proba(
        seeds[known], labels[known], [pool_X[scored], holdout_X], classes, params
    )
    full = np.zeros((len(keys), len(classes)))
    full[scored] = pool_proba
    if params.get("agree_with_champion"):
        columns = [f"{PROBA_PREFIX}{c}" for c in classes]
        full = auto_label_scorers.agreeing(full, pool[columns].to_numpy(dtype="float64"))
        holdout_proba = auto_label_scorers.agreeing(holdout_proba, champion_holdout_proba)
    pool = pool.assign(
        predicted=np.asarray(classes)[full.argmax(axis=1)] if len(full) else [],
        confidence=full.max(axis=1) if len(full) else [],
    )
    provenance = {"label_snapshot_id": snapshot.id, "seed_labels": int(known.sum())}
    return pool, holdout_proba, provenance
