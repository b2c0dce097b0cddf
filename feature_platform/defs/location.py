"""Building a code location: every program's definitions side by side (no side effects on
import; `feature_platform/definitions.py` builds the shipped one)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from feature_platform.catalog import PROJECT_DIR
from feature_platform.defs.executors import executor_from_env
from feature_platform.defs.factory import ProgramDefs, build_program_defs
from feature_platform.defs.resources import build_resources
from feature_platform.defs.scale_pool import scale_pool_io_manager, scale_pool_job
from feature_platform.errors import FeaturePlatformError
from feature_platform.programs.project import (
    ProgramDefinition,
    location_programs,
)
from feature_platform.settings import Settings


def build_definitions(
    settings: Settings | None = None,
    programs: Sequence[ProgramDefinition] | None = None,
) -> dg.Definitions:
    """A code location with `programs` (default: the shipped examples)."""
    settings = settings or Settings.from_env()
    if programs is None:
        programs = location_programs(settings, PROJECT_DIR)
    programs = list(programs)
    built: list[ProgramDefs] = [build_program_defs(p) for p in programs]
    # Asset keys, jobs and partitions are named by the program's group, which folds '-' and
    # '.': two names that fold alike ('a-b', 'a_b') would share them.
    groups: dict[str, list[str]] = {}
    for program, defs in zip(programs, built, strict=True):
        groups.setdefault(defs.context.group, []).append(program.name)
    clashes = {g: names for g, names in groups.items() if len(names) > 1}
    if clashes:
        raise FeaturePlatformError(
            "Programs that would share asset keys, jobs and partitions in one location "
            f"(group: names): {clashes}; rename one of each."
        )
    return dg.Definitions(
        assets=[a for b in built for a in b.assets],
        asset_checks=[c for b in built for c in b.checks],
        jobs=[
            *(j for b in built for j in b.jobs.all()),
            # Its steps' outputs on FP_HOME, which every worker of the location reads.
            scale_pool_job.with_top_level_resources(
                {"io_manager": scale_pool_io_manager(settings.home).get_resource_definition()}
            ),
        ],
        sensors=[s for b in built for s in b.sensors],
        schedules=[s for b in built for s in b.schedules],
        # FP_EXECUTOR: multiprocess (default), in_process or celery (defs/executors.py).
        executor=executor_from_env(),
        resources=build_resources(settings),
    )


def project_definitions(project_dir: str | Path, settings: Settings | None = None):
    """The code location of a user's project (its `programs/*.yaml` and feature modules)."""
    settings = settings or Settings.from_env()
    return build_definitions(settings, location_programs(settings, Path(project_dir)))
