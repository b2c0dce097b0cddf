"""Micro-benchmark of this feature store alone (the Feast comparison lives in benchmarks/).

    python -m feature_platform.store.bench --entities 10000 --history 10 --features 50 \\
        --rows 100000 --keys 100 [--database-url postgresql+psycopg2://...]

Prints one JSON line: seconds for offline ingest, online materialization (full, then an
incremental 1% update), point-in-time retrieval (cold: a new FeatureStore without and with
the persisted sort index; warm: median of 5) and online lookups of `--keys` keys and of 1 key
(p50/p99 over warm calls, microseconds; `online_k_matrix_only` is `get_online_values`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform.feature_store import FeatureStore
from feature_platform.settings import Settings
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec

START = datetime(2026, 1, 1, tzinfo=UTC)


def _identity(frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    return frame


def _snapshot(
    rng: np.random.Generator, entities: int, features: list[str], day: int
) -> pd.DataFrame:
    frame = pd.DataFrame(rng.random((entities, len(features))), columns=features)
    frame.insert(0, EVENT_TIMESTAMP, START + timedelta(days=day))
    frame.insert(0, "entity_id", np.arange(entities, dtype=np.int64))
    return frame


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.array(samples) * 1e6
    return {"p50_us": float(np.percentile(values, 50)), "p99_us": float(np.percentile(values, 99))}


def run(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    features = [f"f{i}" for i in range(args.features)]
    home = Path(tempfile.mkdtemp(prefix="fp-bench-"))
    settings = Settings.under(home)
    if args.database_url:
        settings = replace(settings, database_url=args.database_url)
    store = FeatureStore(settings)
    spec = FeatureSetSpec(
        name="bench",
        version="v1",
        entity="entity_id",
        features=dict.fromkeys(features, "float64"),
        transform=_identity,
        sources=("bench_source",),
    )
    store.apply(spec)
    out: dict = {"params": vars(args)}

    t = time.perf_counter()
    for day in range(args.history):
        store.ingest("bench@v1", _snapshot(rng, args.entities, features, day), online=False)
    out["offline_ingest_s"] = time.perf_counter() - t

    t = time.perf_counter()
    out["online_rows_written"] = store.materialize_online("bench@v1")
    out["materialize_full_s"] = time.perf_counter() - t

    update = _snapshot(rng, args.entities, features, args.history).sample(frac=0.01, random_state=0)
    store.ingest("bench@v1", update, online=False)
    t = time.perf_counter()
    out["incremental_rows_written"] = store.materialize_online("bench@v1")
    out["materialize_incremental_1pct_s"] = time.perf_counter() - t

    entity_df = pd.DataFrame(
        {
            "entity_id": rng.integers(0, args.entities, args.rows),
            EVENT_TIMESTAMP: START + pd.to_timedelta(rng.uniform(0, args.history, args.rows), "D"),
        }
    )
    refs = [f"bench@v1:{f}" for f in features]
    # Cold = a new FeatureStore (as a new process): first without the persisted index (the
    # Parquet is read and sorted in the call, which then saves the index), then with it.
    for label, persist in (
        ("retrieval_cold_no_index_s", None),
        ("retrieval_cold_first_s", 1 << 20),
        ("retrieval_cold_with_index_s", 1 << 20),
    ):
        cold = FeatureStore(settings)
        cold.offline.persist_index_min_bytes = persist
        t = time.perf_counter()
        cold.get_historical_features(entity_df, refs)
        out[label] = time.perf_counter() - t
        cold.engine.dispose()
    warm = []
    for _ in range(5):
        t = time.perf_counter()
        frame = store.get_historical_features(entity_df, refs)
        warm.append(time.perf_counter() - t)
    out["retrieval_warm_s"] = float(np.median(warm))
    out["retrieval_rows"] = len(frame)

    store.set_alias("bench", "serving", "v1")
    for label, count in (("online_k", args.keys), ("online_1", 1)):
        for ref_kind, feature_refs in (("", refs), ("_alias", ["bench@serving:*"])):
            store.get_online_features(feature_refs, [0])  # build caches
            samples = []
            for _ in range(args.repeats):
                keys = rng.integers(0, args.entities, count).tolist()
                t = time.perf_counter()
                store.get_online_features(feature_refs, keys)
                samples.append(time.perf_counter() - t)
            out[label + ref_kind] = _percentiles(samples)
    samples = []
    for _ in range(args.repeats):
        keys = rng.integers(0, args.entities, args.keys).tolist()
        t = time.perf_counter()
        store.get_online_values(refs, keys)
        samples.append(time.perf_counter() - t)
    out["online_k_matrix_only"] = _percentiles(samples)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    print(json.dumps(run(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
