"""One asset per feature set version of a program: offline snapshot + online refresh, with
lineage; and the observable version the program's training alias resolves to."""

import dagster as dg

from feature_platform.defs.assets.sources import privacy_metadata
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.resources import StoreResource
from feature_platform.programs.project import ensure_default_aliases
from feature_platform.store.feature_set import FeatureSetSpec


def build_feature_asset(ctx: ProgramContext, spec: FeatureSetSpec) -> dg.AssetsDefinition:
    event_time = ctx.source.event_time
    aliases = ctx.definition.aliases

    @dg.asset(
        key=ctx.feature_key(spec),
        deps=[ctx.raw_key],
        group_name=ctx.group,
        kinds={"parquet", "sql"},
        # The definition's fingerprint: a changed transform marks everything downstream stale.
        code_version=spec.fingerprint,
        description=f"Feature set {spec.id}: {spec.description}",
        tags={"feature_set": spec.name, "version": spec.version},
        metadata=privacy_metadata(spec.tags),
        partitions_def=ctx.arrival_days,
    )
    def _feature_set(
        context: dg.AssetExecutionContext, store: StoreResource
    ) -> dg.MaterializeResult:
        fs = store.for_program(ctx.name)
        window = context.partition_time_window
        raw = fs.sources.read(spec.sources[0])
        arrived = raw[event_time]
        today = raw[(arrived >= window.start) & (arrived < window.end)]
        if today.empty:
            fsv = fs.apply(spec)
            ensure_default_aliases(fs, spec.name, aliases)
            return dg.MaterializeResult(
                metadata={"feature_set_version": fsv.id, "rows": 0, "lineage": fsv.lineage()}
            )
        result = fs.materialize(spec, today)
        ensure_default_aliases(fs, spec.name, aliases)
        fsv = result.feature_set
        aliased = {a: v for a, v in fs.registry.aliases(fsv.name).items() if v == fsv.version}
        return dg.MaterializeResult(
            metadata={
                "feature_set_version": fsv.id,
                "status": fsv.status,
                "features": len(fsv.features),
                "rows": result.snapshot.rows,
                "online_rows_changed": result.online_rows_changed,
                "snapshot": dg.MetadataValue.path(str(result.snapshot.path)),
                "fingerprint": fsv.fingerprint,
                "aliases": ", ".join(sorted(aliased)) or "-",
                "definition": dg.MetadataValue.json(fsv.lineage()),
                **privacy_metadata(spec.tags),
                # Sources -> this version -> training sets and models built from it.
                "lineage": dg.MetadataValue.md(fs.registry.lineage(fsv.id).to_markdown()),
            },
            data_version=dg.DataVersion(f"{fsv.fingerprint}-{result.snapshot.path.stem}"),
        )

    return _feature_set


def all_feature_days(ctx: ProgramContext) -> list[dg.AssetDep]:
    """Every day of every feature set version, for assets that read the whole store (the pool)."""
    return [
        dg.AssetDep(ctx.feature_key(spec), partition_mapping=dg.AllPartitionMapping())
        for spec in ctx.feature_sets
    ]


def build_training_features(ctx: ProgramContext) -> dg.SourceAsset:
    reference = ctx.program.feature_set

    @dg.observable_source_asset(
        key=ctx.training_features_key,
        group_name=ctx.group,
        description=(
            f"The feature set version {ctx.name}'s rounds train on: {reference} resolved in the "
            "registry. Its data version is that version's fingerprint, so moving the alias to a "
            "new version marks every round built on the old one stale (one click recomputes)."
        ),
    )
    def _training_features(store: StoreResource) -> dg.ObserveResult:
        fsv = store.for_program(ctx.name).resolve_feature_set(reference)
        return dg.ObserveResult(
            data_version=dg.DataVersion(f"{fsv.id}:{fsv.fingerprint}"),
            metadata={
                "reference": reference,
                "feature_set_version": fsv.id,
                "fingerprint": fsv.fingerprint,
                "status": fsv.status,
            },
        )

    return _training_features
