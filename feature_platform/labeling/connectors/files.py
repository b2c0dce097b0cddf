"""JSONL and CSV: tasks out (one task with its whole context per line), answers in.

An answer row names its task by `task_id` (or by `round` + `sample_key`) and carries
`annotator` and `label`; optional `answered_at` (ISO-8601), `time_spent_s` and `submission_id`
(the retry key: the same id twice is one answer).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from feature_platform.governance.privacy import STAMP, ensure_redacted
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
    """Everything an annotator or another tool needs to know about one task (tagged values
    the reader may not see already replaced by markers: see governance/privacy.py)."""
    ensure_redacted(task)
    record = {
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
    if STAMP in task.context:
        record["redacted"] = task.context[STAMP]["redacted"]
    return record


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
        answered_at = parse_time(record.get("answered_at"))
    except ValueError as exc:
        return IncomingAnswer(line, raw, error=f"answered_at {exc}")
    spent = _text(record.get("time_spent_s"))
    try:
        time_spent = float(spent) if spent is not None else None
    except ValueError:
        return IncomingAnswer(line, raw, error=f"time_spent_s {spent!r} is not a number")
    if time_spent is not None and not math.isfinite(time_spent):
        # 1e309 parses as inf and NaN as nan: both would poison medians and sums.
        return IncomingAnswer(
            line, raw, error=f"time_spent_s {spent!r} is not a finite number of seconds"
        )
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


def json_lines(text: str) -> list[str]:
    """The lines of a JSONL text. Only \\n (or \\r\\n) ends a line: U+2028, U+0085 and the
    other separators `str.splitlines` also breaks on are valid inside a JSON string."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_jsonl(text: str) -> list[IncomingAnswer]:
    """One JSON object per line; blank lines are skipped, a broken line is one rejected row."""
    rows = []
    for number, line in enumerate(json_lines(text), start=1):
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


UNTERMINATED = "unterminated quote: this row is not read; the rows after it are"


def csv_records(text: str) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
    """(first line, raw text, fields or None, error) for each record of a CSV text.

    A quoted field may span lines, but a quote that never closes would swallow every row
    after it: that record is rejected alone (its first line) and reading resumes on the next
    line. Line numbers count physical lines from 1 (the header is record 1)."""
    # Only \r, \n and \r\n end a CSV line (str.splitlines would also break on U+2028).
    lines = [m.group() for m in re.finditer(r"[^\r\n]*(?:\r\n|\r|\n|$)", text) if m.group()]
    quotes = [line.count('"') for line in lines]
    i = 0
    while i < len(lines):
        # The record ends on the first line where its quotes balance ("" escapes are pairs).
        j, odd = i, quotes[i] % 2
        while odd and j + 1 < len(lines):
            j += 1
            odd = (odd + quotes[j]) % 2
        raw = "".join(lines[i : j + 1]).rstrip("\r\n")
        if odd:
            first = lines[i].rstrip("\r\n")
            yield (
                i + 1,
                first,
                None,
                UNTERMINATED,
            )
            i += 1
            continue
        try:
            records = list(
                csv.reader(io.StringIO("".join(lines[i : j + 1]), newline=""), strict=True)
            )
        except csv.Error as exc:
            if j > i:  # a stray quote paired with one on a later line: blame its line only
                first = lines[i].rstrip("\r\n")
                yield i + 1, first, None, f"{UNTERMINATED} ({exc} further on)"
                i += 1
                continue
            yield i + 1, raw, None, f"malformed CSV: {exc}"
        else:
            for fields in records[:1]:
                yield i + 1, raw, fields, None
        i = j + 1


def read_csv(text: str) -> list[IncomingAnswer]:
    """A header line, then one answer per row. Rows with too many or too few fields, or with
    broken quoting, are rejected one by one; a header without the needed columns rejects all."""
    records = csv_records(text)
    for _, raw, fields, error in records:
        if error is not None or fields is None:
            return [IncomingAnswer(1, raw, error=f"malformed CSV header: {error}")]
        if any(f.strip() for f in fields):
            header = [h.strip() for h in fields]
            header_raw = raw
            break
    else:
        return []
    missing = [c for c in ("annotator", "label") if c not in header]
    if "task_id" not in header and not {"round", "sample_key"} <= set(header):
        missing.append("task_id (or round and sample_key)")
    if missing:
        return [
            IncomingAnswer(1, header_raw, error=f"CSV header lacks column(s): {', '.join(missing)}")
        ]
    rows: list[IncomingAnswer] = []
    for line, raw, fields, error in records:
        if error is not None or fields is None:
            rows.append(IncomingAnswer(line, raw, error=error))
            continue
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            rows.append(
                IncomingAnswer(line, raw, error=f"expected {len(header)} fields, got {len(fields)}")
            )
            continue
        rows.append(record_to_answer(line, raw, dict(zip(header, fields, strict=True))))
    return rows
