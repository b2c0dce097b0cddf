"""Scorers for auto-labels: what proposes a label and a confidence for each unlabeled sample.

`champion` (the default) is the program's champion model: its class probabilities on the pool
and on the held-out split. `label_spreading` is semi-supervised: scikit-learn's
`LabelSpreading` with a k-nearest-neighbour graph over the labeled samples, the unlabeled
pool and the held-out split (whose labels it never sees), each label spread along the graph.
Its propagated class distributions score the pool and the held-out split alike, so the
calibration on the held-out split (`auto_labels.calibrate_threshold`) measures the same
procedure that labels the pool. Where the data has cluster structure (digits), a few labels
per cluster label much of the pool, including samples the champion is not yet confident
about, which are the ones that teach it something.

Both return probabilities over the program's classes; `auto_labels.auto_label_round` takes
it from there (threshold, quota, high-stakes classes, review).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CHAMPION = "champion"
LABEL_SPREADING = "label_spreading"
SCORERS = (CHAMPION, LABEL_SPREADING)

# Parameters each scorer accepts and their defaults (`auto_labels.scorer_params`).
SCORER_PARAMS: dict[str, dict[str, Any]] = {
    CHAMPION: {},
    LABEL_SPREADING: {
        "n_neighbors": 7,  # neighbours in the kNN graph
        "alpha": 0.2,  # share of a node's label taken from its neighbours (0: clamp labels)
        "max_iter": 100,
        "agree_with_champion": False,  # keep only samples where the champion predicts the same
        "machine_seeds": False,  # spread every training label, not only people's
    },
}


def scorer_params(scorer: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The scorer's parameters: its defaults updated with `given`."""
    return {**SCORER_PARAMS[scorer], **dict(given or {})}


def scorer_problems(scorer: Any, params: Any) -> list[tuple[str, str]]:
    """(key, message) for a bad scorer name or parameter (keys relative to `auto_labels`)."""
    from feature_platform.errors import closest

    if not isinstance(scorer, str) or scorer not in SCORERS:
        hint = closest(scorer, SCORERS) if isinstance(scorer, str) else ""
        return [("scorer", f"unknown scorer {scorer!r}.{hint} Known: {', '.join(SCORERS)}.")]
    if params is None:
        return []
    if not isinstance(params, Mapping):
        return [("scorer_params", f"expected a mapping, got {params!r}")]
    found: list[tuple[str, str]] = []
    known = SCORER_PARAMS[scorer]
    for key, value in params.items():
        if key not in known:
            names = ", ".join(known) or "none"
            found.append(
                (f"scorer_params.{key}", f"not a parameter of scorer {scorer!r} (known: {names})")
            )
            continue
        default = known[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                found.append((f"scorer_params.{key}", f"expected true or false, got {value!r}"))
        elif isinstance(default, int):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                found.append((f"scorer_params.{key}", f"expected an integer >= 1, got {value!r}"))
        elif not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
        ):
            found.append((f"scorer_params.{key}", f"expected a number in [0, 1), got {value!r}"))
    return found


def label_spreading_proba(
    labeled: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    unlabeled: Sequence[np.ndarray],
    classes: Sequence[str],
    params: Mapping[str, Any] | None = None,
) -> list[np.ndarray]:
    """Class distributions over `classes` for each block of `unlabeled` rows, after spreading
    `labels` of the `labeled` rows over one kNN graph of every row (scikit-learn's
    `LabelSpreading`, kernel `knn`). Rows of a block are only nodes of the graph: their own
    labels are never read. A class with no labeled row gets probability 0."""
    from sklearn.semi_supervised import LabelSpreading

    settings = scorer_params(LABEL_SPREADING, params)
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray(labels).astype(str)
    keep = np.isin(labels, classes)
    labeled, labels = np.asarray(labeled, dtype=float)[keep], labels[keep]
    blocks = [np.asarray(b, dtype=float).reshape(-1, labeled.shape[1]) for b in unlabeled]
    sizes = [len(b) for b in blocks]
    empty = [np.zeros((n, len(classes))) for n in sizes]
    if len(np.unique(labels)) < 2 or sum(sizes) == 0:
        return empty
    X = np.vstack([labeled, *blocks])  # noqa: N806
    y = np.r_[np.array([index[c] for c in labels]), np.full(sum(sizes), -1)]
    model = LabelSpreading(
        kernel="knn",
        n_neighbors=min(int(settings["n_neighbors"]), len(X) - 1),
        alpha=float(settings["alpha"]),
        max_iter=int(settings["max_iter"]),
    ).fit(X, y)
    spread = np.nan_to_num(model.label_distributions_[len(labeled) :], nan=0.0)
    proba = np.zeros((len(spread), len(classes)))
    proba[:, model.classes_.astype(int)] = spread
    out, start = [], 0
    for n in sizes:
        out.append(proba[start : start + n])
        start += n
    return out


def agreeing(proba: np.ndarray, champion_proba: np.ndarray) -> np.ndarray:
    """`proba` with the rows where the champion's top class differs set to 0 (never accepted)."""
    proba = np.asarray(proba, dtype=float).copy()
    if len(proba):
        differ = proba.argmax(axis=1) != np.asarray(champion_proba).argmax(axis=1)
        proba[differ] = 0.0
    return proba
