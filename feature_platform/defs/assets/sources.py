"""Raw sources: the digits samples as they arrive, and the held-out evaluation labels."""

import dagster as dg

from feature_platform.catalog import digits
from feature_platform.defs.resources import StoreResource

RAW = dg.AssetKey(["sources", digits.SOURCE])
HOLDOUT = dg.AssetKey(["sources", digits.HOLDOUT_SOURCE])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RAW,
            group_name="sources",
            kinds={"parquet"},
            description="Handwritten digits (scikit-learn) with per-sample arrival times.",
        ),
        dg.AssetSpec(
            HOLDOUT,
            group_name="sources",
            kinds={"parquet"},
            description="True labels of the held-out split; never offered for labeling.",
        ),
    ],
)
def digits_source(store: StoreResource):
    fs = store.get()
    raw = digits.load_raw()
    raw_path = fs.sources.write(digits.SOURCE, raw)
    holdout = digits.holdout_labels(raw)
    holdout_path = fs.sources.write(digits.HOLDOUT_SOURCE, holdout)
    yield dg.MaterializeResult(
        asset_key=RAW,
        metadata={
            "rows": len(raw),
            "pool_rows": int((raw["split"] == "pool").sum()),
            "arrivals": f"{raw['arrived_at'].min()} .. {raw['arrived_at'].max()}",
            "path": dg.MetadataValue.path(str(raw_path)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=HOLDOUT,
        metadata={"rows": len(holdout), "path": dg.MetadataValue.path(str(holdout_path))},
    )
