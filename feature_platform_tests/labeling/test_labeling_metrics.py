"""Queue status, throughput, turnaround and lead time, on controlled clocks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.labeling.metrics import (
    lead_time_by_round,
    lead_times,
    queue_status,
    round_metrics,
    turnaround,
)
from feature_platform.labeling.queue import TaskSpec
from feature_platform_tests.conftest import register_people

T0 = pd.Timestamp("2026-06-01 09:00", tz="UTC").to_pydatetime()
CLASSES = ["a", "b"]


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def fs(tmp_path: Path) -> FeatureStore:
    store = FeatureStore(Settings.under(tmp_path / "fp"))
    register_people(store.engine, "annotator", "ann", "bob", "cid")
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "t", "x@v1") for i in range(4)]
    store.queue.create_batch("round-001", specs[:2], CLASSES, answers_needed=2, now=T0)
    store.queue.create_batch("round-002", specs[2:], CLASSES, now=T0 + hours(10))
    return store


def answer_everything(fs: FeatureStore) -> None:
    queue = fs.queue
    r1 = {t.sample_key: t.id for t in queue.tasks("round-001")}
    r2 = {t.sample_key: t.id for t in queue.tasks("round-002")}
    queue.submit(r1["s0"], "ann", "a", answered_at=T0 + hours(1), time_spent_s=60)
    queue.submit(r1["s0"], "bob", "a", answered_at=T0 + hours(3), time_spent_s=120)
    queue.submit(r1["s1"], "ann", "b", answered_at=T0 + hours(2), time_spent_s=60)
    queue.submit(r1["s1"], "bob", "b", answered_at=T0 + hours(4), time_spent_s=120)
    queue.submit(r2["s2"], "ann", "a", answered_at=T0 + hours(11), time_spent_s=30)
    queue.submit(r2["s3"], "ann", "b", answered_at=T0 + hours(12), time_spent_s=30)


def test_turnaround_and_throughput_per_round(fs: FeatureStore) -> None:
    answer_everything(fs)
    times = turnaround(fs.queue).set_index("round").sort_values("turnaround_s")
    assert times.loc["round-001", "turnaround_s"].tolist() == [3 * 3600, 4 * 3600]  # 2nd answer
    metrics = round_metrics(fs.queue).set_index("round")
    assert metrics.loc["round-001", ["tasks", "complete_tasks", "answers"]].tolist() == [2, 2, 4]
    assert metrics.loc["round-001", "answers_per_hour"] == pytest.approx(4 / 4)  # 4 answers in 4 h
    assert metrics.loc["round-001", "answers_per_annotator_hour"] == pytest.approx(4 / 0.1)
    assert metrics.loc["round-001", "turnaround_median_s"] == 3.5 * 3600
    assert metrics.loc["round-002", "answers_per_hour"] == pytest.approx(2 / 2)
    assert metrics.loc["round-002", "turnaround_p90_s"] == pytest.approx(3600 + 0.9 * 3600)


def test_lead_time_runs_to_the_first_registered_model_holding_the_label(fs: FeatureStore) -> None:
    answer_everything(fs)
    first = fs.labels.create_snapshot(note="after round-001")  # holds all four labels
    second = fs.labels.create_snapshot(note="later")
    registered = {first.id: T0 + hours(20), second.id: T0 + hours(30)}
    lead = lead_times(fs.queue, fs.labels, registered).set_index("sample_key")
    assert lead.loc["s0", "lead_time_s"] == 20 * 3600
    assert lead.loc["s2", "lead_time_s"] == 10 * 3600  # its task was created 10 h later
    assert set(lead["via"]) == {first.id}
    by_round = lead_time_by_round(lead.reset_index()).set_index("round")
    assert by_round.loc["round-001", "lead_time_median_s"] == 20 * 3600
    assert by_round.loc["round-002", "labels"] == 2

    rounds = lead_times(
        fs.queue, fs.labels, {"round-002": T0 + hours(13), "round-001": T0 + hours(5)}, by="round"
    ).set_index("sample_key")
    assert rounds.loc["s0", ["via", "lead_time_s"]].tolist() == ["round-001", 5 * 3600]
    assert rounds.loc["s3", ["via", "lead_time_s"]].tolist() == ["round-002", 3 * 3600]
    assert lead_times(fs.queue, fs.labels, {}).empty


def test_queue_status_shows_states_leases_and_load(fs: FeatureStore) -> None:
    queue = fs.queue
    queue.lease("ann", lease_seconds=3600, now=T0)
    queue.lease("bob", lease_seconds=60, now=T0 + timedelta(minutes=5))
    [task] = queue.lease("cid", lease_seconds=3600, round_key="round-002", now=T0)
    queue.submit(task.id, "cid", "a", answered_at=T0 + timedelta(minutes=1), time_spent_s=42)
    status = queue_status(queue, now=T0 + timedelta(minutes=10))
    # ann and bob hold the two slots of s0; bob's lease ran out but is not requeued yet.
    assert status.counts == {"pending": 2, "leased": 1, "answered": 1, "resolved": 0}
    assert (status.live_leases, status.expired_leases) == (1, 1)  # bob's ran out
    assert status.oldest_lease.annotator == "ann"
    load = status.per_annotator.set_index("annotator")
    assert load.loc["ann", "leased"] == 1 and load.loc["cid", "answers"] == 1
    assert load.loc["cid", "median_time_spent_s"] == 42.0
    assert queue_status(queue, "round-002", now=T0 + timedelta(minutes=10)).live_leases == 0
