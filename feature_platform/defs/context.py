"""What the asset factory knows about one program: its definition, its keys and partitions.

Every asset key is prefixed by the program's name, every group is the program's name, and each
program has its own day partitions (from its source's first day) and round partitions, so
several programs share one code location without sharing a key, a partition or a run key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from feature_platform.programs.model import Program
from feature_platform.programs.project import ProgramDefinition
from feature_platform.store.feature_set import FeatureSetSpec
from feature_platform.store.sources import SourceSpec

RETRAIN_TAG = "feature_platform/retrain"
ARRIVAL_PARTITIONS = {
    "daily": dg.DailyPartitionsDefinition,
    "weekly": dg.WeeklyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


@dataclass(frozen=True)
class ProgramContext:
    definition: ProgramDefinition

    @property
    def name(self) -> str:
        return self.definition.name

    @functools.cached_property
    def program(self) -> Program:
        return self.definition.program

    @functools.cached_property
    def source(self) -> SourceSpec:
        return self.definition.source

    @functools.cached_property
    def feature_sets(self) -> list[FeatureSetSpec]:
        return self.definition.feature_sets

    @property
    def model_name(self) -> str:
        return self.definition.model_name

    @property
    def group(self) -> str:
        return self.name.replace("-", "_").replace(".", "_")

    def key(self, *parts: str) -> dg.AssetKey:
        return dg.AssetKey([self.group, *parts])

    def job_name(self, job: str) -> str:
        return f"{self.group}__{job}"

    @functools.cached_property
    def arrival_days(self) -> dg.TimeWindowPartitionsDefinition:
        # Samples arrive over time: one partition per day (or week / month for long histories),
        # so a backfill of N days runs as N partitions and the nightly schedule refreshes only
        # yesterday. A historical source may end (`end_date`).
        source = self.definition.template.resolved["source"]
        kind = ARRIVAL_PARTITIONS[source.get("partitions", "daily")]
        return kind(
            start_date=str(source["start_date"]),
            end_date=str(source["end_date"]) if source.get("end_date") else None,
            timezone="UTC",
        )

    @functools.cached_property
    def rounds(self) -> dg.DynamicPartitionsDefinition:
        # One partition per active-learning round ("round-001", ...), added by the round sensor.
        return dg.DynamicPartitionsDefinition(name=f"{self.group}__rounds")

    @property
    def raw_key(self) -> dg.AssetKey:
        return self.key("sources", self.source.name)

    @property
    def holdout_key(self) -> dg.AssetKey:
        return self.key("sources", self.source.holdout_name)

    def feature_key(self, spec: FeatureSetSpec) -> dg.AssetKey:
        return self.key("features", f"{spec.name}_{spec.version}")

    @property
    def training_features_key(self) -> dg.AssetKey:
        return self.key("features", "training_version")

    def all_arrival_days_tags(self, until: datetime | None = None) -> dict[str, str]:
        """Run tags that make one run cover every arrival day so far (a single-run backfill),
        or only up to the day holding `until` (e.g. the newest arrival in the source)."""
        keys = self.arrival_days.get_partition_keys()
        end = keys[-1]
        if until is not None:
            window = self.arrival_days.get_partition_key_for_timestamp(until.timestamp())
            end = min(end, window)
        return {
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": end,
        }
