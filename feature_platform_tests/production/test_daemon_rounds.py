"""The production path end to end: `dagster-daemon` on a Postgres instance built from the
project's dagster.yaml drives labeling rounds through its sensors alone, while simulated
annotators answer through the queue from their own process; the webserver serves the code
location over GraphQL; and the daemon is SIGKILLed twice in the middle of a round.

What exactly-once means here: the daemon launches runs as subprocesses (DefaultRunLauncher via
the code server), so killing the daemon does not kill a run in flight. That run finishes on its
own; the restarted daemon must neither launch a second run for the same run key nor lose one it
had queued; every task keeps exactly `answers_per_task` answers; each round is frozen into
exactly one label snapshot and one registered model; no lease is left behind.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest
from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

from feature_platform.catalog import digits
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.location import build_definitions
from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.queue import RESOLVED
from feature_platform.learning.tracking import ModelTracker
from feature_platform.programs.project import ProgramDefinition, program_settings
from feature_platform_tests.production.conftest import (
    BIN,
    REPO_ROOT,
    Deployment,
    Process,
    Processes,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BATCH, ROUNDS, ANSWERS_PER_TASK = 5, 3, 2
PROGRAM_ENV = {
    "FP_SENSOR_INTERVAL_SECONDS": "3",
    "FP_BATCH_SIZE": str(BATCH),
    "FP_LABEL_BUDGET": str(BATCH * ROUNDS),
    "FP_ANSWERS_PER_TASK": str(ANSWERS_PER_TASK),
    # One process per run: the round jobs are small, and process start-up dominates them.
    "FP_EXECUTOR": "in_process",
}
# Days of arrivals materialized before the daemon starts: enough samples for every round.
FEATURE_DAYS = 20
# The digits program of the shipped location (its jobs and sensors carry its prefix).
DIGITS = ProgramDefinition(digits.template()).with_overrides(
    batch_size=BATCH, label_budget=BATCH * ROUNDS, answers_per_task=ANSWERS_PER_TASK
)
CTX = ProgramContext(DIGITS)
MODEL_KEY = CTX.key("model")
SENSOR_JOBS = {
    "digits__open_round": "digits__open_next_round",
    "digits__retrain": "digits__retrain_when_labels_in",
}
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

INVENTORY_QUERY = """
query Inventory {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              assetNodes {
                assetKey { path }
                assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
              }
              sensors { name sensorState { status ticks(limit: 5) { status skipReason } } }
              schedules { name scheduleState { status } }
            }
          }
        }
      }
    }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


def _runs(instance: dg.DagsterInstance, job: str, partition: str | None = None) -> list:
    tags = {"dagster/partition": partition} if partition else None
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job, tags=tags)))


