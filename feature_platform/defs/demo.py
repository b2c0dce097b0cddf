"""Runs active-learning rounds through Dagster on the project's instance, answered by
simulated annotators, next to the same rounds with random selection as a baseline.
Each round is driven the way the daemon drives it: the program's `open_next_round` sensor is
evaluated and its run request executed, the annotators answer through the queue, then its
`retrain_when_labels_in` sensor is evaluated and its run executed. Several programs run side by
side in one code location, round by round, each on its own stores, partitions and model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg

from feature_platform.catalog import PROJECT_DIR
from feature_platform.defs.context import ProgramContext
from feature_platform.defs.location import build_definitions
from feature_platform.defs.resources import StoreResource, build_resources
from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.identity import system_actor
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning.loop import run_loop
from feature_platform.programs.project import (
    ProgramDefinition,
    bootstrap_program,
    find_program,
    load_project,
    template_registry,
)
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
    feature_set: str | None = None  # default: the template's training reference
    programs: tuple[str, ...] = ("digits",)
    # Projects whose programs join the shipped examples (e.g. a user's project folder).
    project_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class DemoRound:
    program: str
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
    stop_reasons: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        keys = (
            "program",
            "round",
            "labels",
            "accuracy",
            "strategy",
            "feature_version",
            "mlflow_run_id",
            "model_version",
        )
        return {
            "rounds": [{k: asdict(r)[k] for k in keys} for r in self.rounds],
            "baseline": self.baseline,
            "stop_reasons": self.stop_reasons,
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


def _annotators(options: DemoOptions, definition: ProgramDefinition) -> SimulatedAnnotators:
    return SimulatedAnnotators(
        truth=definition.source.ground_truth_oracle(),
        classes=list(definition.program.classes),
        count=options.annotators,
        accuracy=options.annotator_accuracy,
        seed=options.seed,
    )


def demo_programs(options: DemoOptions) -> list[ProgramDefinition]:
    """Every program of the shipped examples and the given projects, the demo's ones with the
    demo's overrides (budget = rounds x batch size)."""
    every = load_project(PROJECT_DIR)
    for project in options.project_dirs:
        every += load_project(project)
    for name in options.programs:
        find_program(every, name)  # an unknown name fails before anything is emptied
    overrides = {
        "strategy": options.strategy,
        "batch_size": options.batch_size,
        "label_budget": options.rounds * options.batch_size,
        "answers_per_task": options.answers_per_task,
        "seed": options.seed,
    }
    chosen = []
    for definition in every:
        if definition.name in options.programs:
            extra = {"feature_set": options.feature_set} if options.feature_set else {}
            cold = {"strategy_options": {**definition.program.strategy_options}}
            cold["strategy_options"]["cold_start"] = options.cold_start
            definition = definition.with_overrides(**overrides, **extra, **cold)
        chosen.append(definition)
    return chosen


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


def _baseline(options: DemoOptions, definition: ProgramDefinition) -> list:
    with tempfile.TemporaryDirectory() as scratch:
        store = FeatureStore(Settings.under(scratch), actor=system_actor())
        bootstrap_program(store, definition)
        results = run_loop(
            store,
            definition.program.replace(strategy="random"),
            _annotators(options, definition),
            options.rounds,
        )
        store.engine.dispose()
    return results


