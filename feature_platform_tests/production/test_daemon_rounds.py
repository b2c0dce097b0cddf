"""The production path end to end: `dagster-daemon` on a Postgres instance built from the
project's dagster.yaml serves ONE code location holding three labeling programs (digits, the
weather modality and a CSV program made here with `feature-platform init`) and drives each
one's rounds through that program's own sensors alone, while simulated annotators answer each
program's queue from their own processes; the webserver serves the code location over GraphQL;
and the daemon is SIGKILLed twice in the middle of a digits round.

What exactly-once means here: the daemon launches runs as subprocesses (DefaultRunLauncher via
the code server), so killing the daemon does not kill a run in flight. That run finishes on its
own; the restarted daemon must neither launch a second run for the same run key nor lose one it
had queued; every task keeps exactly `answers_per_task` answers; each round is frozen into
exactly one label snapshot and one registered model; no lease is left behind.

What side by side means: each program has its own round partitions, model materializations,
registered MLflow model, stores (its tasks only in its own queue) and sensors (so its own run
keys), and no program's round waits for another's (the run queue holds back only a second
retrain of the same program).
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
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster_graphql import DagsterGraphQLClient, ReloadRepositoryLocationStatus

from feature_platform.catalog import PROJECT_DIR
from feature_platform.commands.init import scaffold
from feature_platform.defs.context import RETRAIN_TAG, ProgramContext
from feature_platform.defs.location import build_definitions
from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.queue import RESOLVED
from feature_platform.learning.tracking import ModelTracker
from feature_platform.programs.project import (
    ProgramDefinition,
    ensure_program_database,
    env_overrides,
    load_project,
    program_settings,
)
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

BATCH, ROUNDS, ANSWERS_PER_TASK = 4, 2, 1
PROGRAM_ENV = {
    "FP_SENSOR_INTERVAL_SECONDS": "2",
    # Every program of the location (env_overrides): tiny rounds.
    "FP_BATCH_SIZE": str(BATCH),
    "FP_LABEL_BUDGET": str(BATCH * ROUNDS),
    "FP_ANSWERS_PER_TASK": str(ANSWERS_PER_TASK),
    # One process per run: the round jobs are small, and process start-up dominates them.
    "FP_EXECUTOR": "in_process",
}
# The shipped examples (digits, weather) and the CSV program the test scaffolds.
CSV_PROGRAM = "wine"
PROGRAMS = ("digits", "weather", CSV_PROGRAM)
LOCATION = "feature_platform"
ROUND_JOBS = {"open_round": "open_next_round", "retrain": "retrain_when_labels_in"}
TERMINAL = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

# The code location the daemon and the webserver load: the shipped programs and the project's,
# with the deployment's overrides (as `feature_platform.definitions` applies them).
LOCATION_FILE = '''"""One code location: the shipped example programs and the test's project."""

from pathlib import Path

from feature_platform.catalog import PROJECT_DIR
from feature_platform.defs.location import build_definitions
from feature_platform.programs.project import env_overrides, load_project

