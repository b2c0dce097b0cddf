"""Lineage from the registry and the `lineage` / `features` commands."""

from __future__ import annotations

import json

import pytest
from store_test_support import doubled, make_store, spec

from feature_platform.cli import main
from feature_platform.errors import FeaturePlatformError, UnknownFeatureSetError
from feature_platform_tests.conftest import register_people


@pytest.fixture
def fs(tmp_path, database_url, monkeypatch):
    """v1 -> training set ts-1 -> model clf/1; v2 -> ts-2 -> clf/2; the CLI sees the same."""
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    monkeypatch.setenv("FP_DATABASE_URL", database_url)
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.apply(spec("v2", transform=doubled, sources=("items_raw", "items_extra")))
    store.set_alias("items", "serving", "v2")
    store.record_usage("items@v1", "training_set", "ts-1", details={"label_snapshot": "s1"})
    store.record_usage("items@v1", "model", "clf/1", upstream="training_set:ts-1")
    store.record_usage("items@serving", "training_set", "ts-2")
    store.record_usage("items@v2", "model", "clf/2", upstream="training_set:ts-2")
    return store


def _edges(graph) -> set[tuple[str, str]]:
    return {(e["from"], e["to"]) for e in graph.to_dict()["edges"]}


def test_lineage_of_a_version_runs_from_sources_to_models(fs) -> None:
    graph = fs.lineage("items@v1")
    assert graph.focus == ["feature_set:items@v1"]
    assert _edges(graph) == {
        ("source:items_raw", "feature_set:items@v1"),
        ("feature_set:items@v1", "training_set:ts-1"),
        ("training_set:ts-1", "model:clf/1"),
    }
    node = graph.nodes["feature_set:items@v1"]
    assert node.attributes["status"] == "active"
    assert node.attributes["fingerprint"] == fs.registry.get("items", "v1").fingerprint
    assert graph.nodes["training_set:ts-1"].attributes["label_snapshot"] == "s1"


def test_lineage_of_a_model_walks_upstream(fs) -> None:
    for target in ("model:clf/2", "clf/2"):
        graph = fs.lineage(target)
        assert _edges(graph) == {
            ("source:items_raw", "feature_set:items@v2"),
            ("source:items_extra", "feature_set:items@v2"),
            ("feature_set:items@v2", "training_set:ts-2"),
            ("training_set:ts-2", "model:clf/2"),
        }
    by_alias = fs.lineage("items@serving")
    assert by_alias.focus == ["feature_set:items@v2"]
    assert graph.nodes["feature_set:items@v2"].attributes["aliases"] == ["serving"]


def test_lineage_of_a_feature_set_or_source_covers_every_version(fs) -> None:
    whole = fs.lineage("items")
    assert {n.id for n in whole.of_kind("model")} == {"model:clf/1", "model:clf/2"}
    extra = fs.lineage("source:items_extra")
    assert {n.id for n in extra.of_kind("feature_set")} == {"feature_set:items@v2"}
    markdown = whole.to_markdown()
    for heading in ("## Raw sources", "## Feature set versions", "## Training sets", "## Models"):
        assert heading in markdown
    assert "`ts-1` → `clf/1`" in markdown
    json.dumps(whole.to_dict())  # JSON-ready for Dagster metadata


def test_unknown_lineage_targets_are_clear_errors(fs) -> None:
    with pytest.raises(UnknownFeatureSetError, match="Did you mean 'items'"):
        fs.lineage("itemz")
    with pytest.raises(UnknownFeatureSetError, match="Unknown model 'clf/9'"):
        fs.lineage("model:clf/9")
    with pytest.raises(UnknownFeatureSetError, match="Unknown version items@v7"):
        fs.lineage("items@v7")
    with pytest.raises(FeaturePlatformError, match="Name a feature set"):
        fs.lineage("  ")


def test_lineage_command_prints_markdown_or_json(fs, capsys) -> None:
    assert main(["lineage", "clf/1"]) == 0
    out = capsys.readouterr().out
    assert "# Lineage of `model:clf/1`" in out and "`items@v1`" in out
    assert main(["lineage", "items@v2", "--format", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"from": "training_set:ts-2", "to": "model:clf/2"} in payload["edges"]
    assert main(["lineage", "nothing-like-it"]) == 2
    assert "error: Nothing called 'nothing-like-it'" in capsys.readouterr().err


def test_features_command_lists_publishes_deprecates_and_moves_aliases(
    fs, capsys, monkeypatch
) -> None:
    register_people(fs.engine, "lead", "lee")
    monkeypatch.setenv("FP_USER", "lee")  # the command line acts as FP_USER
    assert main(["features", "list"]) == 0
    out = capsys.readouterr().out
    assert "items@v1" in out and "aliases: serving" in out
    assert main(["features", "deprecate", "items@v2"]) == 2  # an alias and a model use it
    assert "Cannot deprecate items@v2" in capsys.readouterr().err
    assert main(["features", "alias", "items", "serving", "v1"]) == 0
    assert "items@serving: v2 -> v1" in capsys.readouterr().out
    fs.registry.release_usage("items@v2", "model", "clf/2")
    assert main(["features", "deprecate", "items@v2", "--reason", "worse"]) == 0
    assert "items@v2: deprecated" in capsys.readouterr().out
    assert main(["features", "show", "items@v2"]) == 0
    out = capsys.readouterr().out
    assert "active -> deprecated (worse)" in out and "training sets ['ts-2']" in out
    assert main(["features", "history", "items"]) == 0
    out = capsys.readouterr().out
    assert "items@serving: v2 -> v1" in out and "items@v2: active -> deprecated" in out
    assert main(["features", "list", "itemz"]) == 2
    assert "Did you mean 'items'" in capsys.readouterr().err
    assert fs.registry.get("items", "v2").status == "deprecated"
