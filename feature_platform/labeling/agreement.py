"""Inter-annotator agreement: per sample, per annotator, and for the whole team.

All functions read the answers frame (`TaskQueue.answers()`: sample_key, annotator, label).
The unit of agreement is a sample; samples with fewer than two answers carry no information
about agreement and are left out of every statistic except the counts.

- percent agreement: share of pairs of answers on the same sample that agree;
- Cohen's kappa: chance-corrected agreement of two annotators on the samples both answered;
- Fleiss' kappa: chance-corrected agreement of many annotators (samples may have different
  numbers of answers: each sample's observed agreement uses its own count);
- Krippendorff's alpha (nominal): handles any number of annotators and missing answers;
- each annotator's accuracy against a consensus label (by default the majority vote of the
  *other* annotators on that sample, so nobody agrees with themselves).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from feature_platform.errors import InvalidArgumentError


def _overlapping(answers: pd.DataFrame) -> pd.DataFrame:
    frame = answers[["sample_key", "annotator", "label"]].astype(str)
    sizes = frame.groupby("sample_key")["label"].transform("size")
    return frame[sizes >= 2]


def _count_matrix(answers: pd.DataFrame) -> pd.DataFrame:
    """samples x classes: how many answers gave each class."""
    return pd.crosstab(answers["sample_key"], answers["label"])


def sample_agreement(answers: pd.DataFrame) -> pd.DataFrame:
    """Per sample: n_answers, n_labels (distinct), top_label, top_share and pairwise agreement
    (share of answer pairs that agree; NaN with one answer)."""
    columns = ["sample_key", "n_answers", "n_labels", "top_label", "top_share", "pairwise"]
    if answers.empty:
        return pd.DataFrame(columns=columns)
    counts = _count_matrix(answers.astype({"label": str, "sample_key": str}))
    n = counts.sum(axis=1)
    pairs = n * (n - 1)
    agreeing = (counts * (counts - 1)).sum(axis=1)
    result = pd.DataFrame(
        {
            "n_answers": n,
            "n_labels": (counts > 0).sum(axis=1),
            "top_label": counts.idxmax(axis=1),  # first column in text order among ties
            "top_share": counts.max(axis=1) / n,
            "pairwise": (agreeing / pairs.where(pairs > 0)).astype(float),
        }
    )
    return result.reset_index()[columns]


def percent_agreement(answers: pd.DataFrame) -> float:
    """Mean over overlapping samples of the share of agreeing answer pairs (NaN if none)."""
    per_sample = sample_agreement(answers)["pairwise"].dropna()
    return float(per_sample.mean()) if len(per_sample) else float("nan")


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two equally long label sequences (the same items, two raters).

    1 = perfect agreement, 0 = what chance gives, negative = worse than chance. When both
    raters always use one and the same label, expected agreement is 1 and kappa is undefined:
    returns 1.0 if they agree everywhere, else NaN.
    """
    a, b = np.asarray(first, dtype=str), np.asarray(second, dtype=str)
    if len(a) != len(b):
        raise InvalidArgumentError(
            f"Both raters need the same items; got {len(a)} and {len(b)} labels."
        )
    if len(a) == 0:
        return float("nan")
    observed = float((a == b).mean())
    labels = np.union1d(a, b)
    expected = float(sum((a == label).mean() * (b == label).mean() for label in labels))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else float("nan")
    return (observed - expected) / (1.0 - expected)


