"""What the offline store persists is checked before it is served: the saved index carries
checksums (a damaged one is reported and rebuilt from the Parquet), damaged Parquet
files are named in the error, writes are idempotent and crashed writes leave nothing behind
for long (issue 12, items 6 and 8)."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_test_support import T0, make_store, minutes, rows, spec

from feature_platform.store import offline as offline_module
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform.store.offline import OfflineIndexWarning, OfflineStore, SnapshotReadError

FSV = spec().as_version("active")
SUPPORT = Path(__file__).parent
REPO = Path(__file__).resolve().parents[2]


def _entity_df(keys: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"item_id": keys, EVENT_TIMESTAMP: T0 + minutes(5)})


def _indexed_store(root: Path) -> tuple[pd.DataFrame, Path]:
    """200 entities written with a persisted index; (a retrieval, the index folder)."""
    store = OfflineStore(root, persist_index_min_bytes=0)
    store.write_snapshot(FSV, rows(range(200), np.arange(200.0)), created_at=T0)
    expected = store.point_in_time(_entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])])
    (index,) = (root / "items" / "v1" / ".index").iterdir()
    return expected, index


def test_an_index_damaged_at_the_same_size_is_reported_and_rebuilt(tmp_path) -> None:
    expected, index = _indexed_store(tmp_path)
    values = index / "values.npy"
    data = bytearray(values.read_bytes())
    data[-800:] = np.full(100, 123456.0).tobytes()  # plausible floats, same size: no parse error
    values.write_bytes(bytes(data))

    with pytest.warns(OfflineIndexWarning, match=r"items@v1 .*values\.npy checksum.*rebuilt"):
        got = OfflineStore(tmp_path, persist_index_min_bytes=0).point_in_time(
            _entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])]
        )
    pd.testing.assert_frame_equal(got, expected)
    # The rebuilt index was saved again, whole: the next process maps it with no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OfflineIndexWarning)
        fresh = OfflineStore(tmp_path, persist_index_min_bytes=0)
        again = fresh.point_in_time(_entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])])
    pd.testing.assert_frame_equal(again, expected)
    assert isinstance(fresh.prepared(FSV).values.base, mmap.mmap)  # mapped, not rebuilt


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_while_the_index_is_checked_serves_it_and_keeps_it(
    tmp_path, monkeypatch
) -> None:
    """The values are checked in a background thread; a process forked meanwhile (Celery's
    prefork workers) has no such thread and must check them itself, not call the index
    damaged. The check is slowed down so that the fork lands inside it."""
    expected, index = _indexed_store(tmp_path)
    real_checksum = offline_module.checksum

    def slow_checksum(data: object) -> str:
        time.sleep(0.5)
        return real_checksum(data)

    monkeypatch.setattr(offline_module, "checksum", slow_checksum)
    store = OfflineStore(tmp_path, persist_index_min_bytes=0)
    store.prepared(FSV)  # the index is open; its values' check has just begun
    pid = os.fork()
    if pid == 0:  # the child reports through its exit code only
        code = 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", OfflineIndexWarning)
                got = store.point_in_time(_entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])])
            code = 0 if got.equals(expected) and (index / "meta.json").exists() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got = store.point_in_time(_entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])])
    pd.testing.assert_frame_equal(got, expected)  # and the parent's own thread served it
    assert (index / "meta.json").exists()


@pytest.mark.parametrize(
    "damaged", ["codes.npy", "order.npy", "event_ns.npy", "uniques.npy", "meta.json"]
)
def test_every_index_file_is_checked(tmp_path, damaged) -> None:
    """Checked when mapped: the keys and step tables on load, the sorted arrays (codes,
    order, times) when something first reads them (here: `latest`). (The values, checked
    in the background and waited for at first read: see the same-size damage test.)"""
    expected, index = _indexed_store(tmp_path)
    expected_latest = OfflineStore(tmp_path, persist_index_min_bytes=0).latest(FSV)
    target = index / damaged
    data = bytearray(target.read_bytes())
    data[-8:] = b"\x01" * 8 if damaged != "meta.json" else b'"x": 1}}'
    target.write_bytes(bytes(data))
    store = OfflineStore(tmp_path, persist_index_min_bytes=0)
    with pytest.warns(OfflineIndexWarning, match="rebuilt from the Parquet"):
        got = store.point_in_time(_entity_df(list(range(0, 200, 7))), [(FSV, ["x", "y"])])
        latest = store.latest(FSV)
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(latest, expected_latest)


def test_an_index_replaced_before_its_sorted_arrays_are_read_is_rebuilt(tmp_path) -> None:
    """The sorted arrays are mapped on first use: if the index folder is gone by then (a
    newer write replaced it), they come from the Parquet, with the same answer."""
    _, index = _indexed_store(tmp_path)
    expected_latest = OfflineStore(tmp_path, persist_index_min_bytes=0).latest(FSV)
    store = OfflineStore(tmp_path, persist_index_min_bytes=0)
    store.point_in_time(_entity_df([1, 2]), [(FSV, ["x"])])  # maps the index
    for path in index.iterdir():
        path.unlink()
    index.rmdir()
    with pytest.warns(OfflineIndexWarning, match="codes.npy unreadable"):
        latest = store.latest(FSV)
    pd.testing.assert_frame_equal(latest, expected_latest)


def _damage(path: Path, kind: str) -> None:
    data = bytearray(path.read_bytes())
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "garbage footer":  # the whole Thrift footer, keeping its length and magic
        footer = int.from_bytes(data[-8:-4], "little")
        data[-8 - footer : -8] = np.random.default_rng(0).bytes(footer)
    elif kind == "bad magic":
        data[-4:] = b"XXXX"
    elif kind == "zeroed middle":
        middle = len(data) // 4
        data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["truncated", "garbage footer", "bad magic", "zeroed middle"])
def test_a_damaged_snapshot_is_named_in_the_error(tmp_path, kind) -> None:
    store = OfflineStore(tmp_path, persist_index_min_bytes=None)
    info = store.write_snapshot(FSV, rows(range(500), np.arange(500.0)), created_at=T0)
    _damage(Path(info.path), kind)
    fresh = OfflineStore(tmp_path, persist_index_min_bytes=None)
    with pytest.raises(SnapshotReadError, match=Path(info.path).name):
        fresh.point_in_time(_entity_df([1, 2]), [(FSV, ["x"])])
    with pytest.raises(SnapshotReadError, match="items@v1"):
        fresh.read(FSV)


# -- idempotent writes ------------------------------------------------------------------------
def test_the_same_rows_are_stored_once_but_a_revert_is_kept(tmp_path) -> None:
    fs = make_store(tmp_path)
    fs.apply(spec())
    fsv = fs.registry.get("items", "v1")
    first = fs.ingest("items@v1", rows([1, 2], 1.0))
    again = fs.ingest("items@v1", rows([1, 2], 1.0))  # a re-run: same rows, no created_at
    assert first.snapshot.written and not again.snapshot.written
    assert again.snapshot.path == first.snapshot.path
    assert len(fs.offline.snapshots(fsv)) == 1
    pinned = fs.ingest("items@v1", rows([3], 5.0), created_at=T0 + minutes(1))
    assert not fs.ingest("items@v1", rows([3], 5.0), created_at=T0 + minutes(1)).snapshot.written
    assert pinned.snapshot.written and len(fs.offline.snapshots(fsv)) == 2
    # A change, then the earlier rows again: a deliberate revert, appended.
    fs.ingest("items@v1", rows([1, 2], 2.0))
    reverted = fs.ingest("items@v1", rows([1, 2], 1.0))
    assert reverted.snapshot.written and len(fs.offline.snapshots(fsv)) == 4
    assert fs.get_online_features(["items@v1:x"], [1, 2, 3])["x"].tolist() == [1.0, 1.0, 5.0]


def test_only_old_temporary_snapshot_files_of_the_store_are_cleaned(tmp_path) -> None:
    store = OfflineStore(tmp_path, orphan_grace=timedelta(minutes=10))
    store.write_snapshot(FSV, rows([1], 1.0), created_at=T0)
    folder = tmp_path / "items" / "v1"
    old = time.time() - 3600
    orphan = folder / ".snapshot-20260301T000000000000-0123456789abcdef.parquet.tmp"
    legacy_orphan = folder / ".snapshot-20260301T000000000000-0123abcd.parquet.tmp"
    named_orphan = folder / ".snapshot-20260301T000000000000-0123456789abcdef-01234567.parquet.tmp"
    young = folder / ".snapshot-20260301T000100000000-fedcba9876543210-0badcafe.parquet.tmp"
    foreign = [folder / ".snapshot-mine.parquet.tmp", folder / "notes.tmp", folder / "x.parquet"]
    for path in [orphan, legacy_orphan, named_orphan, young, *foreign]:
        path.write_bytes(b"partial")
        if path is not young:
            os.utime(path, (old, old))
    # Opening a version (its first read) cleans too, not only writing.
    OfflineStore(tmp_path, orphan_grace=timedelta(minutes=10)).prepared(FSV)
    assert not orphan.exists() and not legacy_orphan.exists() and not named_orphan.exists()
    assert young.exists() and all(p.exists() for p in foreign)
    store.write_snapshot(FSV, rows([2], 1.0), created_at=T0 + minutes(1))
    assert young.exists()  # still within the grace period: may be a write in progress


_KILLED_INGEST = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{support!r}, {repo!r}]
    from store_test_support import make_store, rows, spec
    from pathlib import Path
    from feature_platform.feature_store import FeatureStore
    from feature_platform.governance.identity import acting_as, system_actor

    def crash(self, feature_set):  # the machine dies between the offline and online writes
        os.kill(os.getpid(), signal.SIGKILL)

    FeatureStore.materialize_online = crash
    with acting_as(system_actor()):  # as the tests' session does
        fs = make_store(Path({root!r}))
        fs.apply(spec())
        fs.ingest("items@v1", rows([1, 2, 3], [1.0, 2.0, 3.0]))
    """
)