programs = load_project(PROJECT_DIR) + load_project(Path({project!r}))
defs = build_definitions(programs=[p.with_overrides(**env_overrides()) for p in programs])
'''
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


def _start_daemon(processes: Processes, deployment: Deployment, workspace: Path) -> Process:
    argv = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
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
    reloaded = client.reload_repository_location(LOCATION)
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


def _final_open_round_skip(daemon_log: str, ctx: ProgramContext) -> str | None:
    """A program's open_next_round sensor's reason to open nothing, once it no longer waits
    for a retrain (i.e. the loop has stopped), from the daemon's log."""
    sensor = re.escape(ctx.job_name("open_next_round"))
    reasons = re.findall(rf"Sensor {sensor} skipped: (.*)", daemon_log)
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


def _three_program_location(tmp_path: Path) -> tuple[list[ProgramDefinition], Path]:
    """Scaffold the CSV program's project, write the location file and a workspace for it;
    return the location's programs (as the daemon builds them) and the workspace."""
    project = scaffold(tmp_path / "project", CSV_PROGRAM)[0].parent
    location = tmp_path / "location.py"
    location.write_text(LOCATION_FILE.format(project=str(project)))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {location}\n"
        f"      working_directory: {project}\n"
        f"      location_name: {LOCATION}\n"
    )
    overrides = env_overrides(PROGRAM_ENV)
    programs = load_project(PROJECT_DIR) + load_project(project)
    assert sorted(p.name for p in programs) == sorted(PROGRAMS)
    return [p.with_overrides(**overrides) for p in programs], workspace


def _run_latencies(instance: dg.DagsterInstance) -> dict[str, dict[str, float]]:
    """Mean seconds from a run's creation (sensor request) to its start, and its duration,
    per kind of round job (for the report: where a round's time goes)."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in instance.get_run_records():
        kind = record.dagster_run.job_name.split("__", 1)[-1]
        if record.start_time and record.end_time:
            created = record.create_timestamp.timestamp()
            spans[kind].append((record.start_time - created, record.end_time - record.start_time))
    return {
        kind: {
            "runs": len(v),
            "queued_to_started": round(sum(q for q, _ in v) / len(v), 1),
            "duration": round(sum(d for _, d in v) / len(v), 1),
        }
        for kind, v in spans.items()
    }


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = level = 0
    for _, step in edges:
        level += step
        best = max(best, level)
    return best


def test_daemon_drives_three_programs_side_by_side_and_survives_sigkill(
    deployment: Deployment, processes: Processes, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    started = time.monotonic()
    programs, workspace = _three_program_location(tmp_path)
    project = workspace.parent / "project"
    defs = build_definitions(deployment.settings, programs)
    contexts = {p.name: ProgramContext(p) for p in programs}
    digits = contexts["digits"]
    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

    stores = {}
    for name, ctx in contexts.items():
        # Each program's stores (its own Postgres schema), created before anyone races.
        ensure_program_database(deployment.settings, name)
        stores[name] = FeatureStore(program_settings(deployment.settings, name))
        # The raw source and feature sets exist before the daemon starts: the round sensors
        # wait for them and then take over. Up to the newest arrival only.
        newest = ctx.source.read()[ctx.source.event_time].max().to_pydatetime()
        refresh = defs.resolve_job_def(ctx.job_name("refresh_features")).execute_in_process(
            instance=instance,
            tags=ctx.all_arrival_days_tags(until=newest),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        assert refresh.success, name
    features_ready = time.monotonic()

    port = free_port()
    webserver = processes.start(
        "dagster-webserver",
        [
            str(BIN / "dagster-webserver"),
            *("-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)),
        ],
        deployment.with_env(**PROGRAM_ENV),
    )
    daemon = _start_daemon(processes, deployment, workspace)
    script = str(REPO_ROOT / "scripts" / "simulated_annotators.py")
    annotators = [
        processes.start(
            f"simulated-annotators-{name}",
            [sys.executable, script, "--seed", "7", "--program", name, "--project", str(project)],
            deployment.with_env(**PROGRAM_ENV),
        )
        for name in PROGRAMS
    ]

    # -- rounds started only by sensors ---------------------------------------------------
    def trained(ctx: ProgramContext) -> set[str]:
        return set(instance.get_materialized_partitions(ctx.key("model")))

    def opened(ctx: ProgramContext, round_: str) -> list:
        return _runs(instance, ctx.job_name("open_round"), round_)

    wait_for(
        lambda: all(opened(ctx, "round-001") for ctx in contexts.values()),
        180,
        "the daemon to open round-001 of every program",
    )
    wait_for(lambda: _webserver_up(port), 120, f"dagster-webserver on 127.0.0.1:{port}")
    inventory = wait_for(
        lambda: check_code_location_over_graphql(port, defs), 30, "the GraphQL inventory"
    )

    # -- crash 1: SIGKILL right after digits' round-002 opens --------------------------------
    opened_002 = wait_for(
        lambda: opened(digits, "round-002"), 300, "the daemon to open digits' round-002"
    )
    processes.crash(daemon)
    crash_open_status = instance.get_run_by_id(opened_002[0].run_id).status
    daemon = _start_daemon(processes, deployment, workspace)

    # -- crash 2: SIGKILL while digits' round-002 retrain run is executing --------------------
    retraining = wait_for(
        lambda: [
            r
            for r in _runs(instance, digits.job_name("retrain"), "round-002")
            if r.status == dg.DagsterRunStatus.STARTED
        ],
        180,
        "digits' round-002 retrain run to start",
        interval=0.2,
    )[0]
    worker_pid = wait_for(
        lambda: _run_worker_pid(instance, retraining.run_id), 30, "the retrain run worker's pid"
    )
    processes.crash(daemon)
    killed_at = time.monotonic()
    # The run worker is not the daemon's to take down: it keeps running, orphaned.
    assert _pid_alive(worker_pid), "killing the daemon killed the run it had launched"
    daemon = _start_daemon(processes, deployment, workspace)

    rounds = [f"round-{n:03d}" for n in range(1, ROUNDS + 1)]
    wait_for(
        lambda: all(set(rounds) <= trained(ctx) for ctx in contexts.values()),
        300,
        f"{ROUNDS} complete rounds (open, answered, retrained) of every program",
    )
    digits_done = time.monotonic()
    stop_reasons = {
        name: wait_for(
            lambda ctx=ctx: _final_open_round_skip(daemon.output(), ctx),
            60,
            f"the restarted daemon's {name} round sensor to say why it opens no further round",
        )
        for name, ctx in contexts.items()
    }
    for name, reason in stop_reasons.items():
        assert "budget" in reason, (name, reason)
    wait_for(
        lambda: all(r.status in TERMINAL for r in instance.get_runs()),
        60,
        "every run to finish",
    )
    assert webserver.alive() and all(a.alive() for a in annotators)
    finished = time.monotonic()

    # -- per program: its own partitions, runs, stores and model -----------------------------
    timings: dict[str, list[dict]] = {}
    retried: dict[str, list[str]] = {}
    retrain_spans: dict[str, list[tuple[float, float]]] = {}
    model_names = set()
    for name, ctx in contexts.items():
        store = stores[name]
        assert sorted(instance.get_dynamic_partitions(ctx.rounds.name)) == rounds, name
        runs = [r for job in ROUND_JOBS for r in _runs(instance, ctx.job_name(job))]
        # Every round run was requested by the program's own sensor, under the run key that
        # sensor derives (Dagster scopes run keys by sensor: one program's keys never
        # deduplicate another's work).
        for run in runs:
            sensor = ctx.job_name(ROUND_JOBS[run.job_name.removeprefix(f"{ctx.group}__")])
            assert run.tags.get("dagster/sensor_name") == sensor, run.tags
        attempts: dict[str, list] = defaultdict(list)
        for run in runs:
            attempts[run.tags["dagster/run_key"]].append(run)
        assert set(attempts) == {f"{k}:{r}" for k in ("open", "retrain") for r in rounds}, name
        for run_key, tries in attempts.items():
            # The sensor's run and, only if it failed, Dagster's own re-executions of it
            # (dagster.yaml: run_retries); exactly one of them succeeded.
            originals = [r for r in tries if "dagster/parent_run_id" not in r.tags]
            assert len(originals) == 1, f"{name} {run_key}: {len(originals)} runs launched"
            root = originals[0].run_id
            assert all(r.tags.get("dagster/root_run_id", r.run_id) == root for r in tries)
            succeeded = [r for r in tries if r.status == dg.DagsterRunStatus.SUCCESS]
            assert len(succeeded) == 1, [(r.run_id, r.status) for r in tries]
            if len(tries) > 1:
                retried[f"{name} {run_key}"] = [
                    _failure(instance, r) for r in tries if r is not succeeded[0]
                ]
        for round_ in rounds:
            events = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=ctx.key("model"), asset_partitions=[round_]),
                limit=10,
            ).records
            assert len(events) == 1, f"{name} {round_}: {len(events)} model materializations"
        retrains = [r for r in runs if r.job_name == ctx.job_name("retrain")]
        assert {r.tags[RETRAIN_TAG] for r in retrains} == {name}
        records = [instance.get_run_record_by_id(r.run_id) for r in retrains]
        retrain_spans[name] = [(rec.start_time, rec.end_time) for rec in records]
        # The run queue's per-program limit: two retrains of one program never overlapped.
        assert _max_overlap(retrain_spans[name]) == 1, (name, retrain_spans[name])

        # Own stores: the queue holds this program's tasks only (its own feature versions).
        tasks = store.queue.tasks()
        assert Counter(t.round for t in tasks) == Counter({r: BATCH for r in rounds}), name
        assert {t.feature_version.split("@")[0] for t in tasks} == {name}
        assert {t.state for t in tasks} == {RESOLVED}
        assert store.queue.leases() == [], f"{name}: a lease outlived its round"
        answers = store.queue.answers()
        assert len(answers) == len(tasks) * ANSWERS_PER_TASK
        per_task = answers.groupby("task_id")["annotator"].nunique()
        assert (per_task == ANSWERS_PER_TASK).all() and len(per_task) == len(tasks)
        assert answers["submission_id"].is_unique

        snapshots = Counter(store.labels.snapshots()["note"])
        for round_ in rounds:
            # One freeze per round, unless a failed retrain attempt had frozen one already.
            assert 1 <= snapshots[round_] <= len(attempts[f"retrain:{round_}"]), snapshots
        # Own registered model: one version per round, each run tagged with the program.
        tracker = ModelTracker(
            deployment.settings.mlflow_tracking_uri,
            deployment.settings.mlflow_artifact_dir,
            ctx.model_name,
        )
        model_names.add(tracker.model_name)
        versions = tracker.client.search_model_versions(f"name='{tracker.model_name}'")
        assert Counter(v.tags.get("round") for v in versions) == Counter({r: 1 for r in rounds})
        by_round = {v.tags["round"]: v for v in versions}
        keys_so_far: set[str] = set()
        timings[name] = []
        for round_ in rounds:
            round_tasks = [t for t in tasks if t.round == round_]
            keys_so_far |= {t.sample_key for t in round_tasks}
            version = by_round[round_]
            assert tracker.run(version.run_id).data.tags["program"] == name
            # The round's snapshot freezes every label so far, each from all of its answers.
            snapshot = store.labels.get(version.tags["label_snapshot_id"])
            assert set(snapshot.labels["sample_key"]) == keys_so_far
            assert (snapshot.labels["n_answers"] == ANSWERS_PER_TASK).all()
            assert snapshot.answer_count == len(keys_so_far) * ANSWERS_PER_TASK

            open_run = min(
                attempts[f"open:{round_}"], key=lambda r: "dagster/parent_run_id" in r.tags
            )
            opened_at = instance.get_run_record_by_id(open_run.run_id).create_timestamp
            registered_at = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
            last_label = answers.loc[answers["round"] == round_, "answered_at"].max()
            timings[name].append(
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
    assert model_names == {contexts[n].model_name for n in PROGRAMS} and len(model_names) == 3

    report = {
        "rounds": timings,
        "crash_1": f"SIGKILL right after digits' round-002 opened (its run was "
        f"{crash_open_status.value})",
        "crash_2": f"SIGKILL while digits' round-002 retrain ran (pid {worker_pid} survived)",
        "all_rounds_done_after_crash_2_s": round(digits_done - killed_at, 1),
        "features_setup_s": round(features_ready - started, 1),
        "daemon_phase_s": round(finished - features_ready, 1),
        "test_total_s": round(time.monotonic() - started, 1),
        "stop_reasons": stop_reasons,
        # Retrains of different programs running at once: none waited for another program.
        "max_concurrent_retrains": _max_overlap([s for v in retrain_spans.values() for s in v]),
        "graphql": inventory,
        "retried_runs": retried,
        "run_latency_s": _run_latencies(instance),
        "dedup_skips_logged": sum(
            p.output().count("already completed with run keys")
            for p in processes.started
            if p.name == "dagster-daemon"
        ),
    }
    with capsys.disabled():
        print(f"\n[daemon rounds] {json.dumps(report)}")
    instance.dispose()
