"""JSONL and CSV: tasks out (one task with its whole context per line), answers in.

An answer row names its task by `task_id` (or by `round` + `sample_key`) and carries
`annotator` and `label`; optional `answered_at` (ISO-8601), `time_spent_s` and `submission_id`
(the retry key: the same id twice is one answer).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from feature_platform.labeling.imports import IncomingAnswer, parse_time
from feature_platform.labeling.queue import Task

ANSWER_FIELDS = (
    "task_id",
    "round",
    "sample_key",
    "annotator",
    "label",
    "answered_at",
    "time_spent_s",
    "submission_id",
)


def task_record(task: Task) -> dict[str, Any]:
    """Everything an annotator or another tool needs to know about one task."""
    return {
        "task_id": task.id,
        "round": task.round,
        "sample_key": task.sample_key,
        "state": task.state,
        "classes": task.classes,
        "answers_needed": task.answers_needed,
        "priority": task.priority,
        "strategy": task.strategy,
        "score": task.score,
        "reason": task.reason,
        "model_version": task.model_version,
        "feature_version": task.feature_version,
        "top_classes": task.context.get("top_classes", []),
        "features": task.context.get("features_shown", {}),
        "created_at": task.created_at.isoformat(),
    }


def tasks_to_jsonl(tasks: Iterable[Task]) -> str:
    return "".join(json.dumps(task_record(t), sort_keys=True) + "\n" for t in tasks)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def record_to_answer(line: int, raw: str, record: Mapping[str, Any]) -> IncomingAnswer:
    """One parsed row (JSON object or CSV dict) to an IncomingAnswer, or one with `error`."""
    try:
        answered_at = parse_time(_text(record.get("answered_at")))
    except ValueError:
        return IncomingAnswer(
            line, raw, error=f"answered_at {record.get('answered_at')!r} is not an ISO-8601 time"
        )
    spent = _text(record.get("time_spent_s"))
    try:
        time_spent = float(spent) if spent is not None else None
    except ValueError:
        return IncomingAnswer(line, raw, error=f"time_spent_s {spent!r} is not a number")
    return IncomingAnswer(
        line=line,
        raw=raw,
        task_id=_text(record.get("task_id")),
        round=_text(record.get("round")),
        sample_key=_text(record.get("sample_key")),
        annotator=_text(record.get("annotator")),
        label=_text(record.get("label")),
        answered_at=answered_at,
        time_spent_s=time_spent,
        submission_id=_text(record.get("submission_id")),
    )


def read_jsonl(text: str) -> list[IncomingAnswer]:
    """One JSON object per line; blank lines are skipped, a broken line is one rejected row."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(
                IncomingAnswer(
                    number, line, error=f"malformed JSON (column {exc.colno}): {exc.msg}"
                )
            )
            continue
        if not isinstance(record, dict):
            rows.append(
                IncomingAnswer(
                    number, line, error=f"expected a JSON object, got {type(record).__name__}"
                )
            )
            continue
        rows.append(record_to_answer(number, line, record))
    return rows


def read_csv(text: str) -> list[IncomingAnswer]:
    """A header line, then one answer per row. Rows with too many or too few fields, or with
    broken quoting, are rejected one by one; a header without the needed columns rejects all."""
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        return [IncomingAnswer(1, lines[0] if lines else "", error=f"malformed CSV header: {exc}")]
    missing = [c for c in ("annotator", "label") if c not in header]
    if "task_id" not in header and not {"round", "sample_key"} <= set(header):
        missing.append("task_id (or round and sample_key)")
    if missing:
        return [
            IncomingAnswer(
                1,
                lines[0].rstrip("\r\n"),
                error=f"CSV header lacks column(s): {', '.join(missing)}",
            )
        ]
    rows: list[IncomingAnswer] = []
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(
                IncomingAnswer(
                    start, _lines(lines, start, reader.line_num), error=f"malformed CSV: {exc}"
                )
            )
            start = reader.line_num + 1
            continue
        raw = _lines(lines, start, reader.line_num)
        line, start = start, reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            rows.append(
                IncomingAnswer(line, raw, error=f"expected {len(header)} fields, got {len(fields)}")
            )
            continue
        rows.append(record_to_answer(line, raw, dict(zip(header, fields, strict=True))))
    return rows


def _lines(lines: Sequence[str], first: int, last: int) -> str:
    return "".join(lines[first - 1 : max(last, first)]).rstrip("\r\n")
