"""The operations view: one report per round of a program, in the asset's metadata."""

import dagster as dg
import pandas as pd

from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.labeling import metrics
from feature_platform.learning import stopping


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".3f") if len(frame) else "_none_"


def build_round_report(ctx: ProgramContext) -> dg.AssetsDefinition:
    @dg.asset(
        key=ctx.key("round_report"),
        partitions_def=ctx.rounds,
        deps=[ctx.key("model")],
        group_name=ctx.group,
        kinds={"markdown"},
        description="Per round: labeling throughput, turnaround, lead time from task creation to "
        "registered model, accuracy against labels and drift status.",
    )
    def round_report(
        context: dg.AssetExecutionContext, store: StoreResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        fs, tracker = store.for_program(ctx.name), mlflow.tracker(ctx.model_name)
        round_name = context.partition_key
        labeling = metrics.round_metrics(fs.queue)
        labeling = labeling[labeling["round"] == round_name]
        lead = metrics.lead_time_by_round(
            metrics.lead_times(fs.queue, fs.labels, tracker.registration_times())
        )
        lead = lead[lead["round"] == round_name]
        curve = pd.DataFrame(
            [(r.round, r.labels, r.accuracy) for r in stopping.history_from_tracker(tracker)],
            columns=["round", "labels", "accuracy"],
        )
        drift_event = context.instance.get_latest_materialization_event(ctx.key("pool_drift"))
        drift = (
            drift_event.asset_materialization.metadata.get("drifted_features")
            if drift_event
            else None
        )
        drift_status = "not measured yet"
        if drift is not None:
            measured = pd.Timestamp(drift_event.timestamp, unit="s", tz="UTC")
            drift_status = (
                f"{drift.value} drifted feature(s), measured {measured:%Y-%m-%d %H:%M} UTC"
            )
        row = labeling.iloc[0] if len(labeling) else None
        report = "\n\n".join(
            [
                f"## {round_name}",
                "### Labeling\n" + _markdown(labeling.drop(columns=["round"])),
                "### Lead time (task created → model registered), seconds\n"
                + _markdown(lead.drop(columns=["round"])),
                "### Accuracy against labels\n" + _markdown(curve),
                f"### Drift\n{drift_status}",
            ]
        )
        lead_row = lead.iloc[0] if len(lead) else None
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(report),
                "answers": int(row["answers"]) if row is not None else 0,
                "answers_per_hour": float(row["answers_per_hour"]) if row is not None else None,
                "turnaround_median_s": float(row["turnaround_median_s"])
                if row is not None
                else None,
                "lead_time_median_s": float(lead_row["lead_time_median_s"])
                if lead_row is not None
                else None,
                "accuracy": float(curve["accuracy"].iloc[-1]) if len(curve) else None,
                "drift": drift_status,
            }
        )

    return round_report
