"""Models through MLflow the way the pipeline logs them: promotion by the stated rule with
champion/challenger aliases, the stopping history read back, and `reproduce` rebuilding the
exact training set and metrics (and noticing when the stores no longer give them)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.errors import FeaturePlatformError
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.promotion import champion_metrics_on, decide_promotion, promote
from feature_platform.learning.reproduce import parse_model_version, reproduce
from feature_platform.learning.stopping import (
    StoppingRules,
    history_from_tracker,
    log_stop_set_predictions,
    should_stop,
    stop_set_predictions,
)
from feature_platform.learning.tracking import CHALLENGER, CHAMPION, ModelTracker

pytestmark = pytest.mark.slow  # one MLflow database and three logged rounds (~15 s)


@dataclass
class Logged:
    home: Path
    store: FeatureStore
    tracker: ModelTracker
    program: rounds.Program
    trained: list[rounds.TrainedRound]
    decisions: list


def _tags(trained: rounds.TrainedRound, program: rounds.Program) -> dict[str, str]:
    return {
        "feature_set_version": trained.training_set.feature_set.id,
        "label_snapshot_id": trained.snapshot.id,
        "training_set_fingerprint": trained.training_set.fingerprint,
        "strategy": program.strategy,
        "round": trained.round,
        "dagster_run_id": f"test-run-{trained.round}",
    }


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Logged:
    """Three margin rounds on digits, each model logged, stop-set predictions stored and the
    promotion rule applied, as the Dagster model asset will do."""
    home = tmp_path_factory.mktemp("lifecycle")
    settings = Settings.under(home)
    store = FeatureStore(settings)
    digits.bootstrap(store)
    tracker = ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir)
    program = digits.program(batch_size=20, label_budget=1000, seed=3, model_params={"C": 0.5})
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2)
    trained, decisions, model = [], [], None
    for number in (1, 2, 3):
        name = rounds.round_key(number)
        pool = rounds.candidate_pool(store, program, model)
        rounds.open_batch(store, program, name, pool, model_version=None)
        annotators.answer(store.queue, name)
        result = rounds.retrain(store, program, name)
        tracked = tracker.log_model(
            result.model,
            params=program.params(),
            metrics=result.metrics,
            tags=_tags(result, program),
            run_name=name,
        )
        predictions = stop_set_predictions(
            store,
            program,
            result.model,
            result.training_set.feature_set.id,
            result.snapshot.created_at,
        )
        log_stop_set_predictions(tracker, tracked.run_id, predictions)
        decisions.append(promote(tracker, tracked, tolerance=0.01))
        trained.append(result)
        model = result.model
    return Logged(home, store, tracker, program, trained, decisions)


def test_reproduce_rebuilds_every_round_exactly(logged: Logged) -> None:
    for version, trained in enumerate(logged.trained, start=1):
        result = reproduce(logged.store, logged.tracker, f"digits-classifier/{version}")
        assert result.ok, result.summary()
        assert result.rebuilt_fingerprint == trained.training_set.fingerprint
        assert result.label_snapshot_id == trained.snapshot.id  # not simply the latest one
        assert result.rebuilt_metrics == trained.metrics
        assert result.predictions_match
        assert result.lineage == {
            "strategy": "margin",
            "round": trained.round,
            "dagster_run_id": f"test-run-{trained.round}",
        }
        assert not result.warnings
    assert reproduce(logged.store, logged.tracker, "2").model.version == "2"


def test_reproduce_cli(logged: Logged, capsys, monkeypatch) -> None:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["reproduce", "digits-classifier/3", "--home", str(logged.home)]) == 0
    out = capsys.readouterr().out
    assert "digits-classifier/3" in out and ": reproduced" in out and "identical" in out
    assert main(["reproduce", "1", "--home", str(logged.home), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] and document["logged_fingerprint"] == document["rebuilt_fingerprint"]
    assert main(["reproduce", "7", "--home", str(logged.home)]) == 2
    assert "has no version '7'" in capsys.readouterr().err


def test_reproduce_notices_changed_feature_values(logged: Logged, tmp_path, monkeypatch) -> None:
    """A backfill stamped before the labels changes what the training set would be: the
    rebuild reports it instead of passing silently (on a copy of the stores)."""
    copy = tmp_path / "copy"
    shutil.copytree(logged.home, copy)
    store = FeatureStore(Settings.under(copy))
    settings = Settings.under(copy)
    tracker = ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir)
    fsv = store.registry.get("digits", "v1")
    first = logged.trained[0].snapshot.labels.iloc[0]
    # Stamped after the sample arrived and before it was labeled: the join must now use it.
    stamped = first["labeled_at"] - pd.Timedelta(seconds=1)
    backfill = pd.DataFrame({"sample_id": [int(first["sample_key"])], "event_timestamp": [stamped]})
    backfill[fsv.feature_names] = 0.5
    store.offline.write_snapshot(fsv, backfill)

    result = reproduce(store, tracker, "digits-classifier/1")
    assert not result.ok
    assert any("fingerprint" in m and "changed" in m for m in result.mismatches)
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["reproduce", "digits-classifier/1", "--home", str(copy)]) == 1


def test_reproduce_refuses_versions_it_cannot_read(logged: Logged) -> None:
    with pytest.raises(FeaturePlatformError, match="Cannot read model version 'digits/x'"):
        reproduce(logged.store, logged.tracker, "digits/x")
    with pytest.raises(FeaturePlatformError, match=r"no version '9'.*versions: \['1', '2', '3'\]"):
        reproduce(logged.store, logged.tracker, "9")
    assert parse_model_version("models:/other/12", "digits-classifier") == ("other", "12")


def test_promotion_follows_the_rule_and_moves_the_aliases(logged: Logged) -> None:
    first, *later = logged.decisions
    assert first.promote and first.reason.startswith("first model")
    champion = logged.tracker.by_alias(CHAMPION)
    assert logged.tracker.by_alias(CHALLENGER).version == "3"
    accuracies = [t.metrics["accuracy"] for t in logged.trained]
    # Replay the rule by hand over the logged accuracies; the aliases must agree with it.
    expected_champion = 1
    for version, accuracy in enumerate(accuracies[1:], start=2):
        if accuracy >= accuracies[expected_champion - 1] - 0.01:
            expected_champion = version
    assert champion.version == str(expected_champion)
    tags = logged.tracker.version_tags("2")
    assert tags["promotion"] == ("promoted" if later[0].promote else "rejected")
    assert tags["promotion_reason"] == later[0].reason


def test_a_worse_challenger_keeps_the_champion(logged: Logged) -> None:
    # Another registered model in the same tracking database (a new database costs ~6 s).
    tracker = ModelTracker(logged.tracker.tracking_uri, logged.tracker.artifact_dir, "toy")
    model = logged.trained[0].model
    good = tracker.log_model(model, params={}, metrics={"accuracy": 0.90}, tags={})
    assert promote(tracker, good).promote
    worse = tracker.log_model(model, params={}, metrics={"accuracy": 0.88}, tags={})
    decision = promote(tracker, worse, tolerance=0.01)
    assert not decision.promote
    assert decision.reason == (
        "kept the champion: challenger accuracy 0.8800 < champion 0.9000 - tolerance 0.01 = 0.8900"
    )
    assert tracker.by_alias(CHAMPION).version == good.version
    assert tracker.by_alias(CHALLENGER).version == worse.version
    within = tracker.log_model(model, params={}, metrics={"accuracy": 0.895}, tags={})
    assert promote(tracker, within, tolerance=0.01).promote
    assert tracker.by_alias(CHAMPION).version == within.version


def test_decide_promotion_rule() -> None:
    assert decide_promotion({"accuracy": 0.5}, None).promote
    assert decide_promotion({"accuracy": 0.89}, {"accuracy": 0.90}, tolerance=0.01).promote
    assert not decide_promotion({"accuracy": 0.889}, {"accuracy": 0.90}, tolerance=0.01).promote
    assert decide_promotion({"macro_f1": 0.7}, {"macro_f1": 0.6}, metric="macro_f1").promote
    with pytest.raises(FeaturePlatformError, match="no 'accuracy' metric"):
        decide_promotion({"f1": 0.5}, None)
    with pytest.raises(FeaturePlatformError, match="tolerance must be >= 0"):
        decide_promotion({"accuracy": 0.5}, None, tolerance=-0.1)


def test_champion_rescored_on_the_challengers_holdout(logged: Logged) -> None:
    as_of = logged.trained[-1].snapshot.created_at
    rescored = champion_metrics_on(logged.store, logged.program, logged.tracker, as_of)
    champion = logged.tracker.by_alias(CHAMPION)
    logged_metrics = logged.tracker.run(champion.run_id).data.metrics
    # Every sample has arrived in this store, so the re-score equals the logged score.
    assert rescored["accuracy"] == pytest.approx(logged_metrics["accuracy"])
    assert rescored["eval_samples"] == logged_metrics["eval_samples"]


def test_stopping_history_comes_back_from_mlflow(logged: Logged) -> None:
    history = history_from_tracker(logged.tracker)
    assert [r.round for r in history] == ["round-001", "round-002", "round-003"]
    assert [r.labels for r in history] == [20, 40, 60]
    assert [r.accuracy for r in history] == [t.metrics["accuracy"] for t in logged.trained]
    assert all(len(r.stop_set_predictions) == 360 for r in history)  # the held-out split
    decision = should_stop(history, StoppingRules.from_program(logged.program))
    assert not decision.stop and "60 of 1000 labels used" in decision.reason
    reached = should_stop(history, StoppingRules(target_accuracy=history[-1].accuracy))
    assert reached.stop and reached.rule == "target_accuracy"
