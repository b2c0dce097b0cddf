"""Scale-out on Dagster's own Celery executor: two `dagster-celery` worker processes on the Redis
broker execute the steps of a partitioned feature backfill (one run per day, queued and
launched by the daemon on the Postgres instance), of a full labeling round driven by the
sensors, and of the `scale_pool` job, whose pool partitions are scanned on both workers and
merged into the single-process batch. The event log says which worker ran each step."""

from __future__ import annotations

import json
import pickle
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict

import dagster as dg
import pytest

from feature_platform.catalog import digits
from feature_platform.defs.context import ProgramContext
from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.queue import RESOLVED
from feature_platform.learning import scale_pool as sp
from feature_platform.programs.project import (
    ProgramDefinition,
    ensure_program_database,
    program_settings,
)
from feature_platform_tests.production.conftest import (
    BIN,
    REPO_ROOT,
    Deployment,
    Process,
    Processes,
    redis_flushdb,
    wait_for,
)

# The digits program of the shipped location: its jobs and assets carry its prefix.
CTX = ProgramContext(ProgramDefinition(digits.template()))
feature_asset_keys = [CTX.feature_key(spec) for spec in CTX.feature_sets]
arrival_days = CTX.arrival_days

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = ("worker-1", "worker-2")
BACKFILL_DAYS = 4
BATCH = 5
# A small generated pool in 4 partitions (10 blocks): seconds per scan step.
SCALE_POOL = {"size": 20_000, "n_features": 16, "n_classes": 4, "seed": 7, "block_rows": 2_000}
SCALE_SELECTION = {"labeled": 200, "strategy": "cluster_margin", "batch_size": 10}
SCALE_PARTITIONS = 4
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture
def broker_url(redis_broker: str) -> Iterator[str]:
    """A Redis database of the test's own (2..15; 0 and 1 are `make workers`' defaults), so no
    other deployment's tasks are in its queue; emptied afterwards."""
    db = 2 + uuid.uuid4().int % 14
    try:
        yield f"{redis_broker}/{db}"
    finally:
        redis_flushdb(db)


def _celery_env(deployment: Deployment, broker_url: str, label_budget: int) -> dict[str, str]:
    return deployment.with_env(
        FP_EXECUTOR="celery",
        FP_CELERY_BROKER=broker_url,
        FP_CELERY_BACKEND=broker_url,
        FP_SENSOR_INTERVAL_SECONDS="3",
        FP_BATCH_SIZE=str(BATCH),
        FP_LABEL_BUDGET=str(label_budget),
        FP_ANSWERS_PER_TASK="1",
        # dagster-celery starts `celery` by name.
        PATH=f"{BIN}:{deployment.env.get('PATH', '')}",
    )


def _start_daemon(processes: Processes, env: dict[str, str]) -> Process:
    argv = [str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")]
    return processes.start("dagster-daemon", argv, env)


def celery_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it, from the run's engine events."""
    steps = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event else None
        worker = data.metadata.get("Celery worker") if data else None
        if worker is not None:
            steps[event.step_key] = worker.value
    return steps


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    return {
        r.dagster_event.step_key: r.dagster_event.pid
        for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        if r.dagster_event
    }


def _wait_all_done(instance: dg.DagsterInstance, runs: list, timeout: float, what: str) -> list:
    ids = [r.run_id for r in runs]
    wait_for(lambda: all(instance.get_run_by_id(i).status in TERMINAL for i in ids), timeout, what)
    done = [instance.get_run_by_id(i) for i in ids]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in done), [
        (r.job_name, r.tags.get("dagster/partition"), r.status) for r in done
    ]
    return done


