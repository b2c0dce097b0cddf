"""An import of N rows costs a bounded number of SQL statements, not several per row, and
stores exactly what recording its rows one by one (a batch of one each, as `submit_in`
records) stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors.files import read_jsonl
from feature_platform.labeling.imports import ImportReport, import_answers
from feature_platform.labeling.queue import Submission, TaskQueue, TaskSpec

CLASSES = ["cat", "dog"]
TASKS = 80
ANNOTATORS = ["ann", "bob", "cid"]


def prepared(home: Path) -> FeatureStore:
    """Tasks wanting two answers; some answered (ann with her own ids, bob with the default
    ones), some leased by people who import nothing (their slots reserved) and by ann."""
    store = FeatureStore(Settings.under(home))
    people = AnnotatorRegistry(store.engine)
    people.add("ops", "lead", actor="platform")
    for name in [*ANNOTATORS, "lea", "max"]:
        people.add(name, "annotator", actor="platform")
    people.add("eve", "viewer", actor="platform")
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "t", "pets@v1") for i in range(TASKS)]
    created = store.queue.create_batch("r1", specs, CLASSES, answers_needed=2)
    store.queue.submit_many(
        [Submission(t.id, "ann", "cat", f"ls-{i}") for i, t in enumerate(created[:10])]
        + [Submission(t.id, "bob", "dog") for t in created[10:15]]
        + [Submission(created[15].id, "ann", "dog", "ext-15")]  # the file has another id
    )
    for name, limit in (("lea", 6), ("max", 6), ("ann", 3)):
        store.queue.lease(name, limit=limit, lease_seconds=3600)
    return store


def answer_file(store: FeatureStore) -> str:
    """200+ rows touching every check: unknown tasks and samples, wrong classes, unknown and
    non-labeling people, duplicates and reused ids in the file, already recorded answers,
    corrections under the same id, conflicts, complete tasks and reserved slots."""
    ids = {t.sample_key: t.id for t in store.queue.tasks("r1")}
    rows: list[dict[str, object] | str] = []
    for i in range(200):
        k, who = i % TASKS, ANNOTATORS[i // TASKS]
        row: dict[str, object] = {"task_id": ids[f"s{k}"], "annotator": who}
        row["label"] = CLASSES[(i * 7) % 3 % 2]
        if i % 5 == 0:
            row = {"round": "r1", "sample_key": f"s{k}", "annotator": who, "label": row["label"]}
        if who == "ann" and k < 10:
            row["submission_id"] = f"ls-{k}"  # the stored answer's id: recorded or corrected
        if i % 37 == 5:
            row["task_id"] = f"nope-{i}"
        if i % 41 == 9:
            row["label"] = "horse"
        rows.append(row)
    rows += [
        dict(rows[1]),  # a duplicate in the file
        {"task_id": ids["s79"], "annotator": "cid", "label": "cat", "submission_id": "ls-3"},
        {"task_id": ids["s78"], "annotator": "cid", "label": "cat", "submission_id": "ext-15"},
        {"task_id": ids["s1"], "annotator": "mallory", "label": "cat"},
        {"task_id": ids["s2"], "annotator": "eve", "label": "cat"},
        {"round": "r1", "sample_key": "s999", "annotator": "bob", "label": "cat"},
        '{"task_id": ',
    ]
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


RECORD = TaskQueue.submit_batch_in


def one_by_one(self, conn, submissions, now=None):  # noqa: ANN001, ANN201
    """The reference: every row recorded alone (a batch of one, as `submit_in` does), in the
    same order, so each row reads what the rows before it wrote."""
    return [RECORD(self, conn, [s], now)[0] for s in submissions]


def run(store: FeatureStore, text: str) -> tuple[ImportReport, int]:
    statements = []

    def count(*_: object) -> None:
        statements.append(1)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        report = import_answers(
            store.engine, store.queue, read_jsonl(text), source="f", format="jsonl", actor="ops"
        )
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    return report, len(statements)


def stored(store: FeatureStore) -> dict[str, object]:
    """Everything an import writes, without its clock times and random import id."""
    with store.engine.connect() as conn:

        def table(name: str, drop: tuple[str, ...] = ()) -> list[tuple]:
            frame = pd.read_sql_table(name, conn).drop(columns=list(drop))
            return [tuple(r) for r in frame.sort_values(list(frame.columns)).astype(str).values]

        return {
            "answers": table("labeling_answers", ("answered_at",)),
            "tasks": table("labeling_tasks", ("created_at",)),
            "events": table("labeling_task_events", ("at",)),
            "leases": table("labeling_leases"),
            "quarantine": table("labeling_quarantine", ("created_at", "import_id")),
        }


def outcome(report: ImportReport) -> tuple:
    return (
        report.accepted,
        report.already_recorded,
        report.revised,
        [(r.line, r.reason, r.already_quarantined) for r in report.rejected],
    )


def test_an_import_takes_few_statements_and_stores_what_row_by_row_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = prepared(tmp_path / "batched")
    text = answer_file(store)
    store.engine.dispose()
    shutil.copytree(tmp_path / "batched", tmp_path / "reference")
    reference = FeatureStore(Settings.under(tmp_path / "reference"))
    lines = text.count("\n")

    batched, count = run(store, text)
    again, count_again = run(store, text)  # a re-import: recorded already, quarantined already
    with monkeypatch.context() as patch:
        patch.setattr(TaskQueue, "submit_batch_in", one_by_one)
        expected, reference_count = run(reference, text)
        expected_again, _ = run(reference, text)

    assert count < lines / 5 and count_again < lines / 5, (count, count_again)
    assert reference_count > lines  # what each row cost before (several statements a row)
    assert outcome(batched) == outcome(expected)
    assert outcome(again) == outcome(expected_again)
    assert stored(store) == stored(reference)
    # The file does exercise every path (so the equality above means something).
    assert batched.accepted > 50 and batched.revised > 0 and again.already_recorded > 50
    reasons = " ".join(r.reason for r in batched.rejected)
    for reason in (
        "Unknown task id",
        "not one of its classes",
        "duplicate of line",
        "is already used by line",
        "unknown annotator",
        "may not label",
        "no task for sample 's999'",
        "conflicts with stored answer",  # another person's id, and another label
        "(to correct an answer, revise it)",
        "already has its 2 answer(s)",
        "are leased by",
        "malformed JSON",
    ):
        assert reason in reasons, reason
