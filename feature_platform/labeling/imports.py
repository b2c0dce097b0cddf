"""Importing answers from files and other tools: take the valid rows, quarantine the rest.

Connectors (Label Studio, JSONL, CSV) turn a file into `IncomingAnswer` rows, each with the
line it came from. `import_answers` checks every row (who answered, which task, which label,
duplicates within the file) and then, in ONE transaction, records the valid answers through the
queue's idempotent submission (`TaskQueue.submit_batch_in`: a bounded number of statements
however long the file), writes every rejected row with its line and reason to the
quarantine table for review, and logs the import. A crash stores nothing; a re-import of the
same file stores nothing new (its rows come back as `already recorded`, and its rejected rows
are not quarantined a second time). Where an answer came from another tool (Label Studio's
task, annotation and user ids) is kept beside it in `labeling_answer_sources`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

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

# Where each imported answer came from in the other tool: one row per stored answer (each
# revision too: a correction re-imported under the same submission id), written when it is
# recorded (a re-import finds it already there).
answer_sources_table = sa.Table(
    "labeling_answer_sources",
    metadata,
    sa.Column("answer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("submission_id", sa.String(200), nullable=False, index=True),
    sa.Column("system", sa.String(50), nullable=False),
    sa.Column("external_task", sa.String(200)),
    sa.Column("external_annotation", sa.String(200)),
    sa.Column("external_user", sa.String(200)),
    sa.Column("import_id", sa.String(40), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
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
    where: str = ""  # position in the other tool, e.g. "Label Studio task 4, annotation 1"
    # (system, task id, annotation id, user id) in the tool the answer came from
    provenance: tuple[str, str | None, str | None, str | None] | None = None


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str  # starts with `where` when the row has a position in another tool
    raw: str
    where: str = ""
    already_quarantined: bool = False  # kept by an earlier import of the same row

    def describe(self) -> str:
        """One line for a person: the task and annotation when known, else the file line."""
        return self.reason if self.where else f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class ImportReport:
    import_id: str
    source: str
    format: str
    accepted: int
    already_recorded: int
    rejected: list[RejectedRow] = field(default_factory=list)
    revised: int = 0  # of `accepted`: corrections of an earlier answer (stored as revisions)

    @property
    def requarantined(self) -> int:
        """Rejected rows an earlier import already put in quarantine (not added again)."""
        return sum(r.already_quarantined for r in self.rejected)

    @property
    def taken(self) -> int:
        """Rows whose answer is now stored (new, or recorded by an earlier import)."""
        return self.accepted + self.already_recorded


# Answer times outside this window are typos or placeholders (0001-01-01, 9999-12-31): they
# would also fall outside what pandas can hold and break every later read of the answers.
EARLIEST_ANSWER = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)


def parse_time(value: object) -> datetime | None:
    """ISO-8601 text (a trailing Z allowed) to an aware UTC datetime; naive means UTC.

    Raises ValueError, with a sentence saying why, for numbers (seconds, milliseconds or
    nanoseconds since 1970 cannot be told apart), unparseable text, and times before 1970 or
    more than a day in the future."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{value!r} is a number, not an ISO-8601 time (e.g. 2026-11-25T19:32:26Z); "
            f"epoch numbers are ambiguous (seconds? milliseconds?)"
        )
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before datetime.min in UTC
        parsed = None
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not an ISO-8601 time") from None
    latest = utcnow() + CLOCK_SKEW
    if parsed is None or not EARLIEST_ANSWER <= parsed <= latest:
        raise ValueError(
            f"{text[:60]!r} is outside {EARLIEST_ANSWER:%Y-%m-%d} .. {latest:%Y-%m-%d} (UTC)"
        )
    return parsed


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
    create_tables(engine, quarantine, imports, answer_sources_table)
    import_id = f"imp-{uuid.uuid4().hex[:12]}"
    rejected: list[RejectedRow] = []
    valid: list[tuple[IncomingAnswer, Submission]] = []
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    seen_ids: dict[str, tuple[int, str, str, str]] = {}
    people: dict[object, Person | None] = {}

    rows = list(rows)
    # Tasks named by (round, sample key): looked up together, not one query per row.
    by_sample = queue.find_many(
        {
            (str(r.round), str(r.sample_key))
            for r in rows
            if not r.task_id and r.round and r.sample_key
        }
    )
    for row in rows:
        problem, submission = _check(row, by_sample, registry, people)
        if problem is None and submission is not None:
            key = (submission.task_id, submission.annotator)
            if key in seen:
                first_line, first_label = seen[key]
                problem = (
                    f"duplicate of line {first_line}: {submission.annotator!r} answered task "
                    f"{submission.task_id} there"
                    + ("" if first_label == submission.label else f" with {first_label!r}")
                )
            elif submission.submission_id in seen_ids:
                # The same retry key on two different answers of this file: blame the row of
                # the file that used it first, not the answer this import is about to write.
                line, task_id, annotator, label = seen_ids[str(submission.submission_id)]
                problem = (
                    f"submission_id {submission.submission_id!r} is already used by line "
                    f"{line} of this file ({annotator!r} answered task {task_id} with "
                    f"{label!r}); one submission id is one answer"
                )
            else:
                seen[key] = (row.line, submission.label)
                seen_ids[str(submission.submission_id)] = (
                    row.line,
                    submission.task_id,
                    submission.annotator,
                    submission.label,
                )
        if problem is not None or submission is None:
            rejected.append(_rejected(row, problem or "unreadable"))
        else:
            valid.append((row, submission))

    now = utcnow()
    sources: list[tuple[int, str, tuple[str, str | None, str | None, str | None]]] = []
    with write_transaction(engine) as conn:
        accepted = already = revised = 0
        # Task id order: every transaction that waits for several task locks takes them in
        # the same order, so concurrent imports cannot deadlock (Postgres).
        valid.sort(key=lambda pair: (pair[1].task_id, pair[0].line))
        outcomes = queue.submit_batch_in(conn, [submission for _, submission in valid], now=now)
        for (row, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.status == ACCEPTED:
                accepted += 1
                # The same submission id with a new label: corrected at its source (e.g. in
                # Label Studio); the queue stores it as a revision, history kept.
                revised += outcome.answer is not None and outcome.answer.revises is not None
            elif outcome.status == ALREADY_RECORDED:
                already += 1
            else:
                rejected.append(_rejected(row, outcome.reason))
                continue
            if row.provenance is not None and outcome.answer is not None:
                sources.append((outcome.answer.id, outcome.answer.submission_id, row.provenance))
        _record_sources(conn, sources, import_id, source)
        rejected = log_import(
            conn,
            import_id=import_id,
            at=now,
            actor=str(actor),
            source=source,
            format=format,
            accepted=accepted,
            already_recorded=already,
            rejected=rejected,
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
                "revised": revised,
                "rejected": len(rejected),
            },
            conn=conn,
            now=now,
        )
    return ImportReport(import_id, source, format, accepted, already, rejected, revised)


