"""Monitoring: drift of a program's unlabeled pool against its champion's training set."""

import dagster as dg
import pandas as pd

from feature_platform.defs.assets.features import all_feature_days
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.learning import rounds
from feature_platform.learning.tracking import CHAMPION
from feature_platform.quality.drift import DRIFT_COLUMNS


def build_pool_drift(ctx: ProgramContext) -> dg.AssetsDefinition:
    @dg.asset(
        key=ctx.key("pool_drift"),
        deps=all_feature_days(ctx),
        group_name=ctx.group,
        kinds={"scipy"},
        description="PSI and KS per feature: unlabeled pool vs the champion's training set.",
    )
    def pool_drift(
        context: dg.AssetExecutionContext, store: StoreResource, mlflow: MlflowResource
    ) -> pd.DataFrame:
        tracker = mlflow.tracker(ctx.model_name)
        champion = tracker.by_alias(CHAMPION)
        if champion is None:
            context.add_output_metadata({"status": "no champion model yet: nothing to compare"})
            return pd.DataFrame(columns=DRIFT_COLUMNS)
        tags = tracker.run(champion.run_id).data.tags
        report = rounds.champion_drift(
            store.for_program(ctx.name),
            ctx.program,
            tags["feature_set_version"],
            tags["label_snapshot_id"],
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

    return pool_drift
