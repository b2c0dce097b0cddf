"""A program's jobs, named `<program>__<job>`."""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from feature_platform.defs.context import RETRAIN_TAG, ProgramContext
from feature_platform.defs.ops import build_rescore_job


@dataclass(frozen=True)
class ProgramJobs:
    refresh_features: Any
    observe_training_features: Any
    open_round: Any
    retrain: Any
    monitor_drift: Any
    rescore_open_tasks: dg.JobDefinition  # the asset jobs are unresolved until Definitions

    def all(self) -> list:
        return [
            self.refresh_features,
            self.observe_training_features,
            self.open_round,
            self.retrain,
            self.monitor_drift,
            self.rescore_open_tasks,
        ]


def build_jobs(ctx: ProgramContext) -> ProgramJobs:
    key = ctx.key
    return ProgramJobs(
        refresh_features=dg.define_asset_job(
            ctx.job_name("refresh_features"),
            selection=dg.AssetSelection.assets(
                ctx.raw_key, ctx.holdout_key, *[ctx.feature_key(s) for s in ctx.feature_sets]
            ),
            partitions_def=ctx.arrival_days,
            description=f"Reload {ctx.name}'s raw source and recompute every feature set version.",
        ),
        observe_training_features=dg.define_asset_job(
            ctx.job_name("observe_training_features"),
            selection=dg.AssetSelection.assets(ctx.training_features_key),
            description="Record which feature set version rounds now train on (after an alias "
            "move).",
        ),
        open_round=dg.define_asset_job(
            ctx.job_name("open_round"),
            selection=dg.AssetSelection.assets(key("candidate_pool"), key("labeling_batch")),
            partitions_def=ctx.rounds,
            description="Score the pool with the champion and queue the round's labeling batch.",
        ),
        retrain=dg.define_asset_job(
            ctx.job_name("retrain"),
            selection=dg.AssetSelection.assets(
                key("training_set"), key("model"), key("round_report")
            ),
            partitions_def=ctx.rounds,
            # The queued run coordinator runs one retrain per program at a time; other
            # programs' retrains carry another tag value and are not held back.
            tags={RETRAIN_TAG: ctx.name},
            description="Freeze the round's labels, build the training set, train and register "
            "a model.",
        ),
        monitor_drift=dg.define_asset_job(
            ctx.job_name("monitor_drift"),
            selection=dg.AssetSelection.assets(key("pool_drift")),
            description="Compare the unlabeled pool with the champion's training set.",
        ),
        rescore_open_tasks=build_rescore_job(ctx),
    )
