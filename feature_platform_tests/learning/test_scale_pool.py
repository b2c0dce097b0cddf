"""Partitioned selection from a generated pool: the merged batch is the single-process batch."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from feature_platform.errors import FeaturePlatformError
from feature_platform.learning import scale_pool as sp
from feature_platform.learning.strategies import select
from feature_platform.learning.training import class_probabilities

SPEC = sp.PoolSpec(size=6_000, n_features=12, n_classes=4, seed=5, block_rows=700)
CHAMPION = sp.train_champion(SPEC, 200)
LABELED, LABELS = sp.labeled_set(SPEC, 200)


def test_the_pool_is_the_same_however_it_is_read():
    whole = sp.read_pool(SPEC)
    assert whole.features.shape == (6_000, 12)
    assert whole.ids.tolist() == list(range(6_000))
    again = sp.read_pool(SPEC, [5, 6])
    np.testing.assert_array_equal(again.features, whole.features[3_500:4_900])
    # Arrivals spread over the year, in entity order.
    assert (np.diff(whole.arrivals.astype("int64")) >= 0).all()
    span = (whole.arrivals[-1] - whole.arrivals[0]).astype("timedelta64[D]").astype(int)
    assert 360 <= span <= 365
    keys = SPEC.keys(whole.ids)
    assert keys == sorted(keys) and keys[0] == "s0000000"
    assert len(sp.partition_blocks(SPEC, 4)) == 4
    assert sum(len(r) for r in sp.partition_blocks(SPEC, 4)) == SPEC.blocks


@pytest.mark.parametrize(
    "strategy", ["margin", "entropy", "least_confidence", "cluster_margin", "kcenter"]
)
@pytest.mark.parametrize("partitions", [2, 3, 9])
def test_partitioned_batch_is_the_single_process_batch(strategy, partitions):
    plan = sp.SelectionPlan(strategy, batch_size=15, seed=7)
    single = sp.select_from_pool(SPEC, plan, CHAMPION, LABELED, partitions=1)
    split = sp.select_from_pool(SPEC, plan, CHAMPION, LABELED, partitions=partitions)
    assert split.picks == single.picks  # keys, scores, reasons and model guesses
    assert len(single.picks) == 15 and split.partitions == min(partitions, SPEC.blocks)


@pytest.mark.parametrize("strategy", ["margin", "entropy", "cluster_margin", "kcenter"])
def test_the_batch_is_what_select_picks_from_the_whole_pool_in_memory(strategy):
    plan = sp.SelectionPlan(strategy, batch_size=12, seed=3)
    pool = sp.read_pool(SPEC)
    proba = class_probabilities(CHAMPION, pool.features, SPEC.classes)
    in_memory = select(
        strategy,
        SPEC.keys(pool.ids),
        proba,
        SPEC.classes,
        12,
        3,
        features=pool.features,
        labeled_features=LABELED,
        labeled_labels=LABELS,
    )
    split = sp.select_from_pool(SPEC, plan, CHAMPION, LABELED, partitions=4)
    assert [p.key for p in split.picks] == [p.key for p in in_memory]
    assert [p.score for p in split.picks] == pytest.approx([p.score for p in in_memory])


def test_ties_break_by_entity_id_in_every_partitioning():
    # A model that gives every sample the class prior: every margin is equal.
    prior = DummyClassifier(strategy="prior").fit(LABELED, LABELS)
    plan = sp.SelectionPlan("margin", batch_size=5)
    for partitions in (1, 2, 5):
        picks = sp.select_from_pool(SPEC, plan, prior, partitions=partitions).picks
        assert [p.key for p in picks] == [f"s000000{i}" for i in range(5)]


def test_kcenter_falls_back_to_the_whole_pool_when_the_shortlist_cannot_prove_it_exact():
    plan = sp.SelectionPlan("kcenter", batch_size=30, candidate_factor=1)
    single = sp.select_from_pool(SPEC, plan, CHAMPION, LABELED, partitions=1)
    split = sp.select_from_pool(SPEC, plan, CHAMPION, LABELED, partitions=3)
    assert single.exact_by.startswith("greedy over the whole pool")
    assert split.picks == single.picks
    pool = sp.read_pool(SPEC)
    in_memory = select(
        "kcenter",
        SPEC.keys(pool.ids),
        None,
        SPEC.classes,
        30,
        features=pool.features,
        labeled_features=LABELED,
        labeled_labels=LABELS,
    )
    assert [p.key for p in split.picks] == [p.key for p in in_memory]
    shortlisted = sp.select_from_pool(SPEC, sp.SelectionPlan("kcenter", 30), CHAMPION, LABELED, 3)
    assert shortlisted.exact_by.startswith("last pick")
    # Both ways of proving it exact give the same batch, to the bit.
    assert shortlisted.picks == split.picks


def test_a_merge_refuses_partitions_that_miss_or_repeat_blocks():
    plan = sp.SelectionPlan("margin", batch_size=5)
    parts = [sp.scan_partition(SPEC, r, plan, CHAMPION) for r in sp.partition_blocks(SPEC, 3)]
    with pytest.raises(FeaturePlatformError, match="each block must be scanned exactly once"):
        sp.merge_candidates(SPEC, parts[:2], plan)
    with pytest.raises(FeaturePlatformError, match="each block must be scanned exactly once"):
        sp.merge_candidates(SPEC, [*parts, parts[0]], plan)
    with pytest.raises(FeaturePlatformError, match="cannot be selected in partitions"):
        sp.SelectionPlan("committee", batch_size=5)


def test_a_partition_holds_one_block_and_its_shortlist_not_the_pool():
    # 200k × 16 features is 25.6 MB; a scan holds one 4,096-row block (0.5 MB) and the
    # shortlist, so its peak stays far below the pool whatever the pool's size.
    spec = sp.PoolSpec(size=200_000, n_features=16, n_classes=4, block_rows=4_096)
    champion = sp.train_champion(spec, 100)
    plan = sp.SelectionPlan("cluster_margin", batch_size=10)
    tracemalloc.start()
    try:
        kept = sp.scan_partition(spec, range(spec.blocks), plan, champion)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept.scanned == 200_000 and len(kept.ids) == 101
    assert peak < 6 * 2**20, peak / 2**20


def test_batch_larger_than_the_pool_is_refused():
    spec = sp.PoolSpec(size=50, n_features=4, n_classes=2)
    champion = sp.train_champion(spec, 40)
    with pytest.raises(FeaturePlatformError, match="larger than the pool"):
        sp.select_from_pool(spec, sp.SelectionPlan("kcenter", 60), champion, LABELED[:, :4])
