"""Point-in-time retrieval against a brute-force oracle (hypothesis), plus the cases that
matter by name: backfills, TTL, time zones, key types, empty inputs and bad input."""

from __future__ import annotations

import gc
import mmap
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_test_support import T0, make_store, minutes, rows, spec

from feature_platform.errors import SchemaMismatchError, UnknownFeatureError
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform.store.offline import OfflineIndexWarning, OfflineStore

MIXED = spec(features={"x": "float64", "n": "int64", "tag": "str"})
FSV = MIXED.as_version("active")
# None: naive, read as UTC; ZoneInfo("UTC"): UTC spelled by another object than pandas' own.
ZONES = ["UTC", ZoneInfo("UTC"), "America/New_York", "Asia/Kolkata", None]


def _oracle(stored: list[dict], entity_rows: list[tuple[str, int]], ttl: int | None) -> list:
    """For each (key text, minute): the stored row with the greatest (event, created, file,
    row) among those at or before it and within the TTL, else None. Plain loops."""
    out = []
    for key, at in entity_rows:
        best = None
        for row in stored:
            if row["key"] != key or row["event"] > at:
                continue
            if ttl is not None and at - row["event"] > ttl:
                continue
            rank = (row["event"], row["created"], row["file"], row["row"])
            if best is None or rank > best[0]:
                best = (rank, row)
        out.append(None if best is None else best[1])
    return out


snapshot_rows = st.dictionaries(
    keys=st.tuples(st.integers(0, 5), st.integers(0, 10)),  # (entity, event minute)
    values=st.tuples(
        st.floats(-1e6, 1e6, allow_nan=False) | st.just(float("nan")),
        st.integers(-100, 100),
        st.sampled_from(["a", "b", "c"]),
    ),
    max_size=6,
)


cases = given(
    snapshots=st.lists(st.tuples(snapshot_rows, st.integers(0, 4)), max_size=4),
    entity_rows=st.lists(st.tuples(st.integers(0, 7), st.integers(-2, 13)), max_size=10),
    ttl=st.none() | st.integers(0, 5),
    zone=st.sampled_from(ZONES),
    text_keys=st.booleans(),
    stored_text_keys=st.booleans(),
    out_of_core=st.booleans(),  # values held in memory, or read from the row groups needed
)
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=150, deadline=None, suppress_health_check=_SLOW_OK)
@cases
def test_point_in_time_matches_a_brute_force_oracle(
    snapshots, entity_rows, ttl, zone, text_keys, stored_text_keys, out_of_core
) -> None:
    with tempfile.TemporaryDirectory() as root:
        offline = OfflineStore(Path(root), in_memory_max_bytes=0 if out_of_core else None)
        _check_against_oracle(
            offline, snapshots, entity_rows, ttl, zone, text_keys, stored_text_keys
        )


@settings(
    max_examples=60,  # each example is a few dozen requests to the S3 server
    deadline=None,
    suppress_health_check=[*_SLOW_OK, HealthCheck.function_scoped_fixture],
)
@cases
def test_point_in_time_on_object_storage_matches_the_oracle(
    s3_env, snapshots, entity_rows, ttl, zone, text_keys, stored_text_keys, out_of_core
) -> None:
    root = f"{s3_env}/{uuid.uuid4().hex[:8]}"
    offline = OfflineStore(root, in_memory_max_bytes=0 if out_of_core else None)
    _check_against_oracle(offline, snapshots, entity_rows, ttl, zone, text_keys, stored_text_keys)


