"""The end-to-end round in plain Python: the same steps the Dagster assets run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_platform import FeatureStore
from feature_platform.catalog import digits
from feature_platform.errors import (
    FeaturePlatformError,
    InvalidAnswerError,
    UnknownFeatureError,
    UnknownTaskError,
)
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.loop import run_loop
from feature_platform.learning.training import build_training_set


def _annotators(accuracy: float = 1.0, seed: int = 0) -> SimulatedAnnotators:
    return SimulatedAnnotators(
        digits.ground_truth_oracle(), digits.CLASSES, count=3, accuracy=accuracy, seed=seed
    )


def test_margin_rounds_raise_accuracy_and_beat_random(tmp_path) -> None:
    from feature_platform import Settings

    results = {}
    for strategy in ("margin", "random"):
        store = FeatureStore(Settings.under(tmp_path / strategy))
        digits.bootstrap(store)
        program = digits.program(strategy=strategy, batch_size=20, label_budget=160, seed=1)
        results[strategy] = run_loop(store, program, _annotators(), rounds=8)
    margin, random = results["margin"], results["random"]
    assert [r.labels for r in margin] == list(range(20, 161, 20))
    assert margin[0].accuracy == random[0].accuracy  # same cold start
    assert margin[-1].accuracy > margin[0].accuracy + 0.2
    assert margin[-1].accuracy > random[-1].accuracy


def test_holdout_never_enters_the_pool_and_labeled_samples_leave_it(digits_store) -> None:
    program = digits.program(batch_size=30)
    holdout = set(digits_store.sources.read(digits.HOLDOUT_SOURCE)["sample_id"].astype(str))
    pool = rounds.candidate_pool(digits_store, program, model=None)
    assert holdout and not holdout & set(pool["sample_key"])
    tasks = rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    again = rounds.candidate_pool(digits_store, program, model=None)
    assert not {t.sample_key for t in tasks} & set(again["sample_key"])
    assert len(again) == len(pool) - 30


def test_training_set_is_point_in_time(digits_store) -> None:
    """A feature value written after a label was given never reaches that label's row."""
    program = digits.program(batch_size=10)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    _annotators().answer(digits_store.queue, "round-001")
    snapshot = digits_store.labels.create_snapshot()
    fsv = digits_store.registry.get("digits", "v1")
    # A later correction: every value of v1 for these samples set to 0.5, stamped after labels.
    later = snapshot.labels["labeled_at"].max() + pd.Timedelta(days=1)
    keys = snapshot.labels["sample_key"].astype(int)
    correction = pd.DataFrame({"sample_id": keys, "event_timestamp": later})
    correction[fsv.feature_names] = 0.5
    digits_store.offline.write_snapshot(fsv, correction)

    built = build_training_set(digits_store, snapshot, "digits@v1")
    raw = digits_store.sources.read(digits.SOURCE).set_index("sample_id")
    expected = raw.loc[keys.to_numpy(), digits.PIXELS].to_numpy() / 16.0
    got = built.frame.set_index(built.frame["sample_id"].astype(int)).loc[keys.to_numpy()]
    np.testing.assert_allclose(got[fsv.feature_names].to_numpy(), expected)
    assert built.label_snapshot_id == snapshot.id and built.feature_set.id == "digits@v1"


def test_bad_input_is_refused_and_changes_nothing(digits_store) -> None:
    program = digits.program(batch_size=5)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    task = rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)[0]
    before = digits_store.queue.answers()

    with pytest.raises(UnknownFeatureError, match="Did you mean 'p10'"):
        digits_store.get_online_features(["digits@v1:p100x"], [1])
    with pytest.raises(UnknownTaskError, match="Unknown task id 'nope'"):
        digits_store.queue.submit("nope", "ann", "3")
    with pytest.raises(InvalidAnswerError, match="not one of its classes"):
        digits_store.queue.submit(task.id, "ann", "eleven")
    with pytest.raises(FeaturePlatformError, match="Unknown query strategy 'margn'"):
        rounds.open_batch(
            digits_store,
            digits.program(strategy="margn", batch_size=5),
            "round-002",
            rounds.candidate_pool(digits_store, program, model=None).assign(proba_0=0.1),
            model_version=None,
        )
    assert digits_store.queue.answers().equals(before)
    assert digits_store.queue.rounds() == ["round-001"]
    assert digits_store.queue.get(task.id).state == "pending"


def test_retrain_refuses_an_unanswered_round(digits_store) -> None:
    program = digits.program(batch_size=5)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    with pytest.raises(FeaturePlatformError, match="round-001 is not fully answered"):
        rounds.retrain(digits_store, program, "round-001")
    assert digits_store.labels.latest() is None


def test_a_new_champion_rescores_open_tasks(digits_store) -> None:
    program = digits.program(batch_size=20, seed=2)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    _annotators().answer(digits_store.queue, "round-001")
    trained = rounds.retrain(digits_store, program, "round-001")
    pool = rounds.candidate_pool(digits_store, program, trained.model)
    rounds.open_batch(digits_store, program, "round-002", pool, model_version="m/1")
    # A better model arrives while round 2 is still open.
    _annotators().answer(digits_store.queue, "round-002")
    better = rounds.retrain(digits_store, program, "round-002").model
    pool = rounds.candidate_pool(digits_store, program, better)
    rounds.open_batch(digits_store, program, "round-003", pool, model_version="m/2")
    result = rounds.rescore_open_tasks(digits_store, program, trained.model, "m/1-again")
    open_tasks = digits_store.queue.tasks(round_key="round-003")
    assert result is not None and len(result.rescored) == len(open_tasks) == 20
    assert {t.model_version for t in open_tasks} == {"m/1-again"}
    assert all(t.reason.startswith("re-scored by m/1-again: margin") for t in open_tasks)
    ranked = sorted(open_tasks, key=lambda t: -t.priority)
    assert [t.score for t in ranked] == sorted((t.score for t in ranked), reverse=True)