def pairwise_kappa(answers: pd.DataFrame, min_common: int = 1) -> pd.DataFrame:
    """Cohen's kappa and percent agreement for every pair of annotators with at least
    `min_common` samples in common."""
    columns = ["annotator_a", "annotator_b", "n_common", "percent_agreement", "kappa"]
    frame = _overlapping(answers)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    wide = frame.drop_duplicates(["sample_key", "annotator"]).pivot(
        index="sample_key", columns="annotator", values="label"
    )
    rows = []
    for first, second in combinations(sorted(wide.columns), 2):
        both = wide[[first, second]].dropna()
        if len(both) < max(min_common, 1):
            continue
        rows.append(
            {
                "annotator_a": first,
                "annotator_b": second,
                "n_common": int(len(both)),
                "percent_agreement": float((both[first] == both[second]).mean()),
                "kappa": cohen_kappa(both[first].tolist(), both[second].tolist()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def fleiss_kappa(answers: pd.DataFrame) -> float:
    """Fleiss' kappa over samples with two or more answers (NaN if there are none)."""
    frame = _overlapping(answers)
    if frame.empty:
        return float("nan")
    counts = _count_matrix(frame).to_numpy(dtype=float)
    n = counts.sum(axis=1)
    observed = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares**2).sum())
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else float("nan")
    return float((observed - expected) / (1.0 - expected))


def krippendorff_alpha(answers: pd.DataFrame) -> float:
    """Krippendorff's alpha for nominal labels (NaN when there is nothing to compare, or when
    every answer is the same label so no disagreement is even possible)."""
    frame = _overlapping(answers)
    if frame.empty:
        return float("nan")
    counts = _count_matrix(frame).to_numpy(dtype=float)
    m = counts.sum(axis=1, keepdims=True)
    # Coincidence matrix: each unit's ordered pairs of answers, weighted 1 / (m_u - 1).
    coincidence = (counts[:, :, None] * counts[:, None, :]) / (m[:, :, None] - 1)
    coincidence = coincidence.sum(axis=0)
    diagonal_pairs = (counts * (counts - 1) / (m - 1)).sum(axis=0)
    coincidence[np.diag_indices_from(coincidence)] = diagonal_pairs
    totals = coincidence.sum(axis=1)
    total = totals.sum()
    observed_disagreement = coincidence.sum() - np.trace(coincidence)
    expected_disagreement = (totals.sum() ** 2 - (totals**2).sum()) / (total - 1)
    if expected_disagreement == 0:
        return float("nan")
    return float(1.0 - observed_disagreement / expected_disagreement)


def leave_one_out_consensus(answers: pd.DataFrame) -> pd.DataFrame:
    """For every answer, the label most of the *other* annotators gave on its sample
    (`consensus`, NaN when nobody else answered or the others tie)."""
    frame = answers[["sample_key", "annotator", "label"]].astype(str).reset_index(drop=True)
    counts = frame.groupby(["sample_key", "label"]).size()
    consensus: list[object] = []
    for row in frame.itertuples(index=False):
        others = counts.loc[row.sample_key].copy()
        others.loc[row.label] -= 1
        others = others[others > 0]
        if others.empty or (others == others.max()).sum() > 1:
            consensus.append(np.nan)
        else:
            consensus.append(others.idxmax())
    return frame.assign(consensus=consensus)


def annotator_agreement(
    answers: pd.DataFrame, consensus: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per annotator: n_answers; n_overlapping (answers on samples someone else answered too);
    percent agreement and mean Cohen's kappa with co-annotators; and accuracy against a
    consensus (`n_scored` answers had one). `consensus` is a frame with sample_key and label
    (e.g. a label snapshot or Dawid–Skene labels); by default the leave-one-out majority of
    the other annotators is used."""
    columns = [
        "annotator",
        "n_answers",
        "n_overlapping",
        "percent_agreement",
        "mean_kappa",
        "n_scored",
        "accuracy_vs_consensus",
    ]
    if answers.empty:
        return pd.DataFrame(columns=columns)
    frame = answers[["sample_key", "annotator", "label"]].astype(str)
    if consensus is None:
        scored = leave_one_out_consensus(frame)
    else:
        reference = consensus.astype({"sample_key": str, "label": str})
        scored = frame.merge(
            reference[["sample_key", "label"]].rename(columns={"label": "consensus"}),
            on="sample_key",
            how="left",
        )
    scored = scored.dropna(subset=["consensus"])
    pairs = pairwise_kappa(frame)
    both_ways = pd.concat(
        [
            pairs.rename(columns={"annotator_a": "annotator"}),
            pairs.rename(columns={"annotator_b": "annotator", "annotator_a": "annotator_b"}),
        ]
    )
    rows = []
    overlapping = _overlapping(frame)
    for name, own in frame.groupby("annotator", sort=True):
        mine = both_ways[both_ways["annotator"] == name]
        graded = scored[scored["annotator"] == name]
        weights = mine["n_common"].astype(float)
        rows.append(
            {
                "annotator": name,
                "n_answers": int(len(own)),
                "n_overlapping": int((overlapping["annotator"] == name).sum()),
                "percent_agreement": float(np.average(mine["percent_agreement"], weights=weights))
                if len(mine)
                else float("nan"),
                "mean_kappa": float(mine["kappa"].mean()) if len(mine) else float("nan"),
                "n_scored": int(len(graded)),
                "accuracy_vs_consensus": float((graded["label"] == graded["consensus"]).mean())
                if len(graded)
                else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def agreement_summary(answers: pd.DataFrame) -> dict[str, float]:
    """Team-level figures: samples, overlapping samples, percent agreement, Fleiss' kappa,
    Krippendorff's alpha."""
    per_sample = sample_agreement(answers)
    return {
        "samples": float(len(per_sample)),
        "overlapping_samples": float((per_sample["n_answers"] >= 2).sum()),
        "percent_agreement": percent_agreement(answers),
        "fleiss_kappa": fleiss_kappa(answers),
        "krippendorff_alpha": krippendorff_alpha(answers),
    }
