"""Feature versions and Dagster staleness: a changed feature definition makes its asset stale
(code version = fingerprint), and moving the training alias to a new version makes the rounds
built on the old one stale (observed data version), so the UI offers recomputation in one
click; nothing else goes stale."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleCauseCategory, StaleStatus
from dagster._core.definitions.observe import observe

# Dagster's own helper for the resolver its UI uses to mark assets stale.
from dagster._utils.test.data_versions import get_stale_status_resolver

from feature_platform.catalog import digits
from feature_platform.defs.assets.features import build_feature_asset
from feature_platform.defs.factory import build_program_defs
from feature_platform.defs.location import build_definitions
from feature_platform.defs.resources import StoreResource, build_resources
from feature_platform.programs.project import ProgramDefinition
from feature_platform.settings import Settings

pytestmark = pytest.mark.slow

DIGITS = ProgramDefinition(digits.template()).with_overrides(batch_size=5, seed=1)


def test_a_changed_feature_definition_marks_its_asset_stale(tmp_path: Path) -> None:
    resources = build_resources(Settings.under(tmp_path / "fp"))
    instance = dg.DagsterInstance.ephemeral()
    built = build_program_defs(DIGITS)
    ctx, digits_source = built.context, built.assets[0]
    spec = digits.DIGITS_V1
    day = ctx.arrival_days.get_partition_keys()[0]
    feature = build_feature_asset(ctx, spec)
    done = dg.materialize(
        [digits_source, feature], instance=instance, resources=resources, partition_key=day
    )
    assert done.success
    key = ctx.feature_key(spec)
    [event] = [e for e in done.get_asset_materialization_events() if e.asset_key == key]
    recorded = event.materialization.tags["dagster/code_version"]
    assert recorded == spec.fingerprint

    same = get_stale_status_resolver(instance, [digits_source, build_feature_asset(ctx, spec)])
    assert same.get_status(key, day) == StaleStatus.FRESH

    changed = replace(spec, params={**spec.params, "changed_for_test": True})
    assert changed.fingerprint != spec.fingerprint
    resolver = get_stale_status_resolver(
        instance, [digits_source, build_feature_asset(ctx, changed)]
    )
    assert resolver.get_status(key, day) == StaleStatus.STALE
    causes = resolver.get_stale_causes(key, day)
    assert [c.category for c in causes] == [StaleCauseCategory.CODE]


def test_moving_the_training_alias_marks_rounds_built_on_the_old_version_stale(
    tmp_path: Path,
) -> None:
    settings = Settings.under(tmp_path / "fp")
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    store = StoreResource.from_settings(settings).for_program("digits")
    digits.bootstrap(store)  # digits@v1 and @v2 published; "training" points at v1
    defs = build_definitions(settings, [DIGITS])
    built = build_program_defs(DIGITS)
    ctx, candidate_pool = built.context, built.round_assets[0]
    training_features = next(a for a in built.assets if isinstance(a, dg.SourceAsset))
    sensor = defs.get_repository_def().get_sensor_def("digits__training_features_changed")

    def tick():
        context = dg.build_sensor_context(
            instance=instance, resources=defs.resources, cursor=cursor
        )
        return sensor(context), context.cursor

    cursor = None
    request, cursor = tick()
    assert isinstance(request, dg.RunRequest) and request.tags["feature_set_version"] == "digits@v1"
    assert observe([training_features], instance=instance, resources=resources).success
    instance.add_dynamic_partitions(ctx.rounds.name, ["round-001"])
    assert dg.materialize(
        [candidate_pool], instance=instance, resources=resources, partition_key="round-001"
    ).success
    graph = [training_features, candidate_pool]
    pool = candidate_pool.key
    assert get_stale_status_resolver(instance, graph).get_status(pool, "round-001") == (
        StaleStatus.FRESH
    )
    skipped, cursor = tick()
    assert isinstance(skipped, dg.SkipReason)  # nothing moved: nothing to observe

    store.set_alias("digits", "training", "v2")
    request, cursor = tick()
    assert isinstance(request, dg.RunRequest) and request.tags["feature_set_version"] == "digits@v2"
    assert observe([training_features], instance=instance, resources=resources).success
    resolver = get_stale_status_resolver(instance, graph)
    assert resolver.get_status(pool, "round-001") == StaleStatus.STALE
    [cause] = resolver.get_stale_causes(pool, "round-001")
    assert cause.dependency.asset_key == ctx.training_features_key
    assert cause.category == StaleCauseCategory.DATA
