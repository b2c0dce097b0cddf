"""Resources: the stores and MLflow, configured from the environment with embedded defaults.
Each program reads its own stores (`StoreResource.for_program`) and its own registered model
(`MlflowResource.tracker(model_name)`); its settings come from its template (defs/context.py)."""

import functools
from pathlib import Path

import dagster as dg

from feature_platform.feature_store import FeatureStore
from feature_platform.learning.tracking import ModelTracker
from feature_platform.programs.project import ensure_program_database, program_settings
from feature_platform.settings import Settings


@functools.cache
def _store(settings: Settings) -> FeatureStore:
    # One store (engine, caches) per process and location, shared by every step and sensor.
    return FeatureStore(settings)


class StoreResource(dg.ConfigurableResource):
    """Registry, offline/online stores, labeling queue and label store."""

    home: str
    database_url: str
    offline_dir: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "StoreResource":
        return cls(
            home=str(settings.home),
            database_url=settings.database_url,
            offline_dir=str(settings.offline_dir),
        )

    def settings(self) -> Settings:
        embedded = Settings.under(self.home)
        return Settings(
            home=Path(self.home),
            database_url=self.database_url,
            offline_dir=Path(self.offline_dir),
            mlflow_tracking_uri=embedded.mlflow_tracking_uri,
            mlflow_artifact_dir=embedded.mlflow_artifact_dir,
        )

    def get(self) -> FeatureStore:
        return _store(self.settings())

    def for_program(self, name: str) -> FeatureStore:
        """The stores of one program (its own database file or schema, its own folders)."""
        return _program_store(self.settings(), name)


@functools.cache
def _program_store(settings: Settings, name: str) -> FeatureStore:
    ensure_program_database(settings, name)
    return FeatureStore(program_settings(settings, name))


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry (calls mlflow directly, see docs/architecture.md)."""

    tracking_uri: str
    artifact_dir: str

    def tracker(self, model_name: str) -> ModelTracker:
        """The tracker of one program's registered model."""
        return ModelTracker(self.tracking_uri, Path(self.artifact_dir), model_name)


def build_resources(settings: Settings) -> dict[str, object]:
    from feature_platform.defs.io import ParquetIOManager

    return {
        "store": StoreResource.from_settings(settings),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_dir=str(settings.mlflow_artifact_dir),
        ),
        "io_manager": ParquetIOManager(root=str(settings.home / "assets")),
    }