def _start_daemon(processes: Processes, deployment: Deployment) -> Process:
    argv = [str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")]
    return processes.start("dagster-daemon", argv, deployment.with_env(**PROGRAM_ENV))


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert not body.get("errors"), body["errors"]
    return body["data"]


def _webserver_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
            return True
    except OSError:
        return False


def check_code_location_over_graphql(port: int, defs: dg.Definitions) -> dict[str, object]:
    """The running webserver serves the code location with every asset, check, sensor and
    schedule the definitions declare, and the daemon is evaluating the sensors."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    reloaded = client.reload_repository_location("feature_platform")
    assert reloaded.status == ReloadRepositoryLocationStatus.SUCCESS, reloaded.message

    data = _graphql(port, INVENTORY_QUERY)
    (entry,) = data["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert entry["loadStatus"] == "LOADED" and location["__typename"] == "RepositoryLocation", (
        location
    )
    (repository,) = location["repositories"]

    graph = defs.resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected_checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    repo_def = defs.get_repository_def()
    served_assets = {"/".join(n["assetKey"]["path"]) for n in repository["assetNodes"]}
    served_checks = {
        ("/".join(n["assetKey"]["path"]), check["name"])
        for n in repository["assetNodes"]
        if n["assetChecksOrError"]["__typename"] == "AssetChecks"
        for check in n["assetChecksOrError"]["checks"]
    }
    assert served_assets == expected_assets
    assert served_checks == expected_checks
    assert {s["name"] for s in repository["schedules"]} == {s.name for s in repo_def.schedule_defs}

    sensors = {s["name"]: s["sensorState"] for s in repository["sensors"]}
    assert set(sensors) == {s.name for s in repo_def.sensor_defs}
    for name, state in sensors.items():
        # RUNNING is the declared default; ticks prove the daemon really evaluates it.
        assert state["status"] == "RUNNING", (name, state)
        assert state["ticks"], f"sensor {name} has no tick: the daemon is not evaluating it"
    daemons = {d["daemonType"]: d for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
    assert daemons["SENSOR"]["healthy"] and daemons["QUEUED_RUN_COORDINATOR"]["healthy"], daemons
    return {
        "assets": len(served_assets),
        "checks": len(served_checks),
        "sensors": sorted(sensors),
        "schedules": sorted(s["name"] for s in repository["schedules"]),
    }


def _final_open_round_skip(daemon_log: str) -> str | None:
    """The open_next_round sensor's reason to open nothing, once it no longer waits for a
    retrain (i.e. the loop has stopped), from the daemon's log."""
    reasons = re.findall(r"Sensor digits__open_next_round skipped: (.*)", daemon_log)
    final = [r for r in reasons if not r.startswith("waiting")]
    return final[-1].strip() if final else None


def _failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why a run failed, from its event log (for the report)."""
    for record in reversed(instance.all_logs(run.run_id)):
        if record.dagster_event and record.dagster_event.event_type_value in (
            "RUN_FAILURE",
            "ENGINE_EVENT",
            "STEP_FAILURE",
        ):
            return f"{run.status.value}: {record.message[:300]}"
    return run.status.value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START):
        return record.dagster_event.pid if record.dagster_event else None
    return None


def test_daemon_drives_rounds_on_postgres_and_survives_sigkill(
    deployment: Deployment, processes: Processes, capsys: pytest.CaptureFixture
) -> None:
    started = time.monotonic()
    # The location the daemon serves (every shipped program); rounds are driven on digits.
    defs = build_definitions(deployment.settings)
    # The digits program's stores (its own Postgres schema), created before anyone races.
    from feature_platform.programs.project import ensure_program_database

    ensure_program_database(deployment.settings, "digits")
    store = FeatureStore(program_settings(deployment.settings, "digits"))
    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    # The raw source and feature sets exist before the daemon starts: the round sensors wait
    # for them and then take over.
    days = CTX.arrival_days.get_partition_keys()[:FEATURE_DAYS]
    refresh = defs.resolve_job_def("digits__refresh_features").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
    )
    assert refresh.success
    features_ready = time.monotonic()

    port = free_port()
    webserver = processes.start(
        "dagster-webserver",
        [
            str(BIN / "dagster-webserver"),
            *("-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)),
        ],
        deployment.with_env(**PROGRAM_ENV),
    )
    daemon = _start_daemon(processes, deployment)
    annotators = processes.start(
        "simulated-annotators",
        [sys.executable, str(REPO_ROOT / "scripts" / "simulated_annotators.py"), "--seed", "7"],
        deployment.with_env(**PROGRAM_ENV),
    )

    # -- rounds started only by sensors ---------------------------------------------------
    def trained() -> set[str]:
        return set(instance.get_materialized_partitions(MODEL_KEY))

    wait_for(lambda: _runs(instance, "digits__open_round"), 120, "the daemon to open round-001")
    wait_for(lambda: _webserver_up(port), 120, f"dagster-webserver on 127.0.0.1:{port}")
    inventory = wait_for(
        lambda: check_code_location_over_graphql(port, defs), 30, "the GraphQL inventory"
    )
    wait_for(
        lambda: {"round-001", "round-002"} <= trained(),
        300,
        "two complete rounds (open, answered, retrained) under the daemon",
    )
    assert daemon.alive() and annotators.alive() and webserver.alive()

    # -- crash 1: SIGKILL right after round-003 opens ---------------------------------------
    opened = wait_for(
        lambda: _runs(instance, "digits__open_round", "round-003"),
        120,
        "the daemon to open round-003",
    )
    processes.crash(daemon)
    crash_open_status = instance.get_run_by_id(opened[0].run_id).status
    daemon = _start_daemon(processes, deployment)

    # -- crash 2: SIGKILL while round-003's retrain run is executing -------------------------
    retraining = wait_for(
        lambda: [
            r
            for r in _runs(instance, "digits__retrain", "round-003")
            if r.status == dg.DagsterRunStatus.STARTED
        ],
        180,
        "round-003's retrain run to start",
        interval=0.2,
    )[0]
    worker_pid = wait_for(
        lambda: _run_worker_pid(instance, retraining.run_id), 30, "the retrain run worker's pid"
    )
    processes.crash(daemon)
    killed_at = time.monotonic()
    # The run worker is not the daemon's to take down: it keeps running, orphaned.
    assert _pid_alive(worker_pid), "killing the daemon killed the run it had launched"
    daemon = _start_daemon(processes, deployment)

    wait_for(lambda: "round-003" in trained(), 180, "round-003's model after the restarts")
    stop_reason = wait_for(
        lambda: _final_open_round_skip(daemon.output()),
        60,
        "the restarted daemon's round sensor to say why it opens no further round",
    )
    assert "budget" in stop_reason, stop_reason
    wait_for(
        lambda: all(r.status in TERMINAL for r in instance.get_runs()),
        60,
        "every run to finish",
    )
    finished = time.monotonic()

    # -- exactly once ---------------------------------------------------------------------
    rounds = [f"round-00{n}" for n in range(1, ROUNDS + 1)]
    assert sorted(instance.get_dynamic_partitions(CTX.rounds.name)) == rounds
    runs = [r for job in SENSOR_JOBS for r in _runs(instance, job)]
    # Every round run was requested by its sensor, under the run key the sensor derives.
    for run in runs:
        assert run.tags.get("dagster/sensor_name") == SENSOR_JOBS[run.job_name], run.tags
    attempts: dict[str, list] = defaultdict(list)
    for run in runs:
        attempts[run.tags["dagster/run_key"]].append(run)
    assert set(attempts) == {f"{k}:{r}" for k in ("open", "retrain") for r in rounds}
    retried = {}
    for run_key, tries in attempts.items():
        # The sensor's run and, only if it failed, Dagster's own re-executions of it
        # (dagster.yaml: run_retries); exactly one of them succeeded.
        originals = [r for r in tries if "dagster/parent_run_id" not in r.tags]
        assert len(originals) == 1, f"{run_key}: the daemon launched {len(originals)} runs"
        root = originals[0].run_id
        assert all(r.tags.get("dagster/root_run_id", r.run_id) == root for r in tries), run_key
        succeeded = [r for r in tries if r.status == dg.DagsterRunStatus.SUCCESS]
        assert len(succeeded) == 1, [(r.run_id, r.status) for r in tries]
        if len(tries) > 1:
            retried[run_key] = [_failure(instance, r) for r in tries if r is not succeeded[0]]
    for round_ in rounds:
        events = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=MODEL_KEY, asset_partitions=[round_]), limit=10
        ).records
        assert len(events) == 1, f"{round_}: {len(events)} model materializations"

    tasks = store.queue.tasks()
    assert Counter(t.round for t in tasks) == Counter({r: BATCH for r in rounds})
    assert {t.state for t in tasks} == {RESOLVED}
    assert store.queue.leases() == [], "a lease outlived its round"
    answers = store.queue.answers()
    assert len(answers) == len(tasks) * ANSWERS_PER_TASK
    per_task = answers.groupby("task_id")["annotator"].nunique()
    assert (per_task == ANSWERS_PER_TASK).all() and len(per_task) == len(tasks)
    assert answers["submission_id"].is_unique

    snapshots = Counter(store.labels.snapshots()["note"])
    for round_ in rounds:
        # One freeze per round, unless a failed retrain attempt had frozen one already.
        assert 1 <= snapshots[round_] <= len(attempts[f"retrain:{round_}"]), snapshots
    tracker = ModelTracker(
        deployment.settings.mlflow_tracking_uri,
        deployment.settings.mlflow_artifact_dir,
        DIGITS.model_name,
    )
    versions = tracker.client.search_model_versions(f"name='{tracker.model_name}'")
    assert Counter(v.tags.get("round") for v in versions) == Counter({r: 1 for r in rounds})
    by_round = {v.tags["round"]: v for v in versions}
    keys_so_far: set[str] = set()
    timings = []
    for round_ in rounds:
        round_tasks = [t for t in tasks if t.round == round_]
        keys_so_far |= {t.sample_key for t in round_tasks}
        version = by_round[round_]
        # The round's snapshot freezes every label so far, each from both of its answers.
        snapshot = store.labels.get(version.tags["label_snapshot_id"])
        assert set(snapshot.labels["sample_key"]) == keys_so_far
        assert (snapshot.labels["n_answers"] == ANSWERS_PER_TASK).all()
        assert snapshot.answer_count == len(keys_so_far) * ANSWERS_PER_TASK

        open_run = min(attempts[f"open:{round_}"], key=lambda r: "dagster/parent_run_id" in r.tags)
        opened_at = instance.get_run_record_by_id(open_run.run_id).create_timestamp
        registered_at = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
        last_label = answers.loc[answers["round"] == round_, "answered_at"].max()
        timings.append(
            {
                "round": round_,
                "round_wall_s": round((registered_at - opened_at).total_seconds(), 1),
                "last_label_to_registered_model_s": round(
                    (registered_at - last_label.to_pydatetime()).total_seconds(), 1
                ),
                "open_to_last_label_s": round(
                    (last_label - pd.Timestamp(opened_at)).total_seconds(), 1
                ),
            }
        )

    report = {
        "rounds": timings,
        "crash_1": f"SIGKILL right after round-003 opened (its run was {crash_open_status.value})",
        "crash_2": f"SIGKILL while round-003's retrain ran (pid {worker_pid} survived)",
        "round_003_done_after_crash_2_s": round(finished - killed_at, 1),
        "features_setup_s": round(features_ready - started, 1),
        "test_total_s": round(time.monotonic() - started, 1),
        "stop_reason": stop_reason,
        "graphql": inventory,
        "retried_runs": retried,
        "dedup_skips_logged": sum(
            p.output().count("already completed with run keys")
            for p in processes.started
            if p.name == "dagster-daemon"
        ),
    }
    with capsys.disabled():
        print(f"\n[daemon rounds] {json.dumps(report)}")
    instance.dispose()