def _check_against_oracle(
    offline: OfflineStore, snapshots, entity_rows, ttl, zone, text_keys, stored_text_keys
) -> None:
    stored: list[dict] = []
    paths = []
    for number, (data, created) in enumerate(snapshots):
        frame = pd.DataFrame(
            {
                "item_id": [str(k) if stored_text_keys else k for k, _ in data],
                EVENT_TIMESTAMP: [T0 + minutes(m) for _, m in data],
                "x": [v[0] for v in data.values()],
                "n": [v[1] for v in data.values()],
                "tag": [v[2] for v in data.values()],
            }
        )
        if frame.empty:
            frame = frame.astype({"item_id": "str" if stored_text_keys else "int64"})
        info = offline.write_snapshot(FSV, frame, created_at=T0 + minutes(created))
        paths.append(info.path)
        for position, ((key, event), (x, n, tag)) in enumerate(data.items()):
            stored.append(
                {
                    "key": str(key),
                    "event": event,
                    "created": created,
                    "file": number,
                    "row": position,
                    "x": x,
                    "n": n,
                    "tag": tag,
                }
            )
    # Files are read in name order (created stamp, then a random id): use that order.
    order = {p: i for i, p in enumerate(sorted(paths))}
    for row in stored:
        row["file"] = order[paths[row["file"]]]

    stamps = pd.Series([T0 + minutes(m) for _, m in entity_rows], dtype="datetime64[ns, UTC]")
    stamps = stamps.dt.tz_convert(zone) if zone else stamps.dt.tz_localize(None)
    stamps.index = pd.Index([100 - i for i in range(len(entity_rows))], name="idx")
    entity_df = pd.DataFrame(
        {
            "item_id": [str(k) if text_keys else k for k, _ in entity_rows],
            EVENT_TIMESTAMP: stamps,
            "label": [f"row{i}" for i in range(len(entity_rows))],
        },
        index=stamps.index,
    )
    if entity_df.empty:
        entity_df["item_id"] = entity_df["item_id"].astype("int64")
    result = offline.point_in_time(
        entity_df,
        [(FSV, ["x", "n", "tag"])],
        ttl=None if ttl is None else timedelta(minutes=ttl),
    )

    expected = _oracle(stored, [(str(k), m) for k, m in entity_rows], ttl)
    assert list(result.columns) == ["item_id", EVENT_TIMESTAMP, "label", "x", "n", "tag"]
    assert result.index.equals(entity_df.index)
    assert result["label"].tolist() == entity_df["label"].tolist()
    assert result["item_id"].tolist() == entity_df["item_id"].tolist()
    utc = stamps.dt.tz_localize("UTC") if zone is None else stamps.dt.tz_convert("UTC")
    assert result[EVENT_TIMESTAMP].tolist() == utc.tolist()  # same instants, in UTC
    assert result[EVENT_TIMESTAMP].dtype == "datetime64[ns, UTC]"
    assert str(result[EVENT_TIMESTAMP].dt.tz) == "UTC"
    assert result["x"].dtype == "float64" and result["n"].dtype == "float64"
    for got_x, got_n, got_tag, want in zip(
        result["x"], result["n"], result["tag"], expected, strict=True
    ):
        if want is None:
            assert np.isnan(got_x) and np.isnan(got_n) and pd.isna(got_tag)
        else:
            assert (np.isnan(got_x) and np.isnan(want["x"])) or got_x == want["x"]
            assert got_n == want["n"] and got_tag == want["tag"]


# -- named cases ---------------------------------------------------------------------------
@pytest.fixture
def fs(tmp_path, offline_root):
    """A feature store whose offline store is on each backend in turn (local, S3)."""
    store = make_store(tmp_path, offline_dir=offline_root)
    store.apply(spec())
    return store


def _entity_df(keys, at_minutes) -> pd.DataFrame:
    return pd.DataFrame({"item_id": keys, EVENT_TIMESTAMP: [T0 + minutes(m) for m in at_minutes]})


