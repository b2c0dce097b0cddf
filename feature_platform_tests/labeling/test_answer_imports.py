"""Answer files with bad rows: the good rows are taken, every bad row is reported with its
line and reason and quarantined, and an import is all-or-nothing in the database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors.files import read_csv, read_jsonl, tasks_to_jsonl
from feature_platform.labeling.imports import import_answers, import_history, quarantined
from feature_platform.labeling.queue import TaskSpec

CLASSES = ["cat", "dog"]


@pytest.fixture
def fs(database_url: str, tmp_path: Path) -> FeatureStore:
    store = FeatureStore(
        dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=database_url)
    )
    registry = AnnotatorRegistry(store.engine)
    for name in ("ann", "bob", "gone"):
        registry.add(name, "annotator")
    registry.add("eve", "viewer")
    registry.add("ops", "lead")  # runs imports
    registry.deactivate("gone")
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "test", "pets@v1", "m1") for i in range(3)]
    store.queue.create_batch("r1", specs, CLASSES, answers_needed=2)
    return store


def ids(fs: FeatureStore) -> list[str]:
    return [fs.queue.find("r1", f"s{i}").id for i in range(3)]


def jsonl(records: list[object]) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def test_jsonl_import_takes_valid_rows_and_reports_each_bad_one(fs: FeatureStore) -> None:
    t0, t1, t2 = ids(fs)
    text = jsonl(
        [
            {"task_id": t0, "annotator": "ann", "label": "cat", "time_spent_s": 4.5},
            '{"task_id": "' + t0 + '", "annotator": "bob", "label": ',  # broken line
            {"task_id": "no-such-task", "annotator": "ann", "label": "cat"},
            {"task_id": t1, "annotator": "ann", "label": "horse"},
            {"task_id": t0, "annotator": "ann", "label": "cat", "time_spent_s": 4.5},  # again
            {"task_id": t1, "annotator": "mallory", "label": "dog"},
            {"task_id": t1, "annotator": "gone", "label": "dog"},
            {"task_id": t1, "annotator": "eve", "label": "dog"},
            {"round": "r1", "sample_key": "s2", "annotator": "bob", "label": "dog"},
            {"round": "r1", "sample_key": "s9", "annotator": "bob", "label": "dog"},
            {"task_id": t2, "annotator": "ann", "label": "cat", "time_spent_s": "soon"},
            {"task_id": t2, "annotator": "ann", "label": "cat", "answered_at": "yesterday"},
            "[1, 2]",
            "",
            {"task_id": t1, "annotator": "bob", "label": "cat", "answered_at": "2026-05-01T10:00"},
        ]
    )
    report = import_answers(
        fs.engine, fs.queue, read_jsonl(text), source="a.jsonl", format="jsonl", actor="ops"
    )
    assert (report.accepted, report.already_recorded) == (3, 0)
    rejected = {r.line: r.reason for r in report.rejected}
    assert sorted(rejected) == [2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13]
    assert rejected[2].startswith("malformed JSON")
    assert "Unknown task id 'no-such-task'" in rejected[3]
    assert "'horse'" in rejected[4] and "not one of its classes" in rejected[4]
    assert rejected[5].startswith("duplicate of line 1")
    assert "unknown annotator: 'mallory'" in rejected[6]
    assert "'gone' may not label (deactivated)" in rejected[7]
    assert "'eve' may not label (role 'viewer')" in rejected[8]
    assert "no task for sample 's9' in 'r1'" in rejected[10]
    assert "time_spent_s 'soon' is not a number" in rejected[11]
    assert "answered_at 'yesterday'" in rejected[12]
    assert "expected a JSON object" in rejected[13]

    answers = fs.queue.answers().sort_values("sample_key")
    assert answers[["sample_key", "annotator", "label"]].values.tolist() == [
        ["s0", "ann", "cat"],
        ["s1", "bob", "cat"],
        ["s2", "bob", "dog"],
    ]
    assert str(answers.iloc[1]["answered_at"]) == "2026-05-01 10:00:00+00:00"
    kept = quarantined(fs.engine, report.import_id)
    assert kept["line"].tolist() == sorted(rejected)
    assert kept.loc[kept["line"] == 6, "raw"].item().startswith('{"task_id"')
    history = import_history(fs.engine)
    assert history[["accepted", "rejected"]].values.tolist() == [[3, 11]]
    audit = AuditLog(fs.engine).entries(action="labels.import")
    assert audit.loc[0, "actor"] == "ops" and audit.loc[0, "detail"]["accepted"] == 3


def test_conflicting_and_surplus_answers_are_rejected_against_stored_ones(
    fs: FeatureStore,
) -> None:
    t0, _, _ = ids(fs)
    fs.queue.submit(t0, "ann", "cat")
    fs.queue.submit(t0, "bob", "dog", submission_id="web-1")
    registry = AnnotatorRegistry(fs.engine)
    registry.add("cid", "annotator")
    text = jsonl(
        [
            {"task_id": t0, "annotator": "ann", "label": "cat"},  # already recorded
            {"task_id": t0, "annotator": "bob", "label": "cat"},  # another id, another label
            {"task_id": t0, "annotator": "cid", "label": "cat"},  # task already full
        ]
    )
    report = import_answers(fs.engine, fs.queue, read_jsonl(text), source="b", format="jsonl")
    assert (report.accepted, report.already_recorded) == (0, 1)
    reasons = [r.reason for r in report.rejected]
    assert "conflicts with stored answer" in reasons[0]
    assert "already has its 2 answer(s)" in reasons[1]


def test_csv_import_reports_structural_problems_per_line(fs: FeatureStore) -> None:
    t0, t1, t2 = ids(fs)
    text = (
        "task_id,annotator,label,time_spent_s\n"
        f"{t0},ann,cat,3\n"
        f"{t1},bob,dog,2,extra\n"
        f'{t1},"ann",dog,1\n'
        f'{t2},bob,"cat"x,1\n'
        f"{t2},bob\n"
        "\n"
        f'{t2},"bob","dog",7\n'
    )
    report = import_answers(fs.engine, fs.queue, read_csv(text), source="c.csv", format="csv")
    assert report.accepted == 3
    rejected = {r.line: r.reason for r in report.rejected}
    assert rejected[3] == "expected 4 fields, got 5"
    assert rejected[5].startswith("malformed CSV")
    assert rejected[6] == "expected 4 fields, got 2"
    assert sorted(rejected) == [3, 5, 6]
    bad_header = read_csv("task,who,label\nx,y,z\n")
    assert (
        bad_header[0].error
        == "CSV header lacks column(s): annotator, task_id (or round and sample_key)"
    )


def test_an_import_that_fails_midway_stores_nothing(
    fs: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0, t1, t2 = ids(fs)
    text = jsonl(
        [
            {"task_id": t0, "annotator": "ann", "label": "cat"},
            {"task_id": t1, "annotator": "ann", "label": "dog"},
            {"task_id": "nope", "annotator": "ann", "label": "dog"},
            {"task_id": t2, "annotator": "ann", "label": "dog"},
        ]
    )

    def crash_at_the_import_log(conn, cursor, statement, *_):  # noqa: ANN001, ANN202
        # After the answers, events and quarantine rows were written in this transaction.
        if statement.startswith("INSERT INTO labeling_imports"):
            raise OSError("disk full")

    sa.event.listen(fs.engine, "before_cursor_execute", crash_at_the_import_log)
    with pytest.raises(OSError, match="disk full"):
        import_answers(fs.engine, fs.queue, read_jsonl(text), source="d", format="jsonl")
    sa.event.remove(fs.engine, "before_cursor_execute", crash_at_the_import_log)
    assert fs.queue.answers().empty
    assert quarantined(fs.engine).empty
    assert import_history(fs.engine).empty
    assert [e.event for e in fs.queue.history(t0)] == ["created"]

    report = import_answers(fs.engine, fs.queue, read_jsonl(text), source="d", format="jsonl")
    assert (report.accepted, len(report.rejected)) == (3, 1)


def test_task_export_jsonl_carries_full_context(fs: FeatureStore) -> None:
    lines = tasks_to_jsonl(fs.queue.tasks("r1")).splitlines()
    record = json.loads(lines[0])
    assert set(record) >= {
        "task_id",
        "round",
        "sample_key",
        "classes",
        "strategy",
        "score",
        "reason",
        "model_version",
        "feature_version",
        "top_classes",
        "features",
        "created_at",
    }
    assert len(lines) == 3
