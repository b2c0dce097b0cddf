"""Answer revisions (a person corrects their own answer), skip / unsure outcomes, and a lease
reserving its slot, on SQLite and Postgres."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.errors import InvalidAnswerError
from feature_platform.labeling.adjudication import Adjudications
from feature_platform.labeling.aggregation import AGGREGATORS
from feature_platform.labeling.agreement import sample_agreement
from feature_platform.labeling.queue import (
    ACCEPTED,
    ALREADY_RECORDED,
    ANSWERED,
    LEASED,
    PENDING,
    REJECTED,
    SKIP,
    UNSURE,
    Submission,
    TaskSpec,
)
from feature_platform.store.db import utcnow

CLASSES = ["1", "2", "3", "4"]


def spec(key: str) -> TaskSpec:
    return TaskSpec(
        sample_key=key, strategy="margin", score=0.5, reason="r", feature_version="d@v1"
    )


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    from feature_platform.governance.roles import AnnotatorRegistry

    registry = AnnotatorRegistry(store.engine)
    for name in ("w0", "w1", "w2"):
        registry.add(name, "annotator", actor="platform")
    registry.add("rita", "reviewer", actor="platform")
    return store


def test_leased_slot_belongs_to_its_holder_until_it_expires(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    start = utcnow()
    [leased] = queue.lease("w0", lease_seconds=60, now=start)
    # Someone else (an import, another tab) cannot fill the slot w0 holds.
    with pytest.raises(InvalidAnswerError, match="leased by 'w0'"):
        queue.submit(task.id, "w1", "3")
    answer = queue.submit(leased.id, "w0", "4")
    assert answer.label == "4"
    assert queue.leases() == []
    assert queue.get(task.id).state == ANSWERED
    assert queue.answers()["annotator"].tolist() == ["w0"]


def test_an_expired_lease_no_longer_reserves_the_slot(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    start = utcnow() - timedelta(seconds=120)
    queue.lease("w0", lease_seconds=60, now=start)
    assert queue.submit(task.id, "w1", "3").annotator == "w1"
    with pytest.raises(InvalidAnswerError, match="already has its 1 answer"):
        queue.submit(task.id, "w0", "4")


def test_free_slots_stay_open_beside_a_lease(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    queue.lease("w0")
    queue.submit(task.id, "w1", "3")  # the second slot was free
    with pytest.raises(InvalidAnswerError, match="leased by 'w0'"):
        queue.submit(task.id, "w2", "3")
    queue.submit(task.id, "w0", "3")
    assert queue.get(task.id).state == ANSWERED


def test_revision_is_kept_with_history_and_the_latest_is_effective(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    first = queue.submit(task.id, "w0", "3")
    queue.submit(task.id, "w1", "3")
    assert queue.get(task.id).state == ANSWERED
    revised = queue.revise(task.id, "w0", "4", reason="misread the digit")
    assert (revised.revision, revised.revises, revised.label) == (2, first.id, "4")
    # Revising takes no new slot: the task keeps its two answers.
    assert queue.get(task.id).state == ANSWERED
    effective = queue.answers()
    assert sorted(zip(effective["annotator"], effective["label"], strict=True)) == [
        ("w0", "4"),
        ("w1", "3"),
    ]
    history = queue.answers(history=True)
    assert len(history) == 3
    w0 = history[history["annotator"] == "w0"].sort_values("revision")
    assert w0["label"].tolist() == ["3", "4"]
    assert w0["effective"].tolist() == [False, True]
    assert w0["revises"].tolist()[1] == first.id
    assert [a.label for a in queue.answer_history(task.id, "w0")] == ["3", "4"]
    assert [e.event for e in queue.history(task.id)].count("revised") == 1
    # Aggregation and agreement read effective answers only: w0 now disagrees with w1.
    votes = AGGREGATORS["majority"](effective)
    assert votes.loc[0, "n_answers"] == 2
    assert sample_agreement(effective)["pairwise"].tolist() == [0.0]
    conflicts = Adjudications(fs.engine, queue).conflicts()
    assert conflicts.loc[0, "votes"] == {"3": 1, "4": 1}


def test_reviewer_decision_beats_the_latest_revision(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    queue.submit(task.id, "w0", "3")
    queue.revise(task.id, "w0", "4")
    snapshot = fs.labels.create_snapshot()
    assert snapshot.labels["label"].tolist() == ["4"]  # latest revision > earlier one
    Adjudications(fs.engine, queue).decide(task.id, "2", "rita", "clearly a two")
    assert fs.labels.create_snapshot().labels["label"].tolist() == ["2"]


def test_revisions_are_idempotent_on_the_submission_id(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    # As a Label Studio re-import sends it: same annotation id, corrected label.
    first = queue.submit(task.id, "w0", "3", submission_id="label-studio:a1")
    corrected = Submission(task.id, "w0", "4", submission_id="label-studio:a1")
    [outcome] = queue.submit_many([corrected])
    assert outcome.status == ACCEPTED and outcome.answer.revises == first.id
    # Re-importing the corrected file, or replaying the old one, records nothing new.
    again = queue.submit_many([corrected, Submission(task.id, "w0", "3", "label-studio:a1")])
    assert [o.status for o in again] == [ALREADY_RECORDED, ALREADY_RECORDED]
    assert queue.answers()["label"].tolist() == ["4"]
    assert len(queue.answers(history=True)) == 2
    # The same explicit revision sent twice is recorded once.
    r1 = queue.revise(task.id, "w0", "2", submission_id="web:undo-1")
    assert queue.revise(task.id, "w0", "2", submission_id="web:undo-1") == r1
    assert len(queue.answers(history=True)) == 3
    # A submission id belongs to one person's answer to one task.
    [other] = queue.create_batch("r2", [spec("s2")], CLASSES)
    [clash] = queue.submit_many([Submission(other.id, "w1", "1", "label-studio:a1")])
    assert (clash.status, clash.code) == (REJECTED, "conflict")


def test_a_second_answer_under_another_id_is_a_conflict_not_a_revision(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    queue.submit(task.id, "w0", "3", submission_id="sub-1")
    with pytest.raises(InvalidAnswerError, match="revise"):
        queue.submit(task.id, "w0", "4", submission_id="sub-2")
    assert queue.answers(history=True)["label"].tolist() == ["3"]


def test_a_second_label_without_ids_is_a_conflict_not_a_silent_correction(
    fs: FeatureStore,
) -> None:
    # Neither call names a submission: the default id stands for "w0's answer", and a new
    # label under it must not overwrite the stored one (imports without ids take this path).
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    queue.submit(task.id, "w0", "3")
    with pytest.raises(InvalidAnswerError, match="revise"):
        queue.submit(task.id, "w0", "4")
    assert queue.answers(history=True)["label"].tolist() == ["3"]
    queue.submit(task.id, "w0", "3")  # the same answer again is a no-op
    assert queue.answers(history=True)["label"].tolist() == ["3"]


def test_revision_needs_an_answer_and_respects_the_grace_period(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    with pytest.raises(InvalidAnswerError, match="no answer from 'w0'"):
        queue.revise(task.id, "w0", "4")
    start = utcnow()
    queue.submit(task.id, "w0", "3", answered_at=start)
    grace = timedelta(minutes=5)
    with pytest.raises(InvalidAnswerError, match="grace period"):
        queue.revise(task.id, "w0", "4", within=grace, now=start + timedelta(minutes=6))
    assert queue.revise(task.id, "w0", "4", within=grace, now=start + timedelta(minutes=1))
    with pytest.raises(InvalidAnswerError, match="not one of its classes"):
        queue.revise(task.id, "w0", "horse")


@pytest.mark.parametrize("outcome", [SKIP, UNSURE])
def test_skip_and_unsure_release_the_slot_without_counting(fs: FeatureStore, outcome: str) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    queue.lease("w0")
    assert queue.get(task.id).state == LEASED
    record = getattr(queue, outcome)(task.id, "w0", "cannot tell")
    assert (record.outcome, record.annotator, record.reason) == (outcome, "w0", "cannot tell")
    assert queue.leases() == [] and queue.get(task.id).state == PENDING
    assert queue.answers().empty
    assert queue.lease("w0") == []  # not offered again to the person who passed
    [again] = queue.lease("w1")
    assert again.id == task.id
    # Idempotent, kept with the person, and in the task's history.
    assert getattr(queue, outcome)(task.id, "w0", "cannot tell") == record
    passes = queue.passes()
    assert passes[["annotator", "outcome"]].values.tolist() == [["w0", outcome]]
    assert outcome in [e.event for e in queue.history(task.id)]


def test_skip_after_answering_is_refused(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    queue.submit(task.id, "w0", "3")
    with pytest.raises(InvalidAnswerError, match="already answered"):
        queue.skip(task.id, "w0")
    assert queue.get(task.id).state == PENDING


def test_an_answer_corrected_at_its_source_is_imported_as_a_revision(fs: FeatureStore) -> None:
    from feature_platform.labeling.connectors.files import read_jsonl
    from feature_platform.labeling.imports import import_answers

    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)

    def run(label: str):  # noqa: ANN202
        row = {"task_id": task.id, "annotator": "w0", "label": label, "submission_id": "ls:9"}
        text = json.dumps(row) + "\n"
        return import_answers(fs.engine, queue, read_jsonl(text), source="x", format="jsonl")

    assert run("3").accepted == 1
    corrected = run("4")
    assert (corrected.accepted, corrected.rejected) == (1, [])
    assert (run("4").already_recorded, run("3").already_recorded) == (1, 1)
    history = queue.answers(history=True)
    assert history[["label", "revision", "effective"]].values.tolist() == [
        ["3", 1, False],
        ["4", 2, True],
    ]
