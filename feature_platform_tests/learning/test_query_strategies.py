"""Query strategies on small hand-made pools: the expected picks, reasons, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from feature_platform.catalog import digits
from feature_platform.errors import FeaturePlatformError
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.strategies import (
    COLD_START,
    STRATEGIES,
    StrategyOptions,
    bagged_committee,
    select,
)

CLASSES = ["a", "b", "c"]
KEYS = ["k0", "k1", "k2", "k3", "k4"]
# k0 sure of a; k1 torn between a and b; k2 spread over all three (margin 0.005); k3 fairly
# sure of c; k4 torn between b and c but less than k1.
PROBA = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.48, 0.47, 0.05],
        [0.34, 0.335, 0.325],
        [0.10, 0.10, 0.80],
        [0.05, 0.55, 0.40],
    ]
)


def keys_of(picks) -> list[str]:
    return [p.key for p in picks]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("margin", ["k2", "k1", "k4"]),  # margins 0.005, 0.01, 0.15
        ("least_confidence", ["k2", "k1", "k4"]),  # top probabilities 0.34, 0.48, 0.55
        ("entropy", ["k2", "k1", "k4"]),
    ],
)
def test_uncertainty_strategies_pick_the_least_certain(strategy, expected) -> None:
    picks = select(strategy, KEYS, PROBA, CLASSES, 3, seed=0)
    assert keys_of(picks) == expected
    assert all(
        p.strategy == strategy and p.reason.startswith(strategy.replace("_", " ")) for p in picks
    )
    assert picks[1].top_classes[:2] == [("a", 0.48), ("b", 0.47)]
    assert "hesitates between a (0.48) and b (0.47)" in picks[1].reason or strategy != "margin"


def test_entropy_and_margin_disagree_where_they_should() -> None:
    # Two-way doubt (0.5/0.5/0) has the smallest margin; three-way spread the highest entropy.
    proba = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3]])
    assert keys_of(select("margin", ["two", "three"], proba, CLASSES, 1)) == ["two"]
    assert keys_of(select("entropy", ["two", "three"], proba, CLASSES, 1)) == ["three"]


def test_committee_with_given_members() -> None:
    class Member:
        classes_ = np.array(CLASSES)

        def __init__(self, predictions: list[str]) -> None:
            self.predictions = np.array(predictions)

        def predict(self, X):  # noqa: N803
            return self.predictions

        def predict_proba(self, X):  # noqa: N803
            return np.array([[float(p == c) for c in CLASSES] for p in self.predictions])

    # Samples: all agree | 2-1 split | three-way split | 2-1 split.
    committee = [
        Member(["a", "a", "a", "b"]),
        Member(["a", "b", "b", "b"]),
        Member(["a", "a", "c", "c"]),
    ]
    keys = ["agree", "two_one", "three_way", "two_one_later"]
    picks = select(
        "committee",
        keys,
        np.full((4, 3), 1 / 3),
        CLASSES,
        3,
        features=np.zeros((4, 2)),
        committee=committee,
    )
    assert keys_of(picks) == ["three_way", "two_one", "two_one_later"]
    assert picks[0].score == pytest.approx(1.0)  # consensus (1/3, 1/3, 1/3): margin 0
    assert "1 say a, 1 say b, 1 say c" in picks[0].reason
    assert "2 say a, 1 say b" in picks[1].reason


def test_bagged_committee_disagrees_near_the_boundary_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    labeled = np.vstack([rng.normal(-2, 0.8, (30, 2)), rng.normal(2, 0.8, (30, 2))])
    labels = ["a"] * 30 + ["b"] * 30
    pool = np.array([[-3.0, -3.0], [0.05, -0.05], [3.0, 3.0], [-0.1, 0.1]])
    keys = ["far_a", "boundary_1", "far_b", "boundary_2"]
    proba = np.array([[0.99, 0.01], [0.5, 0.5], [0.01, 0.99], [0.5, 0.5]])
    kwargs = dict(features=pool, labeled_features=labeled, labeled_labels=labels)
    picks = select("committee", keys, proba, ["a", "b"], 2, seed=3, **kwargs)
    assert set(keys_of(picks)) == {"boundary_1", "boundary_2"}
    again = select("committee", keys, proba, ["a", "b"], 2, seed=3, **kwargs)
    assert [(p.key, p.score, p.reason) for p in picks] == [
        (p.key, p.score, p.reason) for p in again
    ]
    members = bagged_committee(labeled, labels, 4, seed=1)
    assert len(members) == 4 and all(set(m.classes_) == {"a", "b"} for m in members)


def _two_groups_of_near_duplicates():
    """Group A (5 near-duplicates at the origin) is the least certain; group B (at 10, 10)
    is almost as uncertain; two confident samples sit elsewhere."""
    rng = np.random.default_rng(1)
    features = np.vstack(
        [rng.normal(0, 0.01, (5, 2)), rng.normal(10, 0.01, (5, 2)), [[-10, 5], [5, -10]]]
    )
    margins = np.array([0.00, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.9, 0.9])
    top = (1 + margins) / 2
    proba = np.column_stack([top, 1 - top])
    keys = [f"A{i}" for i in range(5)] + [f"B{i}" for i in range(5)] + ["sure1", "sure2"]
    return keys, proba, features


def test_cluster_margin_spreads_the_batch_over_groups_where_margin_does_not() -> None:
    keys, proba, features = _two_groups_of_near_duplicates()
    plain = select("margin", keys, proba, ["x", "y"], 2)
    assert keys_of(plain) == ["A0", "A1"]  # two near-duplicates
    options = StrategyOptions(candidate_factor=5)  # the 10 least certain: groups A and B
    picks = select("cluster_margin", keys, proba, ["x", "y"], 2, features=features, options=options)
    assert {p.key[0] for p in picks} == {"A", "B"}
    assert all("group of 5 similar samples among the 10 least certain" in p.reason for p in picks)
    assert picks[0].key.startswith("A")  # ordered by doubt
    again = select("cluster_margin", keys, proba, ["x", "y"], 2, features=features, options=options)
    assert keys_of(again) == keys_of(picks)


def test_kcenter_picks_the_farthest_from_labeled_and_already_picked() -> None:
    features = np.array([[1.0], [2.0], [5.0], [10.0], [9.5]])
    keys = ["p1", "p2", "p5", "p10", "p9.5"]
    picks = select(
        "kcenter", keys, None, CLASSES, 3, features=features, labeled_features=np.array([[0.0]])
    )
    # 10 is farthest from 0; then 5 (5 from 0 and from 10); then 2 (distance 2 to 0 and 3 to 5)
    assert keys_of(picks) == ["p10", "p5", "p2"]
    assert [p.score for p in picks] == [10.0, 5.0, 2.0]
    assert "distance 10.00 to the nearest" in picks[0].reason


def test_cold_start_without_a_model_or_with_too_few_labels() -> None:
    no_model = select("margin", KEYS, None, CLASSES, 2, seed=7)
    assert all(p.strategy == COLD_START and "no model yet" in p.reason for p in no_model)
    assert keys_of(no_model) == keys_of(select("random", KEYS, None, CLASSES, 2, seed=7))
    few = select("margin", KEYS, PROBA, CLASSES, 2, seed=7, labeled_labels=["a", "b"])
    assert all("only 2 labeled samples for 3 classes" in p.reason for p in few)
    assert keys_of(few) == keys_of(no_model)  # same seed, same uniform draw


def test_kmeans_cold_start_takes_one_typical_sample_per_group() -> None:
    keys, _, features = _two_groups_of_near_duplicates()
    options = StrategyOptions(cold_start="kmeans")
    picks = select(
        "cluster_margin", keys[:10], None, ["x", "y"], 2, features=features[:10], options=options
    )
    assert {p.key[0] for p in picks} == {"A", "B"}
    assert all("most typical of 5 similar unlabeled samples" in p.reason for p in picks)
    # The random control never takes a k-means start.
    control = select(
        "random", keys[:10], None, ["x", "y"], 2, features=features[:10], options=options
    )
    assert all("drawn uniformly" in p.reason for p in control)


def test_same_seed_same_picks_other_seed_other_picks() -> None:
    keys = [f"s{i}" for i in range(200)]
    first = select("random", keys, np.full((200, 3), 1 / 3), CLASSES, 10, seed=11)
    assert keys_of(first) == keys_of(
        select("random", keys, np.full((200, 3), 1 / 3), CLASSES, 10, seed=11)
    )
    assert keys_of(first) != keys_of(
        select("random", keys, np.full((200, 3), 1 / 3), CLASSES, 10, seed=12)
    )
    assert all(p.reason.startswith("random: control sample") for p in first)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: select("margn", KEYS, PROBA, CLASSES, 1),
            "Unknown query strategy 'margn'. Did you mean 'margin'?",
        ),
        (lambda: select("kcentre", KEYS, PROBA, CLASSES, 1), "Did you mean 'kcenter'?"),
        (
            lambda: select("margin", KEYS, PROBA, CLASSES, 6),
            r"batch_size 6 is larger than the unlabeled pool \(5 samples\)",
        ),
        (lambda: select("margin", KEYS, PROBA, CLASSES, 0), "batch_size must be at least 1"),
        (lambda: select("margin", KEYS, PROBA[:, :1], ["a"], 1), "needs at least two"),
        (
            lambda: select("margin", KEYS, PROBA[:4], CLASSES, 1),
            r"proba has shape \(4, 3\); expected \(5, 3\)",
        ),
        (lambda: select("cluster_margin", KEYS, PROBA, CLASSES, 2), "needs features="),
        (lambda: select("kcenter", KEYS, PROBA, CLASSES, 2), "needs features="),
        (
            lambda: select(
                "committee",
                KEYS,
                PROBA,
                CLASSES,
                2,
                features=np.zeros((5, 2)),
                labeled_features=np.zeros((4, 2)),
                labeled_labels=["a"] * 4,
            ),
            "at least two classes; all 4 labeled samples are 'a'",
        ),
        (
            lambda: select(
                "kcenter",
                KEYS,
                None,
                CLASSES,
                2,
                features=np.zeros((5, 2)),
                labeled_features=np.zeros((3, 4)),
            ),
            "labeled_features has 4 columns but the pool's features have 2",
        ),
        (
            lambda: select(
                "margin", KEYS, PROBA, CLASSES, 1, options=StrategyOptions(cold_start="smart")
            ),
            "Unknown cold start 'smart'",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message) -> None:
    with pytest.raises(FeaturePlatformError, match=message):
        call()


def test_every_strategy_gives_reasons_and_is_deterministic() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(60, 4))
    labeled = rng.normal(size=(12, 4))
    labels = [CLASSES[i % 3] for i in range(12)]
    proba = rng.dirichlet(np.ones(3), size=60)
    keys = [f"s{i}" for i in range(60)]
    for strategy in STRATEGIES:
        kwargs = dict(features=features, labeled_features=labeled, labeled_labels=labels, seed=4)
        picks = select(strategy, keys, proba, CLASSES, 6, **kwargs)
        assert len({p.key for p in picks}) == 6, strategy
        assert all(p.reason and p.strategy == strategy for p in picks), strategy
        again = select(strategy, keys, proba, CLASSES, 6, **kwargs)
        assert [(p.key, p.reason) for p in again] == [(p.key, p.reason) for p in picks], strategy


def _two_rounds(store, program) -> tuple[list, list]:
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    pool = rounds.candidate_pool(store, program, model=None)
    first = rounds.open_batch(store, program, "round-001", pool, model_version=None)
    annotators.answer(store.queue, "round-001")
    trained = rounds.retrain(store, program, "round-001")
    pool = rounds.candidate_pool(store, program, trained.model)
    second = rounds.open_batch(store, program, "round-002", pool, model_version="m/1")
    return first, second


def test_cluster_margin_runs_through_the_round_steps(digits_store) -> None:
    """open_batch reads the pool's features itself; the k-means cold start comes from the
    program's strategy options, which are logged with the program's params."""
    program = digits.program(
        strategy="cluster_margin", batch_size=10, strategy_options={"cold_start": "kmeans"}
    )
    first, second = _two_rounds(digits_store, program)
    assert all(t.strategy == COLD_START and "most typical" in t.reason for t in first)
    assert all(t.strategy == "cluster_margin" and "cluster-margin" in t.reason for t in second)
    assert len({t.sample_key for t in first + second}) == 20
    assert program.params()["strategy_cold_start"] == "kmeans"


def test_kcenter_runs_through_the_round_steps(digits_store) -> None:
    first, second = _two_rounds(digits_store, digits.program(strategy="kcenter", batch_size=10))
    assert all(t.strategy == COLD_START for t in first)  # nothing labeled to measure from
    labeled = set(digits_store.labels.latest().labels["sample_key"])
    assert all(t.strategy == "kcenter" and t.sample_key not in labeled for t in second)
    assert all("farthest from every labeled" in t.reason for t in second)


# -- issue 14: inputs and models seen on unseen data --------------------------------------


@pytest.mark.parametrize("strategy", ["margin", "entropy", "least_confidence", "cluster_margin"])
@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            lambda p: np.vstack([p[:2], [[0.7, 0.5, -0.2]], p[3:]]),
            r"proba row 2 \(sample 'k2'\) has a negative probability \(-0.2",
        ),
        (
            lambda p: np.vstack([p[:3], [[0.5, 0.3, 0.1]], p[4:]]),
            r"proba row 3 \(sample 'k3'\) sums to 0.9",
        ),
        (lambda p: p * 2, r"proba row 0 \(sample 'k0'\) sums to 2"),
        (
            lambda p: np.vstack([p[:1], [[np.inf, 0.0, 0.0]], p[2:]]),
            r"proba row 1 \(sample 'k1'\) has a missing or infinite value",
        ),
        (
            lambda p: np.vstack([p[:4], [[np.nan, 0.5, 0.5]]]),
            r"proba row 4 \(sample 'k4'\) has a missing or infinite value",
        ),
        (lambda p: p[:, :2], r"proba has shape \(5, 2\); expected \(5, 3\)"),
        (lambda p: p.ravel(), r"proba has shape \(15,\); expected \(5, 3\)"),
    ],
)
def test_proba_that_is_not_a_distribution_is_refused(strategy, broken, message) -> None:
    features = np.arange(10, dtype=float).reshape(5, 2)
    with pytest.raises(FeaturePlatformError, match=message):
        select(strategy, KEYS, broken(PROBA), CLASSES, 2, features=features)


def test_proba_rounding_noise_is_accepted() -> None:
    # float32 models and softmax rounding give sums like 0.9999999; they are distributions.
    noisy = PROBA.astype("float32") * np.float32(1.0 + 3e-7)
    assert keys_of(select("margin", KEYS, noisy, CLASSES, 2)) == ["k2", "k1"]


def test_cluster_margin_falls_back_to_diversity_when_every_margin_is_zero() -> None:
    """A model certain on every candidate (e.g. the default logistic regression on unscaled
    features around 1e5) gives every margin score exactly 0, and k-means refused the all-zero
    weights (ValueError: Sample weights must contain at least one non-zero number)."""
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], 30)
    centres = np.array([[1e5, 2e5], [3e5, 1e5], [2e5, 4e5]])
    features = centres[groups] + rng.normal(0, 1e4, size=(90, 2))
    proba = np.eye(3)[groups]  # certain everywhere: probabilities 1 and 0
    keys = [f"p{i}" for i in range(90)]
    picks = select("cluster_margin", keys, proba, CLASSES, 6, seed=3, features=features)
    assert len({p.key for p in picks}) == 6
    assert all("every candidate has a margin of 1.00" in p.reason for p in picks)
    assert all("diversity alone" in p.reason for p in picks)
    assert all(p.strategy == "cluster_margin" for p in picks)
    # Diversity alone still spreads the batch: the picks cover all three groups.
    assert {int(groups[int(p.key[1:])]) for p in picks} == {0, 1, 2}
    again = select("cluster_margin", keys, proba, CLASSES, 6, seed=3, features=features)
    assert keys_of(again) == keys_of(picks)


def test_cluster_margin_with_some_zero_margins_keeps_weighting_by_doubt() -> None:
    """Only an all-zero weight vector needs the fallback; a few certain candidates do not."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 2))
    proba = np.eye(3)[np.arange(40) % 3] * 0.6 + 0.4 / 3
    proba[:5] = np.eye(3)[np.arange(5) % 3]  # five certain samples
    keys = [f"q{i}" for i in range(40)]
    picks = select("cluster_margin", keys, proba, CLASSES, 4, seed=0, features=features)
    assert len(picks) == 4
    assert not any("diversity alone" in p.reason for p in picks)


