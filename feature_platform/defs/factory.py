"""The asset factory: one program -> its prefixed assets, checks, jobs, sensors and schedules.
Several programs side by side make one code location (`build_definitions`)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from feature_platform.defs.assets.features import build_feature_asset, build_training_features
from feature_platform.defs.assets.monitoring import build_pool_drift
from feature_platform.defs.assets.reports import build_round_report
from feature_platform.defs.assets.rounds import build_round_assets
from feature_platform.defs.assets.sources import build_source_asset
from feature_platform.defs.checks import build_checks
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.jobs import ProgramJobs, build_jobs
from feature_platform.defs.sensors import build_sensors
from feature_platform.programs.project import ProgramDefinition


@dataclass(frozen=True)
class ProgramDefs:
    context: ProgramContext
    assets: list
    round_assets: list
    pool_drift: dg.AssetsDefinition
    round_report: dg.AssetsDefinition
    checks: list
    jobs: ProgramJobs
    sensors: list
    schedules: list

    @property
    def name(self) -> str:
        return self.context.name


def build_program_defs(definition: ProgramDefinition) -> ProgramDefs:
    ctx = ProgramContext(definition)
    round_assets = build_round_assets(ctx)
    pool_drift, round_report = build_pool_drift(ctx), build_round_report(ctx)
    jobs = build_jobs(ctx)
    schedules = [
        # Each night: yesterday's arrivals and their features, then drift against the champion.
        dg.build_schedule_from_partitioned_job(
            jobs.refresh_features,
            hour_of_day=3,
            name=ctx.job_name("daily_feature_refresh"),
            description=f"Load yesterday's {ctx.name} arrivals and compute their features.",
        ),
        dg.ScheduleDefinition(
            name=ctx.job_name("daily_drift"),
            job=jobs.monitor_drift,
            cron_schedule="0 4 * * *",
            description="Recompute pool drift against the champion's training set every night.",
        ),
    ]
    return ProgramDefs(
        context=ctx,
        assets=[
            build_source_asset(ctx),
            *[build_feature_asset(ctx, spec) for spec in ctx.feature_sets],
            build_training_features(ctx),
            *round_assets,
            pool_drift,
            round_report,
        ],
        round_assets=round_assets,
        pool_drift=pool_drift,
        round_report=round_report,
        checks=build_checks(ctx),
        jobs=jobs,
        sensors=build_sensors(ctx, jobs),
        schedules=schedules,
    )
