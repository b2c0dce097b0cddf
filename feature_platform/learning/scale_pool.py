"""A pool too large for one process: scored by the champion and selected from in partitions.

The pool is read in fixed blocks of rows (`PoolSpec.block_rows`), each a pure function of the
spec and the block's index, so any process can produce any part of it; a partition is a
contiguous range of blocks. Entity ids are the row numbers, zero-padded in the keys, so id
order is pool order: the order `strategies.select` breaks ties by.

Why the merge is exact (identical to one process selecting from the whole pool):
- every strategy is a shortlist step then a final step. The shortlist is the pool's top `M`
  samples by (score descending, entity id ascending): `M = batch_size` for least_confidence /
  margin / entropy, `candidate_factor * batch_size` for cluster_margin and kcenter;
- each partition keeps its own top `M + 1` by the same order; the top `M + 1` of their union is
  the pool's top `M + 1` (the extra one is the best sample left out, used by kcenter);
- the final step (`strategies.select` on the shortlist, or the k-center greedy) runs once, on
  the shortlist in that order. A sample's score depends only on its own block (the same blocks
  are scanned wherever they are scanned), so the shortlist's values are bit-identical too
  (given the same numpy / scikit-learn / BLAS build on every worker: floating-point results of
  matrix products are only reproducible on one numeric stack).
- kcenter's greedy looks at the whole pool, not a shortlist: a pick's distance only shrinks as
  samples are picked. The shortlist is the `M` samples farthest from the labeled set; when the
  greedy's last pick on it is still farther than the best sample left out, no sample left out
  could ever have been picked, and the shortlist's greedy is the pool's. Otherwise the merge
  runs the greedy over the whole pool (O(pool) memory, `strategies.kcenter_greedy`).
The single-process selection (`select_from_pool(..., partitions=1)`) is the same computation
with one partition.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.learning import strategies
from feature_platform.learning.training import DEFAULT_MODEL_PARAMS, class_probabilities

# Strategies whose selection can be split into partitions and merged exactly.
PARTITIONED_STRATEGIES = ("least_confidence", "margin", "entropy", "cluster_margin", "kcenter")
_SHORTLIST_BY_FACTOR = frozenset({"cluster_margin", "kcenter"})


@dataclass(frozen=True)
class PoolSpec:
    """A generated pool: `size` samples of `n_features` Gaussian features around one centre per
    class, arriving one after the other over `days` days from `start`."""

    size: int
    n_features: int = 64
    n_classes: int = 10
    seed: int = 0
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    days: int = 365
    block_rows: int = 16_384
    # Distance between class centres relative to the unit noise: overlapping classes, so the
    # champion is unsure about a share of the pool.
    spread: float = 0.3

    def __post_init__(self) -> None:
        for name in ("size", "n_features", "block_rows", "days"):
            if getattr(self, name) < 1:
                raise FeaturePlatformError(
                    f"PoolSpec.{name} must be at least 1, got {getattr(self, name)}."
                )
        if self.n_classes < 2:
            raise FeaturePlatformError(
                f"PoolSpec.n_classes must be at least 2, got {self.n_classes}."
            )

    @property
    def blocks(self) -> int:
        return math.ceil(self.size / self.block_rows)

    @property
    def classes(self) -> list[str]:
        return [f"class_{j}" for j in range(self.n_classes)]

    def keys(self, ids: np.ndarray) -> list[str]:
        """Entity keys of row ids; zero-padded so that key order is id order."""
        width = max(7, len(str(self.size - 1)))
        return [f"s{int(i):0{width}d}" for i in ids]

    def _centres(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0])
        return rng.normal(size=(self.n_classes, self.n_features)) * self.spread

    def _draw(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(self.n_classes, size=rows)
        features = self._centres()[labels] + rng.normal(size=(rows, self.n_features))
        return features, labels


@dataclass(frozen=True)
class PoolBlock:
    ids: np.ndarray  # int64 row numbers (the entity ids)
    arrivals: np.ndarray  # datetime64[ms], UTC
    features: np.ndarray  # (rows, n_features) float64
    labels: np.ndarray  # ground truth class index (for simulations and checks only)


def read_block(spec: PoolSpec, block: int) -> PoolBlock:
    """Block `block` of the pool: rows [block * block_rows, ...), the same wherever it is read."""
    if not 0 <= block < spec.blocks:
        raise FeaturePlatformError(f"The pool has blocks 0..{spec.blocks - 1}; got {block}.")
    low = block * spec.block_rows
    high = min(spec.size, low + spec.block_rows)
    rng = np.random.default_rng([spec.seed, 1, block])
    features, labels = spec._draw(rng, high - low)
    ids = np.arange(low, high, dtype="int64")
    # Sample i arrives in the i-th slice of the year, at a random moment inside it.
    seconds = (ids + rng.random(len(ids))) * (spec.days * 86_400 / spec.size)
    start = np.datetime64(spec.start.astimezone(UTC).replace(tzinfo=None), "ms")
    arrivals = start + (seconds * 1000).astype("int64").astype("timedelta64[ms]")
    return PoolBlock(ids, arrivals, features, labels)


def read_pool(spec: PoolSpec, blocks: Sequence[int] | None = None) -> PoolBlock:
    """Blocks concatenated (the whole pool by default): for references and small pools."""
    parts = [read_block(spec, b) for b in (range(spec.blocks) if blocks is None else blocks)]
    return PoolBlock(
        *(
            np.concatenate([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(PoolBlock)
        )
    )


def labeled_set(spec: PoolSpec, size: int) -> tuple[np.ndarray, list[str]]:
    """`size` labeled samples from the pool's distribution (not pool rows): what the champion
    was trained on and what kcenter measures distances from."""
    features, labels = spec._draw(np.random.default_rng([spec.seed, 2]), size)
    return features, [spec.classes[j] for j in labels]


def train_champion(spec: PoolSpec, labeled: int) -> Any:
    """The classifier the training step would fit (the project's default model) on
    `labeled_set(spec, labeled)`."""
    from sklearn.linear_model import LogisticRegression

    features, labels = labeled_set(spec, labeled)
    if len(set(labels)) < 2:
        raise FeaturePlatformError(
            f"{labeled} labeled samples hold a single class; a champion needs at least two."
        )
    return LogisticRegression(random_state=spec.seed, **DEFAULT_MODEL_PARAMS).fit(features, labels)


def partition_blocks(spec: PoolSpec, partitions: int) -> list[range]:
    """The pool's blocks split into `partitions` contiguous ranges of near-equal length."""
    if partitions < 1:
        raise FeaturePlatformError(f"partitions must be at least 1, got {partitions}.")
    count = min(partitions, spec.blocks)
    bounds = [round(i * spec.blocks / count) for i in range(count + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(count)]


@dataclass(frozen=True)
class SelectionPlan:
    strategy: str
    batch_size: int
    seed: int = 0
    candidate_factor: int = 10  # shortlist per batch slot (cluster_margin, kcenter)

    def __post_init__(self) -> None:
        if self.strategy not in PARTITIONED_STRATEGIES:
            raise FeaturePlatformError(
                f"Strategy {self.strategy!r} cannot be selected in partitions."
                f"{closest(self.strategy, PARTITIONED_STRATEGIES)} "
                f"Known: {list(PARTITIONED_STRATEGIES)}."
            )
        if self.batch_size < 1 or self.candidate_factor < 1:
            raise FeaturePlatformError(
                f"batch_size and candidate_factor must be at least 1, got {self.batch_size} "
                f"and {self.candidate_factor}."
            )

    def shortlist(self, pool_size: int) -> int:
        factor = self.candidate_factor if self.strategy in _SHORTLIST_BY_FACTOR else 1
        return min(pool_size, factor * self.batch_size)


@dataclass
class Candidates:
    """One partition's shortlist, best first by (score desc, id asc)."""

    ids: np.ndarray
    scores: np.ndarray
    features: np.ndarray
    proba: np.ndarray | None
    scanned: int = 0
    blocks: list[int] = field(default_factory=list)


def _best(candidates: Candidates, limit: int) -> Candidates:
    order = np.lexsort((candidates.ids, -candidates.scores))[:limit]
    return Candidates(
        candidates.ids[order],
        candidates.scores[order],
        candidates.features[order],
        None if candidates.proba is None else candidates.proba[order],
        candidates.scanned,
        candidates.blocks,
    )


def _concat(parts: Sequence[Candidates]) -> Candidates:
    probas = [p.proba for p in parts]
    return Candidates(
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.features for p in parts]),
        None if any(p is None for p in probas) else np.concatenate(probas),
        sum(p.scanned for p in parts),
        sorted(b for p in parts for b in p.blocks),
    )


