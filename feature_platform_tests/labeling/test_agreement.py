"""Agreement statistics checked against published worked examples and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from feature_platform.labeling.agreement import (
    agreement_summary,
    annotator_agreement,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_kappa,
    percent_agreement,
    sample_agreement,
)


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sample_key", "annotator", "label"])


def from_counts(table: list[list[int]]) -> pd.DataFrame:
    """Answers that reproduce a samples x categories count table (raters are anonymous)."""
    rows = []
    for i, counts in enumerate(table):
        rater = 0
        for category, count in enumerate(counts):
            for _ in range(count):
                rows.append((f"s{i}", f"r{rater}", f"c{category}"))
                rater += 1
    return frame(rows)


def test_fleiss_kappa_matches_the_textbook_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(from_counts(table)) == pytest.approx(0.210, abs=5e-4)


def test_krippendorff_alpha_matches_the_published_example_with_missing_answers() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers,
    # 12 units, nominal data with missing values -> alpha = 0.743.
    observers = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    rows = [
        (f"u{unit}", name, str(value))
        for name, values in observers.items()
        for unit, value in enumerate(values)
        if value is not None
    ]
    assert krippendorff_alpha(frame(rows)) == pytest.approx(0.743, abs=5e-4)


def test_cohen_kappa_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    a = rng.choice(list("xyz"), size=200)
    b = np.where(rng.random(200) < 0.7, a, rng.choice(list("xyz"), size=200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0  # no variation, full agreement


def test_pairwise_and_per_sample_agreement() -> None:
    answers = frame(
        [
            ("s1", "ann", "cat"),
            ("s1", "bob", "cat"),
            ("s1", "cid", "dog"),
            ("s2", "ann", "dog"),
            ("s2", "bob", "dog"),
            ("s3", "ann", "cat"),  # single answer: no agreement information
        ]
    )
    per_sample = sample_agreement(answers).set_index("sample_key")
    assert per_sample.loc["s1", "pairwise"] == pytest.approx(1 / 3)
    assert per_sample.loc["s2", "pairwise"] == 1.0
    assert np.isnan(per_sample.loc["s3", "pairwise"])
    assert per_sample.loc["s1", "top_label"] == "cat"
    assert percent_agreement(answers) == pytest.approx((1 / 3 + 1) / 2)
    pairs = pairwise_kappa(answers).set_index(["annotator_a", "annotator_b"])
    assert pairs.loc[("ann", "bob"), "n_common"] == 2
    assert pairs.loc[("ann", "bob"), "percent_agreement"] == 1.0
    assert pairs.loc[("ann", "cid"), "percent_agreement"] == 0.0
    summary = agreement_summary(answers)
    assert (summary["samples"], summary["overlapping_samples"]) == (3.0, 2.0)


def test_annotator_accuracy_against_consensus_finds_the_careless_one() -> None:
    rng = np.random.default_rng(11)
    accuracies = {"good": 0.95, "fair": 0.8, "ok": 0.75, "random": 0.1}
    classes = [str(c) for c in range(10)]
    rows = []
    for i in range(300):
        truth = str(rng.integers(10))
        for name, accuracy in accuracies.items():
            label = truth if rng.random() < accuracy else str(rng.choice(classes))
            rows.append((f"s{i}", name, label))
    answers = frame(rows)
    report = annotator_agreement(answers).set_index("annotator")
    assert report["accuracy_vs_consensus"].idxmin() == "random"
    assert report["accuracy_vs_consensus"].idxmax() == "good"
    assert report.loc["random", "mean_kappa"] < 0.1 < report.loc["good", "mean_kappa"]
    assert report.loc["good", "n_overlapping"] == 300
    # Against a given consensus (here the truth-like majority of the three careful ones).
    given = answers[answers["annotator"] == "good"][["sample_key", "label"]]
    against_good = annotator_agreement(answers, consensus=given).set_index("annotator")
    assert against_good.loc["good", "accuracy_vs_consensus"] == 1.0
    assert 0.2 > against_good.loc["random", "accuracy_vs_consensus"]
    assert fleiss_kappa(answers) == pytest.approx(krippendorff_alpha(answers), abs=0.01)
