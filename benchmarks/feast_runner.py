"""Feast side of the feature_platform-vs-Feast benchmark.

Run with the Python of the separate Feast virtualenv (see ``feast_env.py``), never with the
project's own interpreter; this file must not import ``feature_platform``::

    python -P feast_runner.py --data DIR --out OUT.json [--repeats N] [--offline-store duckdb]

(``-P`` keeps this script's folder off ``sys.path``, so no sibling module can shadow a package.)
DIR holds ``features.parquet``, ``entities.parquet`` and ``keys.json`` written by our side.
The runner builds a throw-away Feast repo (local provider, FileSource over
``features.parquet``, SQLite online store), times point-in-time retrieval, materialization
and online lookups, and writes the figures to OUT.json. The retrieved frame and the online
values for the k_keys go to ``DIR/feast_retrieval.parquet`` and ``DIR/feast_online.parquet``
(``*_duckdb.parquet`` with ``--offline-store duckdb``) for checking against a merge_asof
reference.

Known differences of Feast 0.67's default "file" (dask) offline store from that reference:
it drops entity rows of known entities that have no value at or before their timestamp
(instead of returning NaN), collapses entity rows sharing (entity_id, event_timestamp)
(feast-dev/feast#6787), and on event-time ties may return the earlier-created version.
It also reorders rows. The "duckdb" offline store over the same FileSource has none of
these value problems. Materialization (and so the online values) is right with both.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

if TYPE_CHECKING:  # feast is imported lazily so its import time can be measured
    from feast import FeatureStore

PROJECT = "feast_bench"
VIEW = "bench_features"
ENTITY = "entity"
JOIN_KEY = "entity_id"


# --- memory helpers -------------------------------------------------------------------------


def _status_mb(field: str) -> float | None:
    """Read a VmRSS/VmHWM-style line of /proc/self/status, in MiB (Linux only)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# Highest VmHWM seen before any reset: on Linux, clearing VmHWM also resets ru_maxrss.
_peak_seen_mb = 0.0


def _reset_peak_rss() -> bool:
    """Reset VmHWM so one phase's own peak can be read, keeping the process peak."""
    global _peak_seen_mb
    _peak_seen_mb = max(_peak_seen_mb, _process_peak_mb())
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _process_peak_mb() -> float:
    """Peak RSS of the whole process so far, in MiB, across VmHWM resets."""
    # Linux reports ru_maxrss in KiB.
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return max(_peak_seen_mb, ru, _status_mb("VmHWM") or 0.0)


# --- stats helpers --------------------------------------------------------------------------


