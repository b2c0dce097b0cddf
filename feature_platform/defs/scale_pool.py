"""The `scale_pool` job: a large generated pool scored by the champion and selected from in
partitions that Dagster's executor runs in parallel, then merged into one batch.

Thin wiring around `feature_platform.learning.scale_pool`: one op plans the partitions and
trains the champion, one op per partition (a dynamic fan-out) scans its blocks and keeps its
shortlist, one op merges the shortlists into the batch, which is identical to the
single-process selection for the same seed. The job runs on the code location's executor:
multiprocess locally (`max_concurrent` = workers), dagster-celery workers with
FP_EXECUTOR=celery. Every step may run in another process (or on another worker), so each
output is pickled to files by the job's own IO manager (`scale_pool_io_manager`), never the
location's Parquet IO manager, which stores asset DataFrames only.
Each step reports its wall time and its process's peak memory as metadata.
"""

import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from feature_platform.learning import scale_pool as sp


class ScalePoolConfig(dg.Config):
    """The pool (generated, `size` × `n_features`, `n_classes` classes, arrivals over a year)
    and the selection (strategy, batch size, partitions)."""

    size: int = 1_000_000
    n_features: int = 64
    n_classes: int = 10
    seed: int = 0
    block_rows: int = 16_384
    labeled: int = 2_000
    strategy: str = "cluster_margin"
    batch_size: int = 100
    candidate_factor: int = 10
    partitions: int = 2


@dataclass(frozen=True)
class ScalePoolRun:
    """What every step of one run needs: the pool, the selection, the champion."""

    spec: sp.PoolSpec
    plan: sp.SelectionPlan
    labeled: int
    champion: Any

    def labeled_features(self) -> np.ndarray | None:
        if self.plan.strategy != "kcenter":
            return None
        return sp.labeled_set(self.spec, self.labeled)[0]


def _peak_mib() -> float:
    # ru_maxrss is in KiB on Linux: the peak of this step's process.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dg.op(out={"run": dg.Out(ScalePoolRun), "partitions": dg.DynamicOut(list)})
def plan_scale_pool(context: dg.OpExecutionContext, config: ScalePoolConfig):
    """Train the champion on the labeled set and split the pool's blocks into partitions."""
    started = time.perf_counter()
    spec = sp.PoolSpec(
        size=config.size,
        n_features=config.n_features,
        n_classes=config.n_classes,
        seed=config.seed,
        block_rows=config.block_rows,
    )
    plan = sp.SelectionPlan(
        config.strategy, config.batch_size, config.seed, config.candidate_factor
    )
    champion = sp.train_champion(spec, config.labeled)
    yield dg.Output(
        ScalePoolRun(spec, plan, config.labeled, champion),
        "run",
        metadata={
            "pool_size": spec.size,
            "blocks": spec.blocks,
            "seconds": round(time.perf_counter() - started, 3),
            "peak_mib": _peak_mib(),
        },
    )
    for index, blocks in enumerate(sp.partition_blocks(spec, config.partitions)):
        context.log.info(f"partition {index}: blocks {blocks.start}..{blocks.stop - 1}")
        yield dg.DynamicOutput(list(blocks), mapping_key=f"p{index:04d}", output_name="partitions")


@dg.op
def scan_pool_partition(run: ScalePoolRun, blocks: list) -> dg.Output[sp.Candidates]:
    """Score one partition's blocks with the champion and keep its shortlist."""
    started = time.perf_counter()
    kept = sp.scan_partition(run.spec, blocks, run.plan, run.champion, run.labeled_features())
    return dg.Output(
        kept,
        metadata={
            "rows_scanned": kept.scanned,
            "shortlist": len(kept.ids),
            "seconds": round(time.perf_counter() - started, 3),
            "peak_mib": _peak_mib(),
        },
    )


@dg.op
def merge_pool_selection(run: ScalePoolRun, parts: list) -> dg.Output[list]:
    """Merge the shortlists into the batch (as plain dicts: key, score, reason, ...)."""
    started = time.perf_counter()
    selection = sp.merge_candidates(run.spec, parts, run.plan, run.labeled_features(), run.champion)
    picks = [asdict(p) for p in selection.picks]
    return dg.Output(
        picks,
        metadata={
            "batch": [p["key"] for p in picks],
            "partitions": selection.partitions,
            "shortlist": selection.shortlist,
            "exact_by": selection.exact_by,
            "seconds": round(time.perf_counter() - started, 3),
            "peak_mib": _peak_mib(),
        },
    )


def scale_pool_io_manager(home: str | Path) -> dg.FilesystemIOManager:
    """Pickles each step's outputs under `home`/scale_pool/<run id>/<step>/<output>, where the
    steps that consume them load them. The Celery workers of one machine share FP_HOME; workers
    on several machines need a base directory every machine mounts (NFS), or an IO manager on
    object storage instead (e.g. dagster-aws's S3PickleIOManager on the offline store's bucket).
    """
    return dg.FilesystemIOManager(base_dir=str(Path(home) / "scale_pool"))


@dg.job(
    name="scale_pool",
    description="Score a generated pool (1M × 64 by default) with the champion in partitions "
    "run in parallel by the executor, and merge one batch identical to the single-process "
    "selection.",
    # Outputs pickled on files (the instance's storage directory; the code location binds
    # `scale_pool_io_manager` on FP_HOME): an explicit IO manager, so Definitions' top-level
    # Parquet IO manager does not replace it.
    resource_defs={"io_manager": dg.fs_io_manager},
)
def scale_pool_job() -> None:
    run, partitions = plan_scale_pool()
    parts = partitions.map(lambda blocks: scan_pool_partition(run, blocks))
    merge_pool_selection(run, parts.collect())
