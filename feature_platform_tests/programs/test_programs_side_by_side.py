"""Three programs (digits, weather, and a CSV program made here with `init`) run rounds side
by side in one code location under `demo`: each with its own assets, partitions, sensors, jobs,
stores and registered model."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from feature_platform.commands.init import scaffold
from feature_platform.defs.context import RETRAIN_TAG
from feature_platform.defs.demo import DemoOptions, demo_programs, run_demo
from feature_platform.defs.location import build_definitions
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.settings import Settings

pytestmark = pytest.mark.slow
PROGRAMS = ("digits", "weather", "wine")


def test_three_programs_run_rounds_side_by_side(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    project = scaffold(tmp_path / "project", "wine")[0].parent
    options = DemoOptions(
        rounds=2, batch_size=10, annotators=2, programs=PROGRAMS, project_dirs=(project,)
    )
    home = tmp_path / "fp"
    report = run_demo(options, home, log=lambda _: None)

    by_program = {name: [r for r in report.rounds if r.program == name] for name in PROGRAMS}
    for name, rounds in by_program.items():
        assert [(r.round, r.labels) for r in rounds] == [("round-001", 10), ("round-002", 20)]
        assert {r.model_version for r in rounds} == {f"{name}-classifier/1", f"{name}-classifier/2"}
        assert {r.feature_version for r in rounds} == {f"{name}@v1"}
        assert all(0.0 < r.accuracy <= 1.0 for r in rounds)

    instance = dg.DagsterInstance.get()
    settings = Settings.under(home)
    stores = StoreResource.from_settings(settings)
    mlflow = MlflowResource(
        tracking_uri=settings.mlflow_tracking_uri, artifact_dir=str(settings.mlflow_artifact_dir)
    )
    for name in PROGRAMS:
        # Own round partitions, own materializations under the program's prefix.
        assert instance.get_dynamic_partitions(f"{name}__rounds") == ["round-001", "round-002"]
        trained = instance.get_materialized_partitions(dg.AssetKey([name, "model"]))
        assert trained == {"round-001", "round-002"}
        # Own stores: each queue holds only its program's 20 tasks and feature versions.
        queue = stores.for_program(name).queue
        tasks = queue.tasks()
        assert len(tasks) == 20 and {t.feature_version for t in tasks} == {f"{name}@v1"}
        # Own registered model, each version tagged with its program.
        tracker = mlflow.tracker(f"{name}-classifier")
        champion = tracker.by_alias("champion")
        assert champion is not None
        tags = tracker.run(champion.run_id).data.tags
        assert tags["program"] == name and tags["template_version"] == f"{name}@v1"

    defs = build_definitions(settings, demo_programs(options))
    repository = defs.get_repository_def()
    for name in PROGRAMS:
        assert repository.get_job(f"{name}__retrain").tags[RETRAIN_TAG] == name
        sensor = repository.get_sensor_def(f"{name}__open_next_round")
        decision = sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        assert isinstance(decision, dg.SkipReason)
        assert "label budget of 20 spent" in decision.skip_message
    groups = {key.path[0] for key in repository.assets_defs_by_key}
    assert set(PROGRAMS) <= groups
