"""Our side of the feature_platform-vs-Feast benchmark: the counterpart of ``feast_runner.py``.

Run in its own process (so its peak RSS compares with the Feast runner's) by
``feature_store_vs_feast.py``::

    python benchmarks/_ours_runner.py --data DIR --store HOME --out OUT.json [--repeats N]

DIR holds ``entities.parquet`` and ``keys.json`` (the same files the Feast runner reads);
HOME is a feature store home (``Settings.under(HOME)``) in which ``bench@v1`` is registered
and its offline snapshots are already written (see ``ingest``). The runner times
point-in-time retrieval, materialization to online and online lookups with the same
repeat/warm-up protocol and the same measuring helpers as the Feast runner, writes the
figures to OUT.json, and the retrieved frame and the online values of the k_keys to
``DIR/ours_retrieval.parquet`` and ``DIR/ours_online.parquet``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# The Feast runner's measuring helpers, so both sides measure time and memory identically.
# (This file runs as a script: its own folder, benchmarks/, is first on sys.path.)
from feast_runner import (
    _latency_summary,
    _process_peak_mb,
    _reset_peak_rss,
    _status_mb,
    _summary_s,
)

FEATURE_SET = "bench"
VERSION = "v1"
ENTITY = "entity_id"  # the same join key as the Feast runner's
REFS = [f"{FEATURE_SET}@{VERSION}:*"]


def identity(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """The benchmark's transform: the generated rows are already the feature values."""
    return frame


def bench_spec(feature_names: list[str]) -> Any:
    """The feature set every process of the benchmark registers (same fingerprint)."""
    from feature_platform.store.feature_set import FeatureSetSpec

    return FeatureSetSpec(
        name=FEATURE_SET,
        version=VERSION,
        entity=ENTITY,
        features={f: "float64" for f in feature_names},
        transform=identity,
        sources=("bench_source",),
        description="feature_store_vs_feast benchmark data",
    )


def ingest(home: Path, features: pd.DataFrame, feature_names: list[str]) -> dict[str, Any]:
    """Register ``bench@v1`` under ``home`` and write one offline snapshot per created time.

    ``write_snapshot`` stamps one created time per write, so each generated batch (all rows
    sharing a ``created_timestamp``) is one snapshot written with that time: the stored rows
    are then exactly the rows of ``features.parquet``.
    """
    from feature_platform import FeatureStore
    from feature_platform.settings import Settings

    store = FeatureStore(Settings.under(home))
    fsv = store.apply(bench_spec(feature_names))
    t0 = time.perf_counter()
    snapshots = 0
    for created, batch in features.groupby("created_timestamp", sort=True):
        rows = batch.drop(columns=["created_timestamp"])
        store.offline.write_snapshot(fsv, rows, created_at=pd.Timestamp(created).to_pydatetime())
        snapshots += 1
    seconds = time.perf_counter() - t0
    store.engine.dispose()
    return {"seconds": seconds, "snapshots": snapshots, "rows": len(features)}


def _store(settings: Any) -> Any:
    from feature_platform import FeatureStore

    return FeatureStore(settings)


def _close(store: Any) -> None:
    store.engine.dispose()


