"""Label snapshots that mix people's answers with machine labels, weighted per source, and
keep counting people only wherever labels are counted."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.errors import InvalidArgumentError
from feature_platform.labeling.aggregation import fit_dawid_skene
from feature_platform.labeling.agreement import agreement_summary
from feature_platform.labeling.machine_labels import FEEDBACK, RULE, MachineLabel
from feature_platform.labeling.metrics import lead_times
from feature_platform.labeling.queue import TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.tracking import ModelTracker
from feature_platform.learning.training import build_training_set
from feature_platform_tests.conftest import register_people


def _vote(sample: str, label: str, source: str = "rule:dark@f1", kind: str = RULE):
    return MachineLabel(sample, label, kind, source, event_id=sample)


def _people(store: FeatureStore, answers: dict[str, str], who: str = "ann") -> None:
    """One person answers one task per sample."""
    register_people(store.engine, "annotator", who)
    specs = [TaskSpec(key, "random", 0.0, "test", "toy@v1") for key in answers]
    tasks = store.queue.create_batch("round-001", specs, ["cat", "dog"], answers_needed=1)
    for task in tasks:
        store.queue.submit(task.id, who, answers[task.sample_key])


def test_the_default_snapshot_uses_people_only_and_says_so(store: FeatureStore) -> None:
    _people(store, {"s1": "cat", "s2": "dog"})
    store.machine_labels.record([_vote("s1", "dog"), _vote("s3", "dog")])
    snapshot = store.labels.create_snapshot()
    assert snapshot.labels.set_index("sample_key")["label"].to_dict() == {"s1": "cat", "s2": "dog"}
    assert snapshot.sources == {"human": 1.0}
    assert snapshot.source_votes == {"human": 2}
    assert snapshot.label_kind_counts == {"human": 2}
    assert store.labels.get(snapshot.id).sources == {"human": 1.0}  # stored, read back


def test_weighted_majority_counts_each_source_by_its_weight(database_url: str, tmp_path) -> None:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    _people(store, {"s1": "cat", "s2": "dog"})
    store.machine_labels.record(
        [_vote("s1", "dog"), _vote("s2", "dog"), _vote("s9", "dog")]
        + [MachineLabel("s1", "dog", FEEDBACK, "feedback:app", "ev-1")]
    )
    light = store.labels.create_snapshot(sources={"human": 1.0, "rule": 0.4, "feedback": 0.4})
    heavy = store.labels.create_snapshot(sources={"human": 1.0, "rule": 0.7, "feedback": 0.4})
    assert light.labels.set_index("sample_key")["label"].to_dict() == {
        "s1": "cat",  # 1.0 against 0.8
        "s2": "dog",
        "s9": "dog",  # no person answered: the rule's label
    }
    assert heavy.labels.set_index("sample_key")["label"].to_dict()["s1"] == "dog"  # 1.1 > 1.0

    kinds = heavy.kinds.set_index("sample_key")
    assert kinds.loc["s1"].tolist() == ["rule", 1]  # a person answered, but not this label
    assert kinds.loc["s2"].tolist() == ["human", 1]
    assert kinds.loc["s9"].tolist() == ["rule", 0]
    assert heavy.sources == {"human": 1.0, "rule": 0.7, "feedback": 0.4}
    assert heavy.method_note.endswith("; majority vote sums the weights")
    assert heavy.source_votes == {"human": 2, "rule": 3, "feedback": 1}
    assert heavy.label_kind_counts == {"human": 1, "rule": 2}
    assert len(heavy.human_labels) == 1
    details = store.labels.details(heavy.id).set_index("sample_key")
    assert details.loc["s9", "n_human_answers"] == 0
    assert details.loc["s1", "n_answers"] == 3  # every vote, people's and machines'

    # One exact source overrides its kind's weight; withdrawn labels vote no more.
    exact = store.labels.create_snapshot(sources={"human": 1.0, "rule:dark@f1": 2.0})
    assert exact.labels.set_index("sample_key")["label"].to_dict()["s1"] == "dog"
    assert exact.sources == {"human": 1.0, "rule:dark@f1": 2.0}
    s9 = store.machine_labels.labels([RULE]).set_index("sample_key").loc["s9", "label_id"]
    store.machine_labels.withdraw([int(s9)], "a person says no")
    after = store.labels.create_snapshot(sources={"human": 1.0, "rule": 0.7})
    assert "s9" not in set(after.labels["sample_key"])


def test_a_reviewer_still_overrides_machine_votes(store: FeatureStore) -> None:
    _people(store, {"s1": "cat"})
    register_people(store.engine, "reviewer", "rita")
    store.machine_labels.record([_vote("s1", "dog")])
    task = store.queue.tasks()[0]
    store.labels.adjudications.decide(task.id, "cat", "rita")
    snapshot = store.labels.create_snapshot(sources={"human": 1.0, "rule": 5.0})
    assert snapshot.labels["label"].tolist() == ["cat"]
    assert snapshot.kinds["label_source_kind"].tolist() == ["human"]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ({"robot": 1.0}, "Unknown label source 'robot'"),
        ({"human": 0.0}, "must be a finite number > 0"),
        ({"human": float("nan")}, "must be a finite number > 0"),
        ({}, "sources must map"),
    ],
)
def test_bad_sources_are_refused_and_no_snapshot_is_written(
    store: FeatureStore, sources: dict, message: str
) -> None:
    _people(store, {"s1": "cat"})
    with pytest.raises(InvalidArgumentError, match=message):
        store.labels.create_snapshot(sources=sources)
    assert store.labels.snapshots().empty


def test_dawid_skene_estimates_each_rule_like_an_annotator(store: FeatureStore) -> None:
    rng = np.random.default_rng(3)
    truth = {f"s{i:03d}": str(rng.choice(["cat", "dog"])) for i in range(120)}
    flip = {"cat": "dog", "dog": "cat"}
    people = {k: (v if rng.random() < 0.9 else flip[v]) for k, v in list(truth.items())[:80]}
    _people(store, people)

    def rule(source: str, accuracy: float) -> list[MachineLabel]:
        return [
            _vote(key, true if rng.random() < accuracy else flip[true], source)
            for key, true in truth.items()
        ]

    good, poor = rule("rule:good@1", 0.9), rule("rule:poor@1", 0.55)
    store.machine_labels.record(good + poor)

    sources = {"human": 1.0, "rule": 1.0}
    accuracy = fit_dawid_skene(store.labels.votes(sources)).annotator_accuracy()
    assert accuracy["rule:good@1"] > 0.8 > 0.7 > accuracy["rule:poor@1"]
    snapshot = store.labels.create_snapshot("dawid_skene", sources=sources)
    assert snapshot.method_used == "dawid_skene"
    assert snapshot.method_note.endswith(
        "label sources human=1, rule=1: each machine source votes as one annotator; "
        "Dawid-Skene counts a weight-w vote as w votes (weighted likelihood)"
    )
    labels = snapshot.labels.set_index("sample_key")["label"]
    assert len(labels) == 120
    right = float((labels == pd.Series(truth)).mean())
    assert right >= 0.9
    assert snapshot.label_kind_counts["human"] <= 80


def test_budgets_metrics_and_agreement_count_people_only(tmp_path) -> None:
    """10 people's labels and 50 rule votes: everything that counts labels sees 10."""
    settings = Settings.under(tmp_path / "fp")
    store = FeatureStore(settings)
    digits.bootstrap(store)
    program = digits.program(batch_size=10, label_budget=15)
    pool = rounds.candidate_pool(store, program, model=None)
    rounds.open_batch(store, program, "round-001", pool, model_version=None)
    oracle = digits.ground_truth_oracle()
    SimulatedAnnotators(oracle, digits.CLASSES, count=1).answer(store.queue, "round-001")
    queued = store.queue.sample_keys()
    others = [k for k in pool["sample_key"] if k not in queued][:50]
    store.machine_labels.record([_vote(k, oracle[k], "rule:oracle@1") for k in others])

    snapshot = store.labels.create_snapshot(note="round-001", sources={"human": 1, "rule": 0.5})
    assert len(snapshot.labels) == 60
    assert len(snapshot.human_labels) == 10
    assert snapshot.label_kind_counts == {"human": 10, "rule": 50}
    assert rounds.labels_so_far(store) == 10
    assert rounds.budget_left(store, program) == 5
    assert agreement_summary(store.queue.answers())["samples"] == 10

    training_set = build_training_set(store, snapshot, "digits@v1")
    tracker = ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir)
    outcome = rounds.run_training_round(store, program, tracker, training_set, "round-001")
    assert outcome.metrics["labels"] == 10.0
    assert outcome.metrics["machine_labels"] == 50.0
    run = tracker.run(outcome.tracked.run_id)
    assert run.data.params["label_sources"] == "human=1.0, rule=0.5"
    assert run.data.params["label_weight_rule"] == "0.5"
    assert run.data.tags["label_votes"] == "human=10, rule=50"
    assert run.data.tags["label_kinds"] == "human=10, rule=50"
    assert run.data.metrics["labels"] == 10.0


