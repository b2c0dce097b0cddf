"""Auto-labels from the model: a conservative held-out threshold, high-stakes classes and a
share cap respected, people's reviews confirming or withdrawing them and moving the threshold,
and never a machine label counted as a person's."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.commands.init import scaffold
from feature_platform.errors import FeaturePlatformError
from feature_platform.labeling.machine_labels import MODEL, MachineLabel
from feature_platform.labeling.queue import TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import auto_labels, stopping
from feature_platform.learning.auto_labels import (
    REVIEW_STRATEGY,
    AutoLabelRounds,
    calibrate_threshold,
    precision_lower_bound,
    select_auto_labels,
)
from feature_platform.learning.loop import MemoryTracker
from feature_platform.learning.rounds import (
    budget_left,
    candidate_pool,
    labels_so_far,
)
from feature_platform.learning.tracking import ModelTracker
from feature_platform.programs.model import AutoLabelSettings
from feature_platform.programs.project import load_project
from feature_platform.programs.template import ProgramTemplate
from feature_platform_tests.conftest import register_people, run_simulated_round

# -- calibration ------------------------------------------------------------------------------


def test_calibration_takes_the_lowest_threshold_whose_lower_bound_reaches_the_target() -> None:
    # 600 held-out predictions, confidence falling from 1.0; two errors among the top 400
    # (at ranks 350 and 380) and many below. The raw point estimate would accept rank 400
    # (398/400 = 0.995 >= 0.99); the 95 % lower bound does not.
    n = 600
    confidence = np.linspace(1.0, 0.4, n)
    right = np.ones(n, dtype=bool)
    right[[350, 380]] = False
    right[400::3] = False
    predicted = np.array(["a"] * n)
    truth = np.where(right, "a", "b")

    found = calibrate_threshold(confidence, predicted, truth, target=0.99, level=0.95)

    assert found.threshold is not None
    accepted = confidence >= found.threshold
    k, m = int(right[accepted].sum()), int(accepted.sum())
    assert (found.accepted, found.correct) == (m, k)
    assert precision_lower_bound(k, m, 0.95) >= 0.99
    assert found.precision_bound >= 0.99
    # Every lower threshold fails the bound, though the point estimate at 400 passes it.
    for rank in range(m, 420):
        assert precision_lower_bound(int(right[: rank + 1].sum()), rank + 1, 0.95) < 0.99
    assert right[:400].mean() >= 0.99 and m < 400


def test_calibration_refuses_when_no_threshold_can_reach_the_target() -> None:
    # 100 predictions, all right: at 95 % confidence a 0.99 bound needs 299.
    found = calibrate_threshold(
        np.linspace(1.0, 0.5, 100), ["a"] * 100, ["a"] * 100, target=0.99, level=0.95
    )
    assert found.threshold is None
    assert "off:" in found.reason and "299" in found.reason
    assert auto_labels.predictions_needed(0.99, 0.95) == 299


def test_high_stakes_predictions_are_left_out_of_calibration() -> None:
    # The only errors are among confident 'b' predictions: with 'b' high-stakes they do not
    # count against the threshold (they will never be auto-labeled).
    confidence = np.linspace(1.0, 0.5, 800)
    predicted = np.array(["a", "b"] * 400)
    truth = np.array(["a"] * 800)
    assert calibrate_threshold(confidence, predicted, truth, target=0.99).threshold is None
    found = calibrate_threshold(confidence, predicted, truth, target=0.99, high_stakes=["b"])
    assert found.threshold is not None and found.evaluated == 400


def test_selection_respects_high_stakes_threshold_and_cap() -> None:
    pool = pd.DataFrame(
        {
            "sample_key": [str(i) for i in range(10)],
            "predicted": ["0", "1", "2", "1", "0", "2", "1", "0", "2", "0"],
            "confidence": [0.99, 0.999, 0.98, 0.97, 0.5, 0.995, 0.9999, 0.96, 0.7, 0.991],
        }
    )
    # Eligible (>= 0.96, not class 1): '2': 5 (0.995), 2 (0.98); '0': 9 (0.991), 0 (0.99),
    # 7 (0.96). A cap of 4 over two classes: the two most confident of each.
    chosen = select_auto_labels(pool, 0.96, high_stakes=["1"], cap=4)
    assert chosen["sample_key"].tolist() == ["5", "9", "0", "2"]  # most confident first
    assert "1" not in set(chosen["predicted"])
    assert select_auto_labels(pool, 0.96, ["1"], cap=3)["sample_key"].tolist() == ["5", "9"]
    assert select_auto_labels(pool, 0.96, ["1"], cap=1)["sample_key"].tolist() == ["5"]
    assert select_auto_labels(pool, 0.96, ["1"], cap=0).empty
    assert len(auto_labels.eligible_auto_labels(pool, 0.96, ["1"])) == 5


def test_the_threshold_steps_up_on_rejections_and_back_down_on_a_comfortable_margin() -> None:
    settings = AutoLabelSettings(enabled=True, target_precision=0.99, confidence=0.95)
    steps, why = auto_labels.adapt_raise_steps(settings, None, reviewed=10, confirmed=9)
    assert steps == 1 and "9 of 10 new reviews" in why
    previous = _record(raise_steps=1, reviewed=10, confirmed=9)
    # 20 more reviews, all confirmed: no new rejection, but 29/30 bounds precision at ~0.85.
    assert auto_labels.adapt_raise_steps(settings, previous, 30, 29) == (1, "")
    # 670 more, all confirmed: 699/700 bounds it at 0.993 >= 0.99 -> one step back down.
    steps, why = auto_labels.adapt_raise_steps(settings, previous, 700, 699)
    assert steps == 0 and "lowered" in why
    assert auto_labels.adapted_threshold(0.9, 0) == 0.9
    assert auto_labels.adapted_threshold(0.9, 2) == pytest.approx(0.975)


def _record(**values) -> auto_labels.AutoLabelRound:  # noqa: ANN003
    fields = {f: None for f in auto_labels.ROUND_COLUMNS} | {"round": "round-001"}
    return auto_labels.AutoLabelRound(**(fields | values))


# -- the round: real stores -------------------------------------------------------------------

SETTINGS = AutoLabelSettings(
    enabled=True,
    # A reachable target for a small held-out split (a 0.99 bound needs 299 held-out
    # predictions, all right); the mechanics are the same.
    target_precision=0.95,
    confidence=0.9,
    max_share=0.05,
    high_stakes=("0", "8"),
    review_fraction=0.2,
)


@pytest.fixture
def al_store(database_url: str, tmp_path: Path) -> FeatureStore:
    """The digits store on SQLite and (marked `postgres`) on Postgres."""
    settings = dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    store = FeatureStore(settings)
    digits.bootstrap(store)
    return store


def _program(**changes):  # noqa: ANN202
    return digits.program(
        feature_set="digits@v1",
        batch_size=120,
        label_budget=400,
        auto_labels=changes.pop("auto_labels", SETTINGS),
        **changes,
    )


def test_a_round_auto_labels_within_the_cap_never_a_high_stakes_class_and_never_as_people(
    al_store: FeatureStore,
) -> None:
    store, program, tracker = al_store, _program(), MemoryTracker("digits-in-memory")
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    pool_before = len(candidate_pool(store, program, None))
    _, _, outcome = run_simulated_round(store, program, tracker, 1, annotators)

    record = outcome.auto_labels
    assert record is not None and record.status == auto_labels.ON, record.reason
    made = store.machine_labels.labels([MODEL])
    assert len(made) == record.labeled > 0
    assert record.labeled <= math.floor(0.05 * (pool_before - 120)) == record.cap
    assert not set(made["label"]) & {"0", "8"}
    assert (made["confidence"] >= record.threshold).all()
    provenance = made["provenance"].iloc[0]
    assert provenance["model_version"] == "digits-in-memory/1"
    assert provenance["feature_version"] == "digits@v1"
    assert provenance["threshold"] == record.threshold
    assert provenance["holdout_precision_bound"] >= 0.95
    assert set(made["source"]) == {"model:digits-in-memory/1"}
    # MLflow (here its in-memory stand-in) records the round's threshold with the model.
    metrics = tracker.run(outcome.tracked.run_id).data.metrics
    assert metrics["auto_label_threshold"] == record.threshold
    assert metrics["auto_labels"] == record.labeled
    # People only: queue counts, the label budget and the metrics see 120 human labels.
    assert sum(store.queue.counts().values()) == labels_so_far(store) == 120
    assert budget_left(store, program) == 400 - 120
    assert outcome.metrics["labels"] == 120
    spent, _ = stopping.label_budget_rule(
        [stopping.RoundRecord("round-001", int(outcome.metrics["labels"]), 0.9)], 130
    )
    assert not spent
    # Auto-labeled samples are no longer candidates for people.
    assert not set(made["sample_key"]) & set(candidate_pool(store, program, None)["sample_key"])
    # With auto-labels turned off they are not trained on, so people may be asked again.
    off = program.replace(auto_labels=AutoLabelSettings())
    assert set(made["sample_key"]) <= set(candidate_pool(store, off, None)["sample_key"])
    # The next round's snapshot trains on them as `model` labels, counted apart from people's.
    _, _, second = run_simulated_round(store, program, tracker, 2, annotators)
    snapshot = store.labels.get(second.training_set.label_snapshot_id)
    assert snapshot.sources["human"] == snapshot.sources["model"] == 1.0
    kinds = snapshot.kinds.set_index("sample_key")["label_source_kind"]
    unreviewed = set(made["sample_key"]) - store.queue.sample_keys()
    assert unreviewed and (kinds[sorted(unreviewed)] == "model").all()
    assert second.metrics["labels"] == labels_so_far(store) == 240
    assert second.metrics["machine_labels"] == len(unreviewed)
    assert len(second.training_set.frame) == 240 + len(unreviewed)
    # Re-running the step for the same round changes nothing.
    again = auto_labels.auto_label_round(
        store,
        program.pinned("digits@v1"),
        "round-001",
        model_version="digits-in-memory/1",
        feature_version="digits@v1",
        pool=candidate_pool(store, program, outcome.model),
        holdout_proba=np.zeros((0, 10)),
        holdout_truth=[],
    )
    assert again == record


def test_reviews_confirm_or_withdraw_auto_labels_and_move_the_threshold(
    al_store: FeatureStore,
) -> None:
    store, program, tracker = al_store, _program(), MemoryTracker("digits-in-memory")
    truth = digits.ground_truth_oracle()
    annotators = SimulatedAnnotators(truth, digits.CLASSES, count=1)
    run_simulated_round(store, program, tracker, 1, annotators)
    first = store.machine_labels.labels([MODEL])
    # The people disagree with the model on every auto-label (the "truth" they see says so).
    for row in first.itertuples():
        truth[row.sample_key] = "0" if row.label != "0" else "1"

    tasks, _, outcome = run_simulated_round(store, program, tracker, 2, annotators)

    reviews = [t for t in tasks if t.strategy == REVIEW_STRATEGY]
    assert len(reviews) == math.ceil(0.2 * len(first))
    assert len(tasks) == 120  # reviews take their places in the batch
    review = reviews[0]
    label = first.set_index("sample_key").loc[review.sample_key]
    # Blind review: the model's answer is neither said nor offered.
    assert review.reason.startswith(f"review: the model labeled this at p={label.confidence:.3f}")
    assert f"'{label.label}'" not in review.reason and review.context["top_classes"] == []
    # Each review rejected its auto-label: withdrawn (kept, listed as withdrawn), and the
    # person's label is what the snapshot trains on.
    every = store.machine_labels.labels([MODEL], include_withdrawn=True)
    withdrawn = every[every["withdrawn"]]
    assert set(withdrawn["sample_key"]) == {t.sample_key for t in reviews}
    snapshot = store.labels.get(outcome.training_set.label_snapshot_id)
    trained = snapshot.labels.set_index("sample_key")["label"]
    for t in reviews:
        assert trained[t.sample_key] == truth[t.sample_key]
    # Measured precision 0 / n: the threshold is raised above the calibrated one.
    record = outcome.auto_labels
    assert (record.reviewed, record.confirmed) == (len(reviews), 0)
    assert record.measured_upper < 0.95
    assert record.raise_steps == 1
    assert record.threshold == pytest.approx(1 - (1 - record.calibrated_threshold) / 2)
    assert "raised" in record.reason
    assert [r.round for r in AutoLabelRounds(store.engine).all()] == ["round-001", "round-002"]
    # Review answers are people's labels: they count, the auto-labels do not.
    assert labels_so_far(store) == 240


def test_confirmed_reviews_keep_the_auto_labels_and_mlflow_records_the_round(
    digits_store: FeatureStore,
) -> None:
    store, program = digits_store, _program()
    settings = store.settings
    tracker = ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir, "al")
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    run_simulated_round(store, program, tracker, 1, annotators)
    made = store.machine_labels.labels([MODEL])
    truth = digits.ground_truth_oracle()
    tasks, _, outcome = run_simulated_round(store, program, tracker, 2, annotators)
    reviews = {t.sample_key for t in tasks if t.strategy == REVIEW_STRATEGY}
    verdicts = {v.sample_key: v for v in auto_labels.review_verdicts(store)}
    assert set(verdicts) == reviews
    for key in reviews:
        right = made.set_index("sample_key").loc[key, "label"] == truth[key]
        assert verdicts[key].confirmed == right
    assert outcome.auto_labels.confirmed == sum(v.confirmed for v in verdicts.values())
    withdrawn = store.machine_labels.labels([MODEL], include_withdrawn=True)
    assert set(withdrawn.loc[withdrawn["withdrawn"], "sample_key"]) == {
        k for k, v in verdicts.items() if not v.confirmed
    }
    # The round's MLflow run carries its auto-label threshold and measured precision.
    record = outcome.auto_labels
    metrics = tracker.run(outcome.tracked.run_id).data.metrics
    assert metrics["auto_label_threshold"] == pytest.approx(record.threshold)
    assert metrics["auto_label_reviewed"] == record.reviewed == len(reviews)
    assert metrics["auto_label_measured_precision"] == pytest.approx(record.measured_precision)
    assert metrics["labels"] == 240  # people's labels only
    assert metrics["machine_labels"] > 0


def test_a_program_with_auto_labels_off_makes_none(digits_store: FeatureStore) -> None:
    store, tracker = digits_store, MemoryTracker("digits-in-memory")
    program = _program(auto_labels=AutoLabelSettings())
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    _, _, outcome = run_simulated_round(store, program, tracker, 1, annotators)
    assert outcome.auto_labels is None and store.machine_labels.labels().empty


# -- settings ---------------------------------------------------------------------------------


def test_program_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FeaturePlatformError, match=r"high_stakes\[0\]: 'eleven' is not in"):
        digits.program(auto_labels=AutoLabelSettings(enabled=True, high_stakes=("eleven",)))
    with pytest.raises(FeaturePlatformError, match=r"target_precision: expected a number"):
        digits.program(auto_labels={"enabled": True, "target_precision": 1.0})


def test_template_auto_label_errors_carry_their_paths(tmp_path: Path) -> None:
    project = scaffold(tmp_path / "proj", "wine")[0].parent
    path = project / "programs" / "wine.yaml"
    document = yaml.safe_load(path.read_text())
    original = path.read_text()
    document["auto_labels"] = {
        "enabled": "yes",
        "target_precision": 1.5,
        "max_share": -0.1,
        "review_fraction": float("nan"),
        "high_stakes": ["class_0", "class_9"],
        "treshold": 0.9,
    }
    path.write_text(yaml.safe_dump(document))
    found = ProgramTemplate.from_file(path).validate(False)
    errors = {e.path: e.message for e in found if e.path.startswith("auto_labels")}
    assert set(errors) == {
        "auto_labels.enabled",
        "auto_labels.target_precision",
        "auto_labels.max_share",
        "auto_labels.review_fraction",
        "auto_labels.high_stakes[1]",
        "auto_labels.treshold",
    }
    assert "not in the label set" in errors["auto_labels.high_stakes[1]"]
    assert errors["auto_labels.treshold"].startswith("unknown key")

    document["auto_labels"] = {"enabled": True, "high_stakes": ["class_0"], "max_share": 0.3}
    path.write_text(yaml.safe_dump(document))
    (definition,) = load_project(project)
    settings = definition.program.auto_labels
    assert settings.enabled and settings.high_stakes == ("class_0",) and settings.max_share == 0.3
    assert settings.target_precision == 0.99
    assert definition.program.params()["auto_labels_max_share"] == 0.3
    # A template without auto_labels keeps its fingerprint (no new default was added).
    del document["auto_labels"]
    path.write_text(yaml.safe_dump(document))
    path_before = path.with_name("original.yaml")
    path_before.write_text(original)
    before = ProgramTemplate.from_file(path_before).fingerprint()
    assert ProgramTemplate.from_file(path).fingerprint() == before


def test_review_verdicts_are_applied_all_or_nothing(digits_store: FeatureStore) -> None:
    """Every rejected auto-label of a call is withdrawn in one transaction: a failure on the
    second leaves the first standing too, and a re-run withdraws both."""
    store = digits_store
    register_people(store.engine, "annotator", "ann")
    keys = ["10", "11", "12"]
    store.machine_labels.record(
        [
            MachineLabel(k, "3", MODEL, "model:digits/1", k, confidence=0.99, round="round-001")
            for k in keys
        ]
    )
    specs = [
        TaskSpec(k, REVIEW_STRATEGY, 0.99, "review", "digits@v1", "digits/1", top_classes=[])
        for k in keys
    ]
    tasks = store.queue.create_batch("round-002", specs, digits.CLASSES)
    for task, label in zip(tasks, "553", strict=True):  # people reject two, confirm one
        store.queue.submit(task.id, "ann", label)
    inserts = {"n": 0}

    def fail_second(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO MACHINE_LABEL_WITHDRAWALS"):
            inserts["n"] += 1
            if inserts["n"] == 2:
                raise RuntimeError("the disk went away")

    sa.event.listen(sa.Engine, "before_cursor_execute", fail_second)
    try:
        with pytest.raises(RuntimeError, match="disk went away"):
            auto_labels.apply_review_verdicts(store)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", fail_second)
    every = store.machine_labels.labels([MODEL], include_withdrawn=True)
    assert inserts["n"] == 2 and not every["withdrawn"].any()  # the first rolled back too
    assert store.registry.people.audit.entries(action="machine_labels.withdraw").empty

    verdicts = auto_labels.apply_review_verdicts(store)
    assert [(v.sample_key, v.confirmed) for v in verdicts] == [
        ("10", False),
        ("11", False),
        ("12", True),
    ]
    every = store.machine_labels.labels([MODEL], include_withdrawn=True)
    assert every.loc[every["withdrawn"], "sample_key"].tolist() == ["10", "11"]
    assert len(store.registry.people.audit.entries(action="machine_labels.withdraw")) == 2
