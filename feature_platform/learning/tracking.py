"""MLflow tracking: every model is a run (params, metrics, lineage tags) and a registered
model version; the `champion` alias names the model that scores the candidate pool."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from feature_platform.errors import FeaturePlatformError

CHAMPION = "champion"
CHALLENGER = "challenger"
REFERENCE_CURVE_TAG = "reference_curve"
# Spelled out so MLflow does not spend seconds inferring the environment on every log.
_PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "numpy==2.4.6"]
_lock = threading.Lock()  # mlflow's tracking URI is process-global

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
logging.getLogger("mlflow").setLevel(logging.WARNING)


@dataclass(frozen=True)
class TrackedModel:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        """How tasks and reports name it: `<registered model>/<version>`."""
        return f"{self.name}/{self.version}"


_prepared: set[str] = set()
_prepare_lock = threading.Lock()


def _client(tracking_uri: str) -> MlflowClient:
    """An MLflow client. MLflow creates or upgrades a SQLite tracking database when a client
    first opens it; two processes (or the daemon's sensor threads) doing that at once leave it
    half-migrated ('duplicate column name: step') and every later call fails. So the first
    client of each process opens it under a file lock, and uses it once, before anyone else."""
    if not tracking_uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with _prepare_lock:
        if tracking_uri in _prepared:
            return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.init.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        _prepared.add(tracking_uri)
        return client


class ModelTracker:
    def __init__(
        self,
        tracking_uri: str,
        artifact_dir: Path,
        model_name: str = "digits-classifier",
        experiment: str = "feature_platform",
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_dir = Path(artifact_dir)
        self.model_name = model_name
        self.experiment = experiment
        self.client = _client(tracking_uri)

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(
            self.experiment, artifact_location=self.artifact_dir.resolve().as_uri()
        )

    def log_model(
        self,
        model: Any,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        run_name: str | None = None,
    ) -> TrackedModel:
        """Log one trained model as a run and register it as a new model version."""
        with _lock:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            experiment_id = self._experiment_id()
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                mlflow.log_params({k: str(v) for k, v in params.items()})
                mlflow.log_metrics(dict(metrics))
                mlflow.set_tags({k: str(v) for k, v in tags.items()})
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    registered_model_name=self.model_name,
                    pip_requirements=_PIP_REQUIREMENTS,
                )
                version = str(info.registered_model_version)
                self.client.set_model_version_tag(
                    self.model_name, version, "run_id", run.info.run_id
                )
                for key, value in tags.items():
                    self.client.set_model_version_tag(self.model_name, version, key, str(value))
            return TrackedModel(self.model_name, version, run.info.run_id)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Add metrics to a finished run (e.g. the round's auto-label threshold)."""
        with _lock:
            for key, value in metrics.items():
                self.client.log_metric(run_id, key, float(value))

    def log_artifact(self, run_id: str, path: Path) -> None:
        with _lock:
            self.client.log_artifact(run_id, str(path))

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def by_alias(self, alias: str = CHAMPION) -> TrackedModel | None:
        try:
            found = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return TrackedModel(self.model_name, str(found.version), found.run_id)

    def load(self, tracked: TrackedModel) -> Any:
        with _lock:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            return mlflow.sklearn.load_model(tracked.uri)

    def run(self, run_id: str):
        return self.client.get_run(run_id)

    def get(self, version: str) -> TrackedModel:
        """A registered version of this model, or an error naming the versions that exist."""
        try:
            found = self.client.get_model_version(self.model_name, str(version))
        except MlflowException as exc:
            known = sorted(
                (
                    str(v.version)
                    for v in self.client.search_model_versions(f"name='{self.model_name}'")
                ),
                key=int,
            )
            raise FeaturePlatformError(
                f"Registered model {self.model_name!r} has no version {version!r} in "
                f"{self.tracking_uri}; versions: {known or 'none'}."
            ) from exc
        return TrackedModel(self.model_name, str(found.version), found.run_id)

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.model_name, str(version)).tags)

    def tag_version(self, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, str(value))

    # -- reference curves ------------------------------------------------------------------
    def log_reference_curve(self, name: str, points: list[tuple[int, float]]) -> str:
        """Log a reference learning curve (e.g. random selection on the same seed) as a run
        tagged `reference_curve=<name>`, accuracy stepped by label count. Returns the run id."""
        with _lock:
            run = self.client.create_run(
                self._experiment_id(),
                run_name=f"reference-{name}",
                tags={REFERENCE_CURVE_TAG: name},
            )
            for labels, accuracy in points:
                self.client.log_metric(run.info.run_id, "accuracy", accuracy, step=int(labels))
            self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def reference_curve(self, name: str) -> list[tuple[float, float]]:
        """The newest reference curve of that name, or [] if none was logged."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{REFERENCE_CURVE_TAG} = '{name}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return []
        history = self.client.get_metric_history(runs[0].info.run_id, "accuracy")
        return sorted((float(m.step), float(m.value)) for m in history)

    def registration_times(self) -> dict[str, datetime]:
        """When the first model trained on each label snapshot was registered
        (label snapshot id -> registration time), for labeling lead times."""
        first: dict[str, datetime] = {}
        for version in self.client.search_model_versions(f"name='{self.model_name}'"):
            snapshot_id = version.tags.get("label_snapshot_id")
            if not snapshot_id:
                continue
            when = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
            first[snapshot_id] = min(when, first.get(snapshot_id, when))
        return first
