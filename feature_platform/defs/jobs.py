import dagster as dg

from feature_platform.defs.assets.features import TRAINING_FEATURES
from feature_platform.defs.assets.monitoring import pool_drift
from feature_platform.defs.assets.reports import round_report
from feature_platform.defs.assets.rounds import candidate_pool, labeling_batch, model, training_set
from feature_platform.defs.ops import rescore_open_tasks_job
from feature_platform.defs.partitions import arrival_days, rounds_partitions

refresh_features_job = dg.define_asset_job(
    "refresh_features",
    selection=dg.AssetSelection.groups("sources", "features")
    - dg.AssetSelection.assets(TRAINING_FEATURES),
    partitions_def=arrival_days,
    description="Reload raw sources and recompute every feature set version.",
)

open_round_job = dg.define_asset_job(
    "open_round",
    selection=dg.AssetSelection.assets(candidate_pool, labeling_batch),
    partitions_def=rounds_partitions,
    description="Score the pool with the champion and queue the round's labeling batch.",
)

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(training_set, model, round_report),
    partitions_def=rounds_partitions,
    # The queued run coordinator (dagster.yaml) runs one retrain per program at a time.
    tags={"feature_platform/retrain": "digits"},
    description="Freeze the round's labels, build the training set, train and register a model.",
)

monitor_drift_job = dg.define_asset_job(
    "monitor_drift",
    selection=dg.AssetSelection.assets(pool_drift),
    description="Compare the unlabeled pool with the champion's training set.",
)

observe_training_features_job = dg.define_asset_job(
    "observe_training_features",
    selection=dg.AssetSelection.assets(TRAINING_FEATURES),
    description="Record which feature set version rounds now train on (after an alias move).",
)

jobs = [
    refresh_features_job,
    observe_training_features_job,
    open_round_job,
    retrain_job,
    monitor_drift_job,
    rescore_open_tasks_job,
]
