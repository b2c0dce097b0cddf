"""Online lookup latency by read consistency, side by side with the default lookup.

    .venv/bin/python benchmarks/online_consistency.py [--entities 10000 --features 50
        --keys 100 --reps 4000 --warmup 50 --max-staleness 1.0 --write-every-ms 5]
        [--no-postgres]

One feature set of `entities` x `features` float64 values, materialized online, on the
embedded SQLite file and (if it answers at FP_TEST_POSTGRES_URL, default
postgres@127.0.0.1:5432) on a fresh Postgres database. Timed per call, warm:
`get_online_features(["bench@serving:*"], keys)` for K keys and for 1 key, three ways:

- default:  no consistency argument (what the existing online figures measure, e.g.
            `feature_store_vs_feast.py`'s online K / 1 rows; the reference of the ratios)
- strong:   consistency="strong" (the default spelled out: checks the change counter)
- eventual: consistency="eventual", max_staleness=`max_staleness` s (served from the cache
            while it was known current within the bound)

Two loads: "quiet" (nothing else writes) and "busy" (another process commits a small
ingest into an unrelated feature set every `write_every_ms` ms: each commit bumps the store's
change counter, so strong reads revalidate their caches while eventual ones need not).

Prints a table (p50 / p99 / p99.9 / mean in ms, and each mode's p50, p99 and mean as a
ratio of the default's: below 1 is faster) and, last, one JSON document with every figure.
Each mode is timed in 4 interleaved rounds (median of the rounds' figures), so a change in
machine load hits every mode alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from feature_platform import FeatureStore, Settings  # noqa: E402
from feature_platform.governance.identity import acting_as, system_actor  # noqa: E402
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "FP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REFS = ["bench@serving:*"]
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _passthrough(frame: pd.DataFrame, params: Any) -> pd.DataFrame:
    return frame


def _spec(name: str, features: int) -> FeatureSetSpec:
    return FeatureSetSpec(
        name=name,
        version="v1",
        entity="entity_id",
        features={f"f{j}": "float64" for j in range(features)},
        transform=_passthrough,
        sources=("generated",),
    )


def _frame(entities: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.random((entities, features)), columns=[f"f{j}" for j in range(features)]
    )
    frame.insert(0, EVENT_TIMESTAMP, T0)
    frame.insert(0, "entity_id", np.arange(entities, dtype=np.int64))
    return frame


def _build(settings: Settings, entities: int, features: int) -> FeatureStore:
    store = FeatureStore(settings)
    store.apply(_spec("bench", features))
    store.apply(_spec("noise", 1))
    store.ingest("bench@v1", _frame(entities, features))
    store.ingest("noise@v1", _frame(1, 1))
    store.set_alias("bench", "serving", "v1")
    return store


# The "busy" load: another process committing to an unrelated feature set on the same stores.
_WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
import pandas as pd
from feature_platform import FeatureStore, Settings
from feature_platform.governance.identity import acting_as, system_actor
from feature_platform.store.feature_set import EVENT_TIMESTAMP
settings = Settings(home=Path({home!r}), database_url={url!r}, offline_dir=Path({offline!r}),
                    mlflow_tracking_uri="", mlflow_artifact_dir=Path({home!r}))
store, stop, i = FeatureStore(settings), Path({stop!r}), 0
with acting_as(system_actor()):
    while not stop.exists():
        i += 1
        at = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(seconds=i)
        store.ingest("noise@v1", pd.DataFrame({{"entity_id": [0], EVENT_TIMESTAMP: [at],
                                               "f0": [float(i)]}}))
        time.sleep({pause!r})
print(i)
"""


STATS = ("p50_ms", "p99_ms", "p999_ms", "mean_ms")


def _percentiles(ms: list[float]) -> dict[str, float]:
    # The mean and p99.9 show what the rare revalidation after a commit costs (one read in
    # hundreds under the busy load: below p99).
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "p999_ms": float(np.percentile(ms, 99.9)),
        "mean_ms": float(np.mean(ms)),
    }


def _time(store: FeatureStore, key_sets: list[list[int]], reps: int, warmup: int, **kw) -> dict:
    ms: list[float] = []
    for i in range(warmup + reps):
        keys = key_sets[i % len(key_sets)]
        t0 = time.perf_counter()
        store.get_online_features(REFS, keys, **kw)
        elapsed = time.perf_counter() - t0
        if i >= warmup:
            ms.append(elapsed * 1e3)
    return _percentiles(ms)


