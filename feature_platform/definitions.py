"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from __future__ import annotations

import dagster as dg

from feature_platform.defs.assets.features import feature_assets, training_features
from feature_platform.defs.assets.monitoring import pool_drift
from feature_platform.defs.assets.reports import round_report
from feature_platform.defs.assets.rounds import round_assets
from feature_platform.defs.assets.sources import digits_source
from feature_platform.defs.checks import asset_checks
from feature_platform.defs.executors import executor_from_env
from feature_platform.defs.jobs import jobs, monitor_drift_job, refresh_features_job
from feature_platform.defs.resources import ProgramResource, build_resources
from feature_platform.defs.scale_pool import scale_pool_job
from feature_platform.defs.sensors import sensors
from feature_platform.settings import Settings

# Each night: yesterday's arrivals and their features, then drift against the champion.
daily_feature_refresh = dg.build_schedule_from_partitioned_job(
    refresh_features_job,
    hour_of_day=3,
    description="Load yesterday's arrivals and compute their features, every night.",
)
daily_drift = dg.ScheduleDefinition(
    job=monitor_drift_job,
    cron_schedule="0 4 * * *",
    description="Recompute pool drift against the champion's training set every night.",
)


def build_definitions(
    settings: Settings | None = None, program: ProgramResource | None = None
) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            digits_source,
            *feature_assets,
            training_features,
            *round_assets,
            pool_drift,
            round_report,
        ],
        asset_checks=asset_checks,
        jobs=[*jobs, scale_pool_job],
        sensors=sensors,
        schedules=[daily_feature_refresh, daily_drift],
        # FP_EXECUTOR: multiprocess (default), in_process or celery (defs/executors.py).
        executor=executor_from_env(),
        resources=build_resources(
            settings or Settings.from_env(), program or ProgramResource.from_env()
        ),
    )


defs = build_definitions()
