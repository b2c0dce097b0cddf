"""A full round through Dagster: dg.materialize on a test instance, sensors evaluated with
build_sensor_context, MLflow run tags checked."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from feature_platform.catalog import digits
from feature_platform.definitions import build_definitions
from feature_platform.defs.assets.features import feature_assets
from feature_platform.defs.assets.monitoring import pool_drift
from feature_platform.defs.assets.reports import round_report
from feature_platform.defs.assets.rounds import round_assets
from feature_platform.defs.assets.sources import digits_source
from feature_platform.defs.checks import asset_checks
from feature_platform.defs.partitions import all_arrival_days_tags, rounds_partitions
from feature_platform.defs.resources import ProgramResource, StoreResource, build_resources
from feature_platform.defs.sensors import rescore_on_drift
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path):
    settings = Settings.under(tmp_path / "fp")
    program = ProgramResource(batch_size=10, label_budget=30, seed=3)
    resources = build_resources(settings, program)
    instance = dg.DagsterInstance.ephemeral()
    return settings, resources, instance


def _sensor(defs: dg.Definitions, name: str, instance: dg.DagsterInstance):
    sensor = defs.get_repository_def().get_sensor_def(name)
    return sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))


def test_round_materializes_and_model_is_traceable_in_mlflow(setup) -> None:
    settings, resources, instance = setup
    upstream = dg.materialize(
        [digits_source, *feature_assets, *asset_checks[:3]],
        instance=instance,
        resources=resources,
        tags=all_arrival_days_tags(),
    )
    assert upstream.success
    checks = upstream.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)

    instance.add_dynamic_partitions(rounds_partitions.name, ["round-001"])
    selection = [*round_assets, round_report, *asset_checks[3:]]
    opened = dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        partition_key="round-001",
        selection=["candidate_pool", "labeling_batch"],
    )
    assert opened.success
    store = StoreResource.from_settings(settings).get()
    tasks = store.queue.tasks(round_key="round-001")
    assert len(tasks) == 10
    assert all(
        t.reason.startswith("cold start") and t.feature_version == "digits@v1" for t in tasks
    )
    assert all(len(t.context["features_shown"]) == 64 for t in tasks)

    SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2).answer(
        store.queue, "round-001"
    )
    trained = dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        partition_key="round-001",
        selection=["training_set", "model", "round_report"],
    )
    assert trained.success
    report = trained.asset_materializations_for_node("round_report")[0].metadata
    assert report["answers"].value == 10
    assert report["lead_time_median_s"].value > 0
    assert "## round-001" in report["report"].value
    assert all(c.passed for c in trained.get_asset_check_evaluations())
    meta = trained.asset_materializations_for_node("model")[0].metadata
    tracker = resources["mlflow"].tracker()
    run = tracker.run(meta["mlflow_run_id"].value)
    assert run.data.tags["feature_set_version"] == "digits@v1"
    assert run.data.tags["label_snapshot_id"] == meta["label_snapshot_id"].value
    assert run.data.tags["round"] == "round-001"
    assert run.data.tags["strategy"] == "margin"
    assert run.data.tags["dagster_run_id"] == trained.run_id
    assert len(run.data.tags["training_set_fingerprint"]) == 16
    assert 0.3 < run.data.metrics["accuracy"] <= 1.0
    assert meta["promoted"].value is True and "first model" in meta["promotion"].value
    artifacts = {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
    assert {"learning_curve.png", "confusion_matrix.png"} <= artifacts
    assert "data:image/png;base64," in meta["Confusion matrix, round-001"].value
    assert run.data.metrics["labels"] == 10
    champion = tracker.by_alias("champion")
    assert champion is not None and champion.run_id == run.info.run_id

    drift = dg.materialize(
        [pool_drift, *asset_checks],
        instance=instance,
        resources=resources,
        selection=[pool_drift.key],
    )
    report = drift.asset_value(pool_drift.key)
    assert len(report) == 64 and report["psi"].notna().all()
    (evaluation,) = drift.get_asset_check_evaluations()
    assert evaluation.check_name == "pool_drift_within_threshold"
    assert evaluation.metadata["features_checked"].value == 64

    # Round 2 is scored by round 1's champion: reasons now come from the margin strategy.
    instance.add_dynamic_partitions(rounds_partitions.name, ["round-002"])
    assert dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        partition_key="round-002",
        selection=["candidate_pool", "labeling_batch"],
    ).success
    second = store.queue.tasks(round_key="round-002")
    assert {t.model_version for t in second} == {champion.label}
    assert all(t.reason.startswith("margin:") for t in second)
    assert not {t.sample_key for t in second} & {t.sample_key for t in tasks}


def test_sensors_open_rounds_retrain_and_stop_at_budget(setup) -> None:
    settings, resources, instance = setup
    defs = build_definitions(settings, resources["program"])
    store = StoreResource.from_settings(settings).get()

    first = _sensor(defs, "open_next_round", instance)
    assert isinstance(first, dg.SkipReason) and "waiting for feature set" in first.skip_message

    refresh = defs.resolve_job_def("refresh_features")
    assert refresh.execute_in_process(instance=instance, tags=all_arrival_days_tags()).success
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2)
    for number in (1, 2, 3):
        opened = _sensor(defs, "open_next_round", instance)
        assert isinstance(opened, dg.SensorResult), opened
        key = f"round-00{number}"
        assert [r.partition_key for r in opened.run_requests] == [key]
        assert opened.run_requests[0].run_key == f"open:{key}"
        instance.add_dynamic_partitions(rounds_partitions.name, [key])

        # Added but not opened yet (the run is queued, or a crash lost it): the same run key
        # is requested again, which the daemon turns into a no-op while the run exists.
        again = _sensor(defs, "open_next_round", instance)
        assert [r.run_key for r in again.run_requests] == [f"open:{key}"]
        assert not again.dynamic_partitions_requests

        job = defs.resolve_job_def("open_round")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        waiting = _sensor(defs, "open_next_round", instance)
        expected = f"waiting for {key}" if number < 3 else "label budget of 30 spent"
        assert isinstance(waiting, dg.SkipReason) and expected in waiting.skip_message
        assert isinstance(_sensor(defs, "retrain_when_labels_in", instance), dg.SkipReason)

        annotators.answer(store.queue, key)
        retrain = _sensor(defs, "retrain_when_labels_in", instance)
        assert [r.partition_key for r in retrain] == [key]
        assert retrain[0].run_key == f"retrain:{key}"
        job = defs.resolve_job_def("retrain")
        assert job.execute_in_process(instance=instance, partition_key=key).success

    stopped = _sensor(defs, "open_next_round", instance)
    assert isinstance(stopped, dg.SkipReason)
    assert "label budget of 30 spent" in stopped.skip_message


def test_a_drift_warning_requests_one_rescore(tmp_path: Path) -> None:
    @dg.asset(key=pool_drift.key)
    def drifted() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"drifted_features": 3})

    instance = dg.DagsterInstance.ephemeral()
    sensor = rescore_on_drift
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    dg.materialize([drifted], instance=instance)
    context = dg.build_sensor_context(instance=instance)
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("rescore:")
    assert request.tags["reason"] == "3 drifted feature(s)"
    again = sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert isinstance(again, dg.SkipReason)  # the same measurement never re-scores twice
