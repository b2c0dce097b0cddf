"""Sensors that drive rounds: retrain when a round's labels are in, open the next round after
a retrain until the label budget is spent, and requeue tasks whose lease expired."""

import os

import dagster as dg

from feature_platform.defs.assets.monitoring import pool_drift
from feature_platform.defs.assets.rounds import model
from feature_platform.defs.jobs import (
    observe_training_features_job,
    open_round_job,
    retrain_job,
)
from feature_platform.defs.ops import rescore_open_tasks_job
from feature_platform.defs.partitions import rounds_partitions
from feature_platform.defs.resources import MlflowResource, ProgramResource, StoreResource
from feature_platform.errors import FeaturePlatformError
from feature_platform.learning import rounds, stopping

# How often the daemon evaluates the round sensors; tests and demos shorten it.
INTERVAL_SECONDS = int(os.environ.get("FP_SENSOR_INTERVAL_SECONDS", "30"))


def _round_state(context: dg.SensorEvaluationContext) -> tuple[list[str], set[str]]:
    existing = context.instance.get_dynamic_partitions(rounds_partitions.name)
    trained = set(context.instance.get_materialized_partitions(model.key))
    return list(existing), trained


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a retrain when every task of a round has its answers.",
)
def retrain_when_labels_in(context: dg.SensorEvaluationContext, store: StoreResource):
    existing, trained = _round_state(context)
    ready = rounds.rounds_to_retrain(store.get(), existing, trained)
    if not ready:
        return dg.SkipReason(f"no fully answered round awaiting a retrain ({len(existing)} rounds)")
    return [dg.RunRequest(partition_key=r, run_key=f"retrain:{r}") for r in ready]


@dg.sensor(
    job=open_round_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Opens the next round after a successful retrain, until the label budget is spent.",
)
def open_next_round(
    context: dg.SensorEvaluationContext,
    store: StoreResource,
    mlflow: MlflowResource,
    program: ProgramResource,
):
    existing, trained = _round_state(context)
    fs = store.get()
    stop = stopping.should_stop(
        stopping.history_from_tracker(mlflow.tracker()),
        program.stopping_rules(),
        labels_spent=len(fs.queue.sample_keys()),
    )
    decision = rounds.next_round(fs, program.program(), existing, trained, stop)
    if decision.round is None:
        return dg.SkipReason(decision.reason)
    context.log.info(f"opening {decision.round}: {decision.reason}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=decision.round,
                run_key=f"open:{decision.round}",
                tags={"reason": decision.reason},
            )
        ],
        dynamic_partitions_requests=[]
        if decision.round in existing
        else [rounds_partitions.build_add_request([decision.round])],
    )


@dg.sensor(
    minimum_interval_seconds=2 * INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Returns tasks whose lease expired to the queue so no task is stranded.",
)
def requeue_expired_leases(store: StoreResource):
    expired = store.get().queue.requeue_expired()
    return dg.SkipReason(f"requeued {expired} expired lease(s)")


@dg.sensor(
    job=rescore_open_tasks_job,
    minimum_interval_seconds=2 * INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a drift measurement finds drifted features, re-scores the open tasks.",
)
def rescore_on_drift(context: dg.SensorEvaluationContext):
    records = context.instance.fetch_materializations(pool_drift.key, limit=1).records
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
    job=observe_training_features_job,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the training feature version when the program's alias moves, so "
    "rounds built on the previous version show as stale.",
)
def training_features_changed(
    context: dg.SensorEvaluationContext, store: StoreResource, program: ProgramResource
):
    try:
        fsv = store.get().resolve_feature_set(program.feature_set)
    except FeaturePlatformError as error:
        return dg.SkipReason(str(error))
    version = f"{fsv.id}:{fsv.fingerprint}"
    if version == context.cursor:
        return dg.SkipReason(f"{program.feature_set} still resolves to {fsv.id}")
    context.update_cursor(version)
    return dg.RunRequest(run_key=f"observe:{version}", tags={"feature_set_version": fsv.id})


sensors = [
    training_features_changed,
    retrain_when_labels_in,
    open_next_round,
    requeue_expired_leases,
    rescore_on_drift,
]