def test_celery_workers_run_a_partitioned_backfill_and_a_round(
    deployment: Deployment,
    processes: Processes,
    broker_url: str,
    capsys: pytest.CaptureFixture,
) -> None:
    started = time.monotonic()
    # The digits program's tables, before several processes race to create them.
    ensure_program_database(deployment.settings, "digits")
    FeatureStore(program_settings(deployment.settings, "digits"))
    instance = dg.DagsterInstance.get()
    # Workers load the code location themselves and build its resources from their own
    # environment, so they get the program the round will run with. The daemon starts with a
    # label budget of 0, which keeps the round sensor quiet until the backfill is done.
    env = _celery_env(deployment, broker_url, label_budget=BATCH)
    backfill_env = {**env, "FP_LABEL_BUDGET": "0"}
    workers = [
        processes.start(
            f"celery-{name}",
            [
                str(BIN / "dagster-celery"),
                *("worker", "start", "-A", "dagster_celery.app"),
                *("-y", str(REPO_ROOT / "deploy" / "celery.yaml"), "-n", name),
                *("--", "--concurrency=1", "--without-gossip", "--without-mingle"),
            ],
            env,
        )
        for name in WORKERS
    ]
    daemon = _start_daemon(processes, backfill_env)
    for worker, name in zip(workers, WORKERS, strict=True):
        wait_for(
            lambda w=worker, n=name: f"{n}@" in w.output() and " ready." in w.output(),
            60,
            f"Celery worker {name} to be ready",
        )

    # -- a partitioned backfill: one run per day, queued, launched by the daemon -------------
    days = arrival_days.get_partition_keys()[:BACKFILL_DAYS]
    backfill_started = time.monotonic()
    submitted = dg_cli(
        processes,
        backfill_env,
        "job",
        "backfill",
        *("-w", str(REPO_ROOT / "workspace.yaml"), "-j", "digits__refresh_features"),
        *("--partitions", ",".join(days), "--noprompt"),
    )
    assert "Launched backfill job" in submitted
    # The command submits one run per day before it exits; the daemon's run queue launches them.
    runs = list(instance.get_runs(dg.RunsFilter(job_name="digits__refresh_features")))
    assert len(runs) == BACKFILL_DAYS
    runs = _wait_all_done(instance, runs, 240, "the backfill runs to finish")
    backfill_s = time.monotonic() - backfill_started
    assert sorted(r.tags["dagster/partition"] for r in runs) == days
    for key in feature_asset_keys:
        assert set(instance.get_materialized_partitions(key)) == set(days)

    by_worker: Counter[str] = Counter()
    pids: set[int] = set()
    for run in runs:
        on_celery = celery_steps(instance, run.run_id)
        started_steps = step_pids(instance, run.run_id)
        # Every step of every run went through the broker to a worker, none ran in the run.
        assert set(on_celery) == set(started_steps) and on_celery, (on_celery, started_steps)
        by_worker.update(on_celery.values())
        pids |= set(started_steps.values())
    hosts = {name.split("@")[0] for name in by_worker}
    assert hosts == set(WORKERS), f"steps ran on {dict(by_worker)}; expected both workers"
    assert len(pids) >= 2

    # -- a full round on the same workers, opened and retrained by the sensors --------------
    processes.stop(daemon)
    round_started = time.monotonic()
    daemon = _start_daemon(processes, env)
    processes.start(
        "simulated-annotators",
        [sys.executable, str(REPO_ROOT / "scripts" / "simulated_annotators.py"), "--seed", "3"],
        env,
    )
    wait_for(
        lambda: "round-001" in instance.get_materialized_partitions(CTX.key("model")),
        240,
        "round-001's model, trained through Celery",
    )
    round_s = time.monotonic() - round_started
    round_runs = [
        r
        for job in ("digits__open_round", "digits__retrain")
        for r in instance.get_runs(dg.RunsFilter(job_name=job))
    ]
    round_runs = _wait_all_done(instance, round_runs, 60, "the round's runs to finish")
    assert sorted(r.job_name for r in round_runs) == ["digits__open_round", "digits__retrain"]
    round_workers: dict[str, str] = {}
    for run in round_runs:
        on_celery = celery_steps(instance, run.run_id)
        assert set(on_celery) == set(step_pids(instance, run.run_id)) and on_celery
        round_workers |= on_celery
    assert {w.split("@")[0] for w in round_workers.values()} <= set(WORKERS)
    store = FeatureStore(program_settings(deployment.settings, "digits"))
    assert Counter(t.state for t in store.queue.tasks(round_key="round-001")) == {RESOLVED: BATCH}

    # -- the scale_pool job: partitions scanned on both workers, merged into one batch --------
    scale_wall, scan_workers = _scale_pool_on_celery(deployment, processes, env, instance)

    report = {
        "backfill_days": BACKFILL_DAYS,
        "backfill_wall_s": round(backfill_s, 1),
        "backfill_steps_per_worker": dict(by_worker),
        "round_wall_s": round(round_s, 1),
        "round_steps": round_workers,
        "scale_pool_wall": scale_wall,
        "scale_pool_scans": scan_workers,
        "test_total_s": round(time.monotonic() - started, 1),
    }
    with capsys.disabled():
        print(f"\n[celery] {json.dumps(report)}")
    instance.dispose()


