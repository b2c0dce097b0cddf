"""Query strategies: which unlabeled samples to ask about next, each pick with a reason.

Every strategy turns the current model's class probabilities into an informativeness score
(higher = ask first) and takes the top `batch_size`, breaking ties by pool order so the same
inputs always give the same picks. Without a model (cold start) picks are uniformly random.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from feature_platform.errors import FeaturePlatformError, closest

STRATEGIES = ("random", "least_confidence", "margin", "entropy")


@dataclass(frozen=True)
class Pick:
    key: str
    score: float
    reason: str
    top_classes: list[tuple[str, float]]


def _scores(strategy: str, proba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ordered = np.sort(proba, axis=1)
    if strategy == "random":
        return rng.random(len(proba))
    if strategy == "least_confidence":
        return 1.0 - ordered[:, -1]
    if strategy == "margin":
        second = ordered[:, -2] if proba.shape[1] > 1 else np.zeros(len(proba))
        return 1.0 - (ordered[:, -1] - second)
    clipped = np.clip(proba, 1e-12, 1.0)
    return -(clipped * np.log(clipped)).sum(axis=1) / np.log(max(proba.shape[1], 2))


def _reason(strategy: str, top: list[tuple[str, float]], rank: int, pool: int) -> str:
    where = f"rank {rank + 1} of {pool} unlabeled samples"
    (c1, p1), (c2, p2) = top[0], top[1] if len(top) > 1 else ("-", 0.0)
    if strategy == "margin":
        return (
            f"margin: the model hesitates between {c1} ({p1:.2f}) and {c2} ({p2:.2f}), "
            f"a margin of {p1 - p2:.2f}; {where}"
        )
    if strategy == "least_confidence":
        return f"least confidence: the model's best guess {c1} has only {p1:.2f}; {where}"
    if strategy == "entropy":
        return f"entropy: the model spreads its belief (top {c1} {p1:.2f}, {c2} {p2:.2f}); {where}"
    return f"random: control sample drawn uniformly from {pool} unlabeled samples"


def select(
    strategy: str,
    keys: Sequence[str],
    proba: np.ndarray | None,
    classes: Sequence[str],
    batch_size: int,
    seed: int = 0,
) -> list[Pick]:
    """Pick `batch_size` keys. `proba` is (len(keys), len(classes)), or None before any model."""
    if strategy not in STRATEGIES:
        raise FeaturePlatformError(
            f"Unknown query strategy {strategy!r}.{closest(strategy, STRATEGIES)} "
            f"Known: {list(STRATEGIES)}."
        )
    if batch_size < 1:
        raise FeaturePlatformError(f"batch_size must be at least 1, got {batch_size}.")
    if batch_size > len(keys):
        raise FeaturePlatformError(
            f"batch_size {batch_size} is larger than the unlabeled pool ({len(keys)} samples)."
        )
    rng = np.random.default_rng(seed)
    if proba is None:
        order = rng.permutation(len(keys))[:batch_size]
        return [
            Pick(
                str(keys[i]),
                0.0,
                f"cold start: no model yet, drawn uniformly from {len(keys)} unlabeled "
                f"samples (seed {seed})",
                [],
            )
            for i in order
        ]
    proba = np.asarray(proba, dtype="float64")
    if proba.shape != (len(keys), len(classes)):
        raise FeaturePlatformError(
            f"proba has shape {proba.shape}; expected ({len(keys)}, {len(classes)})."
        )
    scores = _scores(strategy, proba, rng)
    # Highest score first; ties by pool position, so picks are reproducible.
    order = np.lexsort((np.arange(len(keys)), -scores))[:batch_size]
    top_idx = np.argsort(-proba, axis=1, kind="stable")[:, :3]
    picks = []
    for rank, i in enumerate(order):
        top = [(str(classes[j]), float(proba[i, j])) for j in top_idx[i]]
        picks.append(Pick(str(keys[i]), float(scores[i]), _reason(strategy, top, rank, len(keys)), top))
    return picks
