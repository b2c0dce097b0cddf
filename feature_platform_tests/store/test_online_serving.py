"""Online store: batched lookups, incremental materialization, version-keyed caches that never
serve a stale value, and responses that never mix versions while an alias moves.

Every test runs on SQLite and on Postgres (the `database_url` fixture)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from store_test_support import T0, doubled, make_store, minutes, rows, spec

from feature_platform.errors import SchemaMismatchError
from feature_platform.store.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from feature_platform.store.online import OnlineStore


@pytest.fixture
def fs(tmp_path, database_url):
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    return store


def test_batched_lookup_keeps_key_order_and_marks_unknown_keys(fs) -> None:
    fs.ingest("items@v1", rows(range(1000), np.arange(1000.0)))
    keys = [999, 3, 3, 123456, 0]
    got = fs.get_online_features(["items@v1:y", "items@v1:x"], keys)
    assert list(got.columns) == ["item_id", "y", "x"]
    assert got["item_id"].tolist() == keys
    assert got["x"].fillna(-1).tolist() == [999.0, 3.0, 3.0, -1.0, 0.0]
    assert got["y"].fillna(1).tolist() == [-999.0, -3.0, -3.0, 1.0, -0.0]
    assert got.attrs["feature_sets"] == ["items@v1"]
    as_text = fs.get_online_features(["items@v1:x"], ["999", "3", np.int64(0), "nope"])
    assert as_text["x"].fillna(-1).tolist() == [999.0, 3.0, 0.0, -1.0]
    assert fs.get_online_features(["items@v1:*"], []).shape == (0, 3)
    fsv = fs.registry.get("items", "v1")
    assert fs.online.lookup(fsv, [2, "7", 5000]) == {
        "2": [2.0, -2.0],
        "7": [7.0, -7.0],
        "5000": None,
    }


def test_materialization_is_incremental_and_only_moves_forward(fs) -> None:
    fsv = fs.registry.get("items", "v1")
    first = fs.ingest("items@v1", rows(range(100), 1.0, at=T0))
    assert first.online_rows_changed == 100
    assert fs.materialize_online("items@v1") == 0  # nothing pending
    update = rows([5, 6], 2.0, at=T0 + minutes(10))
    assert fs.ingest("items@v1", update).online_rows_changed == 2
    # An older event (a backfill) is kept offline but does not replace the newer online value.
    backfill = rows([5, 7], 9.0, at=T0 + minutes(5))
    assert fs.ingest("items@v1", backfill).online_rows_changed == 1  # only key 7 is newer
    got = fs.get_online_features(["items@v1:x"], [4, 5, 6, 7])["x"].tolist()
    assert got == [1.0, 2.0, 2.0, 9.0]
    assert len(fs.online.applied_snapshots(fsv)) == 3
    latest = fs.offline.latest(fsv)
    assert latest.set_index("item_id").loc[[4, 5, 6, 7], "x"].tolist() == got


def test_a_lost_online_table_is_rebuilt_from_every_snapshot(tmp_path, database_url) -> None:
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.ingest("items@v1", rows([1, 2], 1.0, at=T0), online=False)
    store.ingest("items@v1", rows([2], 2.0, at=T0 + minutes(1)), online=False)
    assert store.get_online_features(["items@v1:x"], [1, 2])["x"].isna().all()
    assert store.materialize_online("items@v1") == 2
    assert store.get_online_features(["items@v1:x"], [1, 2])["x"].tolist() == [1.0, 2.0]


def test_materialize_accepts_several_rows_per_key_and_rejects_missing_columns(fs) -> None:
    fsv = fs.registry.get("items", "v1")
    frame = pd.concat([rows([1], 1.0, at=T0 + minutes(1)), rows([1], 3.0, at=T0)])
    frame[CREATED_TIMESTAMP] = T0
    assert fs.online.materialize(fsv, frame) == 1
    assert fs.get_online_features(["items@v1:x"], [1])["x"].tolist() == [1.0]
    with pytest.raises(SchemaMismatchError, match="lack columns"):
        fs.online.materialize(fsv, frame.drop(columns=["y"]))
    assert fs.get_online_features(["items@v1:x"], [1])["x"].tolist() == [1.0]


def test_moving_an_alias_or_materializing_never_serves_a_stale_value(fs) -> None:
    fs.apply(spec("v2", transform=doubled))
    fs.ingest("items@v1", rows([1, 2], 1.0))
    fs.ingest("items@v2", rows([1, 2], 2.0))
    fs.set_alias("items", "serving", "v1")
    assert fs.get_online_features(["items@serving:x"], [1])["x"].tolist() == [1.0]
    fs.set_alias("items", "serving", "v2")
    assert fs.get_online_features(["items@serving:x"], [1])["x"].tolist() == [2.0]
    fs.ingest("items@v2", rows([1], 5.0, at=T0 + minutes(1)))
    assert fs.get_online_features(["items@serving:x"], [1, 2])["x"].tolist() == [5.0, 2.0]


def test_another_process_writes_are_seen_at_once(tmp_path, database_url) -> None:
    writer, reader = make_store(tmp_path, database_url), make_store(tmp_path, database_url)
    writer.apply(spec())
    writer.apply(spec("v2", transform=doubled))
    writer.set_alias("items", "serving", "v1")
    writer.ingest("items@v1", rows([1], 1.0))
    writer.ingest("items@v2", rows([1], 2.0))
    assert reader.get_online_features(["items@serving:x"], [1, 2])["x"].fillna(-1).tolist() == [
        1.0,
        -1.0,
    ]
    writer.ingest("items@v1", rows([1, 2], 3.0, at=T0 + minutes(1)))
    assert reader.get_online_features(["items@serving:x"], [1, 2])["x"].tolist() == [3.0, 3.0]
    writer.set_alias("items", "serving", "v2")
    assert reader.get_online_features(["items@serving:x"], [1])["x"].tolist() == [2.0]


def test_large_versions_are_cached_key_by_key_with_the_same_guarantees(
    tmp_path, database_url
) -> None:
    store = make_store(tmp_path, database_url)
    store.online = OnlineStore(store.engine, preload_max_values=0)  # never load whole
    store.apply(spec())
    store.ingest("items@v1", rows(range(50), np.arange(50.0)))
    assert store.get_online_features(["items@v1:x"], [3, 60])["x"].fillna(-1).tolist() == [
        3.0,
        -1.0,
    ]
    # Key 60 was remembered as missing; a new write makes it appear, key 3 moves forward.
    store.ingest("items@v1", rows([3, 60], 7.0, at=T0 + minutes(1)))
    assert store.get_online_features(["items@v1:x"], [3, 60, 4])["x"].tolist() == [7.0, 7.0, 4.0]


def test_non_numeric_features_round_trip(tmp_path, database_url) -> None:
    store = make_store(tmp_path, database_url)
    store.apply(spec(features={"x": "float64", "tag": "str", "n": "int64"}))
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b"],
            EVENT_TIMESTAMP: T0,
            "x": [0.5, np.nan],
            "tag": ["p", None],
            "n": [1, 2],
        }
    )
    store.ingest("items@v1", frame)
    got = store.get_online_features(["items@v1:*"], ["b", "a", "zz"])
    assert got["tag"].tolist()[1] == "p" and got["tag"].isna().tolist() == [True, False, True]
    assert got["n"].fillna(-1).tolist() == [2.0, 1.0, -1.0]
    assert got["x"].fillna(-1).tolist() == [-1.0, 0.5, -1.0]


def test_one_response_never_mixes_versions_while_an_alias_moves(tmp_path, database_url) -> None:
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.apply(spec("v2", transform=doubled))
    keys = list(range(200))
    store.ingest("items@v1", rows(keys, 1.0))
    store.ingest("items@v2", rows(keys, 2.0))
    store.set_alias("items", "serving", "v1")
    mover_store = make_store(tmp_path, database_url)
    stop = threading.Event()
    seen: list[tuple[str, frozenset]] = []
    errors: list[BaseException] = []

    def mover() -> None:
        try:
            for step in range(40):
                mover_store.set_alias(
                    "items", "serving", "v2" if step % 2 == 0 else "v1", actor="platform"
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                got = store.get_online_features(["items@serving:x", "items@serving:y"], keys)
                values = frozenset(got["x"].tolist()) | frozenset((-got["y"]).tolist())
                seen.append((got.attrs["feature_sets"][0], values))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover)] + [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {version for version, _ in seen} == {"items@v1", "items@v2"}
    for version, values in seen:
        assert values == ({1.0} if version == "items@v1" else {2.0})


def test_online_values_give_the_matrix_a_model_scores(fs) -> None:
    fs.apply(spec("v2", transform=doubled, features={"z": "float64"}))
    fs.ingest("items@v1", rows([1, 2], [1.0, 2.0]))
    fs.ingest("items@v2", pd.DataFrame({"item_id": [2], EVENT_TIMESTAMP: T0, "z": [9.0]}))
    got = fs.get_online_values(["items@v1:y", "items@v2:z", "items@v1:x"], [2, 1, 3])
    assert got.columns == ["y", "x", "z"]  # grouped by version, request order inside
    assert got.feature_sets == ["items@v1", "items@v2"]
    np.testing.assert_array_equal(
        got.matrix, [[-2.0, 2.0, 9.0], [-1.0, 1.0, np.nan], [np.nan, np.nan, np.nan]]
    )
    as_dict = got.to_dict()
    assert list(as_dict) == ["item_id", "y", "x", "z"]
    assert as_dict["item_id"] == [2, 1, 3]
    assert all(type(v) is list for v in as_dict.values())  # JSON-ready, like Feast's to_dict
    np.testing.assert_array_equal(as_dict["y"], [-2.0, -1.0, np.nan])  # NaN: unknown key
    np.testing.assert_array_equal(as_dict["z"], [9.0, np.nan, np.nan])
    frame = got.to_frame()
    expected = pd.DataFrame({"item_id": [2, 1, 3], "y": [-2.0, -1.0, np.nan]})
    expected["x"], expected["z"] = [2.0, 1.0, np.nan], [9.0, np.nan, np.nan]
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.attrs["feature_sets"] == ["items@v1", "items@v2"]
    frame.loc[0, "x"] = 100.0  # a frame of its own: writing to it changes nothing served
    assert fs.get_online_features(["items@v1:x"], [2])["x"].tolist() == [2.0]
    assert pd.concat([frame, frame]).shape == (6, 4)


def test_keys_with_tabs_newlines_and_backslashes_round_trip(tmp_path, database_url) -> None:
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    odd = ["a\tb", "c\nd", "e\\f", "g\rh", "naïve"]
    store.ingest("items@v1", rows(odd, np.arange(5.0)))
    got = store.get_online_features(["items@v1:x"], list(reversed(odd)))
    assert got["x"].tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]