def _measure(store: FeatureStore, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    k_keys = [rng.choice(args.entities, args.keys, replace=False).tolist()]
    one_keys = [[int(k)] for k in rng.integers(0, args.entities, 256)]
    modes = {
        "default": {},
        "strong": {"consistency": "strong"},
        "eventual": {
            "consistency": "eventual",
            "max_staleness": timedelta(seconds=args.max_staleness),
        },
    }
    out: dict[str, Any] = {}
    for lookup, key_sets in (("k_keys", k_keys), ("one_key", one_keys)):
        # Interleaved in rounds so drift in machine load hits every mode alike.
        rounds = 4
        samples: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(rounds):
            for mode, kw in modes.items():
                samples[mode].append(_time(store, key_sets, args.reps // rounds, args.warmup, **kw))
        out[lookup] = {
            mode: {stat: float(np.median([s[stat] for s in runs])) for stat in STATS}
            for mode, runs in samples.items()
        }
    return out


def _run_backend(name: str, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    with acting_as(system_actor()):
        store = _build(settings, args.entities, args.features)
    store.warm_online(REFS)
    figures: dict[str, Any] = {"quiet": _measure(store, args)}
    stop = Path(settings.home) / "stop-writer"
    code = _WRITER.format(
        repo=str(REPO),
        home=str(settings.home),
        url=settings.database_url,
        offline=str(settings.offline_dir),
        stop=str(stop),
        pause=args.write_every_ms / 1000,
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)  # its imports and first commits
        started = time.perf_counter()
        figures["busy"] = _measure(store, args)
        busy_s = time.perf_counter() - started
    finally:
        stop.touch()
        commits = int((writer.communicate(timeout=120)[0] or "0").strip() or 0)
    figures["busy_writer_commits"] = commits
    figures["busy_seconds"] = busy_s
    store.engine.dispose()
    return figures


def _postgres_database() -> tuple[str, sa.Engine] | None:
    try:
        admin = sa.create_engine(
            POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        name = f"fp_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception:  # noqa: BLE001 - no server here: the SQLite figures alone
        return None
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", admin


def _print_table(results: dict[str, Any]) -> None:
    header = f"{'backend':9} {'load':6} {'lookup':8} {'mode':9} {'p50 ms':>8} {'p99 ms':>8}"
    header += f" {'p99.9 ms':>9} {'mean ms':>8}"
    print(header + f" {'p50 ratio':>10} {'p99 ratio':>10} {'mean ratio':>10}")
    for backend, figures in results.items():
        for load in ("quiet", "busy"):
            for lookup, label in (("k_keys", "K keys"), ("one_key", "1 key")):
                modes = figures[load][lookup]
                ref = modes["default"]
                for mode, f in modes.items():
                    print(
                        f"{backend:9} {load:6} {label:8} {mode:9} {f['p50_ms']:8.3f} "
                        f"{f['p99_ms']:8.3f} {f['p999_ms']:9.3f} {f['mean_ms']:8.3f} "
                        f"{f['p50_ms'] / ref['p50_ms']:10.2f} "
                        f"{f['p99_ms'] / ref['p99_ms']:10.2f} "
                        f"{f['mean_ms'] / ref['mean_ms']:10.2f}"
                    )
        print(
            f"{backend}: busy writer committed {figures['busy_writer_commits']} times in "
            f"{figures['busy_seconds']:.1f} s of busy measurements"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entities", type=int, default=10_000)
    p.add_argument("--features", type=int, default=50)
    p.add_argument("--keys", type=int, default=100, help="keys per batched lookup (K)")
    p.add_argument("--reps", type=int, default=4000, help="timed lookups per mode and lookup")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--max-staleness", type=float, default=1.0, help="eventual bound, seconds")
    p.add_argument("--write-every-ms", type=float, default=5.0, help="busy writer's pause")
    p.add_argument("--no-postgres", action="store_true")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.under(Path(tmp) / "sqlite")
        results["sqlite"] = _run_backend("sqlite", settings, args)
        made = None if args.no_postgres else _postgres_database()
        if made is not None:
            url, admin = made
            try:
                pg = replace(Settings.under(Path(tmp) / "postgres"), database_url=url)
                results["postgres"] = _run_backend("postgres", pg, args)
            finally:
                with admin.connect() as conn:
                    name = url.rsplit("/", 1)[1]
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    _print_table(results)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "params": vars(args),
                "results": results,
                "loadavg": load,
                "note": "ratios: each mode's percentile / the default call's (no consistency "
                "argument), measured interleaved in the same run",
            }
        )
    )


if __name__ == "__main__":
    main()
