"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from __future__ import annotations

import dagster as dg

from feature_platform.defs.assets.features import feature_assets
from feature_platform.defs.assets.rounds import round_assets
from feature_platform.defs.assets.sources import digits_source
from feature_platform.defs.checks import asset_checks
from feature_platform.defs.jobs import jobs, refresh_features_job
from feature_platform.defs.resources import ProgramResource, build_resources
from feature_platform.defs.sensors import sensors
from feature_platform.settings import Settings

daily_feature_refresh = dg.ScheduleDefinition(
    job=refresh_features_job,
    cron_schedule="0 3 * * *",
    description="Reload raw sources and recompute feature sets every night.",
)


def build_definitions(
    settings: Settings | None = None, program: ProgramResource | None = None
) -> dg.Definitions:
    return dg.Definitions(
        assets=[digits_source, *feature_assets, *round_assets],
        asset_checks=asset_checks,
        jobs=jobs,
        sensors=sensors,
        schedules=[daily_feature_refresh],
        resources=build_resources(
            settings or Settings.from_env(), program or ProgramResource.from_env()
        ),
    )


defs = build_definitions()
