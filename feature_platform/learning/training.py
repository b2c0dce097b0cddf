"""Training sets (label snapshot x one feature set version, point in time), training, evaluation."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.label_store import LabelSnapshot
from feature_platform.programs.model import DEFAULT_MODEL_PARAMS, Program
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetVersion
from feature_platform.store.refs import parse_feature_set

LABEL = "label"
__all__ = [
    "DEFAULT_MODEL_PARAMS",
    "ProgramSamples",
    "TrainingSet",
    "build_training_set",
    "holdout_split",
    "program_samples",
    "train",
]


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # entity key, event_timestamp, label, then the features
    feature_set: FeatureSetVersion
    features: list[str]
    label_snapshot_id: str
    missing: list[str] = field(default_factory=list)  # labeled keys with no feature value yet

    @property
    def entity(self) -> str:
        return self.feature_set.entity

    @property
    def fingerprint(self) -> str:
        """Content hash: the same labels joined with the same feature values hash the same."""
        hashed = pd.util.hash_pandas_object(self.frame, index=False).to_numpy()
        return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]

    @property
    def X(self) -> np.ndarray:  # noqa: N802 - the usual name for a feature matrix
        return self.frame[self.features].to_numpy(dtype="float64")

    @property
    def y(self) -> np.ndarray:
        return self.frame[LABEL].astype(str).to_numpy()


SNAPSHOT_COLUMN = "label_snapshot_id"
VERSION_COLUMN = "feature_set_version"


def training_set_to_frame(training_set: TrainingSet) -> pd.DataFrame:
    """The set as one table that carries its provenance in every row (for Parquet storage)."""
    return training_set.frame.assign(
        **{
            SNAPSHOT_COLUMN: training_set.label_snapshot_id,
            VERSION_COLUMN: training_set.feature_set.id,
        }
    )


def training_set_from_frame(store: FeatureStore, frame: pd.DataFrame) -> TrainingSet:
    """Inverse of `training_set_to_frame`: the version is looked up in the registry."""
    snapshot_ids, versions = frame[SNAPSHOT_COLUMN].unique(), frame[VERSION_COLUMN].unique()
    if len(snapshot_ids) != 1 or len(versions) != 1:
        raise FeaturePlatformError(
            f"A training set frame must hold one label snapshot and one feature set version; "
            f"found {list(snapshot_ids)} and {list(versions)}."
        )
    fsv = resolve_feature_set(store, str(versions[0]))
    body = frame.drop(columns=[SNAPSHOT_COLUMN, VERSION_COLUMN]).reset_index(drop=True)
    return TrainingSet(body, fsv, fsv.feature_names, str(snapshot_ids[0]))


def resolve_feature_set(store: FeatureStore, reference: str) -> FeatureSetVersion:
    name, selector = parse_feature_set(reference)
    return store.registry.resolve(name, selector)


def build_training_set(
    store: FeatureStore, snapshot: LabelSnapshot, feature_set: str
) -> TrainingSet:
    """Join each label with the feature values as they were when the label was given.

    An alias is resolved once here and the explicit version is recorded, so the same snapshot
    and version always rebuild the same set. Labels whose sample had no feature value yet at
    label time are listed in `missing`, not silently dropped.
    """
    fsv = resolve_feature_set(store, feature_set)
    labels = snapshot.labels.sort_values("sample_key", kind="stable")
    entity_df = pd.DataFrame(
        {
            fsv.entity: labels["sample_key"].astype(str).to_numpy(),
            EVENT_TIMESTAMP: labels["labeled_at"].to_numpy(),
            LABEL: labels["label"].astype(str).to_numpy(),
        }
    )
    frame = store.get_historical_features(entity_df, [f"{fsv.id}:*"])
    has_values = frame[fsv.feature_names].notna().all(axis=1)
    missing = frame.loc[~has_values, fsv.entity].astype(str).tolist()
    frame = frame.loc[has_values].reset_index(drop=True)
    return TrainingSet(frame, fsv, fsv.feature_names, snapshot.id, missing)


def feature_matrix(
    store: FeatureStore, fsv: FeatureSetVersion, keys: list[str], as_of: datetime
) -> np.ndarray:
    """Features of `keys` as of one moment (for scoring the pool or the held-out split)."""
    entity_df = pd.DataFrame({fsv.entity: keys, EVENT_TIMESTAMP: pd.Timestamp(as_of)})
    frame = store.get_historical_features(entity_df, [f"{fsv.id}:*"])
    return frame[fsv.feature_names].to_numpy(dtype="float64")


def train(
    training_set: TrainingSet,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    estimator: Any | None = None,
):
    """Fit a fresh copy of `estimator` (default: the default logistic regression with `params`).
    Refuses a set a classifier cannot learn from, saying why."""
    if len(training_set.frame) == 0:
        raise FeaturePlatformError("The training set is empty: no label has feature values yet.")
    classes = np.unique(training_set.y)
    if len(classes) < 2:
        raise FeaturePlatformError(
            f"The training set has a single class ({classes.tolist()}); a classifier needs at "
            f"least two. Label more samples first."
        )
    if estimator is None:
        estimator = Program(
            feature_set="-", classes=("a", "b"), model_params=dict(params or {}), seed=seed
        ).build_estimator()
    return clone(estimator).fit(training_set.X, training_set.y)


def holdout_split(
    store: FeatureStore, program: Program, fsv: FeatureSetVersion, as_of: datetime
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keys, features (from `fsv`, as of `as_of`) and true labels of the program's held-out
    split. Samples that had not arrived by `as_of` have no features and are left out."""
    if not program.holdout_source:
        raise FeaturePlatformError(
            f"Program {program.name!r} has no held-out source: declare ground truth and a "
            f"holdout in its template so models can be evaluated."
        )
    frame = store.sources.read(program.holdout_source)
    keys = frame[fsv.entity].astype(str).to_numpy()
    X = feature_matrix(store, fsv, keys.tolist(), as_of)  # noqa: N806
    arrived = ~np.isnan(X).any(axis=1)
    return keys[arrived].tolist(), X[arrived], frame[LABEL].astype(str).to_numpy()[arrived]