def run_demo(options: DemoOptions, home: Path, log=print) -> DemoReport:  # noqa: ANN001
    """Start fresh labeling programs with every store embedded under `home` (emptied first,
    so the web UI and the CLI see them) and run up to `options.rounds` rounds of each of
    `options.programs`, side by side in one code location."""
    programs = demo_programs(options)
    project_dagster_home()  # checked before anything is deleted
    home = claim_demo_home(home)
    settings = Settings.under(home)
    # The programs run under published template versions (with the demo's overrides), so
    # every model they register records the version it ran under.
    chosen = [p for p in programs if p.name in options.programs]
    registry = template_registry(settings)
    # The demo acts as the platform (a fresh home it owns), like the Dagster runs it drives.
    published = {
        t.name: t.version
        for t, _ in registry.publish_many([p.template for p in chosen], actor=system_actor())
    }
    registry.engine.dispose()
    programs = [
        ProgramDefinition(p.template, published[p.name], p.overrides) if p.name in published else p
        for p in programs
    ]
    instance = dg.DagsterInstance.get()
    defs = build_definitions(settings, programs)
    running = [ProgramContext(p) for p in programs if p.name in options.programs]
    store = StoreResource.from_settings(settings)
    tracker_of = build_resources(settings)["mlflow"]
    baselines: dict[str, list] = {}
    for ctx in running:
        # A fresh program: forget the previous demo's rounds (its runs stay in the history).
        instance.wipe_assets(
            [ctx.key(k) for k in ("candidate_pool", "labeling_batch", "training_set", "model")]
        )
        for key in instance.get_dynamic_partitions(ctx.rounds.name):
            instance.delete_dynamic_partition(ctx.rounds.name, key)
        log(f"{ctx.name}: baseline, the same rounds with random selection ...")
        baselines[ctx.name] = _baseline(options, ctx.definition)
        # Logged first, so every round's learning-curve picture can show it beside the strategy.
        tracker_of.tracker(ctx.model_name).log_reference_curve(
            "random", [(r.labels, r.accuracy) for r in baselines[ctx.name]]
        )
        log(f"{ctx.name}: refreshing raw source and feature sets through Dagster ...")
        # Up to the newest arrival only: days after it have nothing to load.
        newest = ctx.source.read()[ctx.source.event_time].max().to_pydatetime()
        _run(
            defs,
            instance,
            ctx.job_name("refresh_features"),
            dg.RunRequest(tags=ctx.all_arrival_days_tags(until=newest)),
        )
    annotators = {ctx.name: _annotators(options, ctx.definition) for ctx in running}
    results: list[DemoRound] = []
    stopped: dict[str, str] = {}
    for _ in range(options.rounds):
        for ctx in running:
            if ctx.name in stopped:
                continue
            fs = store.for_program(ctx.name)
            opened = _evaluate_sensor(defs, instance, ctx.job_name("open_next_round"))
            if isinstance(opened, dg.SkipReason):
                stopped[ctx.name] = opened.skip_message or "sensor skipped"
                continue
            for partitions_request in opened.dynamic_partitions_requests:
                instance.add_dynamic_partitions(
                    partitions_request.partitions_def_name, list(partitions_request.partition_keys)
                )
            for request in opened.run_requests:
                _run(defs, instance, ctx.job_name("open_round"), request)
                answered = annotators[ctx.name].answer(fs.queue, request.partition_key)
                log(f"{ctx.name} {request.partition_key}: {answered} simulated answers")
            retrain = _evaluate_sensor(defs, instance, ctx.job_name("retrain_when_labels_in"))
            for request in retrain if isinstance(retrain, list) else []:
                run = _run(defs, instance, ctx.job_name("retrain"), request)
                event = run.asset_materializations_for_node(f"{ctx.group}__model")[0]
                meta = {k: v.value for k, v in event.metadata.items()}
                results.append(
                    DemoRound(
                        program=ctx.name,
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
                    f"{ctx.name} {request.partition_key}: accuracy {meta['accuracy']:.3f}, "
                    f"{meta['labels']} labels"
                )
    for ctx in running:
        stopped.setdefault(ctx.name, f"ran the {options.rounds} requested rounds")
    done = {ctx.name: sum(r.program == ctx.name for r in results) for ctx in running}
    return DemoReport(
        rounds=results,
        baseline=[
            {
                "program": name,
                "round": r.round,
                "labels": r.labels,
                "accuracy": round(r.accuracy, 4),
            }
            for name, rows in baselines.items()
            for r in rows[: done[name]]
        ],
        stop_reason="; ".join(f"{n}: {reason}" for n, reason in stopped.items()),
        home=home,
        stop_reasons=stopped,
    )


def format_table(report: DemoReport) -> str:
    base = {(b["program"], b["round"]): b for b in report.baseline}
    header = (
        f"{'program':<10} {'round':<10} {'labels':>6} {'accuracy':>9} {'strategy':<15} "
        f"{'features':<10} {'random acc':>10}  mlflow run"
    )
    lines = [header, "-" * len(header)]
    for r in report.rounds:
        b = base.get((r.program, r.round))
        lines.append(
            f"{r.program:<10} {r.round:<10} {r.labels:>6} {r.accuracy:>9.3f} {r.strategy:<15} "
            f"{r.feature_version:<10} {b['accuracy'] if b else float('nan'):>10.3f}  "
            f"{r.mlflow_run_id}"
        )
    lines.append(f"stopped: {report.stop_reason}")
    return "\n".join(lines)
