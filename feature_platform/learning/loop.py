"""The active-learning loop in plain Python, for baselines and benchmarks.

It runs exactly the round steps the Dagster assets run (`rounds.py`), without an
orchestrator or MLflow, keeping the champion model in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning.rounds import (
    Program,
    budget_left,
    candidate_pool,
    open_batch,
    retrain,
    round_key,
)


@dataclass(frozen=True)
class RoundResult:
    round: str
    labels: int
    accuracy: float
    strategy: str
    feature_version: str


def run_loop(
    store: FeatureStore,
    program: Program,
    annotators: SimulatedAnnotators,
    rounds: int,
) -> list[RoundResult]:
    """Run up to `rounds` rounds (fewer if the label budget runs out)."""
    results: list[RoundResult] = []
    model = None
    for number in range(1, rounds + 1):
        if budget_left(store, program) <= 0:
            break
        name = round_key(number)
        pool = candidate_pool(store, program, model)
        open_batch(
            store, program, name, pool, model_version=f"in-memory/{number - 1}" if model else None
        )
        annotators.answer(store.queue, name)
        trained = retrain(store, program, name)
        model = trained.model
        results.append(
            RoundResult(
                name,
                int(trained.metrics["labels"]),
                trained.metrics["accuracy"],
                program.strategy,
                trained.training_set.feature_set.id,
            )
        )
    return results
