"""A program's raw source by day of arrival, and its held-out evaluation labels: the declared
source (CSV / Parquet / SQL / loader) read, split by its event time, one partition a day."""

from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import StoreResource
from feature_platform.programs.project import apply_privacy


def days_in_window(context: dg.AssetExecutionContext) -> list[tuple[str, pd.Timestamp]]:
    """(partition key, day start) for each day this run covers (one, or a backfill range)."""
    window = context.partition_time_window
    days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
    return [(day.strftime("%Y-%m-%d"), day) for day in days]


def privacy_metadata(tags: Mapping[str, Sequence[str]]) -> dict[str, dg.MetadataValue]:
    """An asset's tagged columns as definition metadata (seen in the UI before any run):
    `column_tags` (JSON, column -> tags) and `tagged_columns` ("column: tag, ..." lines)."""
    return {
        "column_tags": dg.MetadataValue.json({c: list(t) for c, t in tags.items()}),
        "tagged_columns": dg.MetadataValue.text(
            "; ".join(f"{c}: {', '.join(t)}" for c, t in tags.items()) or "none"
        ),
    }


def build_source_asset(ctx: ProgramContext) -> dg.AssetsDefinition:
    source = ctx.source

    @dg.multi_asset(
        name=f"{ctx.group}__source",
        specs=[
            dg.AssetSpec(
                ctx.raw_key,
                group_name=ctx.group,
                kinds={"parquet", source.kind},
                description=f"{ctx.name}: the declared {source.kind} source, one partition per "
                f"day of arrival ({source.event_time}).",
                metadata=privacy_metadata(source.columns_tags),
            ),
            dg.AssetSpec(
                ctx.holdout_key,
                group_name=ctx.group,
                kinds={"parquet"},
                description=f"{ctx.name}: true labels of the held-out split; never offered "
                "for labeling.",
            ),
        ],
        partitions_def=ctx.arrival_days,
    )
    def _source(context: dg.AssetExecutionContext, store: StoreResource):
        fs = store.for_program(ctx.name)
        apply_privacy(
            fs, ctx.definition.template
        )  # the template's tags and policy, before any data
        raw = source.read()
        arrived = raw[source.event_time].dt.floor("D")
        by_day = {day: frame for day, frame in raw.groupby(arrived)}
        rows = holdout_rows = 0
        for key, day in days_in_window(context):
            today = by_day.get(day)
            if today is None or today.empty:
                continue  # no arrivals that day: nothing to store
            fs.sources.write(source.name, today, partition=key)
            labels = source.holdout_labels(today)
            fs.sources.write(source.holdout_name, labels, partition=key)
            rows, holdout_rows = rows + len(today), holdout_rows + len(labels)
        yield dg.MaterializeResult(
            asset_key=ctx.raw_key,
            metadata={"rows": rows, "days_with_arrivals": len(fs.sources.partitions(source.name))},
        )
        yield dg.MaterializeResult(asset_key=ctx.holdout_key, metadata={"rows": holdout_rows})

    return _source
