"""What an answer import costs: wall time and SQL statements for importing a JSONL file of
N answers (N tasks, two annotators' answers each; a few rows rejected: unknown task, wrong
class) into a fresh embedded SQLite store, and again for re-importing the same file.

    PYTHONPATH=. python benchmarks/answer_imports.py [--rows 1000,5000]

Prints one line per size; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors.files import read_jsonl
from feature_platform.labeling.imports import ImportReport, import_answers
from feature_platform.labeling.queue import TaskSpec

CLASSES = ["cat", "dog"]


def answer_file(store: FeatureStore, n_rows: int) -> str:
    """`n_rows` answers to `n_rows // 2` tasks (ann and bob each), every 50th row bad."""
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "bench", "pets@v1") for i in range(n_rows // 2)]
    created = store.queue.create_batch("r1", specs, CLASSES, answers_needed=2)
    lines = []
    for i in range(n_rows):
        task = created[i // 2]
        row = {"task_id": task.id, "annotator": "ann" if i % 2 else "bob"}
        row["label"] = CLASSES[i % 3 % 2]
        if i % 50 == 7:
            row["task_id"] = f"missing-{i}"
        elif i % 50 == 23:
            row["label"] = "horse"
        lines.append(json.dumps(row))
    return "\n".join(lines) + "\n"


def measured(store: FeatureStore, text: str) -> tuple[float, int, ImportReport]:
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        start = time.perf_counter()
        report = import_answers(
            store.engine, store.queue, read_jsonl(text), source="b", format="jsonl", actor="ops"
        )
        return time.perf_counter() - start, statements[0], report
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1000,5000")
    args = parser.parse_args()
    for n_rows in map(int, args.rows.split(",")):
        with tempfile.TemporaryDirectory() as home:
            store = FeatureStore(Settings.under(Path(home)))
            people = AnnotatorRegistry(store.engine)
            people.add("ops", "lead", actor="platform")
            for name in ("ann", "bob"):
                people.add(name, "annotator", actor="platform")
            text = answer_file(store, n_rows)
            first, first_n, report = measured(store, text)
            again, again_n, _ = measured(store, text)
            print(
                f"{n_rows} rows: import {first:.2f} s, {first_n} statements "
                f"(accepted {report.accepted}, rejected {len(report.rejected)}); "
                f"re-import {again:.2f} s, {again_n} statements"
            )
            store.engine.dispose()


if __name__ == "__main__":
    main()
