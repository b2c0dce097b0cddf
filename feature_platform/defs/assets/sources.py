"""Raw sources: the digits samples by day of arrival, and the held-out evaluation labels."""

import dagster as dg
import pandas as pd

from feature_platform.catalog import digits
from feature_platform.defs.partitions import arrival_days
from feature_platform.defs.resources import StoreResource

RAW = dg.AssetKey(["sources", digits.SOURCE])
HOLDOUT = dg.AssetKey(["sources", digits.HOLDOUT_SOURCE])


def days_in_window(context: dg.AssetExecutionContext) -> list[tuple[str, pd.Timestamp]]:
    """(partition key, day start) for each day this run covers (one, or a backfill range)."""
    window = context.partition_time_window
    days = pd.date_range(window.start, window.end, freq="D", inclusive="left")
    return [(day.strftime("%Y-%m-%d"), day) for day in days]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RAW,
            group_name="sources",
            kinds={"parquet"},
            description="Handwritten digits (scikit-learn), one partition per day of arrival.",
        ),
        dg.AssetSpec(
            HOLDOUT,
            group_name="sources",
            kinds={"parquet"},
            description="True labels of the held-out split; never offered for labeling.",
        ),
    ],
    partitions_def=arrival_days,
)
def digits_source(context: dg.AssetExecutionContext, store: StoreResource):
    fs = store.get()
    raw = digits.load_raw()
    holdout = digits.holdout_labels(raw).set_index(digits.ENTITY)
    arrived = raw["arrived_at"].dt.floor("D")
    rows = holdout_rows = 0
    for key, day in days_in_window(context):
        today = raw[arrived == day]
        if today.empty:
            continue  # no arrivals that day: nothing to store
        fs.sources.write(digits.SOURCE, today, partition=key)
        labels = holdout.loc[holdout.index.intersection(today[digits.ENTITY])].reset_index()
        fs.sources.write(digits.HOLDOUT_SOURCE, labels, partition=key)
        rows, holdout_rows = rows + len(today), holdout_rows + len(labels)
    yield dg.MaterializeResult(
        asset_key=RAW,
        metadata={"rows": rows, "days_with_arrivals": len(fs.sources.partitions(digits.SOURCE))},
    )
    yield dg.MaterializeResult(asset_key=HOLDOUT, metadata={"rows": holdout_rows})
