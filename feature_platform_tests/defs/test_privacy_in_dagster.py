"""Privacy tags in the Dagster asset graph: the source and feature set assets carry their
tagged columns as definition metadata (seen before any run), a materialization records the
template's tags and policy in the program's stores and reports them."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from feature_platform.catalog import digits
from feature_platform.defs.factory import build_program_defs
from feature_platform.defs.resources import build_resources
from feature_platform.governance.privacy import feature_subject, source_subject
from feature_platform.programs.project import ProgramDefinition, open_program_store
from feature_platform.programs.template import ProgramTemplate
from feature_platform.settings import Settings

pytestmark = pytest.mark.slow


def _tagged_digits() -> ProgramDefinition:
    document = json.loads(json.dumps(digits.template().document))
    document["source"]["columns_tags"] = {"p5": ["pii"]}
    document["privacy"] = {
        "feature_tags": {"digits": {"p6": ["sensitive"]}},
        "policy": {"pii": "admin"},
    }
    template = ProgramTemplate(document, digits.template().base_dir)
    assert template.validate(check_data=False) == []
    return ProgramDefinition(template).with_overrides(batch_size=5, seed=1)


def _metadata(asset: dg.AssetsDefinition, key: dg.AssetKey) -> dict:
    return dict(asset.specs_by_key[key].metadata)


def test_asset_metadata_shows_the_tagged_columns_and_runs_record_them(tmp_path: Path) -> None:
    built = build_program_defs(_tagged_digits())
    ctx, source_asset = built.context, built.assets[0]
    source_meta = _metadata(source_asset, ctx.raw_key)
    assert source_meta["column_tags"].value == {"p5": ["pii"]}
    assert source_meta["tagged_columns"].value == "p5: pii"
    v1 = next(s for s in ctx.feature_sets if s.version == "v1")
    feature_asset = next(a for a in built.assets if ctx.feature_key(v1) in a.keys)
    feature_meta = _metadata(feature_asset, ctx.feature_key(v1))
    assert feature_meta["column_tags"].value == {"p5": ["pii"], "p6": ["sensitive"]}
    assert feature_meta["tagged_columns"].value == "p5: pii; p6: sensitive"

    settings = Settings.under(tmp_path / "fp")
    day = ctx.arrival_days.get_partition_keys()[0]
    done = dg.materialize(
        [source_asset, feature_asset],
        instance=dg.DagsterInstance.ephemeral(),
        resources=build_resources(settings),
        partition_key=day,
    )
    assert done.success
    [event] = [
        e for e in done.get_asset_materialization_events() if e.asset_key == ctx.feature_key(v1)
    ]
    assert event.materialization.metadata["column_tags"].value == {
        "p5": ["pii"],
        "p6": ["sensitive"],
    }
    store = open_program_store(settings, ctx.name)
    assert store.privacy.tags(source_subject(digits.SOURCE)) == {"p5": ("pii",)}
    assert store.privacy.tags(feature_subject("digits@v1")) == {
        "p5": ("pii",),
        "p6": ("sensitive",),
    }
    assert store.privacy.policy()["pii"] == "admin"
    lineage = event.materialization.metadata["lineage"].value
    assert "tags: p5=pii, p6=sensitive" in lineage
