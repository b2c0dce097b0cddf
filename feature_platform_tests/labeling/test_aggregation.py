"""Majority vote, Dawid–Skene and reviewer adjudication; snapshots are immutable and say how
they were made."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.roles import (
    AnnotatorRegistry,
    PermissionDeniedError,
    UnknownAnnotatorError,
)
from feature_platform.labeling.aggregation import dawid_skene, fit_dawid_skene, majority_vote
from feature_platform.labeling.queue import RESOLVED, TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform_tests.conftest import register_people

DIGITS = [str(c) for c in range(10)]
TEAM = (0.9, 0.8, 0.7, 0.55, 0.12)  # the last one is close to random for 10 classes
START = pd.Timestamp("2026-03-01", tz="UTC")


def simulated_answers(n: int, k: int, seed: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """k answers per sample from k of the five TEAM members, wrong answers uniform."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for i in range(n):
        true = DIGITS[rng.integers(10)]
        truth[f"s{i}"] = true
        for j, who in enumerate(rng.choice(len(TEAM), size=k, replace=False)):
            wrong = [c for c in DIGITS if c != true]
            label = true if rng.random() < TEAM[who] else str(rng.choice(wrong))
            rows.append((f"s{i}", f"a{who}", label, START + pd.Timedelta(seconds=10 * i + j)))
    frame = pd.DataFrame(rows, columns=["sample_key", "annotator", "label", "answered_at"])
    return frame, truth


def accuracy(labels: pd.DataFrame, truth: dict[str, str]) -> float:
    return float((labels["label"] == labels["sample_key"].map(truth)).mean())


def test_majority_vote_tie_goes_to_the_label_answered_first() -> None:
    answers = pd.DataFrame(
        [
            ("s1", "a", "dog", START + pd.Timedelta(seconds=2)),
            ("s1", "b", "cat", START + pd.Timedelta(seconds=1)),
            ("s2", "a", "dog", START),
            ("s2", "b", "cat", START),  # same time: text order
        ],
        columns=["sample_key", "annotator", "label", "answered_at"],
    )
    labels = majority_vote(answers).set_index("sample_key")
    assert labels["label"].to_dict() == {"s1": "cat", "s2": "cat"}
    assert labels.loc["s1", "agreement"] == 0.5
    assert labels.loc["s1", "labeled_at"] == START + pd.Timedelta(seconds=2)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_dawid_skene_beats_majority_vote_with_noisy_annotators(k: int) -> None:
    results = []
    for seed in range(5):
        answers, truth = simulated_answers(300, k, seed=100 + seed)
        results.append(
            (accuracy(majority_vote(answers), truth), accuracy(dawid_skene(answers), truth))
        )
    mv, ds = np.mean(results, axis=0)
    print(f"\nk={k}: majority {mv:.3f}, Dawid-Skene {ds:.3f} (5 x 300 samples)")
    assert ds > mv
    if k < 5:
        assert all(d > m for m, d in results)
    else:  # all five answer every sample: majority is already strong, one seed ties
        assert all(d >= m for m, d in results)


def test_dawid_skene_is_deterministic_and_estimates_annotator_quality() -> None:
    answers, _ = simulated_answers(300, 3, seed=1)
    fit = fit_dawid_skene(answers)
    shuffled = fit_dawid_skene(answers.sample(frac=1.0, random_state=5))
    pd.testing.assert_frame_equal(fit.labels, shuffled.labels)
    assert fit.converged
    estimated = fit.annotator_accuracy()
    assert list(estimated.sort_values(ascending=False).index) == ["a0", "a1", "a2", "a3", "a4"]
    assert estimated["a4"] < 0.25
    assert fit.labels["confidence"].between(0, 1).all()
    assert np.allclose(fit.posteriors.sum(axis=1), 1.0)


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    register_people(store.engine, "annotator", "ann", "bob", "cid")
    return store


def test_dawid_skene_snapshot_beats_majority_snapshot_through_the_queue(tmp_path: Path) -> None:
    fs = FeatureStore(Settings.under(tmp_path / "fp"))
    rng = np.random.default_rng(0)
    truth = {f"s{i}": DIGITS[rng.integers(10)] for i in range(150)}
    specs = [TaskSpec(key, "random", 0.0, "test", "digits@v1") for key in truth]
    fs.queue.create_batch("round-001", specs, DIGITS, answers_needed=3)
    team = SimulatedAnnotators(truth, DIGITS, accuracies=TEAM, seed=4)
    assert team.answer(fs.queue, "round-001") == 450

    majority = fs.labels.create_snapshot()
    ds = fs.labels.create_snapshot(method="dawid_skene", note="round-001")
    print(
        f"\nthrough the queue, 150 tasks x 3 answers: majority "
        f"{accuracy(majority.labels, truth):.3f}, Dawid-Skene {accuracy(ds.labels, truth):.3f}"
    )
    assert (majority.method, ds.method) == ("majority", "dawid_skene")
    assert majority.id != ds.id
    assert accuracy(ds.labels, truth) > accuracy(majority.labels, truth)
    assert ds.answer_count == majority.answer_count == 450
    assert len(fs.queue.answers()) == 450  # every raw answer kept
    assert fs.queue.counts("round-001")[RESOLVED] == 150
    assert fs.labels.get(majority.id).labels.equals(majority.labels)  # unchanged by the 2nd


