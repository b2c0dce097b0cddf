"""Resources: the stores and MLflow, configured from the environment with embedded defaults.
Each program reads its own stores (`StoreResource.for_program`) and its own registered model
(`MlflowResource.tracker(model_name)`); its settings come from its template (defs/context.py).

Dagster records every resource's configuration in its run storage (job snapshots, run
config). A setting that may carry a secret (a database URL with a password, a tracking URI
with credentials) is therefore handed to Dagster as `dg.EnvVar(<variable>)` whenever its value
comes from that variable: Dagster stores the variable's name and reads the value at run time.
A URL with a password that does not come from its variable is refused rather than recorded.
"""

import functools
import os
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.identity import system_actor
from feature_platform.learning.tracking import ModelTracker
from feature_platform.programs.project import open_program_store
from feature_platform.settings import Settings, offline_location


@functools.cache
def _store(settings: Settings) -> FeatureStore:
    # One store (engine, caches) per process and location, shared by every step and sensor;
    # Dagster's assets and sensors act as the platform's system identity (audited as such).
    return FeatureStore(settings, actor=system_actor())


def store_for(settings: Settings) -> FeatureStore:
    """The process's shared store for `settings`, outside a Dagster run (demo, tests)."""
    return _store(settings)


def _has_password(url: str) -> bool:
    try:
        if sa.engine.make_url(url).password:
            return True
    except sa.exc.ArgumentError:
        pass
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def recorded_safely(value: str, variable: str) -> str | dg.EnvVar:
    """`value` as Dagster may record it: `dg.EnvVar(variable)` when it comes from that
    variable, the value itself when it holds no password; refused otherwise."""
    if os.environ.get(variable) == value:
        return dg.EnvVar(variable)
    if _has_password(value):
        raise FeaturePlatformError(
            f"A URL with a password was configured for {variable} without going through that "
            f"environment variable; Dagster would store the password in its run storage. "
            f"Set {variable} instead."
        )
    return value


class StoreResource(dg.ConfigurableResource):
    """Registry, offline/online stores, labeling queue and label store."""

    home: str
    database_url: str
    offline_dir: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "StoreResource":
        """For Dagster: the database URL is recorded as `FP_DATABASE_URL` when it comes from
        there (see the module docstring). Outside a run, use `store_for(settings)`."""
        return cls(
            home=str(settings.home),
            database_url=recorded_safely(settings.database_url, "FP_DATABASE_URL"),
            offline_dir=str(settings.offline_dir),
        )

    def settings(self) -> Settings:
        embedded = Settings.under(self.home)
        return Settings(
            home=Path(self.home),
            database_url=self.database_url,
            offline_dir=offline_location(self.offline_dir),
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
    return open_program_store(settings, name, actor=system_actor())


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
            tracking_uri=recorded_safely(settings.mlflow_tracking_uri, "MLFLOW_TRACKING_URI"),
            artifact_dir=str(settings.mlflow_artifact_dir),
        ),
        "io_manager": ParquetIOManager(root=str(settings.home / "assets")),
    }