@dataclass(frozen=True)
class ProgramSamples:
    """A program's samples in one feature set version: every key that has arrived (by the
    `as_of` asked for) and the keys of the held-out split (their true labels judge the
    model, so no label of any source may be taken for them)."""

    feature_set: FeatureSetVersion
    arrived: frozenset[str]
    held_out: frozenset[str]

    @property
    def pool(self) -> list[str]:
        """The arrived samples outside the held-out split, shorter keys first ('2' < '10')."""
        return sorted(self.arrived - self.held_out, key=lambda k: (len(k), k))


# Without `as_of` (every arrived sample) the sets are kept per snapshot set: the same files
# give the same keys, and a new snapshot or a rewritten held-out source changes the key.
_SAMPLES_KEPT = 8
_samples: OrderedDict[tuple, ProgramSamples] = OrderedDict()
_samples_lock = threading.Lock()


def program_samples(
    store: FeatureStore,
    program: Program,
    as_of: datetime | None = None,
    fsv: FeatureSetVersion | None = None,
) -> ProgramSamples:
    """The samples of `program`'s feature set (`fsv`, default the program's, resolved now)
    arrived by `as_of` (None: every one stored), and its held-out split. Candidates, rule
    votes and feedback all take `pool`: arrived minus held out. Without `as_of` the result
    is reused while the version's snapshots and the held-out source are unchanged."""
    fsv = fsv or resolve_feature_set(store, program.feature_set)
    holdout = program.holdout_source
    key = None
    if as_of is None:
        key = (
            str(store.offline.root),
            fsv.id,
            fsv.fingerprint,
            store.offline.signature(fsv),
            str(store.sources.root),
            holdout,
            store.sources.signature(holdout) if holdout else (),
        )
        with _samples_lock:
            if key in _samples:
                _samples.move_to_end(key)
                return _samples[key]
    arrived = store.offline.latest(fsv, features=[])
    if as_of is not None:
        arrived = arrived[arrived[EVENT_TIMESTAMP] <= pd.Timestamp(as_of)]
    held_out: frozenset[str] = frozenset()
    if holdout:
        held_out = frozenset(store.sources.read(holdout)[fsv.entity].astype(str))
    samples = ProgramSamples(fsv, frozenset(arrived[fsv.entity].astype(str)), held_out)
    if key is not None:
        with _samples_lock:
            _samples[key] = samples
            while len(_samples) > _SAMPLES_KEPT:
                _samples.popitem(last=False)
    return samples


def in_label_set(
    store: FeatureStore,
    X: np.ndarray,
    y: np.ndarray,
    version: int | None,  # noqa: N803
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out features and true labels with the labels (in the template's classes, label
    set version 1) mapped to label set `version`; a sample whose class was split since is
    left out. `version` None or 1 (snapshots made before any change): unchanged."""
    if version is None or version <= 1:
        return X, y
    mapped = store.label_sets.map_labels(y.tolist(), 1, version)
    kept = np.array([label is not None for label in mapped], dtype=bool)
    return X[kept], np.array([label for label in mapped if label is not None], dtype=object)


def evaluate(model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:  # noqa: N803
    predicted = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, average="macro")),
        "eval_samples": float(len(y)),
    }


def class_probabilities(model, X: np.ndarray, classes: list[str]) -> np.ndarray:  # noqa: N803
    """Probabilities over the full class list, zero for classes the model has not seen yet.
    A class the model knows that the list no longer has (renamed, merged or split in the
    label set since it was trained) is left out."""
    proba = np.zeros((len(X), len(classes)))
    known = model.predict_proba(X)
    index = {c: i for i, c in enumerate(classes)}
    for j, cls in enumerate(model.classes_):
        if str(cls) in index:
            proba[:, index[str(cls)]] = known[:, j]
    return proba
