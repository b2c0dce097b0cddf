"""FeatureStore end to end on the digits catalog: offline and online agree, re-runs are
incremental, aliases hot-swap, and bad input changes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_platform.catalog import digits
from feature_platform.errors import (
    FeatureVersionConflictError,
    InvalidReferenceError,
    SchemaMismatchError,
    UnknownFeatureError,
    UnknownFeatureSetError,
)
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec


def _all_ids(store) -> list[int]:
    return store.sources.read(digits.SOURCE)[digits.ENTITY].tolist()


def test_online_values_equal_the_newest_offline_values(digits_store) -> None:
    for version in ("v1", "v2"):
        fsv = digits_store.registry.get("digits", version)
        latest = digits_store.offline.latest(fsv).set_index(digits.ENTITY)
        keys = _all_ids(digits_store)
        online = digits_store.get_online_features([f"digits@{version}:*"], keys)
        np.testing.assert_array_equal(
            online[fsv.feature_names].to_numpy(), latest.loc[keys, fsv.feature_names].to_numpy()
        )


def test_rematerializing_unchanged_data_writes_no_online_rows(digits_store) -> None:
    fsv = digits_store.registry.get("digits", "v1")
    before = len(digits_store.offline.snapshots(fsv))
    again = digits_store.materialize(digits.DIGITS_V1)
    assert again.online_rows_changed == 0  # same values, same event times
    # Identical rows are not stored again (an idempotent re-run), so history does not grow.
    assert not again.snapshot.written
    assert len(digits_store.offline.snapshots(fsv)) == before
    changed = digits.load_raw()
    changed.loc[changed[digits.ENTITY] < 5, "p0"] = 16
    changed.loc[changed[digits.ENTITY] < 5, "arrived_at"] += pd.Timedelta(days=1)
    assert digits_store.materialize(digits.DIGITS_V1, changed).online_rows_changed == 5


def test_an_alias_hot_swap_reaches_online_and_historical_reads(digits_store) -> None:
    keys = [0, 1, 2]
    entity_df = pd.DataFrame({digits.ENTITY: keys, EVENT_TIMESTAMP: pd.Timestamp("2027-01-01")})
    before = digits_store.get_online_features(["digits@serving:*"], keys)
    assert before.attrs["feature_sets"] == ["digits@v1"] and "ink" not in before.columns
    digits_store.set_alias("digits", "serving", "v2")
    after = digits_store.get_online_features(["digits@serving:*"], keys)
    assert after.attrs["feature_sets"] == ["digits@v2"] and "ink" in after.columns
    history = digits_store.get_historical_features(entity_df, ["digits@serving:ink"])
    pinned = digits_store.get_historical_features(entity_df, ["digits@v1:p10"])
    assert history["ink"].notna().all() and pinned["p10"].notna().all()
    assert digits_store.registry.aliases("digits")["training"] == "v1"  # others untouched


def test_bad_references_are_clear_errors_that_change_nothing(digits_store) -> None:
    aliases = digits_store.registry.aliases("digits")
    cases = {
        "digits@v3:p0": (UnknownFeatureSetError, "Unknown version digits@v3"),
        "digits@servin:p0": (UnknownFeatureSetError, "Did you mean 'serving'"),
        "digit@v1:p0": (UnknownFeatureSetError, "Did you mean 'digits'"),
        "digits@v1:p64": (UnknownFeatureError, "Did you mean 'p6"),
        "digits@v2:inc": (UnknownFeatureError, "Did you mean 'ink'"),
        "digits:p0": (InvalidReferenceError, "Cannot parse feature reference"),
    }
    for reference, (error, message) in cases.items():
        with pytest.raises(error, match=message):
            digits_store.get_online_features([reference], [0])
    with pytest.raises(SchemaMismatchError, match="no 'event_timestamp' column"):
        digits_store.get_historical_features(pd.DataFrame({digits.ENTITY: [0]}), ["digits@v1:p0"])
    assert digits_store.registry.aliases("digits") == aliases


def test_changing_a_published_transform_in_place_is_refused_and_keeps_the_data(
    digits_store,
) -> None:
    fsv = digits_store.registry.get("digits", "v1")
    snapshots = digits_store.offline.snapshots(fsv)

    def scaled_differently(raw, params):
        return digits.scaled_pixels(raw, {**params})

    changed = FeatureSetSpec(**{**digits.DIGITS_V1.__dict__, "transform": scaled_differently})
    with pytest.raises(FeatureVersionConflictError, match="transform code"):
        digits_store.materialize(changed)
    assert digits_store.offline.snapshots(fsv) == snapshots
    assert digits_store.registry.get("digits", "v1") == fsv


def test_training_sets_record_the_version_behind_an_alias(digits_store) -> None:
    from feature_platform.learning import rounds
    from feature_platform.learning.training import build_training_set

    program = digits.program(batch_size=5)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    snapshot = digits_store.labels.create_snapshot(note="test")
    training_set = build_training_set(digits_store, snapshot, "digits@training")
    assert training_set.feature_set.id == "digits@v1"
    usage = digits_store.record_usage(
        training_set.feature_set.id, "training_set", training_set.fingerprint
    )
    lineage = digits_store.lineage(f"training_set:{training_set.fingerprint}").to_dict()
    assert {"from": "feature_set:digits@v1", "to": usage.consumer} in lineage["edges"]
