"""Monitoring: drift of the unlabeled pool against the champion's training set."""

import dagster as dg
import pandas as pd

from feature_platform.defs.assets.features import all_feature_days
from feature_platform.defs.resources import MlflowResource, ProgramResource, StoreResource
from feature_platform.learning import rounds
from feature_platform.learning.tracking import CHAMPION
from feature_platform.quality.drift import DRIFT_COLUMNS


@dg.asset(
    deps=all_feature_days,
    group_name="monitoring",
    kinds={"scipy"},
    description="PSI and KS per feature: unlabeled pool vs the champion's training set.",
)
def pool_drift(
    context: dg.AssetExecutionContext,
    store: StoreResource,
    mlflow: MlflowResource,
    program: ProgramResource,
) -> pd.DataFrame:
    tracker = mlflow.tracker()
    champion = tracker.by_alias(CHAMPION)
    if champion is None:
        context.add_output_metadata({"status": "no champion model yet: nothing to compare"})
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    tags = tracker.run(champion.run_id).data.tags
    report = rounds.champion_drift(
        store.get(), program.program(), tags["feature_set_version"], tags["label_snapshot_id"]
    )
    context.add_output_metadata(
        {
            "champion": champion.label,
            "feature_set_version": tags["feature_set_version"],
            "drifted_features": int(report["drifted"].sum()),
            "max_psi": float(report["psi"].max()),
            "most_drifted": dg.MetadataValue.md(report.head(10).to_markdown(index=False)),
        }
    )
    return report
