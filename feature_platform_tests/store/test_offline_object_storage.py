"""The offline store on an S3-compatible object store (moto's S3 server on loopback, reached
over HTTP by pyarrow's S3 client): chosen by FP_OFFLINE_DIR, shared by stores that have
nothing else in common, with its index and checksums kept in the bucket too (issue 14).
The point-in-time tests themselves run on both backends (test_offline_point_in_time.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
from store_test_support import BUCKET, T0, minutes, rows, spec

from feature_platform import FeatureStore, Settings
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform.store.offline import OfflineIndexWarning, OfflineStore, SnapshotReadError
from feature_platform.store.offline_fs import OfflineLocation, OfflineLocationError

FSV = spec().as_version("active")


def _frame(keys) -> pd.DataFrame:
    return pd.DataFrame({"item_id": keys, EVENT_TIMESTAMP: T0 + minutes(5)})


def test_fp_offline_dir_selects_a_bucket_shared_by_separate_stores(
    s3_env, tmp_path, monkeypatch
) -> None:
    # Two "machines": separate homes and databases, one offline store in the bucket.
    monkeypatch.setenv("FP_OFFLINE_DIR", s3_env)
    writer = FeatureStore(Settings.from_env(tmp_path / "a"))
    assert writer.settings.offline_dir == s3_env
    writer.apply(spec())
    info = writer.ingest("items@v1", rows([1, 2], [1.0, 2.0])).snapshot
    assert str(info.path).startswith(s3_env.removeprefix("s3://"))
    assert not (tmp_path / "a" / "offline").exists()  # nothing written locally

    reader = FeatureStore(Settings.from_env(tmp_path / "b"))
    reader.apply(spec())
    got = reader.get_historical_features(_frame([2, 1, 3]), ["items@v1:x"])
    assert got["x"].fillna(-1).tolist() == [2.0, 1.0, -1.0]
    assert reader.materialize_online("items@v1") == 2
    assert reader.get_online_features(["items@v1:x"], [1, 2])["x"].tolist() == [1.0, 2.0]


def test_the_index_in_the_bucket_is_reused_and_checked(s3_env) -> None:
    store = OfflineStore(s3_env, persist_index_min_bytes=0)
    store.write_snapshot(FSV, rows(range(300), np.arange(300.0)), created_at=T0)
    expected = store.point_in_time(_frame(list(range(0, 300, 11))), [(FSV, ["x", "y"])])
    location = OfflineLocation(s3_env)
    index_root = location.join("items", "v1", ".index")
    (index,) = location.list_dirs(index_root)
    values = f"{index_root}/{index}/values.npy"

    fresh = OfflineStore(s3_env, persist_index_min_bytes=0)

    def no_parquet(*args, **kwargs):
        raise AssertionError("the saved index should have been used")

    fresh.load = no_parquet  # served from the index in the bucket, not by re-sorting Parquet
    pd.testing.assert_frame_equal(
        fresh.point_in_time(_frame(list(range(0, 300, 11))), [(FSV, ["x", "y"])]), expected
    )

    data = bytearray(location.read_bytes(values))
    data[-80:] = np.full(10, 7.0).tobytes()  # same size, plausible values
    location.write_bytes(values, bytes(data))
    with pytest.warns(OfflineIndexWarning, match=r"s3://.*values\.npy checksum"):
        got = OfflineStore(s3_env, persist_index_min_bytes=0).point_in_time(
            _frame(list(range(0, 300, 11))), [(FSV, ["x", "y"])]
        )
    pd.testing.assert_frame_equal(got, expected)


def test_object_storage_writes_are_idempotent_and_damage_is_named(s3_env) -> None:
    store = OfflineStore(s3_env, persist_index_min_bytes=None)
    first = store.write_snapshot(FSV, rows([1, 2], 1.0))
    assert not store.write_snapshot(FSV, rows([1, 2], 1.0)).written
    assert len(store.snapshots(FSV)) == 1
    location = OfflineLocation(s3_env)
    path = str(first.path)
    location.write_bytes(path, location.read_bytes(path)[:-10])  # truncated
    with pytest.raises(SnapshotReadError, match=rf"s3://{BUCKET}/.*{first.path.name}"):
        OfflineStore(s3_env, persist_index_min_bytes=None).read(FSV)


def test_unsupported_offline_urls_are_refused_with_the_reason(monkeypatch) -> None:
    with pytest.raises(OfflineLocationError, match="only local paths and s3://"):
        OfflineStore("gs://bucket/prefix")
    with pytest.raises(OfflineLocationError, match="names no bucket"):
        OfflineStore("s3:///prefix")
    with pytest.raises(OfflineLocationError, match="not in the URL"):
        OfflineStore("s3://key:secret@bucket/prefix")
    assert isinstance(OfflineLocation("/tmp/x").fs, pafs.LocalFileSystem)