def _time_retrieval(
    settings: Any, entity_df: pd.DataFrame, repeats: int
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Cold: a new FeatureStore per repeat, so the snapshots are read and indexed inside the
    timed call (as Feast reads its source on every call). Warm: the same store again."""
    cold_s: list[float] = []
    peak_mb: list[float | None] = []
    increase_mb: list[float | None] = []
    can_reset = _reset_peak_rss()
    result = pd.DataFrame()
    store = None
    for _ in range(repeats):
        if store is not None:
            _close(store)
        del result
        store = _store(settings)
        gc.collect()
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        t0 = time.perf_counter()
        result = store.get_historical_features(entity_df, REFS)
        cold_s.append(time.perf_counter() - t0)
        hwm = _status_mb("VmHWM") if can_reset else None
        peak_mb.append(hwm)
        increase_mb.append(hwm - before if hwm is not None and before is not None else None)
    warm_s: list[float] = []
    warm_increase: list[float | None] = []
    for _ in range(repeats):
        del result
        gc.collect()
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        t0 = time.perf_counter()
        result = store.get_historical_features(entity_df, REFS)
        warm_s.append(time.perf_counter() - t0)
        hwm = _status_mb("VmHWM") if can_reset else None
        warm_increase.append(hwm - before if hwm is not None and before is not None else None)
    _close(store)
    cold = {
        "repeats": repeats,
        "seconds": cold_s,
        **_summary_s(cold_s),
        "rows_in": len(entity_df),
        "rows_out": len(result),
        "peak_rss_mb": peak_mb,
        "peak_rss_increase_mb": increase_mb,
        "peak_reset_supported": can_reset,
    }
    warm = {
        "repeats": repeats,
        "seconds": warm_s,
        **_summary_s(warm_s),
        "peak_rss_increase_mb": warm_increase,
    }
    return cold, warm, result


def _time_materialize(
    root: Path, settings: Any, feature_names: list[str], repeats: int, entities: int
) -> tuple[dict[str, Any], Any]:
    """Each repeat: a brand-new database (registry + online table) over the same offline
    snapshots, then the store's public materialization call, timed alone."""
    seconds: list[float] = []
    store = None
    call = ""
    for i in range(repeats):
        if store is not None:
            _close(store)
        fresh = dataclasses.replace(
            settings,
            home=root / f"mat{i}",
            database_url=f"sqlite:///{root / f'mat{i}' / 'platform.db'}",
        )
        store = _store(fresh)
        fsv = store.apply(bench_spec(feature_names))
        gc.collect()
        t0 = time.perf_counter()
        if hasattr(store, "materialize_online"):
            call = "FeatureStore.materialize_online"
            changed = store.materialize_online(fsv)
        else:  # an older store without the incremental public call
            call = "OnlineStore.materialize(fsv, OfflineStore.latest(fsv))"
            changed = store.online.materialize(fsv, store.offline.latest(fsv))
        seconds.append(time.perf_counter() - t0)
        if changed != entities:
            raise RuntimeError(f"materialization wrote {changed} online rows, expected {entities}")
    assert store is not None  # repeats >= 1 is checked by the caller
    return {"repeats": repeats, "seconds": seconds, **_summary_s(seconds), "call": call}, store


def _time_online(store: Any, key_sets: list[list[int]], reps: int, warmup: int) -> dict[str, Any]:
    """Time get_online_features (it returns the final DataFrame: nothing left to convert)."""
    total_ms: list[float] = []
    n = len(key_sets)
    for i in range(warmup + reps):
        keys = key_sets[i % n]
        t0 = time.perf_counter()
        store.get_online_features(REFS, keys)
        t1 = time.perf_counter()
        if i >= warmup:
            total_ms.append((t1 - t0) * 1e3)
    return {
        "n_keys": len(key_sets[0]),
        "reps": reps,
        "warmup": warmup,
        "latency_ms": total_ms,
        **_latency_summary(total_ms),
    }


def _time_scaling(
    settings: Any, files: list[Path], repeats: int, can_reset: bool
) -> list[dict[str, Any]]:
    """Retrieval cost per entity-frame size: cold (fresh store) and warm (cached index)."""
    sizes = []
    for path in files:
        entity_df = pd.read_parquet(path)
        store = _store(settings)
        gc.collect()
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        t0 = time.perf_counter()
        result = store.get_historical_features(entity_df, REFS)
        cold = time.perf_counter() - t0
        hwm = _status_mb("VmHWM") if can_reset else None
        warm = []
        for _ in range(repeats):
            del result
            gc.collect()
            t0 = time.perf_counter()
            result = store.get_historical_features(entity_df, REFS)
            warm.append(time.perf_counter() - t0)
        _close(store)
        rows = len(entity_df)
        warm_median = float(np.median(warm))
        sizes.append(
            {
                "rows": rows,
                "cold_s": cold,
                "warm_median_s": warm_median,
                "cold_us_per_row": cold / rows * 1e6,
                "warm_us_per_row": warm_median / rows * 1e6,
                "peak_rss_increase_mb": hwm - before if hwm is not None and before else None,
            }
        )
        del result, entity_df
    return sizes


def run(
    data: Path,
    home: Path,
    out: Path,
    repeats: int = 3,
    k_reps: int = 200,
    one_reps: int = 500,
    warmup: int = 5,
    scaling: list[Path] | None = None,
) -> dict[str, Any]:
    """Run every phase and return the result document (also written to ``out``)."""
    t_import = time.perf_counter()
    import feature_platform  # noqa: F401  - timed like Feast's import
    from feature_platform.settings import Settings

    import_s = time.perf_counter() - t_import
    settings = Settings.under(home)
    entity_df = pd.read_parquet(data / "entities.parquet")
    keys = json.loads((data / "keys.json").read_text(encoding="utf-8"))
    k_keys = [int(k) for k in keys["k_keys"]]
    one_keys = [int(k) for k in keys["one_key_samples"]]
    probe = _store(settings)
    fsv = probe.registry.resolve(FEATURE_SET, VERSION)
    feature_names = fsv.feature_names
    snapshots = len(probe.offline.snapshots(fsv))
    _close(probe)
    entities = int(keys["entities"])
    gc.collect()
    baseline_mb = _status_mb("VmRSS")

    doc: dict[str, Any] = {
        "tool": "feature_platform",
        "versions": {
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
        "config": {
            "offline_store": "Parquet snapshots (one per created time)",
            "online_store": "SQLite",
            "offline_snapshots": snapshots,
        },
    }
    peak_before_retrieval = _process_peak_mb()
    retrieval, retrieval_warm, frame = _time_retrieval(settings, entity_df, repeats)
    peak_after_retrieval = _process_peak_mb()
    frame.to_parquet(data / "ours_retrieval.parquet", index=False)
    del frame
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="ours_bench_") as tmp:
        materialize, store = _time_materialize(
            Path(tmp), settings, feature_names, repeats, entities
        )
        t0 = time.perf_counter()
        store.get_online_features(REFS, k_keys)  # builds the online cache
        first_lookup_ms = (time.perf_counter() - t0) * 1e3
        online = {
            "first_lookup_ms": first_lookup_ms,
            "k_keys": _time_online(store, [k_keys], k_reps, warmup),
            "one_key": _time_online(store, [[k] for k in one_keys], one_reps, warmup),
        }
        values = store.get_online_features(REFS, k_keys)
        values.to_parquet(data / "ours_online.parquet", index=False)
        _close(store)

    increases = [v for v in retrieval["peak_rss_increase_mb"] if v is not None]
    doc.update(
        retrieval=retrieval,
        retrieval_warm=retrieval_warm,
        materialize=materialize,
        online=online,
        setup_seconds={"import_feature_platform": import_s},
        memory={
            "rss_baseline_mb": baseline_mb,
            "peak_rss_mb_before_retrieval": peak_before_retrieval,
            "peak_rss_mb_after_retrieval": peak_after_retrieval,
            "peak_rss_mb_end": _process_peak_mb(),
            "retrieval_peak_increase_mb_max": max(increases) if increases else None,
        },
    )
    if scaling:
        doc["scaling"] = _time_scaling(
            settings, scaling, repeats, retrieval["peak_reset_supported"]
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="directory with the input files")
    p.add_argument("--store", type=Path, required=True, help="feature store home with bench@v1")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    p.add_argument("--repeats", type=int, default=3, help="retrieval/materialize repeats")
    p.add_argument("--k-reps", type=int, default=200, help="online lookups of the k keys")
    p.add_argument("--one-reps", type=int, default=500, help="online lookups of 1 key")
    p.add_argument("--warmup", type=int, default=5, help="untimed online lookups first")
    p.add_argument("--scaling", type=Path, nargs="*", default=[], help="entity frames to scale")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    run(a.data, a.store, a.out, a.repeats, a.k_reps, a.one_reps, a.warmup, a.scaling)
    return 0


if __name__ == "__main__":
    sys.exit(main())