def test_an_ingest_killed_between_offline_and_online_converges_when_re_run(tmp_path) -> None:
    script = _KILLED_INGEST.format(support=str(SUPPORT), repo=str(REPO), root=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    fs = make_store(tmp_path)
    fsv = fs.registry.get("items", "v1")
    assert len(fs.offline.snapshots(fsv)) == 1
    assert np.isnan(fs.get_online_features(["items@v1:x"], [1])["x"][0])  # online not written

    rerun = fs.ingest("items@v1", rows([1, 2, 3], [1.0, 2.0, 3.0]))
    assert not rerun.snapshot.written and rerun.online_rows_changed == 3
    assert len(fs.offline.snapshots(fsv)) == 1
    assert fs.get_online_features(["items@v1:x"], [1, 2, 3])["x"].tolist() == [1.0, 2.0, 3.0]
    got = fs.get_historical_features(_entity_df([1, 2, 3]), ["items@v1:x"])
    assert got["x"].tolist() == [1.0, 2.0, 3.0]


def test_concurrent_writers_of_the_same_rows_leave_one_whole_snapshot(tmp_path) -> None:
    import threading

    frame = rows(range(2000), np.arange(2000.0))
    stores = [OfflineStore(tmp_path, persist_index_min_bytes=None) for _ in range(4)]
    threads = [
        threading.Thread(target=store.write_snapshot, args=(FSV, frame, T0)) for store in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = OfflineStore(tmp_path, persist_index_min_bytes=None)
    assert len(fresh.snapshots(FSV)) == 1
    assert fresh.read(FSV)["x"].tolist() == list(np.arange(2000.0))
    assert [p.name for p in (tmp_path / "items" / "v1").iterdir()] == [fresh.snapshots(FSV)[0].name]