def _rejected(row: IncomingAnswer, problem: str) -> RejectedRow:
    return RejectedRow(row.line, _reason(row, problem), row.raw, row.where)


def log_import(
    conn: sa.Connection,
    *,
    import_id: str,
    at: datetime,
    actor: str,
    source: str,
    format: str,  # noqa: A002 - the import log's column
    accepted: int,
    already_recorded: int,
    rejected: list[RejectedRow],
) -> list[RejectedRow]:
    """Quarantine an import's rejected rows (those not quarantined before) and add its line to
    the import log, inside `conn`'s transaction; returns the rejected rows, each flagged
    `already_quarantined` where an earlier import kept the same row for the same reason."""
    rejected = _mark_quarantined(conn, sorted(rejected, key=lambda r: r.line))
    fresh = [r for r in rejected if not r.already_quarantined]
    if fresh:
        conn.execute(
            quarantine.insert(),
            [
                {
                    "import_id": import_id,
                    "source": source,
                    "line": r.line,
                    "reason": r.reason,
                    "raw": r.raw,
                    "created_at": at,
                }
                for r in fresh
            ],
        )
    conn.execute(
        imports.insert().values(
            id=import_id,
            at=at,
            actor=actor,
            source=source,
            format=format,
            accepted=accepted,
            already_recorded=already_recorded,
            rejected=len(rejected),
        )
    )
    return rejected


def _mark_quarantined(conn: sa.Connection, rejected: list[RejectedRow]) -> list[RejectedRow]:
    """Flag rows (same raw text, same reason) that an earlier import already quarantined, so
    re-importing a file does not pile the same rejected rows up again."""
    kept: set[tuple[str, str]] = set()
    raws = sorted({r.raw for r in rejected})
    for start in range(0, len(raws), 500):
        chunk = raws[start : start + 500]
        kept.update(
            (raw, reason)
            for raw, reason in conn.execute(
                sa.select(quarantine.c.raw, quarantine.c.reason).where(quarantine.c.raw.in_(chunk))
            )
        )
    out, this_import = [], set()
    for r in rejected:
        key = (r.raw, r.reason)
        out.append(replace(r, already_quarantined=key in kept or key in this_import))
        this_import.add(key)
    return out


def _record_sources(
    conn: sa.Connection,
    sources: list[tuple[int, str, tuple[str, str | None, str | None, str | None]]],
    import_id: str,
    source: str,
) -> None:
    if not sources:
        return
    known = set()
    ids = [answer_id for answer_id, _, _ in sources]
    for start in range(0, len(ids), 500):
        known.update(
            conn.execute(
                sa.select(answer_sources_table.c.answer_id).where(
                    answer_sources_table.c.answer_id.in_(ids[start : start + 500])
                )
            ).scalars()
        )
    rows = [
        {
            "submission_id": submission_id,
            "answer_id": answer_id,
            "system": system,
            "external_task": task,
            "external_annotation": annotation,
            "external_user": user,
            "import_id": import_id,
            "source": source,
        }
        for answer_id, submission_id, (system, task, annotation, user) in sources
        if answer_id not in known
    ]
    if rows:
        conn.execute(answer_sources_table.insert(), rows)


def answer_sources(engine: sa.Engine) -> pd.DataFrame:
    """Where imported answers came from: the other tool's task, annotation and user ids."""
    create_tables(engine, answer_sources_table)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(sa.select(answer_sources_table).order_by(answer_sources_table.c.answer_id))
            .mappings()
            .all()
        )
    columns = [c.name for c in answer_sources_table.columns]
    return frame[columns] if not frame.empty else pd.DataFrame(columns=columns)


def _check(
    row: IncomingAnswer,
    by_sample: dict[tuple[str, str], str],
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
        if row.external:  # the hint names the other tool's id, so it is not taken as a name
            system, external_id = row.external
            return (
                f"unknown annotator: {system} user {external_id!r} is not linked to anyone "
                f"(feature-platform annotators add NAME --{system}-id {external_id})",
                None,
            )
        return (
            f"unknown annotator: {who!r} is not registered (feature-platform annotators add)",
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
        task_id = by_sample.get((str(row.round), str(row.sample_key)))
        if task_id is None:
            return f"unknown task: no task for sample {row.sample_key!r} in {row.round!r}", None
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
