"""One core function runs a round's training steps for the Dagster asset and the plain loop;
a round reads one feature set version from its batch to its model; the core knows no data set."""

from __future__ import annotations

import ast
from pathlib import Path

import feature_platform
from feature_platform.catalog import digits
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.loop import MemoryTracker, run_loop
from feature_platform.learning.tracking import CHAMPION

CORE = ("store", "labeling", "learning", "quality", "governance", "programs")


def _annotators() -> SimulatedAnnotators:
    return SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2, seed=1)


def test_no_core_module_imports_the_catalog_or_dagster() -> None:
    root = Path(feature_platform.__file__).parent
    offenders = []
    for package in CORE:
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if name.startswith(("feature_platform.catalog", "dagster")):
                        offenders.append(f"{path.relative_to(root)} imports {name}")
    assert offenders == []


def test_the_plain_loop_applies_the_promotion_rule_and_scores_with_the_champion(
    digits_store,
) -> None:
    tracker = MemoryTracker("digits-test")
    # A tolerance of 0 with a tiny held-out gain needed: some challengers are rejected.
    program = digits.program(batch_size=10, label_budget=60, seed=4, promotion_tolerance=0.0)
    results = run_loop(digits_store, program, _annotators(), rounds=6, tracker=tracker)
    assert len(results) == 6
    decisions = [tracker.version_tags(str(v))["promotion"] for v in range(1, 7)]
    assert decisions[0] == "promoted"
    assert [r.promoted for r in results] == [d == "promoted" for d in decisions]
    # Each round's batch was scored by the champion of the moment, by name.
    champion = tracker.by_alias(CHAMPION)
    assert champion is not None and tracker.version_tags(champion.version)["promotion"] == (
        "promoted"
    )
    scored_by = {t.model_version for t in digits_store.queue.tasks(round_key="round-006")}
    assert scored_by <= {f"digits-test/{v}" for v in range(1, 6)}
    # Every model carries the program and stop-set predictions, as the asset logs them.
    run = tracker.run(champion.run_id)
    assert run.data.tags["program"] == "digits" and run.data.params["strategy"] == "margin"
    assert tracker.stop_set_predictions(champion.run_id)


def test_an_alias_moved_mid_round_does_not_split_the_round(digits_store) -> None:
    program = digits.program(batch_size=10, seed=2)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    assert set(pool[rounds.FEATURE_VERSION]) == {"digits@v1"}
    tasks = rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    assert {t.feature_version for t in tasks} == {"digits@v1"}
    digits_store.set_alias("digits", "training", "v2")  # moved while annotators work
    _annotators().answer(digits_store.queue, "round-001")
    _, training_set = rounds.freeze_training_set(digits_store, program, "round-001")
    assert training_set.feature_set.id == "digits@v1"
    outcome = rounds.run_training_round(
        digits_store, program, MemoryTracker("m"), training_set, "round-001"
    )
    assert outcome.tracked.version == "1" and outcome.decision.promote
    # The next round opens on the version the alias points at now.
    pool = rounds.candidate_pool(
        digits_store, program, outcome.model, model_feature_version="digits@v1"
    )
    assert set(pool[rounds.FEATURE_VERSION]) == {"digits@v2"}
    assert pool["confidence"].notna().all()


def test_the_plain_loop_stops_when_the_pool_is_empty(digits_store) -> None:  # noqa: ANN001
    # A budget larger than the pool: once every sample is labeled, the loop ends (before,
    # opening the next batch failed). Auto-labels can empty the pool the same way.
    pool = len(rounds.candidate_pool(digits_store, digits.program(feature_set="digits@v1"), None))
    program = digits.program(feature_set="digits@v1", batch_size=pool // 2 + 1, label_budget=2000)
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    results = run_loop(digits_store, program, annotators, rounds=5)
    assert [r.labels for r in results] == [pool // 2 + 1, pool]
