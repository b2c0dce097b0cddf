"""Label sets that evolve without breaking the past: one test per kind of change (add, rename,
merge, split) on a copy of stores where a digits model was trained, logged to MLflow and left
with an open round; each shows labels mapped forward in a new snapshot (or, for a split, the
samples re-queued for relabeling with the reason) and the model trained before the change
reproducing identically. Invalid changes are refused with nothing written."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.cli import main
from feature_platform.errors import InvalidAnswerError, InvalidArgumentError
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.roles import AnnotatorRegistry, PermissionDeniedError
from feature_platform.labeling.label_sets import LabelChange, LabelSetChangeError
from feature_platform.labeling.machine_labels import MachineLabel, machine_labels
from feature_platform.labeling.queue import PENDING, RESOLVED, TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.promotion import champion_metrics_on
from feature_platform.learning.reproduce import reproduce
from feature_platform.learning.tracking import CHAMPION, ModelTracker

pytestmark = pytest.mark.slow  # one MLflow database and a logged round (~10 s)

TRUTH = digits.ground_truth_oracle()


@dataclass
class Trained:
    home: Path
    result: rounds.TrainedRound
    program: rounds.Program


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """Round 1 of digits answered, frozen, trained and logged as digits-classifier/1; round 2's
    batch opened (its tasks pending); a lead who may change the label set."""
    home = tmp_path_factory.mktemp("label_sets")
    settings = Settings.under(home)
    store = FeatureStore(settings)
    digits.bootstrap(store)
    AnnotatorRegistry(store.engine).add("lena", "lead", actor="platform")
    AnnotatorRegistry(store.engine).add("w0", "annotator", actor="platform")
    tracker = ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir)
    program = digits.program(batch_size=40, label_budget=1000, seed=1)
    pool = rounds.candidate_pool(store, program, None)
    rounds.open_batch(store, program, rounds.round_key(1), pool, model_version=None)
    SimulatedAnnotators(TRUTH, digits.CLASSES, count=1).answer(store.queue, rounds.round_key(1))
    result = rounds.retrain(store, program, rounds.round_key(1))
    tracker.log_model(
        result.model,
        params=program.params(),
        metrics=result.metrics,
        tags={
            "feature_set_version": result.training_set.feature_set.id,
            "label_snapshot_id": result.snapshot.id,
            "training_set_fingerprint": result.training_set.fingerprint,
            "strategy": program.strategy,
            "round": result.round,
            "dagster_run_id": "test-run",
        },
        run_name=result.round,
    )
    pool = rounds.candidate_pool(store, program, result.model)
    rounds.open_batch(store, program, rounds.round_key(2), pool, model_version="1")
    store.engine.dispose()
    return Trained(home, result, program)


@dataclass
class Copy:
    home: Path
    store: FeatureStore
    tracker: ModelTracker


@pytest.fixture
def copy(trained: Trained, tmp_path: Path) -> Copy:
    home = tmp_path / "copy"
    shutil.copytree(trained.home, home)
    settings = Settings.under(home)
    return Copy(
        home,
        FeatureStore(settings),
        ModelTracker(settings.mlflow_tracking_uri, settings.mlflow_artifact_dir),
    )


def _labels(snapshot) -> dict[str, str]:  # noqa: ANN001
    return dict(zip(snapshot.labels["sample_key"], snapshot.labels["label"], strict=True))


def _assert_old_model_reproduces(copy: Copy, trained: Trained) -> None:
    """The model trained before the change rebuilds the same training set and metrics from
    its snapshot, which the change left as it was."""
    before = trained.result.snapshot
    again = copy.store.labels.get(before.id)
    pd.testing.assert_frame_equal(again.labels, before.labels)
    assert again.label_set_version == 1
    result = reproduce(copy.store, copy.tracker, "digits-classifier/1")
    assert result.ok, result.summary()
    assert result.rebuilt_fingerprint == trained.result.training_set.fingerprint
    assert result.rebuilt_metrics == trained.result.metrics


def _evolve(copy: Copy, trained: Trained, change: LabelChange):  # noqa: ANN202
    return copy.store.label_sets.evolve(
        "digits", change, initial_classes=trained.program.classes, actor="lena"
    )


def test_adding_a_class_keeps_every_label_and_offers_the_class(
    copy: Copy, trained: Trained
) -> None:
    evolution = _evolve(copy, trained, LabelChange.add("not-a-digit"))
    made = evolution.version
    assert (made.version, made.classes) == (2, (*digits.CLASSES, "not-a-digit"))
    assert [v.version for v in copy.store.label_sets.versions()] == [1, 2]
    open_tasks = copy.store.queue.tasks(round_key=rounds.round_key(2))
    assert {t.id for t in open_tasks} <= set(evolution.remapped_tasks)
    assert all(t.classes[-1] == "not-a-digit" and t.label_set_version == 2 for t in open_tasks)
    assert not evolution.relabel_tasks
    [task] = copy.store.queue.lease("w0", limit=1, round_key=rounds.round_key(2))
    copy.store.queue.submit(task.id, "w0", "not-a-digit")
    assert copy.store.queue.answers(rounds.round_key(2))["label_set_version"].tolist() == [2]

    snapshot = copy.store.labels.create_snapshot(note="after add")
    assert snapshot.label_set_version == 2
    assert _labels(snapshot) == {**_labels(trained.result.snapshot), task.sample_key: "not-a-digit"}
    # A program now runs with the new classes: the next batch offers them.
    program = rounds.with_current_labels(copy.store, trained.program)
    assert program.classes[-1] == "not-a-digit"
    pool = rounds.candidate_pool(copy.store, trained.program, None)
    batch = rounds.open_batch(copy.store, trained.program, rounds.round_key(3), pool, None)
    assert batch and all(t.classes == list(made.classes) for t in batch)
    assert {t.label_set_version for t in batch} == {2}
    # A batch with the classes of before is refused (it would offer a retired set).
    with pytest.raises(InvalidArgumentError, match="not the label set's"):
        copy.store.queue.create_batch(
            "round-009", [TaskSpec("0", "margin", 0.5, "r", "d@v1")], digits.CLASSES
        )
    _assert_old_model_reproduces(copy, trained)


def test_renaming_maps_labels_forward_and_a_leased_task_takes_the_new_name(
    copy: Copy, trained: Trained
) -> None:
    queue = copy.store.queue
    [leased] = queue.lease("w0", limit=1, round_key=rounds.round_key(2))
    evolution = _evolve(copy, trained, LabelChange.rename("7", "seven"))
    assert evolution.version.classes == tuple("seven" if c == "7" else c for c in digits.CLASSES)
    # The task leased before the change takes the new name; the old one is refused, saying why.
    with pytest.raises(InvalidAnswerError, match="class 7 was renamed to seven.*answer 'seven'"):
        queue.submit(leased.id, "w0", "7")
    queue.submit(leased.id, "w0", "seven")

    before = _labels(trained.result.snapshot)
    assert "7" in before.values()
    snapshot = copy.store.labels.create_snapshot(note="after rename")
    assert snapshot.label_set_version == 2
    mapped = {k: "seven" if v == "7" else v for k, v in before.items()}
    assert _labels(snapshot) == {**mapped, leased.sample_key: "seven"}
    assert "7" not in set(snapshot.labels["label"])
    _assert_old_model_reproduces(copy, trained)

    # A model trained after the change is evaluated in the new classes (the held-out truth is
    # mapped forward) and reproduces too.
    training_set = rounds.build_training_set(copy.store, snapshot, trained.program.feature_set)
    program = rounds.with_current_labels(copy.store, trained.program)
    _, y = rounds.holdout(copy.store, program, training_set, snapshot.created_at)
    assert "seven" in set(y) and "7" not in set(y)
    model, metrics = rounds.train_and_evaluate(
        copy.store, program, training_set, snapshot.created_at
    )
    assert metrics["accuracy"] > 0.5
    copy.tracker.log_model(
        model,
        params=program.params(),
        metrics=metrics,
        tags={
            "feature_set_version": training_set.feature_set.id,
            "label_snapshot_id": snapshot.id,
            "training_set_fingerprint": training_set.fingerprint,
        },
        run_name="after-rename",
    )
    result = reproduce(copy.store, copy.tracker, "digits-classifier/2")
    assert result.ok, result.summary()
    # The champion trained before the rename is judged in the new classes too: its '7' answers
    # no longer count, so a challenger that says 'seven' is not held back by stale labels.
    copy.tracker.set_alias(CHAMPION, "1")
    as_of = snapshot.created_at
    old_labels = champion_metrics_on(copy.store, program, copy.tracker, as_of)
    new_labels = champion_metrics_on(copy.store, program, copy.tracker, as_of, label_set_version=2)
    assert old_labels["accuracy"] == trained.result.metrics["accuracy"]
    assert new_labels["accuracy"] < old_labels["accuracy"]


def test_merging_maps_both_classes_to_one(copy: Copy, trained: Trained) -> None:
    evolution = _evolve(copy, trained, LabelChange.merge(["3", "8"], "3-or-8"))
    classes = evolution.version.classes
    assert "3" not in classes and "8" not in classes and classes[3] == "3-or-8"
    assert len(classes) == 9
    assert evolution.version.mapping["3"] == ("3-or-8",) == evolution.version.mapping["8"]
    pending = copy.store.queue.tasks(round_key=rounds.round_key(2), state=PENDING)
    assert all(t.classes == list(classes) for t in pending)

    before = _labels(trained.result.snapshot)
    assert {"3", "8"} <= set(before.values())
    snapshot = copy.store.labels.create_snapshot(note="after merge")
    merged = {k: "3-or-8" if v in ("3", "8") else v for k, v in before.items()}
    assert _labels(snapshot) == merged
    _assert_old_model_reproduces(copy, trained)


def test_machine_labels_follow_label_set_changes_like_answers(copy: Copy, trained: Trained) -> None:
    """A rule's votes recorded before a rename or merge are mapped forward in later
    snapshots, as people's answers are; one recorded after it is taken as it is; a row from
    before machine labels had versions counts only while its class is in force."""
    store = copy.store

    def vote(key: str, label: str) -> MachineLabel:
        return MachineLabel(key, label, "rule", "rule:dark@abc", f"{key}:{label}")

    store.machine_labels.record([vote("m1", "7"), vote("m2", "3"), vote("m4", "5")])
    store.machine_labels.record([vote("m5", "7")])
    with store.engine.begin() as conn:  # as written before label set versions were kept
        conn.execute(
            sa.update(machine_labels)
            .where(machine_labels.c.sample_key.in_(["m4", "m5"]))
            .values(label_set_version=None)
        )
    _evolve(copy, trained, LabelChange.rename("7", "seven"))
    store.machine_labels.record([vote("m3", "seven")])
    stored = store.machine_labels.labels().set_index("sample_key")["label_set_version"]
    assert (stored["m1"], stored["m3"]) == (1, 2) and pd.isna(stored["m4"])

    def machine_labels_in(snapshot) -> dict[str, str]:  # noqa: ANN001
        return {k: v for k, v in _labels(snapshot).items() if k.startswith("m")}

    sources = {"human": 1.0, "rule": 1.0}
    after_rename = store.labels.create_snapshot(sources=sources)
    assert machine_labels_in(after_rename) == {"m1": "seven", "m2": "3", "m3": "seven", "m4": "5"}
    _evolve(copy, trained, LabelChange.merge(["3", "8"], "3-or-8"))
    after_merge = store.labels.create_snapshot(sources=sources)
    assert machine_labels_in(after_merge) == {
        "m1": "seven",
        "m2": "3-or-8",
        "m3": "seven",
        "m4": "5",
    }


def test_splitting_requeues_the_split_class_for_relabeling(
    copy: Copy, trained: Trained, monkeypatch, capsys
) -> None:
    before = _labels(trained.result.snapshot)
    sevens = sorted((k for k, v in before.items() if v == "7"), key=int)
    assert sevens
    # A reviewer decided one more sample is a 7 (its answer said otherwise): re-queued too,
    # and its earlier answer does not outvote the relabel.
    decided = next(k for k, v in before.items() if v != "7")
    [task] = [t for t in copy.store.queue.tasks(rounds.round_key(1)) if t.sample_key == decided]
    copy.store.labels.adjudications.decide(task.id, "7", "lena", "a 7 after all")
    sevens = sorted([*sevens, decided], key=int)
    evolution = _evolve(copy, trained, LabelChange.split("7", ["7", "7-crossed"]))
    assert evolution.version.classes[7:9] == ("7", "7-crossed")
    relabel = evolution.relabel_tasks
    assert sorted(t.sample_key for t in relabel) == sorted(sevens)
    shown_before = {
        t.sample_key: t.context
        for t in copy.store.queue.tasks(rounds.round_key(1))
        if t.sample_key in sevens
    }
    for task in relabel:
        assert task.reason == "class 7 was split into 7 and 7-crossed"
        assert task.context["features_shown_version"]
        # What was shown, from which version, with its column tags (so it is redacted alike).
        for key in ("features_shown", "features_shown_version", "column_tags"):
            assert task.context.get(key) == shown_before[task.sample_key].get(key), key
        assert task.classes == ["7", "7-crossed"] and task.state == PENDING
        assert task.round == "relabel-v2" and task.strategy == "relabel"
    # Asked before the open round's tasks.
    first = copy.store.queue.lease("w0", limit=1)
    assert first[0].round == "relabel-v2"
    copy.store.queue.release(first[0].id, "w0")

    # Until relabeled, those samples leave the labels (an old '7' may be either class now).
    snapshot = copy.store.labels.create_snapshot(note="after split")
    assert snapshot.label_set_version == 2
    assert _labels(snapshot) == {k: v for k, v in before.items() if k not in sevens}
    # Relabeled (odd keys crossed), they come back in the new classes; only those are allowed.
    with pytest.raises(InvalidAnswerError, match="not one of its classes"):
        copy.store.queue.submit(relabel[0].id, "w0", "1")
    answers = {k: "7-crossed" if int(k) % 2 else "7" for k in sevens}
    annotators = SimulatedAnnotators(answers, ["7", "7-crossed"], count=1)
    assert annotators.answer(copy.store.queue, "relabel-v2") == len(sevens)
    relabeled = copy.store.labels.create_snapshot(note="relabeled")
    assert _labels(relabeled) == {**before, **answers}
    assert all(t.state == RESOLVED for t in copy.store.queue.tasks(round_key="relabel-v2"))
    _assert_old_model_reproduces(copy, trained)

    # `feature-platform reproduce` of the model trained before the split.
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["reproduce", "digits-classifier/1", "--home", str(copy.home)]) == 0
    assert ": reproduced" in capsys.readouterr().out


def test_invalid_changes_are_refused_and_change_nothing(copy: Copy, trained: Trained) -> None:
    refused = [
        (LabelChange.rename("7", "8"), "'8' is already a class"),
        (LabelChange.rename("70", "seventy"), "no such class"),
        (LabelChange.rename("7", "7"), "to itself"),
        (LabelChange.add("3"), "'3' is already a class"),
        (LabelChange.add("a,b"), "no control characters, ',' or '='"),
        (LabelChange.add(" x"), "surrounded by spaces"),
        (LabelChange.merge(["3", "x"], "3x"), "Cannot merge 'x': no such class"),
        (LabelChange.merge(["3"], "3x"), "at least 2 distinct classes to merge"),
        (LabelChange.merge(["3", "8"], "5"), "'5' is already a class"),
        (LabelChange.split("7", ["7", "1"]), "'1' is already a class"),
        (LabelChange.split("7", ["7a"]), "at least 2 distinct new classes"),
        (LabelChange.split("7", ["7a", "7a"]), "at least 2 distinct new classes"),
        (LabelChange.split("x", ["x1", "x2"]), "Cannot split 'x': no such class"),
        (LabelChange("drop", ("7",)), "Unknown label set change 'drop'"),
    ]
    for change, message in refused:
        with pytest.raises(LabelSetChangeError, match=message):
            _evolve(copy, trained, change)
    two = LabelChange.merge(list(digits.CLASSES), "digit")
    with pytest.raises(LabelSetChangeError, match="needs two classes"):
        _evolve(copy, trained, two)
    with pytest.raises(PermissionDeniedError, match="manage_programs"):
        copy.store.label_sets.evolve(
            "digits", LabelChange.add("x"), initial_classes=digits.CLASSES, actor="w0"
        )
    assert copy.store.label_sets.versions() == []  # not even version 1 was written
    assert all(t.label_set_version == 1 for t in copy.store.queue.tasks())
    # A store's label set belongs to one program.
    _evolve(copy, trained, LabelChange.add("x"))
    with pytest.raises(LabelSetChangeError, match="belongs to program 'digits'"):
        copy.store.label_sets.evolve("other", LabelChange.add("y"), actor="lena")
    entries = AuditLog(copy.store.engine).entries(action="label_set.evolve")
    assert entries[["actor", "target"]].values.tolist() == [["lena", "digits@labels-v2"]]


def test_labels_evolve_command(tmp_path: Path, monkeypatch, capsys) -> None:
    """`labels evolve --program P`: version 1 is the published template's classes; only a
    lead or admin of the program may change it; `labels versions` lists the history."""
    from feature_platform.commands.init import scaffold

    project = scaffold(tmp_path / "proj", "wine")[0].parent
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    for name in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI", "FP_PROGRAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FP_USER", "lou")
    assert main(["labels", "evolve", "--program", "wine", "--add", "x"]) == 2
    assert "no published template" in capsys.readouterr().err
    assert main(["annotators", "add", "lou", "--role", "admin"]) == 0
    assert main(["programs", "publish", str(project)]) == 0
    assert main(["--program", "wine", "annotators", "add", "cy", "--role", "annotator"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("FP_USER", "cy")
    assert main(["labels", "evolve", "--program", "wine", "--rename", "class_0=zero"]) == 2
    assert "'cy' may not manage_programs" in capsys.readouterr().err
    monkeypatch.setenv("FP_USER", "lou")
    assert main(["labels", "evolve", "--program", "wine", "--rename", "class_0"]) == 2
    assert "write OLD=NEW" in capsys.readouterr().err
    assert main(["labels", "evolve", "--program", "wine", "--rename", "class_0=class_1"]) == 2
    assert "'class_1' is already a class" in capsys.readouterr().err
    assert main(["labels", "evolve", "--program", "wine", "--rename", "class_0=zero"]) == 0
    assert "wine@labels-v2: class class_0 was renamed to zero" in capsys.readouterr().out
    assert main(["--program", "wine", "labels", "evolve", "--split", "zero=z1,z2"]) == 0
    assert "wine@labels-v3: class zero was split into z1 and z2" in capsys.readouterr().out
    assert main(["labels", "versions", "--program", "wine"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "the template's classes" in lines[0]
    assert (
        "by lou: class zero was split into z1 and z2; classes ['z1', 'z2', 'class_1'" in (lines[2])
    )


def test_a_change_on_sqlite_and_postgres(database_url: str, tmp_path: Path) -> None:
    """The same write path on both databases: answers mapped forward by a merge, a batch
    with the retired classes refused, a batch with the new ones made under the new version."""
    import dataclasses

    settings = dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    store = FeatureStore(settings)
    people = AnnotatorRegistry(store.engine)
    people.add("lena", "lead", actor="platform")
    people.add("w0", "annotator", actor="platform")
    specs = [TaskSpec(str(i), "margin", 0.5, "picked for the test", "d@v1") for i in range(3)]
    first = store.queue.create_batch("round-001", specs, ["a", "b", "c"])
    for task, label in zip(first, ["a", "b", "c"], strict=True):
        store.queue.submit(task.id, "w0", label)
    store.label_sets.evolve(
        "p", LabelChange.merge(["a", "b"], "ab"), initial_classes=["a", "b", "c"], actor="lena"
    )
    snapshot = store.labels.create_snapshot()
    assert (snapshot.label_set_version, sorted(snapshot.labels["label"])) == (2, ["ab", "ab", "c"])
    more = [TaskSpec("9", "margin", 0.5, "picked for the test", "d@v1")]
    with pytest.raises(InvalidArgumentError, match="not the label set's"):
        store.queue.create_batch("round-002", more, ["a", "b", "c"])
    with pytest.raises(InvalidArgumentError, match="changed while the batch was being made"):
        store.queue.create_batch("round-002", more, ["ab", "c"], label_set_version=1)
    [task] = store.queue.create_batch("round-002", more, ["ab", "c"], label_set_version=2)
    assert (task.classes, task.label_set_version) == (["ab", "c"], 2)
    store.engine.dispose()
