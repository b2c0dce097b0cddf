"""Turning raw answers into one label per sample, deterministically.

Every aggregator takes the answers frame (`TaskQueue.answers()`: at least sample_key,
annotator, label, answered_at) and returns one row per sample with LABEL_COLUMNS, plus a
`confidence` column (how sure the method is of its label, in [0, 1]). The same answers always
give the same labels: no randomness, ties broken by documented rules.

An optional `weight` column (default 1 per answer) says how much each answer counts: label
snapshots that mix people's answers with machine labels (model, rule, feedback) weigh each
source kind. Majority vote sums weights; Dawid-Skene counts a weight-w answer as w answers in
both the confusion estimates and the posteriors (a weighted likelihood). All weights 1 is the
unweighted method exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LABEL_COLUMNS = ["sample_key", "label", "n_answers", "agreement", "labeled_at"]
CONFIDENCE = "confidence"
# Dawid-Skene needs this many samples answered more than once to estimate annotators from.
MIN_OVERLAP = 10


WEIGHT = "weight"


def _prepared(answers: pd.DataFrame) -> pd.DataFrame:
    frame = answers[["sample_key", "annotator", "label", "answered_at"]].copy()
    frame[WEIGHT] = answers[WEIGHT].astype(float).to_numpy() if WEIGHT in answers.columns else 1.0
    frame["sample_key"] = frame["sample_key"].astype(str)
    frame["label"] = frame["label"].astype(str)
    frame["answered_at"] = pd.to_datetime(frame["answered_at"], utc=True)
    return frame


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*LABEL_COLUMNS, CONFIDENCE])


def _finish(frame: pd.DataFrame, chosen: pd.Series, confidence: pd.Series) -> pd.DataFrame:
    """Attach n_answers, agreement (share of answers equal to the chosen label) and labeled_at
    (the last answer: the moment the label became known, for point-in-time joins)."""
    per_sample = frame.groupby("sample_key").agg(
        n_answers=("label", "size"), labeled_at=("answered_at", "max")
    )
    agreeing = (
        frame.assign(chosen=frame["sample_key"].map(chosen))
        .assign(agrees=lambda f: f["label"] == f["chosen"])
        .groupby("sample_key")["agrees"]
        .sum()
    )
    result = per_sample.assign(
        label=chosen,
        agreement=agreeing / per_sample["n_answers"],
        confidence=confidence,
    )
    result = result.reset_index()
    result["n_answers"] = result["n_answers"].astype(int)
    result["agreement"] = result["agreement"].astype(float)
    result[CONFIDENCE] = result[CONFIDENCE].astype(float)
    return result[[*LABEL_COLUMNS, CONFIDENCE]].sort_values("sample_key", ignore_index=True)


def majority_vote(answers: pd.DataFrame) -> pd.DataFrame:
    """One label per sample: the most frequent answer (the most weight, with a `weight` column).

    Tie-break (documented, replayable): among tied labels, the one whose first answer arrived
    earliest wins; equal arrival times fall back to the label's text order. `agreement` is the
    winning label's share of the answers; `labeled_at` is when the last answer arrived (the
    moment the label became known, used for point-in-time joins). `confidence` = agreement
    (with weights: the winning label's share of the weight).
    """
    if answers.empty:
        return _empty()
    frame = _prepared(answers)
    votes = (
        frame.groupby(["sample_key", "label"], sort=True)
        .agg(votes=(WEIGHT, "sum"), first_at=("answered_at", "min"))
        .reset_index()
        .sort_values(
            ["sample_key", "votes", "first_at", "label"],
            ascending=[True, False, True, True],
            kind="stable",
        )
    )
    winners = votes.drop_duplicates("sample_key", keep="first").set_index("sample_key")
    counts = frame.groupby("sample_key")[WEIGHT].sum()
    return _finish(frame, winners["label"], winners["votes"] / counts)


@dataclass(frozen=True)
class DawidSkeneFit:
    """The fitted model: per-sample posteriors, class priors and each annotator's confusion
    matrix (rows: true class, columns: answered class)."""

    labels: pd.DataFrame  # LABEL_COLUMNS + confidence
    posteriors: pd.DataFrame  # index sample_key, one column per class
    priors: pd.Series  # index class
    confusion: dict[str, pd.DataFrame]
    iterations: int
    converged: bool
    # What actually ran ("dawid_skene", or "majority" when the answers hold nothing to
    # estimate annotators from) and why, in words fit for a snapshot's metadata.
    method: str = "dawid_skene"
    reason: str = ""

    def annotator_accuracy(self) -> pd.Series:
        """Each annotator's estimated probability of answering the true class."""
        return pd.Series(
            {
                name: float((self.priors * np.diag(matrix.to_numpy())).sum())
                for name, matrix in sorted(self.confusion.items())
            },
            name="estimated_accuracy",
        )


def fit_dawid_skene(
    answers: pd.DataFrame,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    smoothing: float = 0.01,
    shrinkage: float | None = None,
    min_overlap: int = MIN_OVERLAP,
) -> DawidSkeneFit:
    """Dawid & Skene (1979): EM over per-annotator confusion matrices and class priors.

    Starts from the majority-vote shares (deterministic: no random start), then alternates
    M-step (priors and confusion matrices from the current posteriors) and E-step (posteriors
    from priors x each answer's confusion entry) until no posterior moves more than `tol`.

    A full confusion matrix has K x (K - 1) free entries per annotator, more than a labeling
    round gives evidence for, so each row gets a Dirichlet prior (MAP estimate): `shrinkage`
    pseudo-answers (default K) spread like the annotator's *overall* accuracy ("one coin":
    right with their accuracy, wrong uniformly otherwise), plus `smoothing` per cell so no
    (true, answered) pair is impossible. Rows with many answers follow their own confusions;
    sparse rows lean on the annotator's overall reliability. `shrinkage=0, smoothing>0` is the
    classic estimate.

    Only samples with two or more answers say anything about an annotator: a lone answer is
    always "right" by its own posterior, so letting it into the M-step lets EM chase its own
    echo (with one answer per sample it ran 1000 iterations and overturned 40 % of 10-class
    labels given by perfect annotators). So confusion matrices come from the samples answered
    more than once; single-answer samples only receive posteriors, and an annotator with no
    answer on a shared sample is given the team's pooled one-coin accuracy. With fewer than
    `min_overlap` shared samples there is nothing to estimate: the fit falls back to majority
    vote and says so (`method`, `reason`).

    Classes are the labels that occur in the answers (a class nobody chose cannot win). Ties
    in the final posterior (within 1e-9) go to the majority-vote label.
    """
    if answers.empty:
        empty = pd.DataFrame()
        return DawidSkeneFit(_empty(), empty, pd.Series(dtype=float), {}, 0, True)
    frame = _prepared(answers)
    per_item = frame.groupby("sample_key").size()
    shared = int((per_item >= 2).sum())
    if shared < min_overlap:
        if shared == 0:
            why = "no sample has more than one answer"
        else:
            why = (
                f"only {shared} of {len(per_item)} samples have more than one answer "
                f"(Dawid-Skene needs at least {min_overlap})"
            )
        return _majority_fit(
            answers,
            frame,
            f"{why}, so there is nothing to estimate annotator quality from: each label is "
            f"the majority vote of its answers ({len(frame)} answers on {len(per_item)} samples)",
        )
    items = np.sort(frame["sample_key"].unique())
    raters = np.sort(frame["annotator"].astype(str).unique())
    classes = np.sort(frame["label"].unique())
    item_idx = np.searchsorted(items, frame["sample_key"].to_numpy())
    rater_idx = np.searchsorted(raters, frame["annotator"].astype(str).to_numpy())
    label_idx = np.searchsorted(classes, frame["label"].to_numpy())
    weight = frame[WEIGHT].to_numpy(dtype=float)
    n_items, n_raters, n_classes = len(items), len(raters), len(classes)
    shrinkage = float(n_classes) if shrinkage is None else shrinkage

    posterior = np.zeros((n_items, n_classes))
    np.add.at(posterior, (item_idx, label_idx), weight)
    posterior /= posterior.sum(axis=1, keepdims=True)
    # Answers on samples answered more than once: the only evidence about annotators.
    on_shared = per_item.reindex(frame["sample_key"]).to_numpy() >= 2
    s_rater, s_item, s_label = rater_idx[on_shared], item_idx[on_shared], label_idx[on_shared]
    s_weight = weight[on_shared]
    has_overlap = np.bincount(s_rater, minlength=n_raters) > 0
    diagonal = np.arange(n_classes)

    def one_coin(accuracy: np.ndarray) -> np.ndarray:
        """(len(accuracy), K, K): right with `accuracy`, wrong uniformly otherwise."""
        off_diagonal = (1 - accuracy) / max(n_classes - 1, 1)
        centre = np.broadcast_to(off_diagonal[:, None, None], (len(accuracy),) + (n_classes,) * 2)
        centre = centre.copy()
        centre[:, diagonal, diagonal] = accuracy[:, None]
        return centre

    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        priors = (posterior.sum(axis=0) + smoothing) / (n_items + smoothing * n_classes)
        counts = np.zeros((n_raters, n_classes, n_classes))
        # counts[r, true, answered] += P(item's true class = true) for each shared answer
        np.add.at(counts, (s_rater, slice(None), s_label), posterior[s_item] * s_weight[:, None])
        total = counts.sum(axis=(1, 2))
        pooled = float(np.trace(counts.sum(axis=0)) / total.sum())
        overall = np.where(
            has_overlap, np.trace(counts, axis1=1, axis2=2) / np.maximum(total, 1e-12), pooled
        )
        confusion = counts + smoothing
        if shrinkage > 0 and n_classes > 1:
            # Prior centred on each annotator's overall accuracy ("one coin"): rows with few
            # answers lean on it, rows with many follow their own confusions.
            confusion += shrinkage * one_coin(overall)
        # No shared answer: no evidence of their own, so the team's pooled accuracy.
        confusion[~has_overlap] = one_coin(np.full((~has_overlap).sum(), pooled)) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        log_post = np.tile(np.log(priors), (n_items, 1))
        np.add.at(log_post, item_idx, weight[:, None] * np.log(confusion[rater_idx, :, label_idx]))
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max())
        posterior = updated
        if change < tol:
            converged = True
            break

    majority = majority_vote(answers).set_index("sample_key")["label"]
    best = posterior.max(axis=1)
    chosen = []
    for i, key in enumerate(items):
        tied = classes[posterior[i] >= best[i] - 1e-9]
        chosen.append(majority[key] if majority[key] in tied else tied[0])
    labels = _finish(
        frame,
        pd.Series(chosen, index=items),
        pd.Series(posterior[np.arange(n_items), np.searchsorted(classes, chosen)], index=items),
    )
    return DawidSkeneFit(
        labels=labels,
        posteriors=pd.DataFrame(
            posterior, index=pd.Index(items, name="sample_key"), columns=classes
        ),
        priors=pd.Series(priors, index=classes),
        confusion={
            str(name): pd.DataFrame(confusion[r], index=classes, columns=classes)
            for r, name in enumerate(raters)
        },
        iterations=iterations,
        converged=converged,
        method="dawid_skene",
        reason=_overlap_reason(shared, n_items, raters[~has_overlap], pooled),
    )


