"""Scale: score a generated pool with the champion and select a batch, 10k → 100k → 1M samples.

For each pool size it prints wall time and peak resident memory (ru_maxrss) per process of
- `core`: `learning.scale_pool.select_from_pool` in one process (score = scanning the blocks:
  generating, predict_proba, shortlist; select = merging the shortlist into the batch);
- `dagster Nw`: the `scale_pool` job on Dagster's multiprocess executor with N workers
  (`max_concurrent`, forkserver start), the pool in 2 partitions: score = first partition
  step's start to the last one's end, select = the merge step, total = the whole run
  (planning, starting the step processes); peak = the largest step process;
- `dagster celery Nw` (`--executor celery`): the same job on dagster-celery, N worker
  processes (one step at a time each) started by the benchmark on the Redis broker
  (`--celery-broker`) before the clock starts; peak = the largest worker process;
- `sklearn`: the plain-library reference, the whole pool in memory, `predict_proba` then
  `numpy.argsort` on the margin (what `margin` selects), as a ratio to `core` margin;
- `kcenter` with many labeled samples, beside scikit-activeml's CoreSet (same greedy) run in
  its own venv (`--skactiveml-python`, skipped when absent), as a ratio.
Then the fitted growth exponent (time ∝ size^k) of each series, and the load average: the
machine is shared, so figures are only comparable within one run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py
    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py --sizes 10000 100000 --kcenter-sizes 100000
    PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py --executor celery --sizes 100000 \
        --workers 2 --kcenter-sizes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 2**30
HERE = Path(__file__).resolve()
# A Python with scikit-activeml==1.0.1 for the CoreSet reference (its own venv: it pins other
# versions than ours); the row is skipped when unset.
SKACTIVEML_PYTHON = os.environ.get("SKACTIVEML_PYTHON", "")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- measurements, each in a fresh process (so its peak memory is its own) ------------------


def measure_core(args: dict) -> dict:
    from feature_platform.learning import scale_pool as sp

    spec = sp.PoolSpec(size=args["size"], seed=args["seed"])
    plan = sp.SelectionPlan(args["strategy"], args["batch"], args["seed"])
    champion = sp.train_champion(spec, args["labeled"])
    labeled = sp.labeled_set(spec, args["labeled"])[0] if args["strategy"] == "kcenter" else None
    started = time.perf_counter()
    parts = [
        sp.scan_partition(spec, blocks, plan, champion, labeled)
        for blocks in sp.partition_blocks(spec, 1)
    ]
    scored = time.perf_counter()
    selection = sp.merge_candidates(spec, parts, plan, labeled, champion)
    done = time.perf_counter()
    return {
        "score_s": scored - started,
        "select_s": done - scored,
        "total_s": done - started,
        "peak_mib": _peak_mib(),
        "batch": [p.key for p in selection.picks],
        "exact_by": selection.exact_by,
    }


def measure_select_kcenter(args: dict) -> dict:
    """`strategies.select("kcenter")` on the whole pool in memory (defect 3: it held the
    pool × labeled distance matrix, 7.5 GB at 200k × 5,000)."""
    from feature_platform.learning import scale_pool as sp
    from feature_platform.learning.strategies import select

    spec = sp.PoolSpec(size=args["size"], seed=args["seed"])
    pool = sp.read_pool(spec)
    labeled, labels = sp.labeled_set(spec, args["labeled"])
    keys = spec.keys(pool.ids)
    started = time.perf_counter()
    picks = select(
        "kcenter",
        keys,
        None,
        spec.classes,
        args["batch"],
        features=pool.features,
        labeled_features=labeled,
        labeled_labels=labels,
    )
    return {
        "total_s": time.perf_counter() - started,
        "peak_mib": _peak_mib(),
        "batch": [p.key for p in picks],
    }


def measure_generate(args: dict) -> dict:
    from feature_platform.learning import scale_pool as sp

    spec = sp.PoolSpec(size=args["size"], seed=args["seed"])
    started = time.perf_counter()
    for block in range(spec.blocks):
        sp.read_block(spec, block)
    return {"total_s": time.perf_counter() - started, "peak_mib": _peak_mib()}


def measure_sklearn(args: dict) -> dict:
    """The plain reference: the whole pool in memory, predict_proba, argsort of the margin."""
    from feature_platform.learning import scale_pool as sp

    spec = sp.PoolSpec(size=args["size"], seed=args["seed"])
    champion = sp.train_champion(spec, args["labeled"])
    started = time.perf_counter()
    pool = sp.read_pool(spec)
    generated = time.perf_counter()
    proba = champion.predict_proba(pool.features)
    top2 = np.sort(proba, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    order = np.argsort(margin, kind="stable")[: args["batch"]]
    done = time.perf_counter()
    return {
        "score_s": done - started,
        "generate_s": generated - started,
        "total_s": done - started,
        "peak_mib": _peak_mib(),
        "batch": spec.keys(pool.ids[order]),
    }


def celery_scale_pool_job():
    """The scale_pool job on the Celery executor (a module-level target, so that the run and
    the Celery workers can reconstruct it)."""
    from dagster_celery import celery_executor

    from feature_platform.defs.scale_pool import scale_pool_job

    return scale_pool_job.with_executor_def(celery_executor)


def _start_celery_workers(count: int, broker: str, home: str) -> list[subprocess.Popen]:
    """`count` dagster-celery workers (concurrency 1) on `broker`, ready when this returns."""
    config = Path(home) / "celery.yaml"
    config.write_text(json.dumps({"execution": {"config": {"broker": broker, "backend": broker}}}))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "DAGSTER_HOME": home}
    workers = []
    for i in range(count):
        log = open(Path(home) / f"worker-{i}.log", "wb")  # noqa: SIM115 (closed with the process)
        workers.append(
            subprocess.Popen(
                [
                    str(bin_dir / "dagster-celery"),
                    *("worker", "start", "-A", "dagster_celery.app", "-y", str(config)),
                    *("-n", f"bench-{i}", "--", "--concurrency=1"),
                    *("--without-gossip", "--without-mingle"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all(
        " ready." in (Path(home) / f"worker-{i}.log").read_text(errors="replace")
        for i in range(count)
    ):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise RuntimeError(f"Celery workers did not start; see {home}/worker-*.log")
        time.sleep(0.5)
    return workers


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def measure_dagster(args: dict) -> dict:
    import dagster as dg

    from feature_platform.defs.scale_pool import scale_pool_job

    config = {
        "size": args["size"],
        "seed": args["seed"],
        "labeled": args["labeled"],
        "strategy": args["strategy"],
        "batch_size": args["batch"],
        "partitions": args["partitions"],
    }
    celery = args.get("executor") == "celery"
    if celery:
        job = dg.reconstructable(celery_scale_pool_job)
        broker = args["celery_broker"]
        execution = {"config": {"broker": broker, "backend": broker}}
    else:
        job = dg.reconstructable(scale_pool_job)
        execution = {
            "config": {
                "multiprocess": {
                    "max_concurrent": args["workers"],
                    # Steps fork from a server that has imported the job's module once,
                    # instead of each spawning a fresh interpreter (~5 s of imports).
                    "start_method": {"forkserver": {}},
                }
            }
        }
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        # Celery workers on this machine: the steps' pickled outputs (the instance's storage
        # directory) and the SQLite instance are shared files; several machines would need the
        # Postgres instance and an IO manager on shared or object storage.
        workers = _start_celery_workers(args["workers"], broker, home) if celery else []
        try:
            started = time.perf_counter()
            result = dg.execute_job(
                job,
                instance=instance,
                run_config={"ops": {"plan_scale_pool": {"config": config}}, "execution": execution},
            )
            total = time.perf_counter() - started
        finally:
            _stop(workers)
        if not result.success:
            raise RuntimeError(f"scale_pool run {result.run_id} failed")
        steps = {}
        batch = []
        for event in result.all_events:
            metadata = event.event_specific_data.metadata if event.is_successful_output else {}
            if "seconds" in metadata:  # one output per step carries its timing
                steps[event.step_key] = {
                    "seconds": metadata["seconds"].value,
                    "peak_mib": metadata["peak_mib"].value,
                }
                if event.step_key == "merge_pool_selection":
                    batch = metadata["batch"].value
        # Scoring's wall time: from the first partition step's start to the last one's end
        # (with 1 worker the partitions run one after the other).
        scan_times = [
            record.timestamp
            for record in instance.all_logs(result.run_id)
            if record.step_key
            and record.step_key.startswith("scan_pool_partition")
            and record.dagster_event
            and record.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")
        ]
    return {
        "total_s": total,
        "score_s": max(scan_times) - min(scan_times),
        "select_s": steps["merge_pool_selection"]["seconds"],
        "scan_step_s": max(v["seconds"] for k, v in steps.items() if k.startswith("scan")),
        "peak_mib": max(s["peak_mib"] for s in steps.values()),
        "driver_peak_mib": _peak_mib(),
        "batch": batch,
    }


SKACTIVEML_SCRIPT = """
import json, resource, sys, time
import numpy as np
from skactiveml.pool import CoreSet
pool = np.load(sys.argv[1], mmap_mode="r")
labeled = np.load(sys.argv[2])
batch = int(sys.argv[3])
started = time.perf_counter()
X = np.concatenate([labeled, pool])
y = np.concatenate([np.zeros(len(labeled)), np.full(len(pool), np.nan)])
picked = CoreSet(random_state=0).query(X, y, batch_size=batch)
total = time.perf_counter() - started
print(json.dumps({"total_s": total, "batch": [int(i) - len(labeled) for i in picked],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_coreset(args: dict, python: str) -> dict:
    from feature_platform.learning import scale_pool as sp

    spec = sp.PoolSpec(size=args["size"], seed=args["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        pool_file, labeled_file = Path(tmp) / "pool.npy", Path(tmp) / "labeled.npy"
        with open(pool_file, "wb") as out:
            # Written block by block so this process never holds the pool.
            header = np.lib.format.header_data_from_array_1_0(np.empty((0, spec.n_features)))
            header["shape"] = (spec.size, spec.n_features)
            np.lib.format.write_array_header_1_0(out, header)
            for block in range(spec.blocks):
                out.write(np.ascontiguousarray(sp.read_block(spec, block).features).tobytes())
        np.save(labeled_file, sp.labeled_set(spec, args["labeled"])[0])
        script = Path(tmp) / "coreset.py"
        script.write_text(SKACTIVEML_SCRIPT)
        out = subprocess.run(
            [python, str(script), str(pool_file), str(labeled_file), str(args["batch"])],
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["batch"] = spec.keys(np.asarray(result["batch"]))
    return result


def run_measure(kind: str, **args) -> dict:
    """One measurement in a fresh Python process."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    before = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, str(HERE), "--measure", kind, json.dumps(args)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = (before + os.getloadavg()[0]) / 2
    return result


# -- report --------------------------------------------------------------------------------


def exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(time) against log(size)."""
    if len(sizes) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kcenter-sizes", type=int, nargs="*", default=[200_000, 1_000_000])
    parser.add_argument("--kcenter-labeled", type=int, default=5_000)
    parser.add_argument("--coreset-max", type=int, default=200_000, help="largest CoreSet pool")
    parser.add_argument(
        "--in-memory-max", type=int, default=200_000, help="largest pool for select() in memory"
    )
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--labeled", type=int, default=2_000, help="the champion's training set")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--executor",
        choices=["multiprocess", "celery"],
        default="multiprocess",
        help="the executor of the dagster rows (celery: workers started by the benchmark)",
    )
    parser.add_argument(
        "--celery-broker",
        default="redis://127.0.0.1:6379/13",
        help="Redis database for --executor celery (its queue must be empty: no other workers)",
    )
    parser.add_argument("--skactiveml-python", default=SKACTIVEML_PYTHON)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("measure_args", nargs="?", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        measured = {
            "core": measure_core,
            "generate": measure_generate,
            "sklearn": measure_sklearn,
            "dagster": measure_dagster,
            "select_kcenter": measure_select_kcenter,
        }[options.measure](json.loads(options.measure_args))
        print(json.dumps(measured))
        return

    base = {"seed": options.seed, "batch": options.batch, "labeled": options.labeled}
    print(f"# benchmarks/scale.py  cpus={os.cpu_count()}  load at start {os.getloadavg()}")
    print(
        f"# pool: n × 64 features, 10 classes, batch {options.batch}, champion on "
        f"{options.labeled} labels; dagster runs split the pool in 2 partitions"
    )
    header = (
        f"{'size':>9} {'what':<32} {'score s':>8} {'select s':>8} {'total s':>8} "
        f"{'peak MiB':>9} {'load':>5}  note"
    )
    print(header)
    series: dict[str, list[tuple[int, float]]] = {}

    def row(size: int, what: str, m: dict, note: str = "") -> None:
        series.setdefault(what, []).append((size, m["total_s"]))
        cells = [f"{m[k]:8.2f}" if k in m else f"{'':>8}" for k in ("score_s", "select_s")]
        print(
            f"{size:>9} {what:<32} {cells[0]} {cells[1]} {m['total_s']:8.2f} "
            f"{m['peak_mib']:9.0f} {m['load']:5.2f}  {note}",
            flush=True,
        )

    targets = []
    for size in options.sizes:
        args = {**base, "size": size}
        generated = run_measure("generate", **args)
        row(size, "generate only (1 proc)", generated, "the pool is generated, not read")
        margin = run_measure("core", strategy="margin", **args)
        reference = run_measure("sklearn", **args)
        same = "same batch" if set(reference["batch"]) == set(margin["batch"]) else "BATCH DIFFERS"
        row(size, "core margin (1 proc)", margin)
        row(
            size,
            "sklearn+argsort margin",
            reference,
            f"core/sklearn time {margin['total_s'] / reference['total_s']:.2f}, memory "
            f"{margin['peak_mib'] / reference['peak_mib']:.2f}; {same}",
        )
        core = run_measure("core", strategy="cluster_margin", **args)
        row(size, "core cluster_margin (1 proc)", core)
        for workers in options.workers:
            run = run_measure(
                "dagster",
                strategy="cluster_margin",
                partitions=2,
                workers=workers,
                executor=options.executor,
                celery_broker=options.celery_broker,
                **args,
            )
            identical = "identical to core" if run["batch"] == core["batch"] else "DIFFERS"
            note = (
                f"{identical}; slowest scan step {run['scan_step_s']:.2f}s; the rest of the "
                f"total is run planning and step processes starting; driver "
                f"{run['driver_peak_mib']:.0f} MiB"
            )
            executor = "celery " if options.executor == "celery" else ""
            row(size, f"dagster {executor}cluster_margin {workers}w", run, note)
            if size == max(options.sizes):
                targets.append((workers, run))

    for size in options.kcenter_sizes:
        args = {**base, "size": size, "labeled": options.kcenter_labeled}
        ours = run_measure("core", strategy="kcenter", **args)
        row(size, f"core kcenter L={options.kcenter_labeled}", ours, ours["exact_by"])
        if size <= options.in_memory_max:
            whole = run_measure("select_kcenter", **args)
            same = "same batch" if whole["batch"] == ours["batch"] else "BATCH DIFFERS"
            row(size, f"select kcenter in memory L={options.kcenter_labeled}", whole, same)
        python = options.skactiveml_python
        if python and size <= options.coreset_max and Path(python).exists():
            reference = measure_coreset(args, python)
            reference["load"] = os.getloadavg()[0]
            same = "same batch" if reference["batch"] == ours["batch"] else "batch differs"
            row(
                size,
                f"skactiveml CoreSet L={options.kcenter_labeled}",
                reference,
                f"core/CoreSet time {ours['total_s'] / reference['total_s']:.2f}, memory "
                f"{ours['peak_mib'] / reference['peak_mib']:.2f}; {same}",
            )
        if size == max(options.kcenter_sizes):
            print(
                f"# kcenter at {size} × {options.kcenter_labeled} labeled: peak "
                f"{ours['peak_mib'] / 1024:.2f} GiB (target ≤ 2 GiB)"
            )

    print("# growth exponent k (time ∝ size^k):")
    for what, points in series.items():
        if len(points) >= 2:
            sizes, seconds = zip(*points, strict=True)
            tail = exponent(list(sizes[-2:]), list(seconds[-2:]))
            print(
                f"#   {what:<34} k = {exponent(list(sizes), list(seconds)):.2f} over "
                f"{sizes[0]}..{sizes[-1]}, {tail:.2f} over the last two sizes"
            )
    for workers, run in targets:
        ok = run["total_s"] <= 60 and run["peak_mib"] <= 2 * 1024
        print(
            f"# target at {max(options.sizes)}: dagster {workers}w cluster_margin "
            f"{run['total_s']:.1f} s, max {run['peak_mib'] / 1024:.2f} GiB per step process "
            f"(≤ 60 s, ≤ 2 GiB: {'met' if ok else 'NOT met'})"
        )
    print(f"# load at end {os.getloadavg()} (2 cores shared with other work)")


if __name__ == "__main__":
    main()
