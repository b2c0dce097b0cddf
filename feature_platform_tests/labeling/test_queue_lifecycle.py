"""The queue's state machine, leases, idempotent submission and re-prioritisation, on SQLite
and Postgres."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.errors import InvalidAnswerError, UnknownTaskError
from feature_platform.labeling.queue import (
    ACCEPTED,
    ALREADY_RECORDED,
    ANSWERED,
    LEASED,
    PENDING,
    REJECTED,
    RESOLVED,
    Submission,
    TaskSpec,
)
from feature_platform.store.db import utcnow
from feature_platform_tests.conftest import register_people

CLASSES = ["cat", "dog", "bird"]


def spec(key: str, score: float = 0.5, model: str | None = "m1") -> TaskSpec:
    return TaskSpec(
        sample_key=key,
        strategy="margin",
        score=score,
        reason=f"margin pick {key}",
        feature_version="pets@v1",
        model_version=model,
        features_shown={"x": 1.0},
        top_classes=[("cat", 0.5), ("dog", 0.4)],
    )


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    register_people(store.engine, "annotator", "a", "ann", "b", "c", "slow", "other")
    return store


def test_task_moves_pending_leased_answered_resolved_with_history(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    assert task.state == PENDING
    assert task.context["top_classes"] == [["cat", 0.5], ["dog", 0.4]]

    [leased] = queue.lease("ann", lease_seconds=60)
    assert (leased.id, leased.state) == (task.id, LEASED)
    assert [lease.annotator for lease in queue.leases()] == ["ann"]

    queue.submit(task.id, "ann", "dog", time_spent_s=3.5)
    assert queue.get(task.id).state == ANSWERED
    assert queue.leases() == []

    queue.mark_resolved([task.id])
    assert queue.get(task.id).state == RESOLVED
    moves = [(e.event, e.detail.get("to")) for e in queue.history(task.id)]
    assert moves == [
        ("created", None),
        ("leased", None),
        ("state", LEASED),
        ("answered", None),
        ("state", ANSWERED),
        ("state", RESOLVED),
    ]
    answers = queue.answers()
    assert answers.loc[0, ["annotator", "label", "time_spent_s", "model_version"]].tolist() == [
        "ann",
        "dog",
        3.5,
        "m1",
    ]


def test_expired_lease_goes_back_to_pending_and_to_another_annotator(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES)
    start = utcnow()
    queue.lease("slow", lease_seconds=60, now=start)
    assert queue.lease("other", now=start + timedelta(seconds=30)) == []  # slot is taken

    assert queue.requeue_expired(now=start + timedelta(seconds=61)) == 1
    assert queue.get(task.id).state == PENDING
    [again] = queue.lease("other", now=start + timedelta(seconds=62))
    assert again.id == task.id
    # The expired lease is in the history with who held it.
    expired = [e for e in queue.history(task.id) if e.event == "lease_expired"]
    assert [e.annotator for e in expired] == ["slow"]


def test_lease_expiry_is_also_applied_when_leasing(fs: FeatureStore) -> None:
    queue = fs.queue
    queue.create_batch("r1", [spec("s1")], CLASSES)
    start = utcnow()
    queue.lease("slow", lease_seconds=10, now=start)
    [task] = queue.lease("other", now=start + timedelta(seconds=11))
    assert task.sample_key == "s1"


def test_overlap_never_grants_more_slots_than_answers_needed(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    assert queue.lease("a") and queue.lease("b")
    assert queue.lease("c") == []
    assert queue.lease("a") == []  # never the same task twice to one annotator
    queue.submit(task.id, "a", "cat")
    assert queue.get(task.id).state == LEASED  # b still holds the second slot
    queue.submit(task.id, "b", "dog")
    assert queue.get(task.id).state == ANSWERED
    with pytest.raises(InvalidAnswerError, match="already has its 2 answer"):
        queue.submit(task.id, "c", "cat")
    assert len(queue.answers()) == 2


def test_overlap_fraction_is_deterministic(fs: FeatureStore) -> None:
    specs = [spec(f"s{i}") for i in range(200)]
    created = fs.queue.create_batch(
        "r1", specs, CLASSES, overlap_fraction=0.25, overlap_answers=3, overlap_seed=7
    )
    overlapped = {t.sample_key for t in created if t.answers_needed == 3}
    assert {t.answers_needed for t in created} == {1, 3}
    assert 30 <= len(overlapped) <= 70
    again = fs.queue.create_batch(
        "r2", specs, CLASSES, overlap_fraction=0.25, overlap_answers=3, overlap_seed=7
    )
    assert overlapped != {t.sample_key for t in again if t.answers_needed == 3}  # round matters
    rerun = fs.queue.create_batch(
        "r1", specs, CLASSES, overlap_fraction=0.25, overlap_answers=3, overlap_seed=7
    )
    assert {t.sample_key for t in rerun if t.answers_needed == 3} == overlapped
    assert len(fs.queue.tasks()) == 400


def test_submission_is_idempotent_and_bad_answers_record_nothing(fs: FeatureStore) -> None:
    queue = fs.queue
    [task] = queue.create_batch("r1", [spec("s1")], CLASSES, answers_needed=2)
    first = queue.submit(task.id, "a", "cat", submission_id="sub-1")
    assert queue.submit(task.id, "a", "cat", submission_id="sub-1") == first
    assert queue.submit(task.id, "a", "cat") == first  # same annotator + label, no id
    with pytest.raises(InvalidAnswerError, match="conflicts with stored answer"):
        queue.submit(task.id, "a", "dog")
    with pytest.raises(InvalidAnswerError, match="not one of its classes"):
        queue.submit(task.id, "b", "horse")
    with pytest.raises(UnknownTaskError, match="Unknown task id 'nope'"):
        queue.submit("nope", "b", "cat")
    assert queue.answers()["answer_id"].tolist() == [first.id]
    assert queue.get(task.id).state == PENDING


def test_submit_many_reports_each_outcome_in_one_transaction(fs: FeatureStore) -> None:
    queue = fs.queue
    t1, t2 = queue.create_batch("r1", [spec("s1"), spec("s2")], CLASSES)
    queue.submit(t1.id, "a", "cat")
    outcomes = queue.submit_many(
        [
            Submission(t1.id, "a", "cat"),
            Submission(t2.id, "a", "bird", time_spent_s=2.0),
            Submission(t2.id, "b", "cat"),
            Submission("missing", "a", "cat"),
        ]
    )
    assert [(o.status, o.code) for o in outcomes] == [
        (ALREADY_RECORDED, ""),
        (ACCEPTED, ""),
        (REJECTED, "task_complete"),
        (REJECTED, "unknown_task"),
    ]
    assert sorted(queue.answers()["label"]) == ["bird", "cat"]


def test_reprioritize_reorders_open_tasks_and_keeps_old_context(fs: FeatureStore) -> None:
    queue = fs.queue
    queue.create_batch("r1", [spec("s1", 0.9), spec("s2", 0.5), spec("s3", 0.1)], CLASSES)
    result = queue.reprioritize(
        {"s3": 0.95, "s2": 0.2, "gone": 0.4},
        "m2",
        top_classes={"s3": [("bird", 0.4), ("cat", 0.35)]},
        reasons={"s3": "margin under m2"},
    )
    order = [t.sample_key for t in sorted(queue.tasks(), key=lambda t: -t.priority)]
    assert order == ["s3", "s2", "s1"]  # re-scored first, the stale s1 last
    assert result.not_open == ["gone"]
    s1, s2, s3 = (queue.find("r1", k) for k in ("s1", "s2", "s3"))
    assert result.stale == [s1.id]
    assert (s3.score, s3.model_version, s3.reason) == (0.95, "m2", "margin under m2")
    assert s3.context["top_classes"] == [["bird", 0.4], ["cat", 0.35]]
    assert s3.context["features_shown"] == {"x": 1.0}  # the rest of the context is kept
    assert s1.model_version == "m1"
    [event] = [e for e in queue.history(s3.id) if e.event == "reprioritized"]
    assert event.detail["before"]["model_version"] == "m1"
    assert event.detail["before"]["score"] == 0.1
    assert event.detail["before"]["top_classes"] == [["cat", 0.5], ["dog", 0.4]]
    assert [t.sample_key for t in queue.lease("a", limit=3)] == ["s3", "s2", "s1"]


def test_reprioritize_leaves_answered_tasks_alone(fs: FeatureStore) -> None:
    queue = fs.queue
    t1, _ = queue.create_batch("r1", [spec("s1", 0.9), spec("s2", 0.5)], CLASSES)
    queue.submit(t1.id, "a", "cat")
    result = queue.reprioritize({"s1": 0.1, "s2": 0.3}, "m2", round_key="r1")
    assert result.not_open == ["s1"]
    assert queue.get(t1.id).model_version == "m1"
