"""Pandera schemas run as asset checks. Failing rows are quarantined for review and listed in
the check's metadata; raw and feature checks block downstream steps."""

import warnings

import dagster as dg
import pandas as pd

from feature_platform.catalog import digits
from feature_platform.defs.assets.features import feature_asset_key
from feature_platform.defs.assets.monitoring import pool_drift
from feature_platform.defs.assets.rounds import labeling_batch, training_set
from feature_platform.defs.assets.sources import RAW
from feature_platform.defs.partitions import rounds_partitions
from feature_platform.defs.resources import ProgramResource, StoreResource
from feature_platform.quality import schemas
from feature_platform.quality.validation import Quarantine, ValidationReport, validate
from feature_platform.store.feature_set import FeatureSetSpec

# Per-partition checks on round assets are what we want; Dagster flags the API as preview.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _result(
    report: ValidationReport, store: StoreResource, asset: str, partition: str | None
) -> dg.AssetCheckResult:
    quarantined = Quarantine(store.get().settings.home / "quarantine").put(
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


@dg.asset_check(asset=RAW, blocking=True, description="Pandera schema of the raw digits.")
def digits_raw_schema(store: StoreResource) -> dg.AssetCheckResult:
    raw = store.get().sources.read(digits.SOURCE)
    return _result(validate(raw, schemas.raw_digits_schema()), store, digits.SOURCE, None)


def build_feature_check(spec: FeatureSetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=feature_asset_key(spec),
        name="schema",
        blocking=True,
        description=f"Pandera schema of {spec.id}'s newest snapshot (finite, complete, unique).",
    )
    def _check(store: StoreResource) -> dg.AssetCheckResult:
        fs = store.get()
        fsv = fs.apply(spec)
        snapshots = fs.offline.snapshots(fsv)
        if not snapshots:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
        newest = fs.offline.read_files(fsv, snapshots[-1:])  # local or object storage
        return _result(validate(newest, schemas.feature_set_schema(fsv)), store, fsv.id, None)

    return _check


@dg.asset_check(
    asset=training_set,
    partitions_def=rounds_partitions,
    blocking=True,
    description="Labels in the class set, no missing feature values.",
)
def training_set_schema(
    context: dg.AssetCheckExecutionContext,
    training_set: pd.DataFrame,
    store: StoreResource,
    program: ProgramResource,
) -> dg.AssetCheckResult:
    settings = program.program()
    features = [c for c in training_set.columns if c not in ("sample_id", "label")]
    features = [c for c in features if training_set[c].dtype.kind == "f"]
    schema = schemas.training_set_schema(features, settings.classes)
    report = validate(training_set, schema)
    return _result(report, store, "training_set", context.partition_key)


@dg.asset_check(
    asset=labeling_batch,
    partitions_def=rounds_partitions,
    description="Each task carries a sample, a reason, a score and a feature version.",
)
def labeling_batch_schema(
    context: dg.AssetCheckExecutionContext,
    labeling_batch: pd.DataFrame,
    store: StoreResource,
    program: ProgramResource,
) -> dg.AssetCheckResult:
    report = validate(labeling_batch, schemas.labeling_batch_schema(program.program().classes))
    return _result(report, store, "labeling_batch", context.partition_key)


@dg.asset_check(
    asset=pool_drift,
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


asset_checks = [
    digits_raw_schema,
    *[build_feature_check(spec) for spec in digits.FEATURE_SETS],
    training_set_schema,
    labeling_batch_schema,
    pool_drift_within_threshold,
]
