"""Errors a person can act on (issue 12 item 9): hostile or odd input files give one clear
reason per row or a whole-file refusal; database trouble gives a one-line message with its
own exit code and stores nothing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.errors import SchemaMismatchError, StoreUnavailableError
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.connectors.files import read_csv, read_jsonl
from feature_platform.labeling.imports import import_answers
from feature_platform.labeling.queue import TaskSpec
from feature_platform.store.db import write_transaction
from feature_platform.store.offline import to_utc

CLASSES = ["cat", "dog"]


def make_store(path: Path, database_url: str | None = None) -> FeatureStore:
    settings = Settings.under(path)
    if database_url is not None:
        settings = dataclasses.replace(settings, database_url=database_url)
    store = FeatureStore(settings)
    registry = AnnotatorRegistry(store.engine)
    for name in ("ann", "bob"):
        registry.add(name, "annotator")
    registry.add("tester", "admin")  # the command line acts as FP_USER=tester
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "test", "pets@v1", "m1") for i in range(4)]
    store.queue.create_batch("r1", specs, CLASSES, answers_needed=2)
    return store


@pytest.fixture
def fs(tmp_path: Path) -> FeatureStore:
    return make_store(tmp_path / "fp")


def task_ids(fs: FeatureStore) -> list[str]:
    return [fs.queue.find("r1", f"s{i}").id for i in range(4)]


def run(fs: FeatureStore, rows: list) -> object:
    return import_answers(fs.engine, fs.queue, rows, source="f", format="jsonl")


def test_u2028_inside_a_json_string_is_not_a_line_break(fs: FeatureStore) -> None:
    t0, t1, *_ = task_ids(fs)
    text = (
        json.dumps(
            {"task_id": t0, "annotator": "ann", "label": "cat", "note": "a\u2028b"},
            ensure_ascii=False,
        )
        + "\n"
        + json.dumps({"task_id": t1, "annotator": "ann", "label": "dog"})
        + "\r\n"
    )
    rows = read_jsonl(text)
    assert [(r.line, r.error) for r in rows] == [(1, None), (2, None)]
    assert run(fs, rows).accepted == 2


def test_an_unterminated_csv_quote_rejects_its_row_only(fs: FeatureStore) -> None:
    t0, t1, t2, t3 = task_ids(fs)
    text = (
        "task_id,annotator,label\n"
        f"{t0},ann,cat\n"
        f'{t1},"ann,dog\n'  # the quote never closes
        f"{t2},ann,dog\n"
        f'{t3},"multi\nline",cat\n'  # a legitimate quoted field over two lines
        f"{t3},bob,cat\n"
    )
    rows = read_csv(text)
    assert [r.line for r in rows] == [2, 3, 4, 5, 7]
    bad = rows[1]
    assert "unterminated quote" in bad.error and bad.raw == f'{t1},"ann,dog'
    assert rows[2].error is None and rows[2].task_id == t2  # not swallowed
    assert rows[3].annotator == "multi\nline"
    report = run(fs, rows)
    assert report.accepted == 3


def test_two_rows_sharing_a_submission_id_blame_the_first_row(fs: FeatureStore) -> None:
    t0, t1, *_ = task_ids(fs)
    text = "\n".join(
        json.dumps(r)
        for r in [
            {"task_id": t0, "annotator": "ann", "label": "cat", "submission_id": "x-1"},
            {"task_id": t1, "annotator": "bob", "label": "dog", "submission_id": "x-1"},
        ]
    )
    report = run(fs, read_jsonl(text))
    assert report.accepted == 1
    [bad] = report.rejected
    assert bad.line == 2
    assert "already used by line 1 of this file" in bad.reason
    assert "stored answer" not in bad.reason


@pytest.mark.parametrize(
    ("in_json", "in_csv"),
    [("1e309", "1e309"), ("NaN", "NaN"), ("-Infinity", "-inf"), ('"inf"', "inf")],
)
def test_time_spent_must_be_a_finite_number(fs: FeatureStore, in_json: str, in_csv: str) -> None:
    t0, *_ = task_ids(fs)
    line = f'{{"task_id": "{t0}", "annotator": "ann", "label": "cat", "time_spent_s": {in_json}}}'
    csv_text = f"task_id,annotator,label,time_spent_s\n{t0},ann,cat,{in_csv}\n"
    for rows in (read_jsonl(line), read_csv(csv_text)):
        [row] = rows
        assert row.error is not None and "finite" in row.error, row
    assert run(fs, read_jsonl(line)).accepted == 0
    assert fs.queue.answers().empty


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01", "9999-12-31"]
)
def test_answer_times_outside_a_plausible_range_are_rejected(fs: FeatureStore, when: str) -> None:
    t0, t1, *_ = task_ids(fs)
    text = "\n".join(
        json.dumps(r)
        for r in [
            {"task_id": t0, "annotator": "ann", "label": "cat", "answered_at": when},
            {"task_id": t1, "annotator": "ann", "label": "cat", "answered_at": "2026-11-01"},
        ]
    )
    report = run(fs, read_jsonl(text))
    assert report.accepted == 1
    [bad] = report.rejected
    assert "answered_at" in bad.reason and "outside" in bad.reason
    assert len(fs.queue.answers()) == 1  # the answers stay readable


def test_integer_timestamps_are_not_read_as_nanoseconds(fs: FeatureStore) -> None:
    t0, *_ = task_ids(fs)
    [row] = read_jsonl(
        json.dumps({"task_id": t0, "annotator": "ann", "label": "cat", "answered_at": 1764000000})
    )
    assert "number" in row.error and "ISO-8601" in row.error
    with pytest.raises(SchemaMismatchError, match="numbers, not timestamps"):
        to_utc(pd.Series([1764000000, 1764000060]), "event_timestamp")
    assert to_utc(pd.Series(["2026-11-01T00:00:00Z"]), "t").iloc[0] == pd.Timestamp(
        "2026-11-01", tz="UTC"
    )


def test_a_locked_sqlite_database_gives_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FP_SQLITE_BUSY_TIMEOUT_S", "0.3")
    store = make_store(tmp_path / "fp")
    holder = sa.create_engine(store.settings.database_url)
    with write_transaction(holder):  # a long import holds the write lock
        with pytest.raises(StoreUnavailableError) as caught:
            store.queue.lease("ann")
        message = str(caught.value)
        assert "locked by another writer" in message and "nothing was changed" in message
        assert "\n" not in message
        monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
        monkeypatch.setenv("FP_USER", "tester")
        for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
            monkeypatch.delenv(variable, raising=False)
        assert main(["queue", "requeue-expired"]) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "locked by another writer" in err
    assert len(store.queue.lease("ann")) == 1  # once the lock is gone it works


@pytest.mark.postgres
def test_postgres_connection_lost_mid_import_rolls_back_with_its_own_exit_code(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = make_store(tmp_path / "fp", postgres_url)
    ids = task_ids(store)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(json.dumps({"task_id": t, "annotator": "ann", "label": "cat"}) + "\n" for t in ids)
    )
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    statements = {"n": 0}

    def cut(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        # Terminate this very connection once the import has written its answers (one
        # insert of them all) and goes on to their task events.
        if statement.lstrip().upper().startswith("INSERT INTO LABELING_TASK_EVENTS"):
            statements["n"] += 1
            if statements["n"] == 1:
                pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with admin.connect() as other:
                    other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})

    sa.event.listen(sa.Engine, "before_cursor_execute", cut)
    try:
        monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
        monkeypatch.setenv("FP_DATABASE_URL", postgres_url)
        monkeypatch.setenv("FP_USER", "tester")
        code = main(["labels", "import", str(answers), "--format", "jsonl"])
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", cut)
        admin.dispose()
    assert code == 3  # not 1 ("nothing could be taken") nor 2 (a refused file)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rolled back" in err and "Traceback" not in err
    assert store.queue.answers().empty  # nothing of the import was stored
    assert main(["labels", "import", str(answers), "--format", "jsonl"]) == 0  # a re-run works
    assert len(store.queue.answers()) == 4
    assert not math.isnan(len(store.queue.answers()))
