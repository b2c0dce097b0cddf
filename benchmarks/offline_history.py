"""The offline store past memory, and on object storage, with figures printed side by side.

    .venv/bin/python benchmarks/offline_history.py [--entities 1000000 --history 10
        --features 50 --rows 1000000] [--skip-history] [--skip-s3] [--workdir DIR]

1. History beyond memory: `history` snapshots of `entities` rows x `features` float64
   features (10M x 50 by default: 4 GB of values, twice the store's default in-memory
   budget), written batch by batch; then, in a child process whose peak RSS is measured,
   point-in-time retrieval of `rows` entity rows (random entities, ~1% unknown, times from
   before the first value to after the last). Values are a closed form of (entity, batch,
   feature), so every returned cell is checked. The reference, in the same run: DuckDB's
   ASOF JOIN over the same Parquet files returning every feature, with a 4 GB memory limit
   (DuckDB from the Feast benchmark's venv, `.feast-venv`, when present), its time and peak
   RSS, and its answer compared with ours on every row (entity, first and last feature).
2. S3 vs local: the same 100k feature rows x 50 features written to a local directory and
   to an S3 API server on loopback (moto's server mode, as in the tests); point-in-time
   retrieval of 100k rows timed on each (a new store: reading the snapshots/index, and warm).
   moto is a Python server: the S3 figures bound what a real object store costs, not what
   it would cost.

The last line printed is one JSON document with every figure and the load average.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec  # noqa: E402
from feature_platform.store.offline import OfflineStore  # noqa: E402

DAY_NS = 86_400 * 10**9
BASE_NS = pd.Timestamp("2026-01-01", tz="UTC").value
ENTITY = "entity_id"


def _spec(features: int) -> Any:
    return FeatureSetSpec(
        name="history",
        version="v1",
        entity=ENTITY,
        features={f"f{j}": "float64" for j in range(features)},
        transform=lambda frame, params: frame,
        sources=("generated",),
    ).as_version("active")


def _offset_ns(entity: np.ndarray) -> np.ndarray:
    """Each entity's time of day (its events are at BASE + batch days + this)."""
    return (entity * 7919 % 86_400) * 10**9


def _value(entity: np.ndarray, batch: np.ndarray, feature: int) -> np.ndarray:
    """Exact in float64: entity/8 + batch + feature/64."""
    return entity / 8 + batch + feature / 64


def write_history(
    root: str | Path, entities: int, history: int, features: int, index: bool = True
) -> float:
    """Write the snapshots; `index=False` skips the store's write-time index (a version
    this large is read out of core, so every write would re-sort it for nothing)."""
    store = OfflineStore(root, persist_index_min_bytes=(1 << 20) if index else None)
    fsv = _spec(features)
    ids = np.arange(entities, dtype=np.int64)
    t0 = time.perf_counter()
    for batch in range(history):
        frame = {
            ENTITY: ids,
            EVENT_TIMESTAMP: pd.to_datetime(BASE_NS + batch * DAY_NS + _offset_ns(ids), utc=True),
        }
        frame.update({f"f{j}": _value(ids, batch, j) for j in range(features)})
        created = pd.Timestamp(BASE_NS + (batch + 1) * DAY_NS, tz="UTC").to_pydatetime()
        store.write_snapshot(fsv, pd.DataFrame(frame), created_at=created)
        del frame
    return time.perf_counter() - t0


def entity_frame(entities: int, history: int, rows: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, int(entities * 1.01), size=rows)  # ~1% never stored
    at = BASE_NS + rng.integers(-DAY_NS, (history + 1) * DAY_NS, size=rows)
    return pd.DataFrame({ENTITY: ids, EVENT_TIMESTAMP: pd.to_datetime(at, utc=True)})


