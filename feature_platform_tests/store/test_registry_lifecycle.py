"""Versions users can trust: immutability, lifecycle, deprecation, usage, aliases.

Every test runs on SQLite and on Postgres (the `database_url` fixture)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pytest
from store_test_support import T0, doubled, make_store, minutes, rows, spec

from feature_platform.errors import (
    FeaturePlatformError,
    FeatureVersionConflictError,
    UnknownFeatureSetError,
)
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform.store.registry import (
    DeprecatedFeatureSetWarning,
    FeatureSetInUseError,
    LifecycleError,
)


@pytest.fixture
def fs(tmp_path, database_url):
    return make_store(tmp_path, database_url)


def _tripled(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    return frame.assign(x=frame["x"] * 3)


OFFSET = 1.0


def _shift(values: pd.Series) -> pd.Series:
    return values + OFFSET


def _shifted(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    return frame.assign(x=_shift(frame["x"]))


# -- immutability ---------------------------------------------------------------------------
def test_reregistering_the_same_definition_is_a_no_op(fs) -> None:
    first = fs.apply(spec())
    again = fs.apply(spec())
    assert again == first
    assert fs.registry.versions("items") == ["v1"]


@pytest.mark.parametrize(
    "changed, named",
    [
        (spec(transform=doubled), "transform code"),
        (spec(features={"x": "float64"}), "removed ['y']"),
        (spec(features={"x": "float64", "y": "float64", "z": "float64"}), "added ['z']"),
        (spec(features={"x": "float64", "y": "int64"}), "retyped ['y: float64 -> int64']"),
        (spec(params={"scale": 2}), "params {} -> {'scale': 2}"),
        (spec(sources=("other_raw",)), "sources ['items_raw'] -> ['other_raw']"),
    ],
)
def test_a_changed_definition_under_a_published_version_is_refused_naming_it(
    fs, changed, named
) -> None:
    published = fs.apply(spec())
    with pytest.raises(FeatureVersionConflictError, match="immutable") as excinfo:
        fs.apply(changed)
    assert named in str(excinfo.value)
    assert "items@v1" in str(excinfo.value)
    assert fs.registry.get("items", "v1") == published  # nothing changed
    assert fs.registry.status_history("items", "v1")[-1]["to_status"] == "active"


def test_the_same_change_as_a_new_version_is_accepted(fs) -> None:
    fs.apply(spec())
    v2 = fs.apply(spec("v2", transform=doubled))
    assert v2.status == "active"
    assert v2.transform_fingerprint != fs.registry.get("items", "v1").transform_fingerprint
    assert fs.registry.versions("items") == ["v1", "v2"]


def test_versions_sort_naturally(fs) -> None:
    for version in ("v10", "v2", "v1"):
        fs.apply(spec(version))
    assert fs.registry.versions("items") == ["v1", "v2", "v10"]


@pytest.mark.parametrize("bad", ["", "with space", "a@b", "a:b", "-lead"])
def test_names_that_would_break_references_are_refused(fs, bad) -> None:
    with pytest.raises(FeaturePlatformError, match="Invalid"):
        fs.apply(spec(bad))
    assert fs.registry.names() == []


# -- lifecycle ------------------------------------------------------------------------------
def test_lifecycle_moves_forward_only_and_is_recorded(fs) -> None:
    draft = fs.apply(spec(), publish=False)
    assert draft.status == "draft"
    assert fs.publish("items", "v1").status == "active"
    assert fs.publish("items", "v1").status == "active"  # idempotent
    with pytest.raises(LifecycleError, match="cannot become draft"):
        fs.registry.set_status("items", "v1", "draft")
    assert fs.deprecate("items", "v1", "replaced").status == "deprecated"
    with pytest.raises(LifecycleError, match="deprecation is final"):
        fs.publish("items", "v1")
    with pytest.raises(LifecycleError, match="Unknown status"):
        fs.registry.set_status("items", "v1", "retired")
    history = fs.registry.status_history("items", "v1")
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "draft"),
        ("draft", "active"),
        ("active", "deprecated"),
    ]
    assert history[-1]["reason"] == "replaced"
    assert fs.registry.get("items", "v1").status == "deprecated"


def test_a_draft_can_be_abandoned(fs) -> None:
    fs.apply(spec(), publish=False)
    assert fs.deprecate("items", "v1").status == "deprecated"


def test_lifecycle_of_an_unknown_version_is_a_clear_error(fs) -> None:
    fs.apply(spec())
    with pytest.raises(UnknownFeatureSetError, match="Unknown version items@v9"):
        fs.deprecate("items", "v9")


# -- usage and deprecation ------------------------------------------------------------------
def test_deprecating_a_version_a_model_uses_is_refused_until_it_is_released(fs) -> None:
    fs.apply(spec())
    fs.apply(spec("v2", transform=doubled))
    fs.record_usage("items@v1", "training_set", "ts-1")
    usage = fs.record_usage("items@v1", "model", "clf/3", upstream="training_set:ts-1")
    assert usage.consumer == "model:clf/3" and usage.active
    with pytest.raises(FeatureSetInUseError, match=r"models \['clf/3'\]") as excinfo:
        fs.deprecate("items", "v1")
    assert "release" in str(excinfo.value)
    assert fs.registry.get("items", "v1").status == "active"
    assert fs.registry.release_usage("items@v1", "model", "clf/3") is True
    assert fs.registry.release_usage("items@v1", "model", "clf/3") is False
    # A training set alone does not block: it is a frozen artefact, not a served model.
    assert fs.deprecate("items", "v1").status == "deprecated"


def test_deprecating_a_version_an_alias_points_at_is_refused(fs) -> None:
    fs.apply(spec())
    fs.apply(spec("v2", transform=doubled))
    fs.set_alias("items", "serving", "v1")
    with pytest.raises(FeatureSetInUseError, match=r"aliases \['serving'\]"):
        fs.deprecate("items", "v1")
    fs.set_alias("items", "serving", "v2")
    assert fs.deprecate("items", "v1").status == "deprecated"
    with pytest.raises(LifecycleError, match="deprecated"):
        fs.set_alias("items", "serving", "v1")
    assert fs.registry.aliases("items") == {"serving": "v2"}


def test_using_a_deprecated_version_warns_and_lists_what_depends_on_it(fs) -> None:
    fs.apply(spec())
    fs.apply(spec("v2", transform=doubled))
    fs.ingest("items@v1", rows([1, 2], 1.0))
    fs.record_usage("items@v1", "training_set", "ts-7")
    fs.deprecate("items", "v1")
    entity_df = pd.DataFrame({"item_id": [1], EVENT_TIMESTAMP: [T0 + minutes(1)]})
    calls = {
        "resolve": lambda: fs.registry.resolve("items", "v1"),
        "historical": lambda: fs.get_historical_features(entity_df, ["items@v1:x"]),
        "online": lambda: fs.get_online_features(["items@v1:x"], [1]),
    }
    for what, call in calls.items():
        with pytest.warns(DeprecatedFeatureSetWarning) as record:
            call()
        message = str(record[0].message)
        assert "items@v1 is deprecated" in message, what
        assert "training sets ['ts-7']" in message, what
        assert "['v2']" in message, what  # where to go instead
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an active version never warns
        fs.get_online_features(["items@v2:x"], [1])


def test_usage_records_the_explicit_version_behind_an_alias_and_is_idempotent(fs) -> None:
    fs.apply(spec())
    fs.set_alias("items", "training", "v1")
    first = fs.record_usage("items@training", "training_set", "ts-1", details={"labels": 3})
    again = fs.record_usage("items@training", "training_set", "ts-1", details={"labels": 4})
    assert first.feature_set == again.feature_set == "items@v1"
    usages = fs.registry.usages("items@v1")
    assert len(usages) == 1 and usages[0].details == {"labels": 4}
    assert fs.registry.dependents("items", "v1").of_kind("training_set") == ["ts-1"]


@pytest.mark.parametrize(
    "args, match",
    [
        (("items@v9", "model", "m1"), "Unknown version items@v9"),
        (("nope@v1", "model", "m1"), "Unknown feature set 'nope'"),
        (("items@v1", "Model", "m1"), "Invalid consumer kind"),
        (("items@v1", "model", ""), "non-empty consumer id"),
        (("items", "model", "m1"), "Cannot parse feature set reference"),
    ],
)
def test_bad_usage_records_are_refused_and_change_nothing(fs, args, match) -> None:
    fs.apply(spec())
    with pytest.raises(FeaturePlatformError, match=match):
        fs.record_usage(*args)
    with pytest.raises(FeaturePlatformError, match="Invalid upstream"):
        fs.record_usage("items@v1", "model", "m1", upstream="ts-1")
    assert fs.registry.usages(include_released=True) == []


# -- aliases --------------------------------------------------------------------------------
def test_moving_an_alias_never_touches_pinned_versions_and_is_recorded(fs) -> None:
    fs.apply(spec())
    fs.apply(spec("v2", transform=doubled))
    fs.ingest("items@v1", rows([1], 1.0))
    fs.ingest("items@v2", rows([1], 2.0))
    fs.set_alias("items", "serving", "v1")
    assert fs.get_online_features(["items@serving:x"], [1])["x"].tolist() == [1.0]
    move = fs.set_alias("items", "serving", "v2")
    assert move["from_version"] == "v1" and move["to_version"] == "v2"
    assert fs.set_alias("items", "serving", "v2") is None  # already there: nothing recorded
    assert fs.get_online_features(["items@serving:x"], [1])["x"].tolist() == [2.0]
    assert fs.get_online_features(["items@v1:x"], [1])["x"].tolist() == [1.0]  # pinned
    history = fs.registry.alias_history("items")
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, "v1"), ("v1", "v2")]


def test_alias_and_version_names_cannot_collide(fs) -> None:
    fs.apply(spec())
    with pytest.raises(FeaturePlatformError, match="looks like a version"):
        fs.set_alias("items", "v7", "v1")
    with pytest.raises(FeaturePlatformError, match="looks like a version"):
        fs.set_alias("items", "v1", "v1")
    fs.set_alias("items", "stable", "v1")
    with pytest.raises(FeaturePlatformError, match="already an alias"):
        fs.apply(spec("stable"))
    assert fs.registry.versions("items") == ["v1"]


def test_unknown_names_versions_and_aliases_suggest_the_closest(fs) -> None:
    fs.apply(spec())
    fs.set_alias("items", "serving", "v1")
    with pytest.raises(UnknownFeatureSetError, match="Did you mean 'serving'"):
        fs.get_online_features(["items@servng:x"], [1])
    with pytest.raises(UnknownFeatureSetError, match="Did you mean 'items'"):
        fs.get_online_features(["itms@v1:x"], [1])
    with pytest.raises(FeaturePlatformError, match="Unknown version"):
        fs.set_alias("items", "serving", "v2")
    assert fs.registry.aliases("items") == {"serving": "v1"}


def test_concurrent_alias_moves_serialize_into_one_consistent_history(
    tmp_path, database_url
) -> None:
    versions = ["v1", "v2", "v3"]
    setup = make_store(tmp_path, database_url)
    for i, version in enumerate(versions):
        setup.apply(spec(version, params={"i": i}))
    setup.set_alias("items", "serving", "v1")
    # Separate FeatureStore objects: separate engines and caches, as separate processes have.
    stores = [make_store(tmp_path, database_url) for _ in range(4)]
    errors: list[BaseException] = []

    def mover(store, offset: int) -> None:
        try:
            for step in range(15):
                store.set_alias("items", "serving", versions[(offset + step) % 3], actor="platform")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = setup.registry.alias_history("items")
    assert len(history) >= 2
    for before, after in zip(history, history[1:], strict=False):
        assert after["from_version"] == before["to_version"]  # no lost or forked move
        assert after["from_version"] != after["to_version"]
    final = history[-1]["to_version"]
    assert setup.registry.aliases("items") == {"serving": final}
    assert all(s.registry.resolve("items", "serving").version == final for s in stores)


def test_another_store_sees_a_move_at_once(tmp_path, database_url) -> None:
    writer, reader = make_store(tmp_path, database_url), make_store(tmp_path, database_url)
    writer.apply(spec())
    writer.apply(spec("v2", transform=doubled))
    writer.set_alias("items", "serving", "v1")
    assert reader.registry.resolve("items", "serving").version == "v1"  # now cached
    writer.set_alias("items", "serving", "v2")
    assert reader.registry.resolve("items", "serving").version == "v2"
    writer.deprecate("items", "v1")
    assert reader.registry.get("items", "v1").status == "deprecated"


def test_a_version_changing_its_transform_in_another_module_is_detected(fs) -> None:
    fs.apply(spec(transform=doubled))
    with pytest.raises(FeatureVersionConflictError, match="transform code"):
        fs.apply(spec(transform=_tripled))


def test_a_changed_helper_or_constant_of_a_transform_is_detected(fs, monkeypatch) -> None:
    fs.apply(spec(transform=_shifted))
    fs.apply(spec(transform=_shifted))  # unchanged: a no-op
    with monkeypatch.context() as patched:
        patched.setitem(globals(), "OFFSET", 2.0)  # a constant the helper reads
        with pytest.raises(FeatureVersionConflictError, match="transform code"):
            fs.apply(spec(transform=_shifted))
    with monkeypatch.context() as patched:
        patched.setitem(globals(), "_shift", _tripled)  # the helper itself
        with pytest.raises(FeatureVersionConflictError, match="transform code"):
            fs.apply(spec(transform=_shifted))
    assert fs.registry.get("items", "v1").transform_fingerprint == (
        spec(transform=_shifted).transform_fingerprint
    )