def test_snapshots_written_before_sources_existed_still_read(store: FeatureStore) -> None:
    _people(store, {"s1": "cat", "s2": "dog"})
    snapshot = store.labels.create_snapshot()
    with store.engine.begin() as conn:  # as a snapshot written before 0007 looks
        conn.execute(sa.text("DELETE FROM label_snapshot_source_weights"))
        conn.execute(
            sa.text(
                "UPDATE label_snapshot_row_sources SET label_source_kind = NULL, "
                "n_human_answers = NULL"
            )
        )
    old = store.labels.get(snapshot.id)
    assert old.content_hash == snapshot.content_hash
    assert old.sources == {"human": 1.0}
    assert old.source_votes == {"human": 2}
    assert old.label_kind_counts == {"human": 2}
    assert len(old.human_labels) == 2


def test_lead_times_count_labels_people_gave(store: FeatureStore) -> None:
    register_people(store.engine, "annotator", "ann")
    specs = [TaskSpec(key, "random", 0.0, "test", "toy@v1") for key in ("s1", "s2")]
    tasks = {t.sample_key: t for t in store.queue.create_batch("round-001", specs, ["cat", "dog"])}
    store.queue.submit(tasks["s1"].id, "ann", "cat")
    store.machine_labels.record([_vote("s2", "dog")])  # s2's task is still open
    snapshot = store.labels.create_snapshot(sources={"human": 1.0, "rule": 0.5})
    assert set(snapshot.labels["sample_key"]) == {"s1", "s2"}
    lead = lead_times(store.queue, store.labels, {snapshot.id: snapshot.created_at})
    assert lead["sample_key"].tolist() == ["s1"]


