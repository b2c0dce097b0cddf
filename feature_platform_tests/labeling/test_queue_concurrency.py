"""Many OS processes writing to one queue at once, on a SQLite file (WAL) and on Postgres:
nothing lost, nothing counted twice, no slot leased beyond `answers_needed`."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.labeling.queue import (
    ACCEPTED,
    ALREADY_RECORDED,
    ANSWERED,
    LEASED,
    Submission,
    TaskQueue,
    TaskSpec,
)
from feature_platform.store.db import create_engine
from feature_platform_tests.conftest import register_people

CLASSES = ["a", "b", "c"]
WRITERS = 8


def _submit_worker(url: str, plan: list[Submission], barrier: Any, results: Any) -> None:
    """One process: wait for the others, then submit its share one by one."""
    try:
        queue = TaskQueue(create_engine(url))
        barrier.wait(timeout=60)
        outcomes = []
        for submission in plan:
            [outcome] = queue.submit_many([submission])
            answer_id = outcome.answer.id if outcome.answer else None
            outcomes.append((submission.submission_id, outcome.status, outcome.code, answer_id))
        results.put(("ok", outcomes))
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", traceback.format_exc()))


def _lease_worker(url: str, annotators: list[str], barrier: Any, results: Any) -> None:
    """One process: lease for its annotators until nothing is left, then answer every lease."""
    try:
        queue = TaskQueue(create_engine(url))
        barrier.wait(timeout=60)
        held: list[tuple[str, str]] = []
        active = list(annotators)
        while active:
            for name in list(active):
                got = queue.lease(name, limit=3, lease_seconds=3600)
                if not got:
                    active.remove(name)
                held.extend((t.id, name) for t in got)
        outcomes = [
            (task_id, name, queue.submit_many([Submission(task_id, name, "a")])[0].status)
            for task_id, name in held
        ]
        results.put(("ok", outcomes))
    except Exception:  # noqa: BLE001
        results.put(("error", traceback.format_exc()))


def _run(target: Any, args_per_process: list[tuple]) -> list[Any]:
    # fork: children start without re-importing pandas & co. Each opens its own engine; they
    # leave through os._exit, so connections inherited from pytest are never touched.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(args_per_process))
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*args, barrier, results)) for args in args_per_process
    ]
    for process in processes:
        process.start()
    collected = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [payload for status, payload in collected if status == "error"]
    assert not errors, errors[0]
    return [payload for _, payload in collected]


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    names = [f"ann-{j}" for j in range(4)] + [f"ann-{p}-{k}" for p in range(6) for k in range(2)]
    register_people(store.engine, "annotator", *names)
    return store


def _specs(n: int) -> list[TaskSpec]:
    return [TaskSpec(f"s{i}", "margin", 0.5, "test", "x@v1", "m1") for i in range(n)]


@pytest.mark.slow
def test_concurrent_submissions_lose_nothing_and_count_nothing_twice(
    fs: FeatureStore, database_url: str
) -> None:
    needed, tries_per_task, senders = 3, 4, 2
    tasks = fs.queue.create_batch("r1", _specs(60), CLASSES, answers_needed=needed)
    # Each task is attempted by 4 annotators (one more than it needs), and every attempt is
    # sent by 2 different processes with the same submission id (a client retrying).
    attempts = [
        Submission(t.id, f"ann-{j}", CLASSES[(i + j) % 3], submission_id=f"{t.id}:ann-{j}")
        for i, t in enumerate(tasks)
        for j in range(tries_per_task)
    ]
    plans: list[list[Submission]] = [[] for _ in range(WRITERS)]
    for n, attempt in enumerate(attempts):
        for copy in range(senders):
            plans[(n + copy * 3) % WRITERS].append(attempt)
    fs.engine.dispose()  # no pooled connection crosses the fork
    started = time.perf_counter()
    reports = _run(_submit_worker, [(database_url, plan) for plan in plans])
    elapsed = time.perf_counter() - started

    outcomes = [o for report in reports for o in report]
    assert len(outcomes) == len(attempts) * senders
    answers = fs.queue.answers()
    stored_ids = set(answers["answer_id"])
    accepted = [o for o in outcomes if o[1] == ACCEPTED]
    acknowledged = {o[3] for o in outcomes if o[1] in (ACCEPTED, ALREADY_RECORDED)}
    lost = acknowledged - stored_ids
    duplicated = len(answers) - len(answers.drop_duplicates(["task_id", "annotator"]))
    per_task = Counter(answers["task_id"])
    rejected = Counter(o[2] for o in outcomes if o[1] not in (ACCEPTED, ALREADY_RECORDED))

    print(
        f"\n[{fs.engine.dialect.name}] {WRITERS} writers x {len(outcomes) // WRITERS} "
        f"submissions = {len(outcomes)} ({len(attempts)} distinct, each sent twice) in "
        f"{elapsed:.1f}s: stored {len(answers)}, accepted {len(accepted)}, lost {len(lost)}, "
        f"duplicated {duplicated}, rejected {dict(rejected)}"
    )
    assert lost == set()
    assert duplicated == 0
    assert len(accepted) == len(answers) == len(tasks) * needed  # each answer acknowledged once
    assert set(per_task.values()) == {needed}  # never more answers than a task needs
    assert set(rejected) == {"task_complete"}  # the only refusal is the surplus 4th annotator
    assert fs.queue.counts()[ANSWERED] == len(tasks)


@pytest.mark.slow
def test_concurrent_leasing_never_overfills_a_task(fs: FeatureStore, database_url: str) -> None:
    needed = 2
    tasks = fs.queue.create_batch("r1", _specs(40), CLASSES, answers_needed=needed)
    groups = [[f"ann-{p}-{k}" for k in range(2)] for p in range(6)]  # 12 annotators, 6 processes
    fs.engine.dispose()
    reports = _run(_lease_worker, [(database_url, names) for names in groups])

    outcomes = [o for report in reports for o in report]
    leases_per_task = Counter(task_id for task_id, _, _ in outcomes)
    print(
        f"\n[{fs.engine.dialect.name}] 6 processes x 2 annotators leased {len(outcomes)} slots "
        f"of {len(tasks) * needed}; max per task {max(leases_per_task.values())}"
    )
    assert len(outcomes) == len(set((t, a) for t, a, _ in outcomes))
    assert set(leases_per_task.values()) == {needed}  # every slot given out exactly once
    assert {status for _, _, status in outcomes} == {ACCEPTED}  # no leaseholder refused
    assert fs.queue.counts()[ANSWERED] == len(tasks)
    with fs.engine.connect() as conn:
        leased_left = conn.execute(
            sa.text("SELECT count(*) FROM labeling_tasks WHERE state = :s"), {"s": LEASED}
        ).scalar()
    assert leased_left == 0
