"""`feature-platform reproduce <model version>`: rebuild a model's training set and retrain."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="rebuild a registered model's training set from the stores, retrain, compare",
        description="Reads the model version's lineage from MLflow (feature set version, label "
        "snapshot, training-set fingerprint, params), rebuilds the training set, retrains and "
        "checks that fingerprint, metrics and held-out predictions equal the logged ones. "
        "Exits 0 when they do, 1 when they do not.",
    )
    parser.add_argument(
        "model_version", help="'<registered model>/<version>' (e.g. digits-classifier/3) or '3'"
    )
    parser.add_argument(
        "--model-name",
        default="digits-classifier",
        help="registered model when only a version number is given (default: %(default)s)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="platform data folder (default: $FP_HOME or ./.fp_data; URLs from the environment)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from feature_platform.feature_store import FeatureStore
    from feature_platform.learning.reproduce import reproduce
    from feature_platform.learning.tracking import ModelTracker
    from feature_platform.settings import Settings

    settings = Settings.from_env(args.home)
    tracker = ModelTracker(
        settings.mlflow_tracking_uri, settings.mlflow_artifact_dir, args.model_name
    )
    result = reproduce(FeatureStore(settings), tracker, args.model_version)
    print(json.dumps(result.to_json()) if args.json else result.summary())
    return 0 if result.ok else 1
