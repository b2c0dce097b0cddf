"""One asset per feature set version: offline snapshot + online refresh, with lineage."""

import dagster as dg

from feature_platform.catalog import digits
from feature_platform.defs.assets.sources import RAW
from feature_platform.defs.partitions import arrival_days
from feature_platform.defs.resources import ProgramResource, StoreResource
from feature_platform.store.feature_set import FeatureSetSpec


def feature_asset_key(spec: FeatureSetSpec) -> dg.AssetKey:
    return dg.AssetKey(["features", f"{spec.name}_{spec.version}"])


def build_feature_asset(spec: FeatureSetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=feature_asset_key(spec),
        deps=[RAW],
        group_name="features",
        kinds={"parquet", "sql"},
        # The definition's fingerprint: a changed transform marks everything downstream stale.
        code_version=spec.fingerprint,
        description=f"Feature set {spec.id}: {spec.description}",
        tags={"feature_set": spec.name, "version": spec.version},
        partitions_def=arrival_days,
    )
    def _feature_set(
        context: dg.AssetExecutionContext, store: StoreResource
    ) -> dg.MaterializeResult:
        fs = store.get()
        window = context.partition_time_window
        raw = fs.sources.read(spec.sources[0])
        arrived = raw["arrived_at"]
        today = raw[(arrived >= window.start) & (arrived < window.end)]
        if today.empty:
            fsv = fs.apply(spec)
            return dg.MaterializeResult(
                metadata={"feature_set_version": fsv.id, "rows": 0, "lineage": fsv.lineage()}
            )
        result = fs.materialize(spec, today)
        digits.ensure_default_aliases(fs)
        fsv = result.feature_set
        aliases = {a: v for a, v in fs.registry.aliases(fsv.name).items() if v == fsv.version}
        return dg.MaterializeResult(
            metadata={
                "feature_set_version": fsv.id,
                "status": fsv.status,
                "features": len(fsv.features),
                "rows": result.snapshot.rows,
                "online_rows_changed": result.online_rows_changed,
                "snapshot": dg.MetadataValue.path(str(result.snapshot.path)),
                "fingerprint": fsv.fingerprint,
                "aliases": ", ".join(sorted(aliases)) or "-",
                "definition": dg.MetadataValue.json(fsv.lineage()),
                # Sources -> this version -> training sets and models built from it.
                "lineage": dg.MetadataValue.md(fs.registry.lineage(fsv.id).to_markdown()),
            },
            data_version=dg.DataVersion(f"{fsv.fingerprint}-{result.snapshot.path.stem}"),
        )

    return _feature_set


feature_assets = [build_feature_asset(spec) for spec in digits.FEATURE_SETS]
feature_asset_keys = [feature_asset_key(spec) for spec in digits.FEATURE_SETS]
# Every day of every feature set version, for assets that read the whole store (the pool).
all_feature_days = [
    dg.AssetDep(key, partition_mapping=dg.AllPartitionMapping()) for key in feature_asset_keys
]


TRAINING_FEATURES = dg.AssetKey(["features", "training_version"])


@dg.observable_source_asset(
    key=TRAINING_FEATURES,
    group_name="features",
    description=(
        "The feature set version rounds train on: the program's alias resolved in the "
        "registry. Its data version is that version's fingerprint, so moving the alias to a "
        "new version marks every round built on the old one stale (one click recomputes)."
    ),
)
def training_features(store: StoreResource, program: ProgramResource) -> dg.ObserveResult:
    fsv = store.get().resolve_feature_set(program.feature_set)
    return dg.ObserveResult(
        data_version=dg.DataVersion(f"{fsv.id}:{fsv.fingerprint}"),
        metadata={
            "reference": program.feature_set,
            "feature_set_version": fsv.id,
            "fingerprint": fsv.fingerprint,
            "status": fsv.status,
        },
    )