def _summary_s(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {
        "min_s": float(arr.min()),
        "median_s": float(np.median(arr)),
        "max_s": float(arr.max()),
    }


def _latency_summary(values_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(values_ms, dtype=float)
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p90_ms": float(np.percentile(arr, 90)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(arr.mean()),
        "min_ms": float(arr.min()),
        "max_ms": float(arr.max()),
    }


# --- Feast repo -----------------------------------------------------------------------------


def _write_repo_yaml(repo: Path, offline_store: str) -> None:
    """feature_store.yaml for a local, offline-only (no network) store under ``repo``."""
    data = repo / "data"
    data.mkdir(parents=True, exist_ok=True)
    # cache_ttl_seconds: 0 caches the registry forever, so online timings never include a
    # registry reload; absolute paths make the repo independent of the working directory.
    repo.joinpath("feature_store.yaml").write_text(
        "\n".join(
            [
                f"project: {PROJECT}",
                "provider: local",
                "registry:",
                "  registry_type: file",
                f"  path: {data / 'registry.db'}",
                "  cache_ttl_seconds: 0",
                "online_store:",
                "  type: sqlite",
                f"  path: {data / 'online_store.db'}",
                "offline_store:",
                f"  type: {offline_store}",
                "entity_key_serialization_version: 3",
                "",
            ]
        ),
        encoding="utf-8",
    )


def _make_store(
    repo: Path, features_path: Path, feature_names: list[str], offline_store: str
) -> FeatureStore:
    """Create a fresh Feast repo (own registry and SQLite file) and apply the definitions."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    _write_repo_yaml(repo, offline_store)
    store = FeatureStore(repo_path=str(repo))
    entity = Entity(name=ENTITY, join_keys=[JOIN_KEY], value_type=ValueType.INT64)
    source = FileSource(
        name="bench_source",
        path=str(features_path.resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        # ttl=0 means "no limit" in Feast (offline _filter_ttl and online reads skip it).
        ttl=timedelta(0),
        schema=[Field(name=JOIN_KEY, dtype=Int64)]
        + [Field(name=f, dtype=Float64) for f in feature_names],
        source=source,
        online=True,
    )
    store.apply([entity, view])
    return store


# --- benchmark phases -----------------------------------------------------------------------


def _time_retrieval(
    store: FeatureStore, entity_df: pd.DataFrame, refs: list[str], repeats: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    seconds: list[float] = []
    increase_mb: list[float | None] = []
    peak_mb: list[float | None] = []
    can_reset = _reset_peak_rss()
    result = pd.DataFrame()
    for _ in range(repeats):
        del result
        gc.collect()
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        t0 = time.perf_counter()
        result = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        seconds.append(time.perf_counter() - t0)
        hwm = _status_mb("VmHWM") if can_reset else None
        peak_mb.append(hwm)
        increase_mb.append(hwm - before if hwm is not None and before is not None else None)
    info: dict[str, Any] = {
        "repeats": repeats,
        "seconds": seconds,
        **_summary_s(seconds),
        "rows_in": len(entity_df),
        "rows_out": len(result),
        "peak_rss_mb": peak_mb,
        "peak_rss_increase_mb": increase_mb,
        "peak_reset_supported": can_reset,
    }
    return info, result


def _time_materialize(
    root: Path, features_path: Path, feature_names: list[str], repeats: int, offline_store: str
) -> tuple[dict[str, Any], FeatureStore]:
    ts = pq.read_table(features_path, columns=["event_timestamp"]).column(0).to_pandas()
    lo, hi = pd.Timestamp(ts.min()), pd.Timestamp(ts.max())
    # The window is inclusive on both ends in this Feast version; pad by a second anyway.
    start = (lo - pd.Timedelta(seconds=1)).to_pydatetime()
    end = (hi + pd.Timedelta(seconds=1)).to_pydatetime()
    seconds: list[float] = []
    store: FeatureStore | None = None
    for i in range(repeats):
        # Each repeat gets a brand-new registry and SQLite file: Feast upserts, and a second
        # run into a filled store would measure overwrites, not the initial load.
        store = _make_store(root / f"mat{i}", features_path, feature_names, offline_store)
        gc.collect()
        t0 = time.perf_counter()
        store.materialize(start_date=start, end_date=end)
        seconds.append(time.perf_counter() - t0)
    info = {
        "repeats": repeats,
        "seconds": seconds,
        **_summary_s(seconds),
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    assert store is not None  # repeats >= 1 is checked by the caller
    return info, store


def _time_online(
    store: FeatureStore, refs: list[str], key_sets: list[list[int]], reps: int, warmup: int
) -> dict[str, Any]:
    """Time get_online_features; the call alone and the call plus .to_dict()."""
    call_ms: list[float] = []
    total_ms: list[float] = []
    n = len(key_sets)
    for i in range(warmup + reps):
        keys = key_sets[i % n]
        t0 = time.perf_counter()
        resp = store.get_online_features(features=refs, entity_rows={JOIN_KEY: keys})
        t1 = time.perf_counter()
        resp.to_dict()
        t2 = time.perf_counter()
        if i >= warmup:
            call_ms.append((t1 - t0) * 1e3)
            total_ms.append((t2 - t0) * 1e3)
    return {
        "n_keys": len(key_sets[0]),
        "reps": reps,
        "warmup": warmup,
        "latency_ms": total_ms,
        **_latency_summary(total_ms),
        "call_only_latency_ms": call_ms,
        "call_only": _latency_summary(call_ms),
    }


def _online_frame(store: FeatureStore, refs: list[str], keys: list[int]) -> pd.DataFrame:
    values = store.get_online_features(features=refs, entity_rows={JOIN_KEY: keys}).to_dict()
    frame = pd.DataFrame(values)
    cols = [JOIN_KEY] + [r.split(":", 1)[1] for r in refs]
    frame = frame[cols]
    # Missing keys come back as None; make the dtypes match the offline frame.
    for c in cols[1:]:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    frame[JOIN_KEY] = frame[JOIN_KEY].astype("int64")
    return frame


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist in ("feast", "pandas", "pyarrow", "numpy", "dask", "duckdb", "ibis-framework"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # duckdb/ibis only come with feast[duckdb]
            continue
    return found


def run(
    data: Path,
    out: Path,
    repeats: int = 3,
    k_reps: int = 200,
    one_reps: int = 500,
    warmup: int = 5,
    offline_store: str = "file",
) -> dict[str, Any]:
    """Run every phase and return the result document (also written to ``out``)."""
    # Non-default stores get their own output files so both can sit in one DIR.
    suffix = "" if offline_store == "file" else f"_{offline_store}"
    retrieval_path = data / f"feast_retrieval{suffix}.parquet"
    online_path = data / f"feast_online{suffix}.parquet"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        doc = _run_phases(
            data, repeats, k_reps, one_reps, warmup, offline_store, retrieval_path, online_path
        )
    # De-duplicated so the report shows each distinct deprecation/quirk once.
    seen: dict[str, None] = {}
    for w in caught:
        seen.setdefault(f"{w.category.__name__}: {str(w.message)[:300]}", None)
    doc["warnings"] = list(seen)
    doc["outputs"] = {"retrieval": str(retrieval_path), "online": str(online_path)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return doc


def _run_phases(
    data: Path,
    repeats: int,
    k_reps: int,
    one_reps: int,
    warmup: int,
    offline_store: str,
    retrieval_path: Path,
    online_path: Path,
) -> dict[str, Any]:
    t_import = time.perf_counter()
    import feast  # noqa: F401  - timed on purpose: import cost is part of Feast's footprint

    import_s = time.perf_counter() - t_import

    features_path = data / "features.parquet"
    schema = pq.read_schema(features_path)
    feature_names = [n for n in schema.names if n.startswith("f") and n[1:].isdigit()]
    feature_names.sort(key=lambda n: int(n[1:]))
    refs = [f"{VIEW}:{f}" for f in feature_names]
    entity_df = pd.read_parquet(data / "entities.parquet")
    keys = json.loads((data / "keys.json").read_text(encoding="utf-8"))
    k_keys = [int(k) for k in keys["k_keys"]]
    one_keys = [int(k) for k in keys["one_key_samples"]]
    gc.collect()
    baseline_mb = _status_mb("VmRSS")

    versions = _versions()
    doc: dict[str, Any] = {
        "tool": "feast",
        "feast_version": versions["feast"],
        "versions": versions,
        "config": {
            "provider": "local",
            "offline_store": "file (dask)" if offline_store == "file" else offline_store,
            "online_store": "sqlite",
            "ttl": "0 (unlimited)",
            "entity_key_serialization_version": 3,
        },
        "data": {
            "feature_rows": pq.ParquetFile(features_path).metadata.num_rows,
            "n_features": len(feature_names),
            "entity_rows": len(entity_df),
            "k_keys": len(k_keys),
            "one_key_samples": len(one_keys),
        },
    }
    with tempfile.TemporaryDirectory(prefix="feast_bench_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store = _make_store(root / "offline", features_path, feature_names, offline_store)
        apply_s = time.perf_counter() - t0

        # Retrieval first, so the peak right after it reflects loading plus retrieval only.
        peak_before_retrieval = _process_peak_mb()
        retrieval, frame = _time_retrieval(store, entity_df, refs, repeats)
        peak_after_retrieval = _process_peak_mb()
        frame.to_parquet(retrieval_path, index=False)
        del frame
        gc.collect()

        materialize, online_store = _time_materialize(
            root, features_path, feature_names, repeats, offline_store
        )
        online = {
            "k_keys": _time_online(online_store, refs, [k_keys], k_reps, warmup),
            "one_key": _time_online(online_store, refs, [[k] for k in one_keys], one_reps, warmup),
        }
        _online_frame(online_store, refs, k_keys).to_parquet(online_path, index=False)
    increases = [v for v in retrieval["peak_rss_increase_mb"] if v is not None]
    doc.update(
        retrieval=retrieval,
        materialize=materialize,
        online=online,
        setup_seconds={"import_feast": import_s, "apply": apply_s},
        memory={
            "rss_baseline_mb": baseline_mb,
            "peak_rss_mb_before_retrieval": peak_before_retrieval,
            "peak_rss_mb_after_retrieval": peak_after_retrieval,
            "peak_rss_mb_end": _process_peak_mb(),
            "retrieval_peak_increase_mb_max": max(increases) if increases else None,
        },
    )
    return doc


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="directory with the input files")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    p.add_argument("--repeats", type=int, default=3, help="retrieval/materialize repeats")
    p.add_argument("--k-reps", type=int, default=200, help="online lookups of the 100 keys")
    p.add_argument("--one-reps", type=int, default=500, help="online lookups of 1 key")
    p.add_argument("--warmup", type=int, default=5, help="untimed online lookups first")
    p.add_argument(
        "--offline-store",
        choices=["file", "duckdb"],
        default="file",
        help="Feast offline store over the same FileSource (duckdb needs feast[duckdb])",
    )
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    doc = run(a.data, a.out, a.repeats, a.k_reps, a.one_reps, a.warmup, a.offline_store)
    r, m, o = doc["retrieval"], doc["materialize"], doc["online"]
    print(
        f"feast {doc['feast_version']} ({a.offline_store}): "
        f"retrieval median {r['median_s']:.3f}s ({r['rows_out']}/{r['rows_in']} rows), "
        f"materialize median {m['median_s']:.3f}s, "
        f"online {o['k_keys']['n_keys']} keys p50 {o['k_keys']['p50_ms']:.2f}ms "
        f"p99 {o['k_keys']['p99_ms']:.2f}ms, "
        f"1 key p50 {o['one_key']['p50_ms']:.2f}ms p99 {o['one_key']['p99_ms']:.2f}ms, "
        f"peak RSS {doc['memory']['peak_rss_mb_after_retrieval']:.0f} MiB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
