"""The per-round assets: candidate pool -> labeling batch -> (answers) -> training set -> model.

The candidate pool is scored by the MLflow `champion` (the previous round's model), read from
the registry rather than wired as an edge, since an edge back would make the graph a cycle.
"""

import dagster as dg
import pandas as pd

from feature_platform.defs.assets.features import TRAINING_FEATURES, all_feature_days
from feature_platform.defs.partitions import rounds_partitions
from feature_platform.defs.resources import MlflowResource, ProgramResource, StoreResource
from feature_platform.learning import plots, promotion, rounds, stopping
from feature_platform.learning.tracking import CHAMPION
from feature_platform.learning.training import training_set_from_frame, training_set_to_frame
from feature_platform.names import path_under


def _table(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False))


@dg.asset(
    partitions_def=rounds_partitions,
    # The days give lineage; the training version gives staleness (Dagster does not follow
    # data versions across an all-partitions edge from daily partitions).
    deps=[*all_feature_days, TRAINING_FEATURES],
    group_name="rounds",
    kinds={"parquet"},
    description="Unlabeled, arrived samples with the champion model's class probabilities.",
)
def candidate_pool(
    context: dg.AssetExecutionContext,
    store: StoreResource,
    mlflow: MlflowResource,
    program: ProgramResource,
) -> pd.DataFrame:
    tracker = mlflow.tracker()
    champion = tracker.by_alias(CHAMPION)
    model = tracker.load(champion) if champion else None
    pool = rounds.candidate_pool(store.get(), program.program(), model)
    # The batch names the model that actually scored the pool, even if the champion moves
    # between the two steps.
    pool["scored_by"] = champion.label if champion else ""
    context.add_output_metadata(
        {
            "pool_size": len(pool),
            "scored_by": champion.label if champion else "nobody (cold start)",
            "mean_margin": float(pool["margin"].mean()) if "margin" in pool else None,
        }
    )
    return pool


@dg.asset(
    partitions_def=rounds_partitions,
    group_name="rounds",
    kinds={"sql"},
    description="The round's tasks, queued for annotators with the reason each was picked.",
)
def labeling_batch(
    context: dg.AssetExecutionContext,
    candidate_pool: pd.DataFrame,
    store: StoreResource,
    program: ProgramResource,
) -> pd.DataFrame:
    scored_by = candidate_pool["scored_by"].iloc[0] if len(candidate_pool) else ""
    tasks = rounds.open_batch(
        store.get(),
        program.program(),
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
    partitions_def=rounds_partitions,
    group_name="rounds",
    kinds={"parquet"},
    description="Label snapshot x one feature set version, joined point in time.",
)
def training_set(
    context: dg.AssetExecutionContext,
    labeling_batch: pd.DataFrame,
    store: StoreResource,
    program: ProgramResource,
) -> pd.DataFrame:
    snapshot, built = rounds.freeze_training_set(
        store.get(), program.program(), context.partition_key
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
    partitions_def=rounds_partitions,
    group_name="rounds",
    kinds={"mlflow", "sklearn"},
    description="The round's challenger: trained, evaluated on the held-out split, logged and "
    "registered in MLflow; promoted to champion by the stated rule, which re-scores open tasks.",
)
def model(
    context: dg.AssetExecutionContext,
    training_set: pd.DataFrame,
    store: StoreResource,
    mlflow: MlflowResource,
    program: ProgramResource,
) -> dg.MaterializeResult:
    fs, settings, tracker = store.get(), program.program(), mlflow.tracker()
    built = training_set_from_frame(fs, training_set)
    snapshot = fs.labels.get(built.label_snapshot_id)
    as_of = snapshot.created_at
    trained, metrics = rounds.train_and_evaluate(fs, settings, built, as_of)
    tracked = tracker.log_model(
        trained,
        params=settings.params(),
        metrics=metrics,
        tags={
            "feature_set_version": built.feature_set.id,
            "label_snapshot_id": built.label_snapshot_id,
            "training_set_fingerprint": built.fingerprint,
            "strategy": settings.strategy,
            "round": context.partition_key,
            "dagster_run_id": context.run.run_id,
        },
        run_name=f"{context.partition_key}-{settings.strategy}",
    )
    fs.registry.record_usage(
        built.feature_set.id,
        "model",
        tracked.label,
        upstream=f"training_set:{built.fingerprint}",
        details={"round": context.partition_key, "label_snapshot_id": snapshot.id},
    )
    stopping.log_stop_set_predictions(
        tracker,
        tracked.run_id,
        stopping.stop_set_predictions(fs, settings, trained, built.feature_set.id, as_of),
    )
    decision = promotion.promote(
        tracker,
        tracked,
        tolerance=program.promotion_tolerance,
        champion_metrics=promotion.champion_metrics_on(fs, settings, tracker, as_of),
    )
    rescored = (
        rounds.rescore_open_tasks(fs, settings, trained, tracked.label)
        if decision.promote
        else None
    )
    pictures = _round_pictures(fs, settings, tracker, built, trained, as_of, context.partition_key)
    for picture in pictures:
        tracker.log_artifact(tracked.run_id, picture.path)
    return dg.MaterializeResult(
        metadata={
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "labels": int(metrics["labels"]),
            "strategy": settings.strategy,
            "feature_set_version": built.feature_set.id,
            "label_snapshot_id": built.label_snapshot_id,
            "training_set_fingerprint": built.fingerprint,
            "model_version": tracked.label,
            "mlflow_run_id": tracked.run_id,
            "promoted": decision.promote,
            "promotion": decision.reason,
            "open_tasks_rescored": len(rescored.rescored) if rescored else 0,
            "lineage": dg.MetadataValue.md(
                fs.registry.lineage(f"model:{tracked.label}").to_markdown()
            ),
            **{picture.title: dg.MetadataValue.md(picture.markdown) for picture in pictures},
        }
    )


def _round_pictures(fs, settings, tracker, built, trained, as_of, round_name):  # noqa: ANN001, ANN202
    """The learning curve so far (beside a logged random reference, if any) and this round's
    confusion matrix on the held-out split."""
    folder = path_under(fs.settings.home, "pictures", round_name, what="round")
    curves = {settings.strategy: plots.curve_from_history(stopping.history_from_tracker(tracker))}
    reference = tracker.reference_curve(plots.BASELINE)
    if reference:
        curves[plots.BASELINE] = reference
    X, y = rounds.holdout(fs, settings, built, as_of)  # noqa: N806
    return [
        plots.learning_curve_png(
            folder / "learning_curve.png", curves, title=f"Learning curve up to {round_name}"
        ),
        plots.confusion_matrix_png(
            folder / "confusion_matrix.png",
            y,
            trained.predict(X),
            settings.classes,
            title=f"Confusion matrix, {round_name}",
        ),
    ]


round_assets = [candidate_pool, labeling_batch, training_set, model]
