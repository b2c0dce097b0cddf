"""k-center greedy in O(pool) memory: the same picks as the textbook greedy, without the
pool × labeled distance matrix."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from feature_platform.learning.strategies import select


def textbook_kcenter(features: np.ndarray, labeled: np.ndarray, batch_size: int) -> list[int]:
    """The greedy k-center over the full distance matrix (the reference: what kcenter did)."""
    distances = np.sqrt(((features[:, None, :] - labeled[None, :, :]) ** 2).sum(axis=2))
    nearest = distances.min(axis=1)
    chosen = []
    for _ in range(batch_size):
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, np.sqrt(((features - features[i]) ** 2).sum(axis=1)))
        nearest[i] = -1.0
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("pool", "labeled", "dims", "batch"), [(300, 40, 5, 12), (500, 3, 2, 30)])
def test_kcenter_picks_what_the_textbook_greedy_picks(seed, pool, labeled, dims, batch):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(pool, dims)) * rng.uniform(0.5, 3.0, size=dims)
    labeled_features = rng.normal(size=(labeled, dims))
    keys = [f"s{i:04d}" for i in range(pool)]
    picks = select(
        "kcenter",
        keys,
        None,
        ["a", "b"],
        batch,
        features=features,
        labeled_features=labeled_features,
        labeled_labels=["a"] * labeled,
    )
    expected = textbook_kcenter(features, labeled_features, batch)
    assert [p.key for p in picks] == [keys[i] for i in expected]
    # The reported distance is each pick's distance to its nearest labeled or earlier pick.
    first = expected[0]
    nearest = np.sqrt(((labeled_features - features[first]) ** 2).sum(axis=1)).min()
    assert picks[0].score == pytest.approx(nearest)
    assert all(a.score >= b.score - 1e-9 for a, b in zip(picks, picks[1:], strict=False))


def test_kcenter_memory_does_not_grow_with_the_labeled_set():
    # 20k pool × 2,000 labeled: a full distance matrix is 320 MB; a running minimum per pool
    # sample is 160 kB. The pool's own features are 2.6 MB.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20_000, 16))
    labeled_features = rng.normal(size=(2_000, 16))
    keys = [f"s{i:05d}" for i in range(len(features))]
    tracemalloc.start()
    try:
        picks = select(
            "kcenter",
            keys,
            None,
            ["a", "b"],
            10,
            features=features,
            labeled_features=labeled_features,
            labeled_labels=["a"] * len(labeled_features),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len({p.key for p in picks}) == 10
    # Inputs are copied once as float64 by validation; allow them plus 24 MB of working blocks.
    assert peak < 24 * 2**20 + 2 * (features.nbytes + labeled_features.nbytes), peak / 2**20


RSS_SCRIPT = """
import numpy as np
from feature_platform.learning.strategies import select

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def run(pool, labeled):
    rng = np.random.default_rng(0)
    features, labeled_features = rng.normal(size=(pool, 16)), rng.normal(size=(labeled, 16))
    keys = [str(i) for i in range(pool)]
    # Reset this process's peak resident set (VmHWM) to its current size, then measure.
    with open("/proc/self/clear_refs", "w") as out:
        out.write("5")
    before = status("VmRSS")
    select("kcenter", keys, None, ["a", "b"], 10, features=features,
           labeled_features=labeled_features, labeled_labels=["a"] * labeled)
    return status("VmHWM") - before

run(200, 20)  # imports and first-call allocations, not counted
print(run(20_000, 2_500))
"""


def test_kcenter_peak_resident_memory_stays_far_below_the_distance_matrix():
    # tracemalloc does not see memory allocated by compiled code; the process's peak resident
    # set does (measured in a fresh process: ru_maxrss would carry over pytest's own peak).
    # 20k × 2,500 distances would be 400 MB.
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    extra = int(out.stdout.strip().splitlines()[-1])
    assert extra < 100 * 2**20, f"kcenter's peak was {extra / 2**20:.0f} MiB above the start"
