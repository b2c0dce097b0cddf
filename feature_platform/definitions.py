"""The Dagster code location: `dagster dev` (or `dagster dev -w workspace.yaml`) loads `defs`.

It holds every shipped example program (`catalog/programs/*.yaml`) side by side, each with its
own prefixed assets, partitions, sensors, jobs and registered model. A user's project has the
same shape and loads with `project_definitions(<project dir>)` (see `feature-platform init`).
"""

from __future__ import annotations

from feature_platform.defs.location import build_definitions, project_definitions

__all__ = ["build_definitions", "defs", "project_definitions"]

defs = build_definitions()