def _conflicted_store(fs: FeatureStore) -> tuple[str, str]:
    t1, t2 = fs.queue.create_batch(
        "r1",
        [TaskSpec("s1", "margin", 0.4, "test", "pets@v1"), TaskSpec("s2", "margin", 0.3, "t", "p")],
        ["cat", "dog"],
        answers_needed=3,
    )
    for who, label in (("ann", "cat"), ("bob", "cat"), ("cid", "dog")):
        fs.queue.submit(t1.id, who, label)
        fs.queue.submit(t2.id, who, "dog")
    return t1.id, t2.id


def test_reviewer_decision_overrides_every_method_and_is_kept_apart(fs: FeatureStore) -> None:
    conflicted, agreed = _conflicted_store(fs)
    registry = AnnotatorRegistry(fs.engine)
    registry.add("rita", "reviewer")
    registry.add("ann", "annotator")
    adjudications = fs.labels.adjudications

    conflicts = adjudications.conflicts()
    assert conflicts["task_id"].tolist() == [conflicted]
    assert conflicts.loc[0, "votes"] == {"cat": 2, "dog": 1}

    with pytest.raises(PermissionDeniedError, match="'ann' may not adjudicate"):
        adjudications.decide(conflicted, "dog", "ann")
    with pytest.raises(UnknownAnnotatorError, match="Unknown annotator 'zed'"):
        adjudications.decide(conflicted, "dog", "zed")
    with pytest.raises(FeaturePlatformError, match="not one of its classes"):
        adjudications.decide(conflicted, "horse", "rita")

    decision = adjudications.decide(conflicted, "dog", "rita", reason="ears are a dog's")
    assert adjudications.conflicts().empty
    for method in ("majority", "dawid_skene"):
        snapshot = fs.labels.create_snapshot(method=method)
        labels = snapshot.labels.set_index("sample_key")["label"].to_dict()
        assert labels == {"s1": "dog", "s2": "dog"}
        details = fs.labels.details(snapshot.id).set_index("sample_key")
        assert details.loc["s1", "source"] == "adjudication"
        assert details.loc["s1", "reviewer"] == "rita"
        assert details.loc["s1", "adjudication_id"] == decision.id
        assert details.loc["s1", "agreement"] == pytest.approx(1 / 3)
        assert details.loc["s2", "source"] == "aggregate"
    raw = fs.queue.answers()
    assert sorted(raw.loc[raw["task_id"] == conflicted, "label"]) == ["cat", "cat", "dog"]
    ignoring = fs.labels.create_snapshot(adjudicate=False)
    assert ignoring.labels.set_index("sample_key").loc["s1", "label"] == "cat"
    audit = AuditLog(fs.engine).entries(action="label.adjudicate")
    assert audit.loc[0, "actor"] == "rita"
    assert audit.loc[0, "detail"]["reason"] == "ears are a dog's"
    assert [(e.event, e.annotator) for e in fs.queue.history(conflicted)][-2:] == [
        ("adjudicated", "rita"),
        ("state", None),  # resolved by the first snapshot
    ]

    # A later decision supersedes the first; both stay on record.
    adjudications.decide(conflicted, "cat", "rita", reason="second look")
    latest = fs.labels.create_snapshot().labels.set_index("sample_key")
    assert latest.loc["s1", "label"] == "cat"
    assert len(adjudications.all()) == 2
    assert agreed not in set(adjudications.all()["task_id"])


def test_snapshot_rows_changed_after_the_fact_are_refused(fs: FeatureStore) -> None:
    _conflicted_store(fs)
    snapshot = fs.labels.create_snapshot()
    with fs.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE label_snapshot_rows SET label = 'dog' "
                "WHERE snapshot_id = :id AND sample_key = 's1'"
            ),
            {"id": snapshot.id},
        )
    with pytest.raises(FeaturePlatformError, match="changed after the fact"):
        fs.labels.get(snapshot.id)
    with pytest.raises(FeaturePlatformError, match="Unknown aggregation 'dawid'"):
        fs.labels.create_snapshot(method="dawid")
    assert fs.labels.snapshots()["method"].tolist() == ["majority"]