def scan_partition(
    spec: PoolSpec,
    blocks: Sequence[int],
    plan: SelectionPlan,
    champion: Any,
    labeled_features: np.ndarray | None = None,
) -> Candidates:
    """Score `blocks` of the pool with `champion` and keep the top `shortlist + 1` samples.

    Only one block and the shortlist are in memory at a time.
    """
    if plan.strategy == "kcenter" and labeled_features is None:
        raise FeaturePlatformError(
            "kcenter measures distances from the labeled set: pass labeled_features."
        )
    limit = plan.shortlist(spec.size) + 1
    kept: Candidates | None = None
    scanned = 0
    for block in blocks:
        rows = read_block(spec, block)
        proba = class_probabilities(champion, rows.features, spec.classes)
        if plan.strategy == "kcenter":
            scores = strategies.kcenter_distances(rows.features, labeled_features)
        else:
            scores = strategies.uncertainty(plan.strategy, proba)
        scanned += len(rows.ids)
        fresh = Candidates(rows.ids, scores, rows.features, proba)
        kept = _best(fresh if kept is None else _concat([kept, fresh]), limit)
    if kept is None:
        return Candidates(
            np.empty(0, "int64"),
            np.empty(0),
            np.empty((0, spec.n_features)),
            np.empty((0, spec.n_classes)),
        )
    return dataclasses.replace(kept, scanned=scanned, blocks=sorted(blocks))