def expected_batch(frame: pd.DataFrame, entities: int, history: int) -> np.ndarray:
    """The batch whose value each row must get (-1: none)."""
    ids = frame[ENTITY].to_numpy()
    at = frame[EVENT_TIMESTAMP].array.asi8
    batch = np.floor_divide(at - BASE_NS - _offset_ns(ids), DAY_NS)
    batch = np.minimum(batch, history - 1)
    return np.where((ids < entities) & (batch >= 0), batch, -1)


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> int:
    """Timed retrieval in a fresh process; every cell checked against the closed form."""
    frame = pd.read_parquet(args.frame)
    fsv = _spec(args.features)
    before = _peak_rss_mb()
    t0 = time.perf_counter()
    store = OfflineStore(args.root)
    result = store.point_in_time(frame, [(fsv, fsv.feature_names)])
    seconds = time.perf_counter() - t0
    peak = _peak_rss_mb()
    out_of_core = store.prepared(fsv).values is None
    batch = expected_batch(frame, args.entities, args.history)
    ids = frame[ENTITY].to_numpy()
    wrong = 0
    for j in range(args.features):
        want = np.where(batch >= 0, _value(ids, batch, j), np.nan)
        got = result[f"f{j}"].to_numpy()
        wrong += int((~((got == want) | (np.isnan(got) & np.isnan(want)))).sum())
    result[[ENTITY, "f0", f"f{args.features - 1}"]].to_parquet(args.out)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak,
                "rss_before_mb": before,
                "out_of_core": out_of_core,
                "rows": len(frame),
                "cells_wrong": wrong,
                "rows_without_value": int((batch < 0).sum()),
            }
        )
    )
    return 0


_DUCKDB = """
import json, sys, time
import duckdb, pyarrow.parquet as pq
root, frame, out, last = sys.argv[1:5]
con = duckdb.connect()
con.sql("SET memory_limit='4GB'")
con.sql("SET threads=2")
t0 = time.perf_counter()
table = con.sql(f'''
    SELECT e.entity_id, e.row_number,
           f.* EXCLUDE (entity_id, event_timestamp, created_timestamp)
    FROM (SELECT *, row_number() OVER () AS row_number FROM read_parquet('{frame}')) e
    ASOF LEFT JOIN read_parquet('{root}/history/v1/snapshot-*.parquet') f
    ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp
    ORDER BY e.row_number
''').to_arrow_table()  # the whole answer in memory, as ours returns a DataFrame
seconds = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
pq.write_table(table.select(["entity_id", "f0", last]), out)
print(json.dumps({"seconds": seconds, "peak_rss_mb": int(hwm) / 1024}))
"""


