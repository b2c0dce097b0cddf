"""The active-learning loop in plain Python, for baselines and benchmarks.

It runs exactly the round steps the Dagster assets run (`rounds.py`), including the training
steps and the promotion rule (`rounds.run_training_round`); the pool is scored by the champion,
as in the pipeline. Without an MLflow tracker it keeps models in memory (`MemoryTracker`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning.rounds import (
    budget_left,
    candidate_pool,
    freeze_training_set,
    open_batch,
    round_key,
    run_training_round,
)
from feature_platform.learning.tracking import CHAMPION, TrackedModel
from feature_platform.programs.model import Program


@dataclass(frozen=True)
class RoundResult:
    round: str
    labels: int
    accuracy: float
    strategy: str
    feature_version: str
    promoted: bool = True
    model_version: str = ""


@dataclass
class MemoryTracker:
    """The part of `ModelTracker` the round steps use, kept in memory (no MLflow)."""

    model_name: str = "in-memory"
    models: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, SimpleNamespace] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    def log_model(self, model: Any, *, params, metrics, tags, run_name=None) -> TrackedModel:  # noqa: ANN001
        version = str(len(self.models) + 1)
        run_id = f"memory-run-{version}"
        self.models[version] = model
        data = SimpleNamespace(
            metrics=dict(metrics),
            params={k: str(v) for k, v in params.items()},
            tags={k: str(v) for k, v in tags.items()},
        )
        self.runs[run_id] = SimpleNamespace(data=data, info=SimpleNamespace(run_id=run_id))
        self.tags[version] = {k: str(v) for k, v in tags.items()} | {"run_id": run_id}
        return TrackedModel(self.model_name, version, run_id)

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        self.runs[run_id].data.metrics.update({k: float(v) for k, v in metrics.items()})

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.artifacts.setdefault(run_id, {})[Path(path).name] = Path(path).read_text()

    def set_alias(self, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def by_alias(self, alias: str = CHAMPION) -> TrackedModel | None:
        version = self.aliases.get(alias)
        if version is None:
            return None
        return TrackedModel(self.model_name, version, self.tags[version]["run_id"])

    def load(self, tracked: TrackedModel) -> Any:
        return self.models[tracked.version]

    def run(self, run_id: str) -> SimpleNamespace:
        return self.runs[run_id]

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.tags[version])

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        self.tags[version].update({k: str(v) for k, v in tags.items()})

    def stop_set_predictions(self, run_id: str) -> dict[str, str] | None:
        found = next(iter(self.artifacts.get(run_id, {}).values()), None)
        return json.loads(found) if found is not None else None


def run_loop(
    store: FeatureStore,
    program: Program,
    annotators: SimulatedAnnotators,
    rounds: int,
    tracker: Any | None = None,
) -> list[RoundResult]:
    """Run up to `rounds` rounds (fewer if the label budget runs out or the pool is empty:
    auto-labels can label every sample left)."""
    tracker = tracker if tracker is not None else MemoryTracker(f"{program.name}-in-memory")
    results: list[RoundResult] = []
    for number in range(1, rounds + 1):
        if budget_left(store, program) <= 0:
            break
        name = round_key(number)
        champion = tracker.by_alias(CHAMPION)
        model = tracker.load(champion) if champion else None
        version = (
            tracker.version_tags(champion.version)["feature_set_version"] if champion else None
        )
        pool = candidate_pool(store, program, model, model_feature_version=version)
        if pool.empty:
            break
        open_batch(store, program, name, pool, model_version=champion.label if champion else None)
        annotators.answer(store.queue, name)
        _, training_set = freeze_training_set(store, program, name)
        outcome = run_training_round(store, program, tracker, training_set, name)
        results.append(
            RoundResult(
                name,
                int(outcome.metrics["labels"]),
                outcome.metrics["accuracy"],
                program.strategy,
                training_set.feature_set.id,
                outcome.decision.promote,
                outcome.tracked.label,
            )
        )
    return results
