"""SIGKILL at random moments of an import, a materialization, a publish and a whole round
(seeded, >= 20 trials each). After each kill the invariants are checked: no partial batch or
import, no lost or duplicated answer, registry / offline / online consistent; then the
operation is re-run and must converge to the state an uninterrupted run gives."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fault_support import record, run_child, timed_child

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling import imports as import_tables
from feature_platform.labeling.connectors.files import read_jsonl
from feature_platform.labeling.imports import import_answers
from feature_platform.labeling.queue import TaskSpec
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec

pytestmark = pytest.mark.slow

TRIALS = 20
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def store_at(home: Path) -> FeatureStore:
    return FeatureStore(Settings.under(home))


# -- import ----------------------------------------------------------------------------------
ANSWERS, BAD = 60, 3


def _import(home: str, path: str) -> None:
    store = store_at(Path(home))
    rows = read_jsonl(Path(path).read_text())
    import_answers(store.engine, store.queue, rows, source=path, format="jsonl")


def import_state(store: FeatureStore, round_key: str, path: str) -> tuple[int, int, int, int]:
    """(answers in the round, answer rows duplicated per task+person, imports logged for the
    file, quarantined rows of the file)."""
    answers = store.queue.answers(round_key)
    duplicated = int(answers.duplicated(["task_id", "annotator"]).sum()) if len(answers) else 0
    with store.engine.connect() as conn:
        logged = conn.execute(
            sa.select(sa.func.count()).where(import_tables.imports.c.source == path)
        ).scalar_one()
        kept = conn.execute(
            sa.select(sa.func.count()).where(import_tables.quarantine.c.source == path)
        ).scalar_one()
    return len(answers), duplicated, int(logged), int(kept)


def test_sigkill_during_import(tmp_path: Path) -> None:
    rng = random.Random(12)
    home = tmp_path / "fp"
    store = store_at(home)
    AnnotatorRegistry(store.engine).add("ann", "annotator")
    files = []
    for k in range(TRIALS + 1):
        round_key = f"imp-{k:02d}"
        specs = [TaskSpec(f"s{i}", "margin", 0.5, "pick", "f@v1") for i in range(ANSWERS)]
        tasks = store.queue.create_batch(round_key, specs, ["a", "b"])
        lines = [
            json.dumps({"task_id": t.id, "annotator": "ann", "label": "ab"[i % 2]})
            for i, t in enumerate(tasks)
        ]
        lines += [
            json.dumps({"task_id": f"nope-{k}-{j}", "annotator": "ann", "label": "a"})
            for j in range(BAD)
        ]
        path = tmp_path / f"answers-{k:02d}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        files.append((round_key, str(path)))
    store.engine.dispose()
    full = timed_child(_import, str(home), files[0][1])
    violations: list[str] = []
    outcomes = []
    for round_key, path in files[1:]:
        outcome = run_child(_import, str(home), path, kill_after=rng.uniform(0.0, full))
        outcomes.append(outcome)
        answers, duplicated, logged, kept = import_state(store, round_key, path)
        if outcome.startswith("failed"):
            violations.append(f"{path}: the import itself failed ({outcome})")
        if (answers, logged, kept) not in ((0, 0, 0), (ANSWERS, 1, BAD)) or duplicated:
            violations.append(f"{path}: partial import {answers, duplicated, logged, kept}")
        _import(str(home), path)  # the re-run converges
        answers, duplicated, logged, kept = import_state(store, round_key, path)
        if answers != ANSWERS or duplicated or kept != BAD:
            violations.append(f"{path}: re-run gave {answers, duplicated, logged, kept}")
        counts = store.queue.counts(round_key)
        if counts.get("answered", 0) != ANSWERS:
            violations.append(f"{round_key}: task states {counts}")
    record("SIGKILL during import (SQLite)", TRIALS, violations)
    assert "killed" in outcomes  # the kills did land inside the import
    assert violations == []


# -- materialize -----------------------------------------------------------------------------
KEYS = 3000


def passthrough(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    return frame


def items_spec(version: str = "v1", scale: float = 1.0) -> FeatureSetSpec:
    return FeatureSetSpec(
        name="items",
        version=version,
        entity="item_id",
        features={"x": "float64", "y": "float64"},
        transform=passthrough,
        sources=("items_raw",),
        params={"scale": scale},
    )


def items_frame(k: int) -> pd.DataFrame:
    keys = np.arange(KEYS)
    return pd.DataFrame(
        {
            "item_id": keys,
            EVENT_TIMESTAMP: T0 + timedelta(minutes=k),
            "x": np.full(KEYS, float(k)),
            "y": keys * 0.5,
        }
    )


def _ingest(home: str, k: int) -> None:
    store_at(Path(home)).ingest("items@v1", items_frame(k))


def online_x(store: FeatureStore) -> np.ndarray:
    return store.get_online_features(["items@v1:x"], list(range(KEYS)))["x"].to_numpy()


def test_sigkill_during_materialize(tmp_path: Path) -> None:
    rng = random.Random(34)
    home = tmp_path / "fp"
    store = store_at(home)
    store.apply(items_spec())
    store.ingest("items@v1", items_frame(0))
    store.engine.dispose()
    full = timed_child(_ingest, str(home), 1)
    violations: list[str] = []
    for k in range(2, TRIALS + 2):
        outcome = run_child(_ingest, str(home), k, kill_after=rng.uniform(0.0, full))
        if outcome.startswith("failed"):
            violations.append(f"trial {k}: ingest failed ({outcome})")
        fsv = store.resolve_feature_set("items@v1")
        try:
            offline = store.offline.read(fsv)  # every visible snapshot is whole and readable
        except Exception as exc:  # noqa: BLE001 - any failure to read is a violation
            violations.append(f"trial {k}: offline unreadable after a kill: {exc}")
            continue
        if len(offline) % KEYS:
            violations.append(f"trial {k}: a partial snapshot ({len(offline)} rows)")
        latest = float(offline["x"].max())
        if latest not in (k - 1.0, float(k)):
            violations.append(f"trial {k}: offline latest x {latest}")
        online = online_x(store)
        if not set(np.unique(online)) <= {k - 1.0, float(k)}:
            violations.append(f"trial {k}: online holds {sorted(set(online))[:5]}")
        store.materialize_online("items@v1")  # the online store catches up with offline
        if not (online_x(store) == latest).all():
            violations.append(f"trial {k}: online != offline latest after catching up")
        store.ingest("items@v1", items_frame(k))  # the re-run converges
        if not (online_x(store) == float(k)).all():
            violations.append(f"trial {k}: re-run did not converge")
    record("SIGKILL during materialize (ingest)", TRIALS, violations)
    assert violations == []


# -- publish ---------------------------------------------------------------------------------
def _publish(home: str, k: int) -> None:
    store = store_at(Path(home))
    store.apply(items_spec(f"v{k}", scale=float(k)))
    store.set_alias("items", "serving", f"v{k}")


def test_sigkill_during_publish(tmp_path: Path) -> None:
    rng = random.Random(56)
    home = tmp_path / "fp"
    store = store_at(home)
    store.apply(items_spec())
    store.engine.dispose()
    full = timed_child(_publish, str(home), 2)
    violations: list[str] = []
    for k in range(3, TRIALS + 3):
        outcome = run_child(_publish, str(home), k, kill_after=rng.uniform(0.0, full))
        if outcome.startswith("failed"):
            violations.append(f"v{k}: publish failed ({outcome})")
        versions = store.registry.versions("items")
        aliases = store.registry.aliases("items")
        if any(v not in versions for v in aliases.values()):
            violations.append(f"v{k}: alias points at a missing version: {aliases}")
        if f"v{k}" in versions:
            try:
                store.lineage(f"items@v{k}")
                store.resolve_feature_set(f"items@v{k}")
            except Exception as exc:  # noqa: BLE001
                violations.append(f"v{k}: registered but unreadable: {exc}")
        try:
            _publish(str(home), k)  # the re-run converges
        except Exception as exc:  # noqa: BLE001
            violations.append(f"v{k}: re-run failed: {exc}")
            continue
        if store.registry.aliases("items").get("serving") != f"v{k}":
            violations.append(f"v{k}: alias not moved by the re-run")
        if store.resolve_feature_set("items@serving").version != f"v{k}":
            violations.append(f"v{k}: serving does not resolve to v{k}")
    record("SIGKILL during publish (apply + alias)", TRIALS, violations)
    assert violations == []


# -- a whole round ---------------------------------------------------------------------------
PROGRAM = digits.program(batch_size=8, label_budget=100_000, strategy="margin")
TRUTH = digits.ground_truth_oracle()


def _round(home: str, k: int) -> None:
    """One round without Dagster: pool -> batch -> answers -> retrain (as the assets do)."""
    store = store_at(Path(home))
    name = rounds.round_key(k)
    pool = rounds.candidate_pool(store, PROGRAM, None)
    rounds.open_batch(store, PROGRAM, name, pool, model_version=None)
    team = SimulatedAnnotators(TRUTH, PROGRAM.classes, count=2, accuracy=0.9, seed=k)
    team.answer(store.queue, name)
    rounds.retrain(store, PROGRAM, name)


def test_sigkill_during_a_whole_round(tmp_path: Path) -> None:
    rng = random.Random(78)
    home = tmp_path / "fp"
    store = store_at(home)
    digits.bootstrap(store)
    for i in (1, 2):  # the simulated team, registered as people who may label
        AnnotatorRegistry(store.engine).add(f"sim-annotator-{i}", "annotator")
    store.engine.dispose()
    full = timed_child(_round, str(home), 1)
    violations: list[str] = []
    for k in range(2, TRIALS + 2):
        name = rounds.round_key(k)
        outcome = run_child(_round, str(home), k, kill_after=rng.uniform(0.0, full))
        if outcome.startswith("failed"):
            violations.append(f"{name}: the round failed ({outcome})")
        if len(store.queue.tasks(name)) not in (0, PROGRAM.batch_size):
            violations.append(f"{name}: partial batch of {len(store.queue.tasks(name))}")
        # The killed annotators' leases run out (the requeue sensor's job), then the round
        # is re-run from its first step and must converge.
        store.queue.requeue_expired(now=datetime.now(UTC) + timedelta(days=1))
        _round(str(home), k)
        tasks = store.queue.tasks(name)
        answers = store.queue.answers(name)
        if len(tasks) != PROGRAM.batch_size:
            violations.append(f"{name}: {len(tasks)} tasks after the re-run")
        if answers.duplicated(["task_id", "annotator"]).any():
            violations.append(f"{name}: a duplicated answer")
        if len(answers) != PROGRAM.batch_size * PROGRAM.answers_per_task:
            violations.append(f"{name}: {len(answers)} answers after the re-run")
    queued = store.queue.answers()
    if queued["sample_key"].duplicated().any():
        violations.append("a sample was asked twice across rounds")
    record("SIGKILL during a whole round", TRIALS, violations)
    assert violations == []
