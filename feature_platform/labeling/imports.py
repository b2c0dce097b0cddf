"""Importing answers from files and other tools: take the valid rows, quarantine the rest.

Connectors (Label Studio, JSONL, CSV) turn a file into `IncomingAnswer` rows, each with the
line it came from. `import_answers` checks every row (who answered, which task, which label,
duplicates within the file) and then, in ONE transaction, records the valid answers through the
queue's idempotent submission, writes every rejected row with its line and reason to the
quarantine table for review, and logs the import. A crash stores nothing; a re-import of the
same file stores nothing new (its rows come back as `already recorded`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.roles import AnnotatorRegistry, Person
from feature_platform.labeling.queue import (
    ACCEPTED,
    ALREADY_RECORDED,
    Submission,
    TaskQueue,
    default_submission_id,
)
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction

quarantine = sa.Table(
    "labeling_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("import_id", sa.String(40), nullable=False, index=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

imports = sa.Table(
    "labeling_imports",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("format", sa.String(30), nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("already_recorded", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class IncomingAnswer:
    """One answer as read from a file, before any check. `error` is set when the row could
    not even be parsed; `annotator` is our name, or `external` = (system, id) to resolve."""

    line: int
    raw: str
    label: str | None = None
    task_id: str | None = None
    round: str | None = None
    sample_key: str | None = None
    annotator: str | None = None
    external: tuple[str, str] | None = None
    answered_at: datetime | None = None
    time_spent_s: float | None = None
    submission_id: str | None = None
    cancelled: bool = False
    error: str | None = None
    where: str = ""  # extra position text, e.g. "annotation 2 (id 7)"


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class ImportReport:
    import_id: str
    source: str
    format: str
    accepted: int
    already_recorded: int
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def taken(self) -> int:
        """Rows whose answer is now stored (new, or recorded by an earlier import)."""
        return self.accepted + self.already_recorded


def parse_time(value: object) -> datetime | None:
    """ISO-8601 text (a trailing Z allowed) to an aware UTC datetime; naive means UTC."""
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _reason(row: IncomingAnswer, text: str) -> str:
    return f"{row.where}: {text}" if row.where else text


def import_answers(
    engine: sa.Engine,
    queue: TaskQueue,
    rows: Iterable[IncomingAnswer],
    *,
    source: str,
    format: str,
    actor: Actor | str | None = None,
    registry: AnnotatorRegistry | None = None,
) -> ImportReport:
    """Check and record `rows` in one transaction (see the module docstring).

    Rejected (each kept in quarantine with its line): rows that did not parse, cancelled
    annotations, answers from people who are not registered or may not label, unknown tasks,
    missing labels or labels outside the task's classes, a second answer by the same person to
    the same task within the file, answers conflicting with a stored one, answers to tasks that
    already have all their answers.

    `actor` (default: the current actor) must be allowed to import (lead or admin); refused
    with PermissionDeniedError before anything is read otherwise.
    """
    registry = registry or AnnotatorRegistry(engine)
    actor = as_actor(actor)
    registry.require(actor, "import")
    create_tables(engine, quarantine, imports)
    import_id = f"imp-{uuid.uuid4().hex[:12]}"
    rejected: list[RejectedRow] = []
    valid: list[tuple[IncomingAnswer, Submission]] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    people: dict[object, Person | None] = {}

    for row in rows:
        problem, submission = _check(row, queue, registry, people)
        if problem is None and submission is not None:
            key = (submission.task_id, submission.annotator)
            if key in seen:
                first_line, first_label = seen[key]
                problem = (
                    f"duplicate of line {first_line}: {submission.annotator!r} answered task "
                    f"{submission.task_id} there"
                    + ("" if first_label == submission.label else f" with {first_label!r}")
                )
            else:
                seen[key] = (row.line, submission.label)
        if problem is not None or submission is None:
            rejected.append(RejectedRow(row.line, _reason(row, problem or "unreadable"), row.raw))
        else:
            valid.append((row, submission))

    now = utcnow()
    with write_transaction(engine) as conn:
        accepted = already = 0
        # Task id order: every transaction that waits for several task locks takes them in
        # the same order, so concurrent imports cannot deadlock (Postgres).
        for row, submission in sorted(valid, key=lambda pair: (pair[1].task_id, pair[0].line)):
            outcome = queue.submit_in(conn, submission, now=now)
            if outcome.status == ACCEPTED:
                accepted += 1
            elif outcome.status == ALREADY_RECORDED:
                already += 1
            else:
                rejected.append(RejectedRow(row.line, _reason(row, outcome.reason), row.raw))
        rejected.sort(key=lambda r: r.line)
        if rejected:
            conn.execute(
                quarantine.insert(),
                [
                    {
                        "import_id": import_id,
                        "source": source,
                        "line": r.line,
                        "reason": r.reason,
                        "raw": r.raw,
                        "created_at": now,
                    }
                    for r in rejected
                ],
            )
        conn.execute(
            imports.insert().values(
                id=import_id,
                at=now,
                actor=str(actor),
                source=source,
                format=format,
                accepted=accepted,
                already_recorded=already,
                rejected=len(rejected),
            )
        )
        registry.audit.record(
            actor,
            "labels.import",
            import_id,
            {
                "source": source,
                "format": format,
                "accepted": accepted,
                "already_recorded": already,
                "rejected": len(rejected),
            },
            conn=conn,
            now=now,
        )
    return ImportReport(import_id, source, format, accepted, already, rejected)


def _check(
    row: IncomingAnswer,
    queue: TaskQueue,
    registry: AnnotatorRegistry,
    people: dict[object, Person | None],
) -> tuple[str | None, Submission | None]:
    """(why the row is rejected, or None; the submission it stands for)."""
    if row.error:
        return row.error, None
    if row.cancelled:
        return "annotation was cancelled (skipped) in the labeling tool; no answer to take", None
    who = row.external or row.annotator
    if not who:
        return "no annotator given", None
    if who not in people:  # one registry lookup per person, not per row
        person = (
            registry.resolve(*row.external) if row.external else registry.find(str(row.annotator))
        )
        people[who] = person
    person = people[who]
    if person is None:
        named = f"{row.external[0]} user {row.external[1]}" if row.external else repr(who)
        return (
            f"unknown annotator: {named} is not registered (feature-platform annotators add)",
            None,
        )
    if not person.may("label"):
        why = "deactivated" if not person.active else f"role {person.role!r}"
        return f"annotator {person.name!r} may not label ({why})", None
    name = person.name
    task_id = row.task_id
    if not task_id:
        if not (row.round and row.sample_key):
            return "no task: give task_id, or round and sample_key", None
        task = queue.find(row.round, row.sample_key)
        if task is None:
            return f"unknown task: no task for sample {row.sample_key!r} in {row.round!r}", None
        task_id = task.id
    if row.label is None or str(row.label) == "":
        return "no label given", None
    return None, Submission(
        task_id=str(task_id),
        annotator=name,
        label=str(row.label),
        submission_id=row.submission_id or default_submission_id(str(task_id), name),
        answered_at=row.answered_at,
        time_spent_s=row.time_spent_s,
    )


def quarantined(engine: sa.Engine, import_id: str | None = None) -> pd.DataFrame:
    """Rejected rows kept for review, oldest first."""
    create_tables(engine, quarantine, imports)
    query = sa.select(quarantine).order_by(quarantine.c.id)
    if import_id is not None:
        query = query.where(quarantine.c.import_id == import_id)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    columns = ["id", "import_id", "source", "line", "reason", "raw", "created_at"]
    return frame[columns] if not frame.empty else pd.DataFrame(columns=columns)


def import_history(engine: sa.Engine) -> pd.DataFrame:
    create_tables(engine, quarantine, imports)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sa.select(imports).order_by(imports.c.at)).mappings().all()
        )
    columns = [c.name for c in imports.columns]
    return frame[columns] if not frame.empty else pd.DataFrame(columns=columns)
