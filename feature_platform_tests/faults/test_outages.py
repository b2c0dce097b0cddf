"""Outages mid-operation: Postgres connections terminated (`pg_terminate_backend`) at a
seeded random statement of an import, a batch of submissions and an ingest; a full disk (a
file-size limit, RLIMIT_FSIZE, in a forked child) during a snapshot write. After each: a clear
error or success, never a half-written state, and a re-run converges."""

from __future__ import annotations

import dataclasses
import json
import random
import resource
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fault_support import FORK, record
from test_sigkill import items_frame, items_spec, online_x

from feature_platform import FeatureStore, Settings
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors.files import read_jsonl
from feature_platform.labeling.imports import import_answers
from feature_platform.labeling.queue import Submission, TaskSpec
from feature_platform.store.db import unavailable

pytestmark = pytest.mark.slow

TRIALS = 12


def pg_store(tmp_path: Path, url: str) -> FeatureStore:
    return FeatureStore(dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=url))


@contextmanager
def terminate_at(url: str, statement: int | None) -> Iterator[dict[str, int]]:
    """Terminate the connection running the `statement`-th SQL statement (1-based) of the
    block, from another session; with None, only count the statements."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    seen = {"n": 0}

    def cut(conn, cursor, text, parameters, context, executemany) -> None:  # noqa: ANN001
        if text.startswith("SELECT pg_backend_pid()"):
            return
        seen["n"] += 1
        if seen["n"] == statement:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with admin.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    sa.event.listen(sa.Engine, "before_cursor_execute", cut)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", cut)
        admin.dispose()


def outcome_of(work: Callable[[], object]) -> str:
    """ "ok", "refused" (a FeaturePlatformError or a database error the CLI reports as one
    line), or the name of anything else (a violation)."""
    try:
        work()
    except FeaturePlatformError:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - classify, never crash the trial loop
        return "refused" if unavailable(exc) is not None else f"{type(exc).__name__}: {exc}"
    return "ok"


@pytest.mark.postgres
def test_postgres_connection_terminated_during_import_and_submissions(
    tmp_path: Path, postgres_url: str
) -> None:
    rng = random.Random(90)
    store = pg_store(tmp_path, postgres_url)
    AnnotatorRegistry(store.engine).add("ann", "annotator")
    violations: list[str] = []
    outcomes = []
    for k in range(TRIALS + 1):
        round_key = f"pg-{k:02d}"
        specs = [TaskSpec(f"s{i}", "margin", 0.5, "pick", "f@v1") for i in range(30)]
        tasks = store.queue.create_batch(round_key, specs, ["a", "b"])
        text = "\n".join(
            json.dumps({"task_id": t.id, "annotator": "ann", "label": "a"}) for t in tasks
        )

        def run(text: str = text, round_key: str = round_key) -> object:
            return import_answers(
                store.engine, store.queue, read_jsonl(text), source=round_key, format="jsonl"
            )

        submissions = [Submission(t.id, "bob", "b") for t in tasks]
        if k == 0:  # count the statements once, uninterrupted
            with terminate_at(postgres_url, None) as counted:
                run()
            import_statements = counted["n"]
            continue
        with terminate_at(postgres_url, rng.randint(1, import_statements)):
            outcomes.append(outcome_of(run))
        answers = len(store.queue.answers(round_key))
        if answers not in (0, 30):
            violations.append(f"{round_key}: partial import ({answers} answers)")
        if outcome_of(run) != "ok" or len(store.queue.answers(round_key)) != 30:
            violations.append(f"{round_key}: the re-run did not converge")
        # A batch of submissions (one transaction) cut midway.
        with terminate_at(postgres_url, rng.randint(1, 4 * len(submissions))):
            outcomes.append(outcome_of(lambda s=submissions: store.queue.submit_many(s)))
        bob = store.queue.answers(round_key).query("annotator == 'bob'")
        if len(bob) not in (0, 30):
            violations.append(f"{round_key}: partial submit_many ({len(bob)} answers)")
    violations += [f"unexpected error: {o}" for o in outcomes if o not in ("ok", "refused")]
    record("Postgres terminated: import + submit_many", 2 * TRIALS, violations)
    assert "refused" in outcomes
    assert violations == []


@pytest.mark.postgres
def test_postgres_connection_terminated_during_ingest(tmp_path: Path, postgres_url: str) -> None:
    rng = random.Random(91)
    store = pg_store(tmp_path, postgres_url)
    store.apply(items_spec())
    with terminate_at(postgres_url, None) as counted:
        store.ingest("items@v1", items_frame(0))
    violations: list[str] = []
    outcomes = []
    for k in range(1, TRIALS + 1):
        with terminate_at(postgres_url, rng.randint(1, counted["n"])):
            outcomes.append(outcome_of(lambda k=k: store.ingest("items@v1", items_frame(k))))
        online = online_x(store)
        if not set(np.unique(online)) <= {k - 1.0, float(k)}:
            violations.append(f"trial {k}: online holds {sorted(set(online))[:4]}")
        if outcome_of(lambda: store.materialize_online("items@v1")) != "ok":
            violations.append(f"trial {k}: catching up online failed")
        if outcome_of(lambda k=k: store.ingest("items@v1", items_frame(k))) != "ok":
            violations.append(f"trial {k}: re-run failed")
        elif not (online_x(store) == float(k)).all():
            violations.append(f"trial {k}: re-run did not converge")
    violations += [f"unexpected error: {o}" for o in outcomes if o not in ("ok", "refused")]
    record("Postgres terminated: ingest (offline + online)", TRIALS, violations)
    assert violations == []


def _ingest_on_a_full_disk(home: str, k: int, limit: int, results) -> None:  # noqa: ANN001
    # Past the limit a write fails with EFBIG instead of killing the process (SIGXFSZ).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        FeatureStore(Settings.under(Path(home))).ingest("items@v1", items_frame(k))
        results.put(("ok", ""))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which classifies it
        results.put((type(exc).__name__, str(exc)))


def test_a_full_disk_during_a_snapshot_write(tmp_path: Path) -> None:
    rng = random.Random(92)
    home = tmp_path / "fp"
    store = FeatureStore(Settings.under(home))
    store.apply(items_spec())
    store.ingest("items@v1", items_frame(0))
    store.engine.dispose()
    violations: list[str] = []
    errors = []
    trials = 8
    for k in range(1, trials + 1):
        results = FORK.Queue()
        limit = rng.randint(4_000, 120_000)
        child = FORK.Process(target=_ingest_on_a_full_disk, args=(str(home), k, limit, results))
        child.start()
        child.join(60)
        kind, message = results.get(timeout=5)
        errors.append(kind)
        if kind not in ("ok", "OSError") and "FeaturePlatformError" not in kind:
            if not kind.endswith("Error") or "Traceback" in message:
                violations.append(f"limit {limit}: {kind}: {message[:200]}")
        if kind != "ok" and "too large" not in message.lower() and "full" not in message:
            violations.append(f"limit {limit}: the error does not say the disk is full: {message}")
        fsv = store.resolve_feature_set("items@v1")
        try:
            offline = store.offline.read(fsv)
        except Exception as exc:  # noqa: BLE001
            violations.append(f"limit {limit}: offline unreadable: {exc}")
            continue
        if len(offline) % len(items_frame(0)):
            violations.append(f"limit {limit}: a partial snapshot is visible")
        store.ingest("items@v1", items_frame(k))  # space is back: the re-run converges
        if not (online_x(store) == float(k)).all():
            violations.append(f"limit {limit}: the re-run did not converge")
    record("full disk (RLIMIT_FSIZE) during a snapshot write", trials, violations)
    assert any(kind != "ok" for kind in errors)  # the limits did bite
    assert violations == []
