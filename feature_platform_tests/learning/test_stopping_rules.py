"""Stopping rules on hand-made round histories: each rule fires when it should, says why."""

from __future__ import annotations

import pytest

from feature_platform.catalog import digits
from feature_platform.errors import FeaturePlatformError
from feature_platform.learning.stopping import (
    RoundRecord,
    StoppingRules,
    agreement,
    label_budget_rule,
    plateau_rule,
    should_stop,
    stabilizing_predictions_rule,
    target_accuracy_rule,
)

KEYS = [f"s{i}" for i in range(100)]


def predictions(flipped: int) -> dict[str, str]:
    """Stop-set predictions over 100 samples in 4 classes, the first `flipped` changed."""
    base = {k: str(i % 4) for i, k in enumerate(KEYS)}
    return {
        k: (str((int(v) + 1) % 4) if i < flipped else v) for i, (k, v) in enumerate(base.items())
    }


def history(accuracies, flips=None, batch=20) -> list[RoundRecord]:
    flips = flips or [None] * len(accuracies)
    return [
        RoundRecord(
            f"round-{n + 1:03d}",
            batch * (n + 1),
            acc,
            None if flip is None else predictions(flip),
        )
        for n, (acc, flip) in enumerate(zip(accuracies, flips, strict=True))
    ]


def test_label_budget() -> None:
    rounds_ = history([0.5, 0.6, 0.7])
    assert label_budget_rule(rounds_, 60) == (True, "label budget spent: 60 of 60 labels used")
    assert label_budget_rule(rounds_, 100) == (False, "60 of 100 labels used")
    assert label_budget_rule(rounds_, 100, labels_spent=100)[0]  # queued counts too
    assert label_budget_rule([], 100) == (False, "0 of 100 labels used")


def test_target_accuracy() -> None:
    stop, reason = target_accuracy_rule(history([0.8, 0.93]), 0.92)
    assert stop and "round-002 scores 0.930" in reason and "40 labels" in reason
    assert target_accuracy_rule(history([0.8, 0.91]), 0.92) == (
        False,
        "accuracy 0.910 < target 0.920",
    )
    assert not target_accuracy_rule(history([None]), 0.9)[0]


def test_stabilizing_predictions_needs_window_consecutive_agreements() -> None:
    # Successive models: flips 40 -> 20 -> 0 -> 0 -> 0: the last three pairs, 20->0 changes.
    stable_late = history([0.8] * 5, flips=[40, 20, 0, 0, 0])
    stop, reason = stabilizing_predictions_rule(stable_late, threshold=0.99, window=3)
    assert not stop and "threshold 0.99" in reason
    stable = history([0.8] * 6, flips=[40, 20, 0, 0, 0, 0])
    stop, reason = stabilizing_predictions_rule(stable, threshold=0.99, window=3)
    assert stop
    assert reason.startswith("predictions stabilized: kappa") and "1.000, 1.000, 1.000" in reason
    # One prediction in 100 changing (kappa ~0.987) is below 0.99 but above 0.98.
    nearly = history([0.8] * 4, flips=[0, 1, 0, 1])
    assert not stabilizing_predictions_rule(nearly, 0.99, 3)[0]
    assert stabilizing_predictions_rule(nearly, 0.98, 3)[0]


def test_stabilizing_predictions_compares_shared_samples_only() -> None:
    previous = predictions(0)
    grown = {**previous, "new-1": "0", "new-2": "3"}
    assert agreement(previous, grown) == (1.0, 100)
    tiny = [RoundRecord(f"round-00{i}", i, None, {"a": "1", "b": "2"}) for i in range(1, 5)]
    stop, reason = stabilizing_predictions_rule(tiny, 0.99, 3)
    assert not stop and "share only 2 stop-set samples" in reason
    assert "needs 4" in stabilizing_predictions_rule(history([0.5, 0.6], [0, 0]), 0.99, 3)[1]


def test_plateau() -> None:
    stop, reason = plateau_rule(history([0.6, 0.8, 0.9, 0.902, 0.899]), patience=2, min_delta=0.005)
    assert stop and "best of the last 2 rounds (0.902)" in reason and "(0.900)" in reason
    assert not plateau_rule(history([0.6, 0.8, 0.9, 0.95]), patience=2)[0]
    assert not plateau_rule(history([0.6, 0.6]), patience=2)[0]


