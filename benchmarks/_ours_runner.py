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
import os
import platform
import shutil
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
    from feature_platform.governance import system_actor
    from feature_platform.settings import Settings

    # A throwaway benchmark store: its definitions are written as the platform identity.
    store = FeatureStore(Settings.under(home), actor=system_actor())
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
    from feature_platform.governance import system_actor

    # Materialization registers bench@v1 in a fresh database: as the platform identity
    # (writes are refused to an unregistered OS user).
    return FeatureStore(settings, actor=system_actor())


def _close(store: Any) -> None:
    store.engine.dispose()


def _fresh_offline(settings: Any, root: Path, name: str) -> Any:
    """Settings whose offline store is a copy of the version's folder exactly as the write
    path left it (nothing in this benchmark reads that folder, so no read-side cache or
    index is in it; anything the store itself derives at write time is kept)."""
    source = settings.offline_dir / FEATURE_SET / VERSION
    shutil.copytree(source, root / name / FEATURE_SET / VERSION)
    return dataclasses.replace(settings, offline_dir=root / name)


def _fresh_copies(settings: Any, root: Path, prefix: str, count: int) -> list[Any]:
    """`count` fresh copies, made before anything is timed and flushed to disk, so no timed
    read competes with the writeback of a copy made just before it (Feast's source file
    was likewise written long before its runner reads it)."""
    copies = [_fresh_offline(settings, root, f"{prefix}{i}") for i in range(count)]
    os.sync()
    return copies


def _retrieve(
    store: Any, entity_df: pd.DataFrame, can_reset: bool
) -> tuple[pd.DataFrame, float, float | None]:
    """One timed retrieval: (result, seconds, peak RSS increase in MiB over the RSS before)."""
    gc.collect()
    _reset_peak_rss()
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    result = store.get_historical_features(entity_df, REFS)
    seconds = time.perf_counter() - t0
    hwm = _status_mb("VmHWM") if can_reset else None
    return result, seconds, (hwm - before if hwm is not None and before is not None else None)


def _phase(seconds: list[float], increases: list[float | None]) -> dict[str, Any]:
    found = [v for v in increases if v is not None]
    return {
        "repeats": len(seconds),
        "seconds": seconds,
        **_summary_s(seconds),
        "peak_rss_increase_mb": increases,
        "peak_rss_increase_mb_max": max(found) if found else None,
    }


def _time_retrieval(
    settings: Any, root: Path, entity_df: pd.DataFrame, repeats: int
) -> tuple[dict[str, Any], Any, pd.DataFrame]:
    """Three states, each timed `repeats` times:

    - from_parquet: a new FeatureStore over fresh copies of the snapshots, so the call reads
      the Parquet and sorts it (like Feast, which reads its source on every call); the store
      may persist an index as a side effect.
    - indexed: a new FeatureStore (a new process's view) over the copy the last from_parquet
      call left behind, with whatever the store persisted there.
    - warm: the same FeatureStore again (its in-memory cache).

    Returns the figures, the settings of the indexed copy and the last result."""
    can_reset = _reset_peak_rss()
    phases: dict[str, Any] = {"peak_reset_supported": can_reset}
    result = pd.DataFrame()
    copies = _fresh_copies(settings, root, "copy", repeats)
    indexed = settings
    for state in ("from_parquet", "indexed"):
        seconds: list[float] = []
        increases: list[float | None] = []
        for i in range(repeats):
            del result
            if state == "from_parquet":
                indexed = copies[i]
            store = _store(indexed)
            result, took, grew = _retrieve(store, entity_df, can_reset)
            _close(store)
            seconds.append(took)
            increases.append(grew)
        phases[state] = _phase(seconds, increases)
    store = _store(indexed)
    store.get_historical_features(entity_df, REFS)  # fills its in-memory cache
    seconds, increases = [], []
    for _ in range(repeats):
        del result
        result, took, grew = _retrieve(store, entity_df, can_reset)
        seconds.append(took)
        increases.append(grew)
    _close(store)
    phases["warm"] = _phase(seconds, increases)
    phases["rows_in"] = len(entity_df)
    phases["rows_out"] = len(result)
    return phases, indexed, result