@dataclass(frozen=True)
class PoolSelection:
    picks: list[strategies.Pick]
    pool_size: int
    shortlist: int
    partitions: int
    exact_by: str  # how the batch is known to equal the whole pool's selection


def merge_candidates(
    spec: PoolSpec,
    parts: Sequence[Candidates],
    plan: SelectionPlan,
    labeled_features: np.ndarray | None = None,
    champion: Any = None,
) -> PoolSelection:
    """The batch from the partitions' shortlists: identical to selecting from the whole pool."""
    if plan.batch_size > spec.size:
        raise FeaturePlatformError(
            f"batch_size {plan.batch_size} is larger than the pool ({spec.size} samples)."
        )
    covered = sorted(b for p in parts for b in p.blocks)
    if covered != list(range(spec.blocks)):
        raise FeaturePlatformError(
            f"The partitions cover blocks {_ranges(covered)} of the pool's 0..{spec.blocks - 1}; "
            f"each block must be scanned exactly once."
        )
    size = plan.shortlist(spec.size)
    merged = _best(_concat(parts), size + 1)
    left_out = float(merged.scores[size]) if len(merged.ids) > size else -math.inf
    short = _best(merged, size)
    keys = spec.keys(short.ids)
    what = "farthest from the labeled set" if plan.strategy == "kcenter" else "least certain"
    note = f"; shortlist: the {size} {what} of {spec.size} pool samples"
    if plan.strategy == "kcenter":
        chosen, distances = strategies.kcenter_greedy(short.features, short.scores, plan.batch_size)
        if distances[-1] > left_out:
            exact_by = f"last pick {distances[-1]:.4f} > best left out {left_out:.4f}"
            ids, proba = short.ids[chosen], None if short.proba is None else short.proba[chosen]
        else:
            exact_by = (
                f"greedy over the whole pool (last shortlist pick {distances[-1]:.4f} <= best "
                f"left out {left_out:.4f})"
            )
            ids, distances, proba = _kcenter_whole_pool(spec, plan, labeled_features, champion)
        picks = strategies.kcenter_picks(spec.keys(ids), distances, proba, spec.classes, spec.size)
        return PoolSelection(picks, spec.size, size, len(parts), exact_by)
    picks = strategies.select(
        plan.strategy,
        keys,
        short.proba,
        spec.classes,
        plan.batch_size,
        plan.seed,
        features=short.features,
        options=strategies.StrategyOptions(candidate_factor=plan.candidate_factor),
    )
    picks = [dataclasses.replace(p, reason=p.reason + note) for p in picks]
    return PoolSelection(picks, spec.size, size, len(parts), "shortlist of the pool's top samples")