def history(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / "offline"
    shutil.rmtree(root, ignore_errors=True)
    write_s = write_history(root, args.entities, args.history, args.features, index=False)
    frame_path = work / "entities.parquet"
    entity_frame(args.entities, args.history, args.rows).to_parquet(frame_path)
    load_before = os.getloadavg()[0]
    ours_out = work / "ours.parquet"
    cmd = [sys.executable, __file__, "--child", "--root", str(root), "--frame", str(frame_path)]
    cmd += ["--out", str(ours_out), "--entities", str(args.entities)]
    cmd += ["--history", str(args.history), "--features", str(args.features)]
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    doc: dict[str, Any] = {
        "feature_rows": args.entities * args.history,
        "features": args.features,
        "values_gb": args.entities * args.history * args.features * 8 / 1e9,
        "write_s": write_s,
        "ours": ours,
    }
    duck_python = REPO / ".feast-venv" / "bin" / "python"
    if duck_python.exists():
        duck_out = work / "duckdb.parquet"
        last = f"f{args.features - 1}"
        run = subprocess.run(
            [str(duck_python), "-c", _DUCKDB, str(root), str(frame_path), str(duck_out), last],
            capture_output=True,
            text=True,
        )
        if run.returncode == 0:
            duck = json.loads(run.stdout.strip().splitlines()[-1])
            a, b = pd.read_parquet(ours_out), pd.read_parquet(duck_out)
            same = all(
                np.array_equal(a[c].to_numpy(), b[c].to_numpy(), equal_nan=True)
                for c in ["f0", last]
            ) and np.array_equal(a[ENTITY].to_numpy(), b[ENTITY].to_numpy())
            duck["same_answer_as_ours"] = bool(same)
            doc["duckdb"] = duck
            doc["ratio_duckdb_time_over_ours"] = duck["seconds"] / ours["seconds"]
        else:
            doc["duckdb"] = {"error": run.stderr[-500:]}
    doc["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return doc


def s3_vs_local(work: Path) -> dict[str, Any]:
    """Same rows on a local directory and on moto's S3 server; retrieval timed on each."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
    )
    pafs.S3FileSystem(
        endpoint_override=f"{host}:{port}",
        scheme="http",
        access_key="bench",
        secret_key="bench",
        allow_bucket_creation=True,
    ).create_dir("bench")
    entities, batches, features = 10_000, 10, 50
    roots = {"local": str(work / "local"), "s3": "s3://bench/offline"}
    frame = entity_frame(entities, batches, 100_000, seed=11)
    fsv = _spec(features)
    doc: dict[str, Any] = {"feature_rows": entities * batches, "rows": len(frame)}
    results = {}
    load_before = os.getloadavg()[0]
    for name, root in roots.items():
        write_s = write_history(root, entities, batches, features)
        new_store, warm = [], []
        for _ in range(3):
            store = OfflineStore(root)
            t0 = time.perf_counter()
            results[name] = store.point_in_time(frame, [(fsv, fsv.feature_names)])
            new_store.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.point_in_time(frame, [(fsv, fsv.feature_names)])
            warm.append(time.perf_counter() - t0)
        doc[name] = {
            "write_s": write_s,
            "new_store_s": float(np.median(new_store)),
            "warm_s": float(np.median(warm)),
        }
    server.stop()
    doc["same_answer"] = bool(results["local"].equals(results["s3"]))
    doc["s3_over_local"] = {
        k: doc["s3"][k] / doc["local"][k] for k in ("write_s", "new_store_s", "warm_s")
    }
    doc["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--history", type=int, default=10)
    p.add_argument("--features", type=int, default=50)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--skip-history", action="store_true")
    p.add_argument("--skip-s3", action="store_true")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--frame", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="offline_history_"))
    work.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        if not args.skip_history:
            doc["history"] = h = history(args, work)
            o = h["ours"]
            print(
                f"history: {h['feature_rows']:,} feature rows x {h['features']} features "
                f"({h['values_gb']:.1f} GB of values), {o['rows']:,} entity rows"
            )
            print(
                f"  ours:   {o['seconds']:.1f} s, peak RSS {o['peak_rss_mb']:.0f} MiB, "
                f"out of core: {o['out_of_core']}, wrong cells: {o['cells_wrong']}"
            )
            if "seconds" in h.get("duckdb", {}):
                d = h["duckdb"]
                print(
                    f"  duckdb: {d['seconds']:.1f} s, peak RSS {d['peak_rss_mb']:.0f} MiB, "
                    f"same answer: {d['same_answer_as_ours']}; duckdb/ours time "
                    f"{h['ratio_duckdb_time_over_ours']:.2f}x"
                )
            print(f"  load average (1 min) before/after: {h['load_average_1min']}")
        if not args.skip_s3:
            doc["s3_vs_local"] = s = s3_vs_local(work)
            for name in ("local", "s3"):
                print(
                    f"{name:6s} write {s[name]['write_s']:.2f} s, retrieval new store "
                    f"{s[name]['new_store_s']:.3f} s, warm {s[name]['warm_s']:.3f} s"
                )
            print(f"  s3/local: {s['s3_over_local']}, same answer: {s['same_answer']}")
            print(f"  load average (1 min) before/after: {s['load_average_1min']}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