def _scale_pool_on_celery(
    deployment: Deployment,
    processes: Processes,
    env: dict[str, str],
    instance: dg.DagsterInstance,
) -> tuple[dict[str, float], dict[str, str]]:
    """Launch `scale_pool` on the running daemon and workers; check that its partitions ran on
    both Celery workers and that the merged batch is the single-process selection."""
    config = {**SCALE_POOL, **SCALE_SELECTION, "partitions": SCALE_PARTITIONS}
    started = time.monotonic()
    dg_cli(
        processes,
        env,
        "job",
        "launch",
        *("-w", str(REPO_ROOT / "workspace.yaml"), "-j", "scale_pool"),
        *("--config-json", json.dumps({"ops": {"plan_scale_pool": {"config": config}}})),
    )
    runs = list(instance.get_runs(dg.RunsFilter(job_name="scale_pool")))
    assert len(runs) == 1
    launched = time.monotonic()
    (run,) = _wait_all_done(instance, runs, 120, "the scale_pool run to finish")
    record = instance.get_run_record_by_id(run.run_id)
    wall = {
        "total_s": round(time.monotonic() - started, 1),
        "launch_cli_s": round(launched - started, 1),
        "queued_s": round(record.start_time - record.create_timestamp.timestamp(), 1),
        "run_s": round(record.end_time - record.start_time, 1),
    }

    on_celery = celery_steps(instance, run.run_id)
    assert set(on_celery) == set(step_pids(instance, run.run_id)), on_celery
    scans = {k: w for k, w in on_celery.items() if k.startswith("scan_pool_partition[")}
    assert len(scans) == SCALE_PARTITIONS, on_celery
    # Dagster queued the partitions together; each worker takes one step at a time
    # (concurrency 1, prefetch 1), so both scanned part of the pool.
    assert {w.split("@")[0] for w in scans.values()} == set(WORKERS), scans

    outputs = {
        r.dagster_event.step_key: r.dagster_event.event_specific_data.metadata
        for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
        if r.dagster_event.event_specific_data.metadata
    }
    assert sum(outputs[k]["rows_scanned"].value for k in scans) == SCALE_POOL["size"]
    # The merge step's output, as the job's IO manager pickled it under FP_HOME, where the
    # merge step, on whichever worker, loaded the scans' shortlists from. Both workers share
    # FP_HOME on this machine; workers on several machines need it on shared storage, or an
    # IO manager on object storage (see defs/scale_pool.py).
    stored = deployment.settings.home / "scale_pool" / run.run_id / "merge_pool_selection"
    merged = pickle.loads((stored / "result").read_bytes())

    spec = sp.PoolSpec(**SCALE_POOL)
    plan = sp.SelectionPlan(
        SCALE_SELECTION["strategy"], SCALE_SELECTION["batch_size"], SCALE_POOL["seed"]
    )
    champion = sp.train_champion(spec, SCALE_SELECTION["labeled"])
    single = sp.select_from_pool(spec, plan, champion, partitions=1)
    assert merged == [asdict(p) for p in single.picks]
    assert outputs["merge_pool_selection"]["batch"].value == [p.key for p in single.picks]
    assert outputs["merge_pool_selection"]["partitions"].value == SCALE_PARTITIONS
    return wall, scans


def dg_cli(processes: Processes, env: dict[str, str], *args: str) -> str:
    """Run a `dagster` CLI command to completion (through `processes`, so it is torn down even
    if it hangs) and return its output."""
    process = processes.start("dagster-cli", [str(BIN / "dagster"), *args], env)
    try:
        code = process.popen.wait(timeout=180)
    except Exception:
        pytest.fail(f"dagster {' '.join(args)} did not finish:\n{process.output()[-3000:]}")
    output = process.output()
    assert code == 0, f"dagster {' '.join(args)} exited {code}:\n{output[-3000:]}"
    return output
