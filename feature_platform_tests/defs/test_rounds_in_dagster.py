"""A full round through Dagster: dg.materialize on a test instance, sensors evaluated with
build_sensor_context, MLflow run tags checked."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from feature_platform.catalog import digits
from feature_platform.defs.factory import build_program_defs
from feature_platform.defs.location import build_definitions
from feature_platform.defs.resources import StoreResource, build_resources
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.programs.project import ProgramDefinition
from feature_platform.settings import Settings

pytestmark = pytest.mark.slow

DIGITS = ProgramDefinition(digits.template()).with_overrides(batch_size=10, label_budget=30, seed=3)


@pytest.fixture
def setup(tmp_path: Path):
    settings = Settings.under(tmp_path / "fp")
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    return settings, resources, instance


def _sensor(defs: dg.Definitions, name: str, instance: dg.DagsterInstance):
    sensor = defs.get_repository_def().get_sensor_def(name)
    return sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))


def test_round_materializes_and_model_is_traceable_in_mlflow(setup) -> None:
    settings, resources, instance = setup
    built = build_program_defs(DIGITS)
    ctx = built.context
    upstream = dg.materialize(
        built.assets[:3] + built.checks[:3],
        instance=instance,
        resources=resources,
        tags=ctx.all_arrival_days_tags(),
    )
    assert upstream.success
    checks = upstream.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)

    instance.add_dynamic_partitions(ctx.rounds.name, ["round-001"])
    selection = [*built.round_assets, built.round_report, *built.checks[3:]]
    opened = dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        partition_key="round-001",
        selection=[ctx.key("candidate_pool"), ctx.key("labeling_batch")],
    )
    assert opened.success
    store = StoreResource.from_settings(settings).for_program("digits")
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
        selection=[ctx.key("training_set"), ctx.key("model"), ctx.key("round_report")],
    )
    assert trained.success
    report = trained.asset_materializations_for_node("digits__round_report")[0].metadata
    assert report["answers"].value == 10
    assert report["lead_time_median_s"].value > 0
    assert "## round-001" in report["report"].value
    assert all(c.passed for c in trained.get_asset_check_evaluations())
    meta = trained.asset_materializations_for_node("digits__model")[0].metadata
    tracker = resources["mlflow"].tracker("digits-classifier")
    run = tracker.run(meta["mlflow_run_id"].value)
    assert run.data.tags["feature_set_version"] == "digits@v1"
    assert run.data.tags["label_snapshot_id"] == meta["label_snapshot_id"].value
    assert run.data.tags["round"] == "round-001"
    assert run.data.tags["strategy"] == "margin"
    assert run.data.tags["program"] == "digits"
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

    pool_drift = built.pool_drift
    drift = dg.materialize(
        [pool_drift, *built.checks],
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
    instance.add_dynamic_partitions(ctx.rounds.name, ["round-002"])
    assert dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        partition_key="round-002",
        selection=[ctx.key("candidate_pool"), ctx.key("labeling_batch")],
    ).success
    second = store.queue.tasks(round_key="round-002")
    assert {t.model_version for t in second} == {champion.label}
    assert all(t.reason.startswith("margin:") for t in second)
    assert not {t.sample_key for t in second} & {t.sample_key for t in tasks}


def test_sensors_open_rounds_retrain_and_stop_at_budget(setup) -> None:
    settings, resources, instance = setup
    defs = build_definitions(settings, [DIGITS])
    ctx = build_program_defs(DIGITS).context
    store = StoreResource.from_settings(settings).for_program("digits")

    first = _sensor(defs, "digits__open_next_round", instance)
    assert isinstance(first, dg.SkipReason) and "waiting for feature set" in first.skip_message

    refresh = defs.resolve_job_def("digits__refresh_features")
    assert refresh.execute_in_process(instance=instance, tags=ctx.all_arrival_days_tags()).success
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2)
    for number in (1, 2, 3):
        opened = _sensor(defs, "digits__open_next_round", instance)
        assert isinstance(opened, dg.SensorResult), opened
        key = f"round-00{number}"
        assert [r.partition_key for r in opened.run_requests] == [key]
        assert opened.run_requests[0].run_key == f"open:{key}"
        instance.add_dynamic_partitions(ctx.rounds.name, [key])

        # Added but not opened yet (the run is queued, or a crash lost it): the same run key
        # is requested again, which the daemon turns into a no-op while the run exists.
        again = _sensor(defs, "digits__open_next_round", instance)
        assert [r.run_key for r in again.run_requests] == [f"open:{key}"]
        assert not again.dynamic_partitions_requests

        job = defs.resolve_job_def("digits__open_round")
        assert job.execute_in_process(instance=instance, partition_key=key).success
        waiting = _sensor(defs, "digits__open_next_round", instance)
        expected = f"waiting for {key}" if number < 3 else "label budget of 30 spent"
        assert isinstance(waiting, dg.SkipReason) and expected in waiting.skip_message
        assert isinstance(_sensor(defs, "digits__retrain_when_labels_in", instance), dg.SkipReason)

        annotators.answer(store.queue, key)
        retrain = _sensor(defs, "digits__retrain_when_labels_in", instance)
        assert [r.partition_key for r in retrain] == [key]
        assert retrain[0].run_key == f"retrain:{key}"
        job = defs.resolve_job_def("digits__retrain")
        assert job.execute_in_process(instance=instance, partition_key=key).success

    stopped = _sensor(defs, "digits__open_next_round", instance)
    assert isinstance(stopped, dg.SkipReason)
    assert "label budget of 30 spent" in stopped.skip_message


def test_a_drift_warning_requests_one_rescore(tmp_path: Path) -> None:
    built = build_program_defs(DIGITS)

    @dg.asset(key=built.context.key("pool_drift"))
    def drifted() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"drifted_features": 3})

    instance = dg.DagsterInstance.ephemeral()
    sensor = next(s for s in built.sensors if s.name == "digits__rescore_on_drift")
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    dg.materialize([drifted], instance=instance)
    context = dg.build_sensor_context(instance=instance)
    request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("rescore:")
    assert request.tags["reason"] == "3 drifted feature(s)"
    again = sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert isinstance(again, dg.SkipReason)  # the same measurement never re-scores twice


def test_a_round_whose_retrain_failed_is_retried_under_a_new_run_key(
    setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feature_platform.cli import main
    from feature_platform.governance.identity import system_actor
    from feature_platform.governance.roles import PermissionDeniedError
    from feature_platform.learning import rounds

    settings, resources, instance = setup
    defs = build_definitions(settings, [DIGITS])
    ctx = build_program_defs(DIGITS).context
    store = StoreResource.from_settings(settings).for_program("digits")
    refresh = defs.resolve_job_def("digits__refresh_features")
    assert refresh.execute_in_process(instance=instance, tags=ctx.all_arrival_days_tags()).success
    opened = _sensor(defs, "digits__open_next_round", instance)
    instance.add_dynamic_partitions(ctx.rounds.name, ["round-001"])
    assert opened.run_requests[0].run_key == "open:round-001"
    job = defs.resolve_job_def("digits__open_round")
    assert job.execute_in_process(instance=instance, partition_key="round-001").success
    SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2).answer(
        store.queue, "round-001"
    )

    # The retrain fails for good (a broken tracking server, say): the daemon never re-runs a
    # run key it has used, so without a retry the program would stall here.
    def broken(*args, **kwargs):
        raise RuntimeError("tracking server unreachable")

    monkeypatch.setattr(rounds, "run_training_round", broken)
    retrain = defs.resolve_job_def("digits__retrain")
    failed = retrain.execute_in_process(
        instance=instance, partition_key="round-001", raise_on_error=False
    )
    assert not failed.success
    (request,) = _sensor(defs, "digits__retrain_when_labels_in", instance)
    assert request.run_key == "retrain:round-001"  # the used key: a no-op under the daemon
    monkeypatch.undo()

    # Only a lead or admin may say the cause is fixed; an annotator is refused, nothing written.
    store.registry.people.add("ann", "annotator", actor=system_actor())
    store.registry.people.add("lee", "lead", actor=system_actor())
    with pytest.raises(PermissionDeniedError):
        store.round_attempts.retry("round-001", actor="ann")
    assert store.round_attempts.current() == {}
    monkeypatch.setenv("FP_HOME", str(settings.home))
    monkeypatch.setenv("FP_USER", "lee")
    assert main(["--program", "digits", "rounds", "retry", "round-001", "--reason", "fixed"]) == 0
    assert store.round_attempts.current() == {"round-001": 2}

    (request,) = _sensor(defs, "digits__retrain_when_labels_in", instance)
    assert request.run_key == "retrain:round-001:attempt-2"
    assert retrain.execute_in_process(instance=instance, partition_key="round-001").success
    assert isinstance(_sensor(defs, "digits__retrain_when_labels_in", instance), dg.SkipReason)
    entry = store.registry.people.audit.entries(action="round.retry").iloc[-1]
    assert entry.actor == "lee" and entry.detail["attempt"] == 2
