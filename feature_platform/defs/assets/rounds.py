"""A program's per-round assets: candidate pool -> labeling batch -> (answers) -> training set
-> model. The candidate pool is scored by the program's MLflow `champion` (the previous round's
model), read from the registry rather than wired as an edge, since an edge back would make the
graph a cycle. The `model` asset runs the core's `rounds.run_training_round`, the same steps
the plain-Python loop runs.
"""

import dagster as dg
import pandas as pd

from feature_platform.defs.assets.features import all_feature_days
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.governance.privacy import trained_on_tagged_columns
from feature_platform.learning import plots, rounds, stopping
from feature_platform.learning.tracking import CHAMPION
from feature_platform.learning.training import training_set_from_frame, training_set_to_frame
from feature_platform.names import path_under


def _table(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


def build_round_assets(ctx: ProgramContext) -> list[dg.AssetsDefinition]:
    program = ctx.program
    pool_key, batch_key = ctx.key("candidate_pool"), ctx.key("labeling_batch")
    training_key, model_key = ctx.key("training_set"), ctx.key("model")

    @dg.asset(
        key=pool_key,
        partitions_def=ctx.rounds,
        # The days give lineage; the training version gives staleness (Dagster does not follow
        # data versions across an all-partitions edge from daily partitions).
        deps=[*all_feature_days(ctx), ctx.training_features_key],
        group_name=ctx.group,
        kinds={"parquet"},
        description="Unlabeled, arrived samples with the champion model's class probabilities.",
    )
    def candidate_pool(
        context: dg.AssetExecutionContext, store: StoreResource, mlflow: MlflowResource
    ) -> pd.DataFrame:
        tracker = mlflow.tracker(ctx.model_name)
        champion = tracker.by_alias(CHAMPION)
        model = tracker.load(champion) if champion else None
        version = (
            tracker.version_tags(champion.version).get("feature_set_version") if champion else None
        )
        pool = rounds.candidate_pool(
            store.for_program(ctx.name), program, model, model_feature_version=version
        )
        # The batch names the model that actually scored the pool, even if the champion moves
        # between the two steps.
        pool["scored_by"] = champion.label if champion else ""
        context.add_output_metadata(
            {
                "pool_size": len(pool),
                "scored_by": champion.label if champion else "nobody (cold start)",
                "feature_set_version": str(pool[rounds.FEATURE_VERSION].iloc[0])
                if len(pool)
                else "-",
                "mean_margin": float(pool["margin"].mean()) if "margin" in pool else None,
            }
        )
        return pool

    @dg.asset(
        key=batch_key,
        ins={"candidate_pool": dg.AssetIn(pool_key)},
        partitions_def=ctx.rounds,
        group_name=ctx.group,
        kinds={"sql"},
        description="The round's tasks, queued for annotators with the reason each was picked.",
    )
    def labeling_batch(
        context: dg.AssetExecutionContext, candidate_pool: pd.DataFrame, store: StoreResource
    ) -> pd.DataFrame:
        scored_by = candidate_pool["scored_by"].iloc[0] if len(candidate_pool) else ""
        tasks = rounds.open_batch(
            store.for_program(ctx.name),
            program,
            context.partition_key,
            candidate_pool,
            model_version=scored_by or None,
        )
        batch = pd.DataFrame(
            {
                "task_id": [t.id for t in tasks],
                "sample_key": [t.sample_key for t in tasks],
                "strategy": [t.strategy for t in tasks],
                "score": [t.score for t in tasks],
                "reason": [t.reason for t in tasks],
                "model_version": [t.model_version or "" for t in tasks],
                "feature_version": [t.feature_version for t in tasks],
                "state": [t.state for t in tasks],
            }
        )
        context.add_output_metadata(
            {"tasks": len(batch), "strategy": program.strategy, "preview": _table(batch)}
        )
        return batch

    @dg.asset(
        key=training_key,
        ins={"labeling_batch": dg.AssetIn(batch_key)},
        partitions_def=ctx.rounds,
        group_name=ctx.group,
        kinds={"parquet"},
        description="Label snapshot x the round's feature set version, joined point in time.",
    )
    def training_set(
        context: dg.AssetExecutionContext, labeling_batch: pd.DataFrame, store: StoreResource
    ) -> pd.DataFrame:
        snapshot, built = rounds.freeze_training_set(
            store.for_program(ctx.name), program, context.partition_key
        )
        context.add_output_metadata(
            {
                "label_snapshot_id": snapshot.id,
                "feature_set_version": built.feature_set.id,
                "labels": len(built.frame),
                "labels_without_features": len(built.missing),
                "training_set_fingerprint": built.fingerprint,
                "label_distribution": dg.MetadataValue.json(
                    built.frame["label"].value_counts().sort_index().to_dict()
                ),
            }
        )
        return training_set_to_frame(built)

    @dg.asset(
        key=model_key,
        ins={"training_set": dg.AssetIn(training_key)},
        partitions_def=ctx.rounds,
        group_name=ctx.group,
        kinds={"mlflow", "sklearn"},
        description=f"The round's challenger, registered as {ctx.model_name}: trained, evaluated "
        "on the held-out split, logged with its lineage; promoted to champion by the stated "
        "rule, which re-scores open tasks.",
    )
    def model(
        context: dg.AssetExecutionContext,
        training_set: pd.DataFrame,
        store: StoreResource,
        mlflow: MlflowResource,
    ) -> dg.MaterializeResult:
        fs, tracker = store.for_program(ctx.name), mlflow.tracker(ctx.model_name)
        built = training_set_from_frame(fs, training_set)
        outcome = rounds.run_training_round(
            fs,
            program,
            tracker,
            built,
            context.partition_key,
            tags={"dagster_run_id": context.run.run_id},
        )
        as_of = fs.labels.get(built.label_snapshot_id).created_at
        pictures = _round_pictures(
            fs, program, tracker, built, outcome.model, as_of, context.partition_key
        )
        for picture in pictures:
            tracker.log_artifact(outcome.tracked.run_id, picture.path)
        metrics, tracked = outcome.metrics, outcome.tracked
        return dg.MaterializeResult(
            metadata={
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "labels": int(metrics["labels"]),  # people's; machine ones apart
                "machine_labels": int(metrics.get("machine_labels", 0)),
                "program": ctx.name,
                "template_version": program.template_version or "-",
                "strategy": program.strategy,
                "feature_set_version": built.feature_set.id,
                "label_snapshot_id": built.label_snapshot_id,
                "training_set_fingerprint": built.fingerprint,
                "trained_on_tagged_columns": ", ".join(
                    trained_on_tagged_columns(fs.privacy, built.feature_set)
                )
                or "none",
                "model_version": tracked.label,
                "mlflow_run_id": tracked.run_id,
                "promoted": outcome.decision.promote,
                "promotion": outcome.decision.reason,
                "open_tasks_rescored": len(outcome.rescored.rescored) if outcome.rescored else 0,
                "lineage": dg.MetadataValue.md(
                    fs.registry.lineage(f"model:{tracked.label}").to_markdown()
                ),
                **{picture.title: dg.MetadataValue.md(picture.markdown) for picture in pictures},
                **_auto_label_metadata(outcome.auto_labels),
            }
        )

    return [candidate_pool, labeling_batch, training_set, model]


def _auto_label_metadata(record) -> dict:  # noqa: ANN001 - an AutoLabelRound or None
    """The round's auto-labels (learning/auto_labels.py), when the program has them on."""
    if record is None:
        return {}
    return {
        "auto_labels": record.labeled,
        "auto_label_status": f"{record.status}: {record.reason}",
        "auto_label_figures": dg.MetadataValue.json(
            {
                "scorer": record.scorer,
                "scorer_params": record.scorer_params,
                "threshold": record.threshold,
                "calibrated_threshold": record.calibrated_threshold,
                "holdout_precision_bound": record.holdout_precision_bound,
                "reviewed": record.reviewed,
                "confirmed": record.confirmed,
                "measured_precision": record.measured_precision,
                "measured_lower": record.measured_lower,
            }
        ),
    }


def _round_pictures(fs, program, tracker, built, trained, as_of, round_name):  # noqa: ANN001, ANN202
    """The learning curve so far (beside a logged random reference, if any) and this round's
    confusion matrix on the held-out split."""
    folder = path_under(fs.settings.home, "pictures", round_name, what="round")
    curves = {program.strategy: plots.curve_from_history(stopping.history_from_tracker(tracker))}
    reference = tracker.reference_curve(plots.BASELINE)
    if reference:
        curves[plots.BASELINE] = reference
    X, y = rounds.holdout(fs, program, built, as_of)  # noqa: N806
    return [
        plots.learning_curve_png(
            folder / "learning_curve.png", curves, title=f"Learning curve up to {round_name}"
        ),
        plots.confusion_matrix_png(
            folder / "confusion_matrix.png",
            y,
            trained.predict(X),
            fs.label_sets.classes_at(
                fs.labels.get(built.label_snapshot_id).label_set_version, program.classes
            ),
            title=f"Confusion matrix, {round_name}",
        ),
    ]
