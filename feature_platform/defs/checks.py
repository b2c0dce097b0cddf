"""Pandera schemas run as asset checks on each program's assets. Failing rows are quarantined
for review and listed in the check's metadata; source and feature checks block downstream
steps. The source's schema is derived from its declaration in the template."""

import warnings

import dagster as dg
import pandas as pd

from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import StoreResource
from feature_platform.feature_store import FeatureStore
from feature_platform.learning.training import SNAPSHOT_COLUMN
from feature_platform.quality import schemas
from feature_platform.quality.validation import Quarantine, ValidationReport, validate
from feature_platform.store.feature_set import FeatureSetSpec

# Per-partition checks on round assets are what we want; Dagster flags the API as preview.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _result(
    report: ValidationReport, fs: FeatureStore, asset: str, partition: str | None
) -> dg.AssetCheckResult:
    quarantined = Quarantine(fs.settings.home / "quarantine").put(
        asset, partition, report.failed_rows
    )
    metadata: dict[str, object] = {
        "rows": report.rows,
        "failed_rows": report.failed_row_count,
        "summary": report.summary(),
    }
    if not report.passed:
        metadata["failure_cases"] = dg.MetadataValue.md(
            report.failure_cases.head(20).to_markdown(index=False)
        )
        metadata["quarantine"] = dg.MetadataValue.path(str(quarantined))
    return dg.AssetCheckResult(passed=report.passed, metadata=metadata)


def build_source_check(ctx: ProgramContext) -> dg.AssetChecksDefinition:
    source, classes = ctx.source, ctx.program.classes

    @dg.asset_check(
        asset=ctx.raw_key,
        name="schema",
        blocking=True,
        description="Pandera schema derived from the declared source (entity unique, arrival "
        "times, declared columns and dtypes, true labels in the label set).",
    )
    def _check(store: StoreResource) -> dg.AssetCheckResult:
        fs = store.for_program(ctx.name)
        raw = fs.sources.read(source.name)
        return _result(validate(raw, schemas.source_schema(source, classes)), fs, source.name, None)

    return _check


def build_feature_check(ctx: ProgramContext, spec: FeatureSetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=ctx.feature_key(spec),
        name="schema",
        blocking=True,
        description=f"Pandera schema of {spec.id}'s newest snapshot (finite, complete, unique).",
    )
    def _check(store: StoreResource) -> dg.AssetCheckResult:
        fs = store.for_program(ctx.name)
        fsv = fs.apply(spec)
        snapshots = fs.offline.snapshots(fsv)
        if not snapshots:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
        newest = fs.offline.read_files(fsv, snapshots[-1:])  # local or object storage
        return _result(validate(newest, schemas.feature_set_schema(fsv)), fs, fsv.id, None)

    return _check


def build_round_checks(ctx: ProgramContext) -> list[dg.AssetChecksDefinition]:
    classes = ctx.program.classes
    entity = ctx.source.entity

    @dg.asset_check(
        asset=ctx.key("training_set"),
        name="training_set_schema",
        partitions_def=ctx.rounds,
        blocking=True,
        description="Labels in the class set, no missing feature values.",
    )
    def training_set_schema(
        context: dg.AssetCheckExecutionContext, training_set: pd.DataFrame, store: StoreResource
    ) -> dg.AssetCheckResult:
        features = [c for c in training_set.columns if c not in (entity, "label")]
        features = [c for c in features if training_set[c].dtype.kind == "f"]
        fs = store.for_program(ctx.name)
        # Labels are in the label set version of the snapshot the set was built from.
        snapshot_ids = training_set.get(SNAPSHOT_COLUMN, pd.Series(dtype=str)).unique()
        version = fs.labels.get(snapshot_ids[0]).label_set_version if len(snapshot_ids) else None
        allowed = fs.label_sets.classes_at(version, classes)
        report = validate(training_set, schemas.training_set_schema(features, allowed))
        return _result(report, fs, "training_set", context.partition_key)

    @dg.asset_check(
        asset=ctx.key("labeling_batch"),
        name="labeling_batch_schema",
        partitions_def=ctx.rounds,
        description="Each task carries a sample, a reason, a score and a feature version.",
    )
    def labeling_batch_schema(
        context: dg.AssetCheckExecutionContext, labeling_batch: pd.DataFrame, store: StoreResource
    ) -> dg.AssetCheckResult:
        report = validate(labeling_batch, schemas.labeling_batch_schema(classes))
        fs = store.for_program(ctx.name)
        return _result(report, fs, "labeling_batch", context.partition_key)

    @dg.asset_check(
        asset=ctx.key("pool_drift"),
        name="pool_drift_within_threshold",
        description="Warns when features of the unlabeled pool drifted from the champion's "
        "training set (PSI > 0.2 and KS p < 0.01).",
    )
    def pool_drift_within_threshold(pool_drift: pd.DataFrame) -> dg.AssetCheckResult:
        drifted = pool_drift[pool_drift["drifted"].astype(bool)] if len(pool_drift) else pool_drift
        return dg.AssetCheckResult(
            passed=drifted.empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "features_checked": len(pool_drift),
                "drifted_features": len(drifted),
                "drifted": ", ".join(drifted["feature"].head(20)) if len(drifted) else "-",
            },
        )

    return [training_set_schema, labeling_batch_schema, pool_drift_within_threshold]


def build_checks(ctx: ProgramContext) -> list[dg.AssetChecksDefinition]:
    return [
        build_source_check(ctx),
        *[build_feature_check(ctx, spec) for spec in ctx.feature_sets],
        *build_round_checks(ctx),
    ]