def test_should_stop_reports_the_first_rule_that_fires_or_where_each_stands() -> None:
    rules = StoppingRules.from_program(
        digits.program(label_budget=200),
        target_accuracy=0.95,
        kappa_window_labels=60,
        plateau_labels=60,
    )
    going = should_stop(history([0.7, 0.8, 0.9], flips=[30, 20, 10]), rules)
    assert not going.stop and going.rule is None
    assert going.reason.startswith("continue: 60 of 200 labels used; accuracy 0.900 < target")
    assert "stabilizing needs 60" in going.reason
    reached = should_stop(history([0.7, 0.96]), rules)
    assert reached.stop and reached.rule == "target_accuracy"
    spent = should_stop(history([0.7, 0.96]), rules, labels_spent=200)
    assert spent.rule == "label_budget"  # budget is checked first
    stable = should_stop(history([0.7, 0.8, 0.81, 0.84, 0.85], flips=[9, 0, 0, 0, 0]), rules)
    assert stable.rule == "stabilizing_predictions" and "100 labels" in stable.reason
    assert should_stop([], StoppingRules(kappa_threshold=None, plateau_labels=None)).reason == (
        "continue: no stopping rule is set"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"label_budget": 0}, "label_budget must be positive"),
        ({"target_accuracy": 1.5}, r"target_accuracy must lie in \(0, 1\]"),
        ({"kappa_window": 0}, "kappa_window must be at least 1"),
        ({"plateau_patience": 0}, "plateau_patience must be at least 1"),
    ],
)
def test_bad_settings_are_refused(settings, message) -> None:
    with pytest.raises(FeaturePlatformError, match=message):
        StoppingRules(**settings)


# -- issue 14: rules in labels, not rounds --------------------------------------------------

SETTLED = 300  # the label count after which the simulated model stops changing


def converging(batch: int, budget: int = 600) -> list[RoundRecord]:
    """The same learner seen at different batch sizes: two stop-set predictions change every
    10 labels until SETTLED labels, none after; accuracy rises 0.5 -> 0.9 until SETTLED, flat
    after. Only the batch size differs between histories."""
    records = []
    for n in range(batch, budget + 1, batch):
        changed = 2 * (min(n, SETTLED) // 10)
        base = {k: str(i % 4) for i, k in enumerate(KEYS)}
        for i in range(changed):  # sample i (of 60) has moved to its final class
            base[KEYS[i % 60]] = str((i // 60 + int(base[KEYS[i % 60]]) + 1) % 4)
        accuracy = 0.5 + 0.4 * min(n, SETTLED) / SETTLED
        records.append(RoundRecord(f"round-{n // batch:03d}", n, accuracy, base))
    return records


def first_stop(records: list[RoundRecord], rules: StoppingRules) -> tuple[int | None, str | None]:
    for k in range(1, len(records) + 1):
        decision = should_stop(records[:k], rules)
        if decision.stop:
            return records[k - 1].labels, decision.rule
    return None, None


@pytest.mark.parametrize("batch", [5, 10, 20, 40])
def test_default_stabilizing_rule_fires_soon_after_the_model_settles_at_any_batch_size(
    batch: int,
) -> None:
    """The defaults count labels: at batch 40, 'three stable rounds' meant 120 labels after
    the model settled (and 15 at batch 5); now every batch size stops within one batch plus
    the label window of the moment predictions stopped changing."""
    fired, rule = first_stop(converging(batch), StoppingRules())
    assert rule == "stabilizing_predictions"
    assert SETTLED < fired <= SETTLED + batch + max(batch, 30)  # was 440 at batch 40


@pytest.mark.parametrize("batch", [5, 10, 20, 40])
def test_plateau_in_labels_fires_at_the_same_label_count_at_any_batch_size(batch: int) -> None:
    rules = StoppingRules(kappa_threshold=None, plateau_labels=60, plateau_min_delta=0.01)
    fired, rule = first_stop(converging(batch), rules)
    assert rule == "plateau"
    # The mean over the last 60 labels is within 0.01 of the 60 before once both windows are
    # nearly flat: the same label count (up to one batch) whatever the batch size.
    assert SETTLED + 60 <= fired <= SETTLED + 120 + batch


def test_round_windows_still_work_when_given() -> None:
    """`kappa_window` / `plateau_patience` (rounds) keep their earlier meaning."""
    records = converging(20)
    by_rounds = StoppingRules(kappa_threshold=0.99, kappa_window=3, plateau_labels=None)
    fired, rule = first_stop(records, by_rounds)
    assert (fired, rule) == (SETTLED + 3 * 20, "stabilizing_predictions")
    assert stabilizing_predictions_rule(records[: fired // 20], 0.99, 3)[0]
    patience = StoppingRules(kappa_threshold=None, plateau_patience=2, plateau_labels=None)
    assert first_stop(records, patience) == (SETTLED + 40, "plateau")


def test_label_windows_say_what_they_wait_for() -> None:
    records = converging(20)[:3]
    stop, reason = stabilizing_predictions_rule(records, 0.98, window_labels=100)
    assert (
        not stop
        and reason == "stop-set predictions span 40 labels (20 -> 60); stabilizing needs 100"
    )
    stop, reason = plateau_rule(records, window_labels=60)
    assert not stop and "compares the last 60 labels with the 60 before them" in reason
    stop, reason = stabilizing_predictions_rule(converging(20)[:20], 0.98, window_labels=40)
    assert stop and "agree with round-020 on the stop set" in reason and "400 labels" in reason
