"""Runs active-learning rounds through Dagster on the project's instance, answered by
simulated annotators, next to the same rounds with random selection as a baseline.

Each round is driven the way the daemon drives it: the `open_next_round` sensor is evaluated
and its run request executed, the annotators answer through the queue, then the
`retrain_when_labels_in` sensor is evaluated and its run executed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg

from feature_platform.catalog import digits
from feature_platform.definitions import build_definitions
from feature_platform.defs.assets.rounds import round_assets
from feature_platform.defs.partitions import all_arrival_days_tags, rounds_partitions
from feature_platform.defs.resources import MlflowResource, ProgramResource, store_for
from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.identity import system_actor
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning.loop import run_loop
from feature_platform.settings import Settings


@dataclass(frozen=True)
class DemoOptions:
    rounds: int = 6
    strategy: str = "margin"
    batch_size: int = 20
    seed: int = 0
    cold_start: str = "random"
    annotators: int = 3
    annotator_accuracy: float = 0.95
    answers_per_task: int = 1
    feature_set: str = "digits@training"


@dataclass(frozen=True)
class DemoRound:
    round: str
    labels: int
    accuracy: float
    strategy: str
    feature_version: str
    mlflow_run_id: str
    model_version: str
    dagster_run_id: str


@dataclass(frozen=True)
class DemoReport:
    rounds: list[DemoRound]
    baseline: list[dict]
    stop_reason: str
    home: Path

    def to_json(self) -> dict:
        keys = ("round", "labels", "accuracy", "strategy", "feature_version", "mlflow_run_id")
        return {
            "rounds": [{k: asdict(r)[k] for k in keys} for r in self.rounds],
            "baseline": self.baseline,
        }


# The demo empties its stores and forgets its rounds before each run. It only ever does that to
# a directory it created (or found empty) and marked with this file: never to a directory of
# unrelated files, a production store or a production Dagster instance.
DEMO_MARKER = ".feature-platform-demo"


class NotADemoDirectoryError(FeaturePlatformError):
    """The demo was pointed at a directory it did not create."""


def _mark(directory: Path, what: str) -> None:
    (directory / DEMO_MARKER).write_text(
        f"Created by `feature-platform demo` as its {what}; the demo empties this directory "
        f"before each run. Delete this file to protect the directory from the demo.\n"
    )


def claim_demo_home(home: Path) -> Path:
    """Make `home` an empty demo store directory: created and marked when missing or empty,
    emptied when it carries the demo's marker, refused otherwise."""
    home = home.resolve()
    if not home.exists():
        home.mkdir(parents=True)
    elif not home.is_dir():
        raise NotADemoDirectoryError(f"The demo's store directory {home} is not a directory.")
    elif any(home.iterdir()):
        if not (home / DEMO_MARKER).is_file():
            raise NotADemoDirectoryError(
                f"Refusing to empty {home} (FP_HOME / --home): it is not empty and was not "
                f"created by the demo (no {DEMO_MARKER} file in it). The demo deletes what is in "
                f"its directory; point FP_HOME or --home at a new or empty directory."
            )
        for child in home.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    _mark(home, "store directory (FP_HOME)")
    return home


def _is_fresh_instance(home: Path) -> bool:
    """No run history and no storage configured: nothing to lose (e.g. `make`'s fresh home)."""
    config = home / "dagster.yaml"
    other = {p.name for p in home.iterdir()} - {"dagster.yaml"}
    return not other and (not config.exists() or "storage" not in config.read_text())


def project_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to `.dagster_home` in the working directory (created)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / DEMO_MARKER).is_file():
        if not _is_fresh_instance(home):
            raise NotADemoDirectoryError(
                f"Refusing to run the demo on the Dagster instance in {home} (DAGSTER_HOME): "
                f"the demo forgets the rounds recorded there, and this instance was not created "
                f"by the demo (no {DEMO_MARKER} file). Point DAGSTER_HOME at a new or empty "
                f"directory."
            )
        _mark(home, "Dagster instance (DAGSTER_HOME)")
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(
            "# Embedded default instance: SQLite storage in this folder.\n"
            "telemetry:\n  enabled: false\n"
        )
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _annotators(options: DemoOptions) -> SimulatedAnnotators:
    return SimulatedAnnotators(
        truth=digits.ground_truth_oracle(),
        classes=digits.CLASSES,
        count=options.annotators,
        accuracy=options.annotator_accuracy,
        seed=options.seed,
    )


def _run(
    defs: dg.Definitions, instance: dg.DagsterInstance, job: str, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Execute what a sensor requested, in this process, against the project's instance."""
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=dict(request.tags),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=True,
    )


def _evaluate_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, name: str):
    sensor = defs.get_repository_def().get_sensor_def(name)
    return sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))