class SoftMember:
    """A fitted committee member with fixed probabilities per sample."""

    classes_ = np.array(["a", "b"])

    def __init__(self, proba: list[list[float]]) -> None:
        self.proba = np.array(proba)

    def predict(self, X):  # noqa: N803
        return self.classes_[self.proba.argmax(axis=1)]

    def predict_proba(self, X):  # noqa: N803
        return self.proba


def test_committee_asks_first_where_the_committee_as_a_whole_is_least_sure() -> None:
    """Issue 14: ranking by vote entropy trailed scikit-activeml's QBC and plain margin.
    'torn': every member says a at 0.52 (unanimous votes, yet a coin flip for all of them);
    'split': 3 members sure of a, 2 sure of b (vote entropy high, consensus 0.62 / 0.38);
    'sure': everyone says a at 0.95. The consensus margin puts 'torn' first."""
    keys = ["sure", "split", "torn"]
    committee = [SoftMember([[0.95, 0.05], [0.9, 0.1], [0.52, 0.48]]) for _ in range(3)] + [
        SoftMember([[0.95, 0.05], [0.1, 0.9], [0.52, 0.48]]) for _ in range(2)
    ]
    picks = select(
        "committee",
        keys,
        np.full((3, 2), 0.5),
        ["a", "b"],
        3,
        features=np.zeros((3, 1)),
        committee=committee,
    )
    assert keys_of(picks) == ["torn", "split", "sure"]
    assert picks[0].score == pytest.approx(0.96)  # 1 - margin 0.04
    assert "hesitate between a (0.52) and b (0.48), a margin of 0.04" in picks[0].reason
    assert "3 say a, 2 say b" in picks[1].reason and "disagreement" in picks[1].reason


def test_committee_breaks_equal_margins_by_disagreement() -> None:
    """Same consensus (0.5 / 0.5) twice: the sample the members disagree on comes first."""
    keys = ["agreeing", "disagreeing"]
    committee = [
        SoftMember([[0.5, 0.5], [0.9, 0.1]]),
        SoftMember([[0.5, 0.5], [0.1, 0.9]]),
    ]
    picks = select(
        "committee",
        keys,
        np.full((2, 2), 0.5),
        ["a", "b"],
        2,
        features=np.zeros((2, 1)),
        committee=committee,
    )
    assert keys_of(picks) == ["disagreeing", "agreeing"]
