"""Resources: the stores and MLflow, configured from the environment with embedded defaults,
and the labeling program's settings."""

import functools
import os
from pathlib import Path

import dagster as dg

from feature_platform.feature_store import FeatureStore
from feature_platform.learning.rounds import Program
from feature_platform.learning.stopping import StoppingRules
from feature_platform.learning.tracking import ModelTracker
from feature_platform.settings import Settings, offline_location


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
            offline_dir=offline_location(self.offline_dir),
            mlflow_tracking_uri=embedded.mlflow_tracking_uri,
            mlflow_artifact_dir=embedded.mlflow_artifact_dir,
        )

    def get(self) -> FeatureStore:
        return _store(self.settings())


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry (calls mlflow directly, see DESIGN.md)."""

    tracking_uri: str
    artifact_dir: str
    model_name: str = "digits-classifier"

    def tracker(self) -> ModelTracker:
        return ModelTracker(self.tracking_uri, Path(self.artifact_dir), self.model_name)


class ProgramResource(dg.ConfigurableResource):
    """The labeling program: feature set, query strategy, batch size, budget, overlap, seed."""

    feature_set: str = "digits@training"
    strategy: str = "margin"
    batch_size: int = 20
    label_budget: int = 200
    answers_per_task: int = 1
    seed: int = 0
    # How the first round picks without a model: "random" or "kmeans" (needs features).
    cold_start: str = "random"
    # Promotion: a challenger becomes champion unless it is this much less accurate.
    promotion_tolerance: float = 0.01
    # Stopping rules besides the budget (None switches a rule off).
    target_accuracy: float | None = None
    kappa_threshold: float | None = 0.99
    kappa_window: int = 3
    plateau_patience: int | None = None

    @classmethod
    def from_env(cls) -> "ProgramResource":
        env = os.environ.get
        return cls(
            feature_set=env("FP_FEATURE_SET", "digits@training"),
            strategy=env("FP_STRATEGY", "margin"),
            batch_size=int(env("FP_BATCH_SIZE", "20")),
            label_budget=int(env("FP_LABEL_BUDGET", "200")),
            answers_per_task=int(env("FP_ANSWERS_PER_TASK", "1")),
            seed=int(env("FP_SEED", "0")),
            cold_start=env("FP_COLD_START", "random"),
            promotion_tolerance=float(env("FP_PROMOTION_TOLERANCE", "0.01")),
            target_accuracy=float(env("FP_TARGET_ACCURACY")) if env("FP_TARGET_ACCURACY") else None,
        )

    def stopping_rules(self) -> StoppingRules:
        return StoppingRules(
            label_budget=self.label_budget,
            target_accuracy=self.target_accuracy,
            kappa_threshold=self.kappa_threshold,
            kappa_window=self.kappa_window,
            plateau_patience=self.plateau_patience,
        )

    def program(self) -> Program:
        return Program(
            feature_set=self.feature_set,
            strategy=self.strategy,
            batch_size=self.batch_size,
            label_budget=self.label_budget,
            answers_per_task=self.answers_per_task,
            seed=self.seed,
            strategy_options={"cold_start": self.cold_start},
        )


def build_resources(settings: Settings, program: ProgramResource) -> dict[str, object]:
    from feature_platform.defs.io import ParquetIOManager

    return {
        "store": StoreResource.from_settings(settings),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_dir=str(settings.mlflow_artifact_dir),
        ),
        "program": program,
        "io_manager": ParquetIOManager(root=str(settings.home / "assets")),
    }