def run_demo(options: DemoOptions, home: Path, log=print) -> DemoReport:  # noqa: ANN001
    """Start a fresh labeling program with every store embedded under `home` (emptied first,
    so the web UI and the CLI see this program) and run up to `options.rounds` rounds.

    Refused (NotADemoDirectoryError, nothing deleted) when `home` or DAGSTER_HOME holds
    something the demo did not create (see `claim_demo_home`)."""
    project_dagster_home()  # checked before anything is deleted
    home = claim_demo_home(home)
    settings = Settings.under(home)
    program = ProgramResource(
        feature_set=options.feature_set,
        strategy=options.strategy,
        batch_size=options.batch_size,
        label_budget=options.rounds * options.batch_size,
        answers_per_task=options.answers_per_task,
        seed=options.seed,
        cold_start=options.cold_start,
    )
    instance = dg.DagsterInstance.get()
    # A fresh program: forget the previous demo's rounds (its runs stay in the run history).
    instance.wipe_assets([asset.key for asset in round_assets])
    for key in instance.get_dynamic_partitions(rounds_partitions.name):
        instance.delete_dynamic_partition(rounds_partitions.name, key)
    defs = build_definitions(settings, program)
    store: FeatureStore = store_for(settings)
    annotators = _annotators(options)

    log("baseline: the same rounds with random selection (same seed, same annotators) ...")
    with tempfile.TemporaryDirectory() as scratch:
        baseline_store = FeatureStore(Settings.under(scratch), actor=system_actor())
        digits.bootstrap(baseline_store)
        baseline = run_loop(
            baseline_store,
            program.model_copy(update={"strategy": "random"}).program(),
            _annotators(options),
            options.rounds,
        )
        baseline_store.engine.dispose()
    # Logged first, so every round's learning-curve picture can show it beside the strategy.
    tracker = MlflowResource(
        tracking_uri=settings.mlflow_tracking_uri, artifact_dir=str(settings.mlflow_artifact_dir)
    ).tracker()
    tracker.log_reference_curve("random", [(r.labels, r.accuracy) for r in baseline])

    log("refreshing raw source and feature sets through Dagster ...")
    _run(defs, instance, "refresh_features", dg.RunRequest(tags=all_arrival_days_tags()))
    results: list[DemoRound] = []
    stop_reason = f"ran the {options.rounds} requested rounds"
    for _ in range(options.rounds):
        opened = _evaluate_sensor(defs, instance, "open_next_round")
        if isinstance(opened, dg.SkipReason):
            stop_reason = opened.skip_message or "sensor skipped"
            break
        for partitions_request in opened.dynamic_partitions_requests:
            instance.add_dynamic_partitions(
                partitions_request.partitions_def_name, list(partitions_request.partition_keys)
            )
        for request in opened.run_requests:
            _run(defs, instance, "open_round", request)
            answered = annotators.answer(store.queue, request.partition_key)
            log(f"{request.partition_key}: {answered} answers from simulated annotators")
        retrain_requests = _evaluate_sensor(defs, instance, "retrain_when_labels_in")
        for request in retrain_requests if isinstance(retrain_requests, list) else []:
            run = _run(defs, instance, "retrain", request)
            event = run.asset_materializations_for_node("model")[0]
            meta = {k: v.value for k, v in event.metadata.items()}
            results.append(
                DemoRound(
                    round=request.partition_key,
                    labels=int(meta["labels"]),
                    accuracy=round(float(meta["accuracy"]), 4),
                    strategy=str(meta["strategy"]),
                    feature_version=str(meta["feature_set_version"]),
                    mlflow_run_id=str(meta["mlflow_run_id"]),
                    model_version=str(meta["model_version"]),
                    dagster_run_id=run.run_id,
                )
            )
            log(
                f"{request.partition_key}: accuracy {meta['accuracy']:.3f}, {meta['labels']} labels"
            )

    return DemoReport(
        rounds=results,
        baseline=[
            {"round": r.round, "labels": r.labels, "accuracy": round(r.accuracy, 4)}
            for r in baseline[: len(results)]
        ],
        stop_reason=stop_reason,
        home=home,
    )


def format_table(report: DemoReport) -> str:
    base = {b["round"]: b for b in report.baseline}
    header = (
        f"{'round':<10} {'labels':>6} {'accuracy':>9} {'strategy':<15} {'features':<10} "
        f"{'random acc':>10}  mlflow run"
    )
    lines = [header, "-" * len(header)]
    for r in report.rounds:
        b = base.get(r.round)
        lines.append(
            f"{r.round:<10} {r.labels:>6} {r.accuracy:>9.3f} {r.strategy:<15} "
            f"{r.feature_version:<10} {b['accuracy'] if b else float('nan'):>10.3f}  "
            f"{r.mlflow_run_id}"
        )
    lines.append(f"stopped: {report.stop_reason}")
    return "\n".join(lines)