def test_labels_snapshot_command_takes_sources(tmp_path, monkeypatch, capsys) -> None:
    from feature_platform.cli import main

    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    for name in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    store = FeatureStore(Settings.from_env())
    _people(store, {"s1": "cat"})
    store.machine_labels.record([_vote("s1", "dog"), _vote("s2", "dog")])
    argv = ["labels", "snapshot", "--source", "human=1", "--source", "rule:dark@f1=0.5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 labels from 1 answers, plus 1 from rule labels" in out
    snapshot = store.labels.latest()
    assert snapshot.sources == {"human": 1.0, "rule:dark@f1": 0.5}
    assert main(["labels", "snapshot", "--source", "rule"]) == 2
    assert "expected KIND=WEIGHT" in capsys.readouterr().err


def test_machine_labels_in_a_class_renamed_since_take_its_new_name(store: FeatureStore) -> None:
    from feature_platform.labeling.label_sets import LabelChange

    _people(store, {"s1": "cat"})
    store.machine_labels.record([_vote("s1", "dog"), _vote("s2", "dog"), _vote("s3", "cat")])
    store.label_sets.evolve(
        "toy", LabelChange.rename("dog", "hound"), initial_classes=["cat", "dog"]
    )
    snapshot = store.labels.create_snapshot(sources={"human": 1.0, "rule": 5.0})
    labels = snapshot.labels.set_index("sample_key")["label"].to_dict()
    assert labels == {"s1": "hound", "s2": "hound", "s3": "cat"}  # the rule outweighs s1's person
    assert snapshot.source_votes["rule"] == 3