def test_a_backfill_corrects_from_its_event_time_and_never_leaks_earlier(fs) -> None:
    fs.ingest("items@v1", rows([1], 10.0, at=T0 + minutes(10)), created_at=T0 + minutes(10))
    fs.ingest("items@v1", rows([1], 5.0, at=T0 + minutes(5)), created_at=T0 + minutes(20))
    fs.ingest("items@v1", rows([1], 11.0, at=T0 + minutes(10)), created_at=T0 + minutes(30))
    got = fs.get_historical_features(_entity_df([1, 1, 1, 1], [3, 7, 10, 12]), ["items@v1:x"])
    # 3: before any event; 7: the backfilled value; 10 and 12: the event at 10, its later
    # correction winning the tie, never the backfill (an earlier event written later).
    assert got["x"].tolist()[0] != got["x"].tolist()[0]  # NaN
    assert got["x"].tolist()[1:] == [5.0, 11.0, 11.0]


def test_ttl_limits_how_old_a_value_may_be(fs) -> None:
    fs.ingest("items@v1", rows([1, 2], 1.0, at=T0))
    frame = _entity_df([1, 2, 1], [0, 5, 6])
    got = fs.get_historical_features(frame, ["items@v1:x"], ttl=timedelta(minutes=5))
    assert got["x"].fillna(-1).tolist() == [1.0, 1.0, -1.0]
    per_set = fs.get_historical_features(frame, ["items@v1:x"], ttl={"items": minutes(1)})
    assert per_set["x"].fillna(-1).tolist() == [1.0, -1.0, -1.0]
    with pytest.raises(SchemaMismatchError, match="negative"):
        fs.get_historical_features(frame, ["items@v1:x"], ttl=timedelta(minutes=-1))


def test_several_feature_sets_by_version_and_alias_in_one_call(fs) -> None:
    fs.apply(spec(name="users", entity="user_id", features={"score": "float64"}))
    fs.ingest("items@v1", rows([1, 2], [1.0, 2.0]))
    users = pd.DataFrame({"user_id": ["u1"], EVENT_TIMESTAMP: [T0], "score": [0.5]})
    fs.ingest("users@v1", users)
    fs.set_alias("users", "training", "v1")
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1"],
            "item_id": [2, 1, 9],
            EVENT_TIMESTAMP: [T0, T0, T0],
            "clicked": [True, False, True],
        },
        index=[7, 7, 3],
    )
    got = fs.get_historical_features(frame, ["items@v1:x", "users@training:score"])
    assert list(got.columns) == ["user_id", "item_id", EVENT_TIMESTAMP, "clicked", "x", "score"]
    assert got.index.tolist() == [7, 7, 3]
    assert got["x"].fillna(-1).tolist() == [2.0, 1.0, -1.0]
    assert got["score"].fillna(-1).tolist() == [0.5, -1.0, 0.5]
    assert got["clicked"].tolist() == [True, False, True]
    full = fs.get_historical_features(frame, ["items@v1:x"], full_feature_names=True)
    assert "items@v1:x" in full.columns


def test_int_and_text_keys_find_each_other(fs) -> None:
    fs.ingest("items@v1", rows([1, 2], [1.0, 2.0]))
    text = fs.get_historical_features(_entity_df(["2", "1", "x"], [1, 1, 1]), ["items@v1:x"])
    assert text["x"].fillna(-1).tolist() == [2.0, 1.0, -1.0]
    floats = fs.get_historical_features(_entity_df([2.0, np.nan, 1.5], [1, 1, 1]), ["items@v1:x"])
    assert floats["x"].fillna(-1).tolist() == [2.0, -1.0, -1.0]