def _kcenter_whole_pool(
    spec: PoolSpec, plan: SelectionPlan, labeled_features: np.ndarray | None, champion: Any
) -> tuple[np.ndarray, list[float], np.ndarray | None]:
    """Greedy k-center over every pool sample (O(pool) memory: the features and one distance
    each), from the same block-by-block distances the partitions computed."""
    if labeled_features is None:
        raise FeaturePlatformError(
            "kcenter measures distances from the labeled set: pass labeled_features."
        )
    features = np.empty((spec.size, spec.n_features))
    nearest = np.empty(spec.size)
    for block in range(spec.blocks):
        rows = read_block(spec, block)
        span = slice(int(rows.ids[0]), int(rows.ids[-1]) + 1)
        features[span] = rows.features
        nearest[span] = strategies.kcenter_distances(rows.features, labeled_features)
    chosen, distances = strategies.kcenter_greedy(features, nearest, plan.batch_size)
    del features
    ids = np.asarray(chosen, dtype="int64")
    if champion is None:
        return ids, distances, None
    # The picks' probabilities as their blocks' scan computed them.
    proba = np.empty((len(ids), spec.n_classes))
    for block in sorted({int(i) // spec.block_rows for i in ids}):
        rows = read_block(spec, block)
        block_proba = class_probabilities(champion, rows.features, spec.classes)
        for r, i in enumerate(ids):
            if int(i) // spec.block_rows == block:
                proba[r] = block_proba[int(i) - int(rows.ids[0])]
    return ids, distances, proba


def select_from_pool(
    spec: PoolSpec,
    plan: SelectionPlan,
    champion: Any,
    labeled_features: np.ndarray | None = None,
    partitions: int = 1,
) -> PoolSelection:
    """The batch, scanning the partitions one after the other in this process (partitions=1:
    the single-process selection). The Dagster job runs the same steps in parallel."""
    parts = [
        scan_partition(spec, blocks, plan, champion, labeled_features)
        for blocks in partition_blocks(spec, partitions)
    ]
    return merge_candidates(spec, parts, plan, labeled_features, champion)


def _ranges(blocks: Sequence[int]) -> str:
    if not blocks:
        return "none"
    spans, low, prev = [], blocks[0], blocks[0]
    for b in [*blocks[1:], None]:
        if b is None or b != prev + 1:
            spans.append(f"{low}" if low == prev else f"{low}..{prev}")
            if b is not None:
                low = b
        if b is not None:
            prev = b
    return ", ".join(spans)


__all__ = [
    "PARTITIONED_STRATEGIES",
    "Candidates",
    "PoolBlock",
    "PoolSelection",
    "PoolSpec",
    "SelectionPlan",
    "labeled_set",
    "merge_candidates",
    "partition_blocks",
    "read_block",
    "read_pool",
    "scan_partition",
    "select_from_pool",
    "train_champion",
]
