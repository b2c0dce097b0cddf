"""A program's sensors: retrain when a round's labels are in, open the next round after a
retrain until the label budget is spent or a stopping rule fires, requeue tasks whose lease
expired, re-score on drift, and observe the training version when its alias moves. Each reads
only its own program's stores, partitions and model; run keys are per program's jobs."""

import os

import dagster as dg

from feature_platform.defs.context import ProgramContext
from feature_platform.defs.jobs import ProgramJobs
from feature_platform.defs.resources import MlflowResource, StoreResource
from feature_platform.errors import FeaturePlatformError
from feature_platform.learning import rounds, stopping
from feature_platform.learning.round_attempts import run_key

# How often the daemon evaluates the round sensors; tests and demos shorten it.
INTERVAL_SECONDS = int(os.environ.get("FP_SENSOR_INTERVAL_SECONDS", "30"))


def stopping_rules(ctx: ProgramContext) -> stopping.StoppingRules:
    return stopping.StoppingRules.from_program(ctx.program, **ctx.definition.template.stopping())


def build_sensors(ctx: ProgramContext, jobs: ProgramJobs) -> list[dg.SensorDefinition]:
    program = ctx.program
    model_key = ctx.key("model")

    def round_state(context: dg.SensorEvaluationContext) -> tuple[list[str], set[str]]:
        existing = context.instance.get_dynamic_partitions(ctx.rounds.name)
        trained = set(context.instance.get_materialized_partitions(model_key))
        return list(existing), trained

    @dg.sensor(
        name=f"{ctx.group}__retrain_when_labels_in",
        job=jobs.retrain,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a retrain when every task of a round has its answers.",
    )
    def retrain_when_labels_in(context: dg.SensorEvaluationContext, store: StoreResource):
        existing, trained = round_state(context)
        fs = store.for_program(ctx.name)
        ready = rounds.rounds_to_retrain(fs, existing, trained)
        if not ready:
            return dg.SkipReason(
                f"no fully answered round awaiting a retrain ({len(existing)} rounds)"
            )
        attempts = fs.round_attempts.current()
        return [
            dg.RunRequest(partition_key=r, run_key=run_key("retrain", r, attempts.get(r, 1)))
            for r in ready
        ]

    @dg.sensor(
        name=f"{ctx.group}__open_next_round",
        job=jobs.open_round,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Opens the next round after a successful retrain, until the label budget "
        "is spent or a stopping rule fires.",
    )
    def open_next_round(
        context: dg.SensorEvaluationContext, store: StoreResource, mlflow: MlflowResource
    ):
        existing, trained = round_state(context)
        fs = store.for_program(ctx.name)
        stop = stopping.should_stop(
            stopping.history_from_tracker(mlflow.tracker(ctx.model_name)),
            stopping_rules(ctx),
            labels_spent=len(fs.queue.sample_keys()),
        )
        decision = rounds.next_round(fs, program, existing, trained, stop)
        if decision.round is None:
            return dg.SkipReason(decision.reason)
        context.log.info(f"{ctx.name}: opening {decision.round}: {decision.reason}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    partition_key=decision.round,
                    run_key=run_key(
                        "open", decision.round, fs.round_attempts.current().get(decision.round, 1)
                    ),
                    tags={"reason": decision.reason, "program": ctx.name},
                )
            ],
            dynamic_partitions_requests=[]
            if decision.round in existing
            else [ctx.rounds.build_add_request([decision.round])],
        )

    @dg.sensor(
        name=f"{ctx.group}__requeue_expired_leases",
        minimum_interval_seconds=2 * INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Returns tasks whose lease expired to the queue so no task is stranded.",
    )
    def requeue_expired_leases(store: StoreResource):
        expired = store.for_program(ctx.name).queue.requeue_expired()
        return dg.SkipReason(f"requeued {expired} expired lease(s)")

    @dg.sensor(
        name=f"{ctx.group}__rescore_on_drift",
        job=jobs.rescore_open_tasks,
        minimum_interval_seconds=2 * INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When a drift measurement finds drifted features, re-scores the open tasks.",
    )
    def rescore_on_drift(context: dg.SensorEvaluationContext):
        records = context.instance.fetch_materializations(ctx.key("pool_drift"), limit=1).records
        if not records or str(records[0].storage_id) == context.cursor:
            return dg.SkipReason("no new drift measurement")
        event = records[0]
        context.update_cursor(str(event.storage_id))
        drifted = event.asset_materialization.metadata.get("drifted_features")
        if drifted is None or drifted.value == 0:
            return dg.SkipReason("the newest drift measurement found no drifted feature")
        return dg.RunRequest(
            run_key=f"rescore:{event.storage_id}",
            tags={"reason": f"{drifted.value} drifted feature(s)"},
        )

    @dg.sensor(
        name=f"{ctx.group}__training_features_changed",
        job=jobs.observe_training_features,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Observes the training feature version when the program's alias moves, so "
        "rounds built on the previous version show as stale.",
    )
    def training_features_changed(context: dg.SensorEvaluationContext, store: StoreResource):
        try:
            fsv = store.for_program(ctx.name).resolve_feature_set(program.feature_set)
        except FeaturePlatformError as error:
            return dg.SkipReason(str(error))
        version = f"{fsv.id}:{fsv.fingerprint}"
        if version == context.cursor:
            return dg.SkipReason(f"{program.feature_set} still resolves to {fsv.id}")
        context.update_cursor(version)
        return dg.RunRequest(run_key=f"observe:{version}", tags={"feature_set_version": fsv.id})

    return [
        training_features_changed,
        retrain_when_labels_in,
        open_next_round,
        requeue_expired_leases,
        rescore_on_drift,
    ]