def _overlap_reason(shared: int, n_items: int, alone: np.ndarray, pooled: float) -> str:
    if shared == n_items:
        why = f"all {n_items} samples have more than one answer: annotator quality estimated"
    else:
        why = (
            f"{shared} of {n_items} samples have more than one answer: annotator quality "
            f"estimated from those only; the {n_items - shared} single-answer samples are "
            f"scored with it"
        )
    if len(alone):
        names = ", ".join(map(str, alone[:5])) + (" ..." if len(alone) > 5 else "")
        why += (
            f"; {len(alone)} annotator(s) with no answer on a shared sample ({names}) are "
            f"given the team's pooled accuracy {pooled:.2f}"
        )
    return why


def _majority_fit(answers: pd.DataFrame, frame: pd.DataFrame, reason: str) -> DawidSkeneFit:
    """The majority vote dressed as a fit: posteriors are the vote shares, priors the answer
    shares, no confusion matrices (nothing was estimated)."""
    shares = pd.crosstab(
        frame["sample_key"], frame["label"], values=frame[WEIGHT], aggfunc="sum"
    ).fillna(0.0)
    shares = shares.div(shares.sum(axis=1), axis=0)
    shares.columns.name = "label"
    shares.index.name = "sample_key"
    return DawidSkeneFit(
        labels=majority_vote(answers),
        posteriors=shares,
        priors=frame["label"].value_counts(normalize=True).sort_index(),
        confusion={},
        iterations=0,
        converged=True,
        method="majority",
        reason=reason,
    )


def dawid_skene(answers: pd.DataFrame) -> pd.DataFrame:
    """One label per sample by Dawid–Skene; `confidence` is the label's posterior."""
    return fit_dawid_skene(answers).labels


AGGREGATORS = {"majority": majority_vote, "dawid_skene": dawid_skene}


@dataclass(frozen=True)
class Aggregation:
    """Labels plus what produced them: the method asked for, the one that ran, and why."""

    labels: pd.DataFrame  # LABEL_COLUMNS + confidence
    method: str
    method_used: str
    note: str = ""


def aggregate(method: str, answers: pd.DataFrame) -> Aggregation:
    """Run the aggregator `method` (a key of AGGREGATORS) and say which method actually ran:
    Dawid-Skene falls back to majority vote when no annotator can be estimated."""
    if method == "dawid_skene":
        fit = fit_dawid_skene(answers)
        return Aggregation(fit.labels, method, fit.method, fit.reason)
    return Aggregation(AGGREGATORS[method](answers), method, method)