def test_empty_inputs_give_typed_empty_or_missing_results(fs) -> None:
    empty = pd.DataFrame(
        {
            "item_id": pd.Series(dtype="int64"),
            EVENT_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    no_rows = fs.get_historical_features(empty, ["items@v1:*"])
    assert no_rows.empty and list(no_rows.columns) == ["item_id", EVENT_TIMESTAMP, "x", "y"]
    assert no_rows["x"].dtype == "float64"
    no_snapshots = fs.get_historical_features(_entity_df([1, 2], [0, 1]), ["items@v1:*"])
    assert no_snapshots[["x", "y"]].isna().all().all()
    assert fs.offline.latest(fs.registry.get("items", "v1")).empty


def test_the_entity_frame_is_left_as_it_was(fs) -> None:
    """The result shares no writes with the caller's frame, whether its timestamps needed
    converting (naive, another zone) or were already UTC nanoseconds."""
    fs.ingest("items@v1", rows([1, 2], [1.0, 2.0]))
    for zone in ("UTC", None, "Asia/Kolkata"):
        stamps = pd.Series([T0 + minutes(1)] * 2).dt.tz_convert(zone)
        frame = pd.DataFrame({"item_id": [2, 1], EVENT_TIMESTAMP: stamps, "tag": ["a", "b"]})
        before = frame.copy()
        got = fs.get_historical_features(frame, ["items@v1:x"])
        assert got[EVENT_TIMESTAMP].dtype == "datetime64[ns, UTC]"
        assert got["x"].tolist() == [2.0, 1.0]
        got.loc[0, "tag"] = "changed"
        got.loc[0, EVENT_TIMESTAMP] = T0
        got.loc[0, "item_id"] = 9
        pd.testing.assert_frame_equal(frame, before)


def test_a_new_snapshot_is_seen_by_a_warm_cache(fs) -> None:
    fs.ingest("items@v1", rows([1], 1.0, at=T0))
    frame = _entity_df([1], [30])
    assert fs.get_historical_features(frame, ["items@v1:x"])["x"].tolist() == [1.0]
    fs.ingest("items@v1", rows([1], 2.0, at=T0 + minutes(20)))
    assert fs.get_historical_features(frame, ["items@v1:x"])["x"].tolist() == [2.0]


def test_results_are_writable_and_share_no_memory(fs) -> None:
    """Numeric results are gathered into memory recycled from freed results: each one is
    writable, every cell is written (a missing value is NaN, never a freed result's), and
    changing one result changes no other."""
    fs.ingest("items@v1", rows([1, 2], [1.0, 2.0]))
    frame = _entity_df([2, 1, 3], [5, 5, 5])
    for _ in range(3):
        first = fs.get_historical_features(frame, ["items@v1:*"])
        first.loc[0, "x"] = 99.0
        first["y"] = first["y"] + 1
        first.iloc[2, first.columns.get_loc("x")] = -1.0
        del first
        gc.collect()
        second = fs.get_historical_features(frame, ["items@v1:*"])
        third = fs.get_historical_features(frame, ["items@v1:*"])
        for got in (second, third):
            assert got["x"].tolist()[:2] == [2.0, 1.0] and np.isnan(got["x"].iloc[2])
        third.loc[1, "x"] = 7.0
        assert second["x"].tolist()[:2] == [2.0, 1.0]


# -- bad input ------------------------------------------------------------------------------
def test_an_entity_frame_without_a_timestamp_column_is_refused(fs) -> None:
    with pytest.raises(SchemaMismatchError, match="no 'event_timestamp' column"):
        fs.get_historical_features(pd.DataFrame({"item_id": [1]}), ["items@v1:x"])
    with pytest.raises(SchemaMismatchError, match="no 'item_id' column"):
        fs.get_historical_features(pd.DataFrame({EVENT_TIMESTAMP: [T0]}), ["items@v1:x"])
    with pytest.raises(SchemaMismatchError, match="empty timestamps in rows \\[1\\]"):
        fs.get_historical_features(
            pd.DataFrame({"item_id": [1, 2], EVENT_TIMESTAMP: [T0, None]}), ["items@v1:x"]
        )
    with pytest.raises(SchemaMismatchError, match="not timestamps"):
        fs.get_historical_features(
            pd.DataFrame({"item_id": [1], EVENT_TIMESTAMP: ["soon"]}), ["items@v1:x"]
        )


def test_feature_columns_never_overwrite_entity_frame_columns(fs) -> None:
    frame = _entity_df([1], [0]).assign(x=[42])
    with pytest.raises(SchemaMismatchError, match=r"\['x'\] would overwrite"):
        fs.get_historical_features(frame, ["items@v1:x"])


def test_feature_reference_typos_suggest_the_closest_name(fs) -> None:
    with pytest.raises(UnknownFeatureError, match="Did you mean 'x'"):
        fs.get_historical_features(_entity_df([1], [0]), ["items@v1:xx"])


def test_schema_mismatched_writes_are_refused_and_write_nothing(fs) -> None:
    fsv = fs.registry.get("items", "v1")
    good = rows([1, 2], 1.0)
    bad_writes = {
        "missing columns \\['y'\\]": good.drop(columns=["y"]),
        "unexpected columns \\['z'\\]": good.assign(z=1),
        "cannot be stored as float64": good.assign(x=["a", "b"]),
        "entity key is empty": good.assign(item_id=[1, None]),
        "repeat \\(entity, event_timestamp\\) pairs": rows([1, 1], 1.0),
        "event_timestamp holds values that are not timestamps": good.assign(
            **{EVENT_TIMESTAMP: ["x", "y"]}
        ),
        "must be integers or strings": good.assign(item_id=[1.5, 2.5]),
    }
    for message, frame in bad_writes.items():
        with pytest.raises(SchemaMismatchError, match=message):
            fs.ingest("items@v1", frame)
    assert fs.offline.snapshots(fsv) == []
    fs.ingest("items@v1", good)
    with pytest.raises(SchemaMismatchError, match="earlier snapshots have int64 keys"):
        fs.ingest("items@v1", good.assign(item_id=["a", "b"]))
    assert len(fs.offline.snapshots(fsv)) == 1
    assert fs.get_online_features(["items@v1:x"], [1, 2])["x"].tolist() == [1.0, 1.0]


def test_a_transform_returning_bad_rows_registers_and_writes_nothing(tmp_path) -> None:
    store = make_store(tmp_path)

    def broken(frame, params):
        return frame.drop(columns=["y"])

    with pytest.raises(SchemaMismatchError, match="missing columns \\['y'\\]"):
        store.materialize(spec(transform=broken), rows([1], 1.0))
    assert store.registry.names() == []
    assert not (tmp_path / "fp" / "offline" / "items").exists()


def test_the_persisted_index_serves_a_new_process_and_never_a_stale_one(tmp_path) -> None:
    fsv = spec().as_version("active")
    writer = OfflineStore(tmp_path, persist_index_min_bytes=0)
    writer.write_snapshot(fsv, rows(range(20), np.arange(20.0)), created_at=T0)
    frame = pd.DataFrame({"item_id": [3, 19, 40], EVENT_TIMESTAMP: T0 + minutes(1)})
    first = writer.point_in_time(frame, [(fsv, ["x"])])
    index_dir = tmp_path / "items" / "v1" / ".index"
    assert len(list(index_dir.iterdir())) == 1
    fresh = OfflineStore(tmp_path, persist_index_min_bytes=0)
    again = fresh.point_in_time(frame, [(fsv, ["x"])])
    pd.testing.assert_frame_equal(first, again)
    assert isinstance(fresh.prepared(fsv).values.base, mmap.mmap)  # read back, not rebuilt
    # A new snapshot changes the file list: the old index is ignored, then replaced.
    writer.write_snapshot(fsv, rows([3], 100.0, at=T0 + minutes(1)), created_at=T0 + minutes(1))
    newest = OfflineStore(tmp_path, persist_index_min_bytes=0).point_in_time(frame, [(fsv, ["x"])])
    assert newest["x"].fillna(-1).tolist() == [100.0, 19.0, -1.0]
    assert len(list(index_dir.iterdir())) == 1
    # A damaged index is reported and skipped, never trusted.
    for array in next(index_dir.iterdir()).glob("*.npy"):
        array.write_bytes(b"garbage")
    with pytest.warns(OfflineIndexWarning, match="damaged"):
        damaged = OfflineStore(tmp_path, persist_index_min_bytes=0).point_in_time(
            frame, [(fsv, ["x"])]
        )
    pd.testing.assert_frame_equal(newest, damaged)


def test_the_saved_index_carries_the_step_tables_and_an_older_one_still_serves(
    tmp_path,
) -> None:
    """A new process reads the short-history search tables from the saved index (no
    rebuild); an index saved before they were (no `step_longest`) builds them on use."""
    import json

    fsv = spec().as_version("active")
    writer = OfflineStore(tmp_path, persist_index_min_bytes=0)
    for minute in range(3):
        at = T0 + minutes(minute)
        writer.write_snapshot(fsv, rows(range(20), np.arange(20.0) + minute, at=at), created_at=at)
    frame = pd.DataFrame(
        {"item_id": [3, 19, 40, 3], EVENT_TIMESTAMP: [T0 + minutes(m) for m in (1, 9, 1, -1)]}
    )
    expected = writer.point_in_time(frame, [(fsv, ["x"])], ttl=minutes(5))
    assert expected["x"].fillna(-1).tolist() == [4.0, -1.0, -1.0, -1.0]
    fresh = OfflineStore(tmp_path, persist_index_min_bytes=0)
    pd.testing.assert_frame_equal(
        fresh.point_in_time(frame, [(fsv, ["x"])], ttl=minutes(5)), expected
    )
    steps = fresh.prepared(fsv).step_tables()
    assert steps is not None and isinstance(steps.times.base, mmap.mmap)  # read, not built
    # meta.json disagreeing with the tables' shapes: reported and rebuilt, never used.
    (saved,) = (tmp_path / "items" / "v1" / ".index").iterdir()
    meta = json.loads((saved / "meta.json").read_text())
    (saved / "meta.json").write_text(json.dumps({**meta, "step_longest": 2}))
    with pytest.warns(OfflineIndexWarning, match="damaged"):
        rebuilt = OfflineStore(tmp_path, persist_index_min_bytes=0).point_in_time(
            frame, [(fsv, ["x"])], ttl=minutes(5)
        )
    pd.testing.assert_frame_equal(rebuilt, expected)
    (saved,) = (tmp_path / "items" / "v1" / ".index").iterdir()  # saved again, whole
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["step_longest"] == 3
    del meta["step_longest"]
    for name in ("step_times", "step_positions", "step_sources"):
        del meta["xxh3_128"][name]
        (saved / f"{name}.npy").unlink()
    (saved / "meta.json").write_text(json.dumps(meta))
    older = OfflineStore(tmp_path, persist_index_min_bytes=0)
    pd.testing.assert_frame_equal(
        older.point_in_time(frame, [(fsv, ["x"])], ttl=minutes(5)), expected
    )
    assert isinstance(older.prepared(fsv).values.base, mmap.mmap)  # the older index was used
    assert not isinstance(older.prepared(fsv).step_tables().times.base, mmap.mmap)


def test_every_search_strategy_gives_the_same_answers(tmp_path, monkeypatch) -> None:
    from feature_platform.store import offline as offline_module

    fsv = spec().as_version("active")
    store = OfflineStore(tmp_path)
    rng = np.random.default_rng(3)
    for batch in range(6):
        keys = rng.choice(40, size=25, replace=False)
        at = [T0 + minutes(int(m)) for m in rng.integers(0, 30, size=25)]
        frame = pd.DataFrame(
            {"item_id": keys, EVENT_TIMESTAMP: at, "x": rng.random(25), "y": rng.random(25)}
        )
        store.write_snapshot(fsv, frame, created_at=T0 + minutes(batch))
    frame = pd.DataFrame(
        {
            "item_id": rng.integers(0, 45, size=300),
            EVENT_TIMESTAMP: [T0 + minutes(int(m)) for m in rng.integers(-2, 33, size=300)],
        }
    )
    scanned = store.point_in_time(frame, [(fsv, ["x", "y"])], ttl=minutes(10))
    monkeypatch.setattr(offline_module, "_LINEAR_SCAN_MAX", 0)  # per-entity binary search
    segmented = OfflineStore(tmp_path).point_in_time(frame, [(fsv, ["x", "y"])], ttl=minutes(10))
    monkeypatch.setattr(offline_module, "_SEGMENT_SEARCH_MAX", 0)  # one global search
    global_search = OfflineStore(tmp_path).point_in_time(
        frame, [(fsv, ["x", "y"])], ttl=minutes(10)
    )
    pd.testing.assert_frame_equal(scanned, segmented)
    pd.testing.assert_frame_equal(segmented, global_search)
    assert segmented["x"].notna().sum() > 100  # a real comparison, not all-missing

    # The latest representable time (the step scan's padding value) sees each entity's
    # newest value, as every strategy does; without a TTL.
    last = pd.DataFrame(
        {"item_id": [3, 44, 7], EVENT_TIMESTAMP: pd.Timestamp.max.tz_localize("UTC")}
    )
    monkeypatch.undo()
    answers = [OfflineStore(tmp_path).point_in_time(last, [(fsv, ["x"])])]
    monkeypatch.setattr(offline_module, "_LINEAR_SCAN_MAX", 0)
    answers.append(OfflineStore(tmp_path).point_in_time(last, [(fsv, ["x"])]))
    newest = store.latest(fsv).set_index("item_id")["x"]
    assert answers[0]["x"].tolist()[::2] == [newest[3], newest[7]]
    assert np.isnan(answers[0]["x"][1])  # 44 was never stored
    pd.testing.assert_frame_equal(answers[0], answers[1])


def test_out_of_core_reads_only_the_row_groups_it_returns(tmp_path, monkeypatch) -> None:
    """A version larger than memory allows keeps only keys and times in memory; a retrieval
    reads just the row groups holding its answers, with the same answers as in memory."""
    import pyarrow.parquet as pq

    fsv = spec().as_version("active")
    for batch in range(3):  # entities 0-99, 100-199, 200-299: one snapshot each
        keys = range(batch * 100, batch * 100 + 100)
        frame = rows(keys, np.arange(100.0) + batch * 1000, at=T0 + minutes(batch))
        OfflineStore(tmp_path).write_snapshot(fsv, frame, created_at=T0 + minutes(batch))
    frame = pd.DataFrame(
        {"item_id": [150, 101, 999, 199], EVENT_TIMESTAMP: [T0 + minutes(5)] * 3 + [T0]}
    )
    in_memory = OfflineStore(tmp_path, in_memory_max_bytes=None)
    expected = in_memory.point_in_time(frame, [(fsv, ["x", "y"])])
    assert in_memory.prepared(fsv).values is not None

    read = []
    original = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    out_of_core = OfflineStore(tmp_path, in_memory_max_bytes=1000)
    got = out_of_core.point_in_time(frame, [(fsv, ["x", "y"])])
    assert out_of_core.prepared(fsv).values is None
    pd.testing.assert_frame_equal(got, expected)
    assert got["x"].fillna(-1).tolist() == [1050.0, 1001.0, -1.0, -1.0]
    assert len(read) == 1  # one row group of the middle snapshot; nothing else read
    latest = out_of_core.latest(fsv)
    assert len(latest) == 300 and latest["x"].max() == 2099.0
    # What materializing online reads: every entity's newest row, the same either way.
    ours, theirs = out_of_core.prepared(fsv), in_memory.prepared(fsv)
    np.testing.assert_array_equal(
        ours.feature_rows(fsv, ours.last_rows()), theirs.feature_rows(fsv, theirs.last_rows())
    )