def _time_materialize(
    root: Path,
    settings: Any,
    indexed: Any,
    feature_names: list[str],
    repeats: int,
    entities: int,
) -> tuple[dict[str, Any], Any]:
    """Each repeat: a brand-new database (registry + online table), then the store's public
    materialization call, timed alone. from_parquet: over fresh copies of the snapshots (as
    Feast reads its source); indexed: over the copy retrieval already indexed."""
    from feature_platform import FeatureStore

    call = (
        "FeatureStore.materialize_online"
        if hasattr(FeatureStore, "materialize_online")
        else "OnlineStore.materialize(fsv, OfflineStore.latest(fsv))"
    )
    phases: dict[str, Any] = {"call": call}
    copies = _fresh_copies(settings, root, "mat_copy", repeats)
    store = None
    for state in ("from_parquet", "indexed"):
        seconds: list[float] = []
        for i in range(repeats):
            if store is not None:
                _close(store)
            home = root / f"mat_{state}{i}"
            offline = copies[i] if state == "from_parquet" else indexed
            fresh = dataclasses.replace(
                offline, home=home, database_url=f"sqlite:///{home / 'platform.db'}"
            )
            store = _store(fresh)
            fsv = store.apply(bench_spec(feature_names))
            gc.collect()
            t0 = time.perf_counter()
            if call.startswith("FeatureStore"):
                changed = store.materialize_online(fsv)
            else:  # an older store without the incremental public call
                changed = store.online.materialize(fsv, store.offline.latest(fsv))
            seconds.append(time.perf_counter() - t0)
            if changed != entities:
                raise RuntimeError(
                    f"materialization wrote {changed} online rows, expected {entities}"
                )
        phases[state] = {"repeats": repeats, "seconds": seconds, **_summary_s(seconds)}
    assert store is not None  # repeats >= 1 is checked by the caller
    return phases, store


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
    settings: Any, root: Path, files: list[Path], repeats: int, can_reset: bool
) -> list[dict[str, Any]]:
    """Retrieval cost per entity-frame size, in the three states of `_time_retrieval`."""
    sizes = []
    for n, path in enumerate(files):
        entity_df = pd.read_parquet(path)
        copy = _fresh_copies(settings, root, f"scaling{n}_", 1)[0]
        store = _store(copy)
        result, from_parquet, grew = _retrieve(store, entity_df, can_reset)
        _close(store)
        del result
        store = _store(copy)
        result, indexed, _ = _retrieve(store, entity_df, can_reset)
        warm = []
        for _ in range(repeats):
            del result
            result, took, _ = _retrieve(store, entity_df, can_reset)
            warm.append(took)
        _close(store)
        del result
        rows = len(entity_df)
        figures = {"from_parquet": from_parquet, "indexed": indexed, "warm": float(np.median(warm))}
        entry: dict[str, Any] = {"rows": rows, "peak_rss_increase_mb": grew}
        for state, seconds in figures.items():
            entry[f"{state}_s"] = seconds
            entry[f"{state}_us_per_row"] = seconds / rows * 1e6
        sizes.append(entry)
        shutil.rmtree(copy.offline_dir, ignore_errors=True)
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
    with tempfile.TemporaryDirectory(prefix="ours_bench_") as tmp:
        root = Path(tmp)
        peak_before_retrieval = _process_peak_mb()
        retrieval, indexed, frame = _time_retrieval(settings, root, entity_df, repeats)
        peak_after_retrieval = _process_peak_mb()
        frame.to_parquet(data / "ours_retrieval.parquet", index=False)
        del frame
        gc.collect()

        materialize, store = _time_materialize(
            root, settings, indexed, feature_names, repeats, entities
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
        peak_end = _process_peak_mb()
        if scaling:
            doc["scaling"] = _time_scaling(
                settings, root, scaling, repeats, retrieval["peak_reset_supported"]
            )

    increases = [
        retrieval[state]["peak_rss_increase_mb_max"]
        for state in ("from_parquet", "indexed", "warm")
        if retrieval[state]["peak_rss_increase_mb_max"] is not None
    ]
    doc.update(
        retrieval=retrieval,
        materialize=materialize,
        online=online,
        setup_seconds={"import_feature_platform": import_s},
        memory={
            "rss_baseline_mb": baseline_mb,
            "peak_rss_mb_before_retrieval": peak_before_retrieval,
            "peak_rss_mb_after_retrieval": peak_after_retrieval,
            "peak_rss_mb_end": peak_end,
            "retrieval_peak_increase_mb_max": max(increases) if increases else None,
        },
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
