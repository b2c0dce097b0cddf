"""The labeling queue: tasks with state, leases that expire, idempotent answer submission,
answer revisions, and skip / unsure outcomes.

A task moves pending -> leased -> answered -> resolved (answers frozen into a label snapshot),
and back to pending when a lease expires. A task wants `answers_needed` answers from distinct
people (overlap), so it counts as leased only while answers plus live leases fill that.

API (every write is one transaction; people are named by their registered name)
-------------------------------------------------------------------------------
Only registered, active people whose role may `label` (annotator, reviewer, lead, admin; see
`governance.roles`) may lease, submit, revise, skip or mark unsure: anyone else is refused
(PermissionDeniedError; code `not_allowed` in a SubmitOutcome).
- `create_batch(round, specs, classes, answers_needed, ...)`: one task per sample (idempotent).
- `lease(person, limit, lease_seconds)`: hand out open tasks. **A live lease reserves its slot**:
  until it expires nobody else can fill it (a submission from someone else, an import included,
  is refused with code `slot_reserved` while every free slot is leased to others).
- `submit(task, person, label, submission_id=...)` / `submit_many([Submission])` /
  `submit_in(conn, Submission)`: record an answer; returns / reports an `Answer`.
  `submit_batch_in(conn, [Submission])`: the same outcomes for many (imports) in a bounded
  number of statements.
- `revise(task, person, label, within=grace, reason=...)`: the person corrects their own answer
  (e.g. "undo" in the web app within a grace period). The correction is a NEW answer row
  (`revision` n+1, `revises` = the id of the answer it corrects); nothing is overwritten.
- `skip(task, person, reason)` / `unsure(task, person, note)`: the person passes on the task.
  Recorded with the person (`passes()`), the person's lease is released and the task is never
  offered to them again; a pass is not an answer and fills no slot.
- `renew(task, person, lease_seconds)` / `release(task, person, event=...)`: keep a lease alive
  while the person works, or give it back early (sign-out).
- `answers(round)`: the **effective** answers, one per (task, person), which is what
  aggregation, agreement, conflicts and label snapshots read. `answers(history=True)` and
  `answer_history(task, person)`: every revision, with an `effective` flag.

Submission ids and revisions (the merge rule)
---------------------------------------------
A submission id names one person's answer to one task (default `<task id>:<person>`; a Label
Studio import uses the annotation's id). For one task and person:
1. The same id with a label already recorded under that id (the latest or an earlier revision):
   `already_recorded`, nothing changes. Retries and re-imports are idempotent, and replaying an
   old export never flips an answer back.
2. The same id with a new label: the answer was corrected at its source (e.g. edited in Label
   Studio, then re-imported): recorded as a revision of the person's effective answer.
3. Another id while the person already answered: the same label is `already_recorded`;
   another label is a `conflict` (a correction must say so: `revise`, or the same id).
4. An id used for another task or person: `conflict`.
The label used for training is then decided by: a reviewer's adjudication (latest decision)
> the latest revision by the same person > their earlier revisions; the effective answers of
different people are combined by the chosen aggregation (majority, Dawid-Skene...).

Concurrency: every write runs in `write_transaction` (SQLite: `BEGIN IMMEDIATE`, one writer at
a time across processes) and locks the task rows it checks `FOR UPDATE` (Postgres), always in
id order, so the check "is there still a slot / was this already answered" and the write that
depends on it are atomic. Leasing skips rows another transaction holds (`SKIP LOCKED`) instead
of waiting for them. Every move is appended to `labeling_task_events`, so a task's history
(who leased it, which model scored it before a re-prioritisation...) is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import InvalidAnswerError, InvalidArgumentError, UnknownTaskError
from feature_platform.governance.roles import (
    AnnotatorRegistry,
    PermissionDeniedError,
    labeling_problem,
)
from feature_platform.names import check_name
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow, write_transaction

PENDING, LEASED, ANSWERED, RESOLVED = "pending", "leased", "answered", "resolved"
STATES = (PENDING, LEASED, ANSWERED, RESOLVED)
OPEN_STATES = (PENDING, LEASED)

tasks = sa.Table(
    "labeling_tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("round", sa.String(100), nullable=False, index=True),
    sa.Column("sample_key", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False, index=True),
    sa.Column("answers_needed", sa.Integer, nullable=False),
    sa.Column("classes", sa.Text, nullable=False),  # JSON list of allowed labels
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("strategy", sa.String(50), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("model_version", sa.String(200)),
    sa.Column("feature_version", sa.String(260), nullable=False),
    sa.Column("context", sa.Text, nullable=False),  # JSON: features shown, model's top classes
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The label set version `classes` belong to (labeling/label_sets.py); 1 before any change.
    sa.Column("label_set_version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("round", "sample_key", name="uq_task_round_sample"),
)

leases = sa.Table(
    "labeling_leases",
    metadata,
    sa.Column("task_id", sa.String(40), sa.ForeignKey("labeling_tasks.id"), primary_key=True),
    sa.Column("annotator", sa.String(200), primary_key=True),
    sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

answers = sa.Table(
    "labeling_answers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(40), sa.ForeignKey("labeling_tasks.id"), nullable=False),
    sa.Column("annotator", sa.String(200), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_spent_s", sa.Float),
    sa.Column("submission_id", sa.String(200), nullable=False),
    # 1 for a person's first answer to a task, n+1 for each correction of it.
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("revises", sa.Integer, sa.ForeignKey("labeling_answers.id")),
    sa.Column("revision_reason", sa.Text, nullable=False, server_default=""),
    # The label set version the label was checked against (its task's at the time).
    sa.Column("label_set_version", sa.Integer, nullable=False, server_default="1"),
    # One row per revision of a person's answer: a retried submission never counts twice and
    # two racing corrections cannot both become revision n+1.
    sa.UniqueConstraint("task_id", "annotator", "revision", name="uq_answer_revision"),
    # A submission id with one label is stored once (retries and re-imports are idempotent).
    sa.UniqueConstraint("submission_id", "label", name="uq_answer_submission_label"),
)

SKIP, UNSURE = "skip", "unsure"
PASS_OUTCOMES = (SKIP, UNSURE)

passes = sa.Table(
    "labeling_passes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(40), sa.ForeignKey("labeling_tasks.id"), nullable=False),
    sa.Column("annotator", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),  # skip | unsure
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("task_id", "annotator", "outcome", name="uq_pass_task_annotator"),
)

task_events = sa.Table(
    "labeling_task_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(40), sa.ForeignKey("labeling_tasks.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("annotator", sa.String(200)),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
    sa.Index("ix_labeling_task_events_task", "task_id", "id"),
)


@dataclass(frozen=True)
class TaskSpec:
    """What a query strategy hands the queue for one sample."""

    sample_key: str
    strategy: str
    score: float
    reason: str
    feature_version: str
    model_version: str | None = None
    features_shown: dict[str, float] = field(default_factory=dict)
    top_classes: list[tuple[str, float]] = field(default_factory=list)
    # The explicit version `features_shown` was read from (a program's `labeling` alias may
    # point elsewhere than `feature_version`, the version the round trains on).
    features_shown_version: str | None = None
    # Privacy: the tagged columns of what is shown (see governance/privacy.py), kept in the
    # context so every front end knows what to redact.
    column_tags: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    id: str
    round: str
    sample_key: str
    state: str
    answers_needed: int
    classes: list[str]
    priority: float
    strategy: str
    score: float
    reason: str
    model_version: str | None
    feature_version: str
    context: dict[str, Any]
    created_at: datetime
    label_set_version: int = 1  # the label set version `classes` belong to


@dataclass(frozen=True)
class Answer:
    id: int
    task_id: str
    annotator: str
    label: str
    answered_at: datetime
    time_spent_s: float | None
    submission_id: str
    revision: int = 1  # 1: the person's first answer; n+1: their n-th correction
    revises: int | None = None  # the answer id this revision corrects


@dataclass(frozen=True)
class Pass:
    """A person passed on a task: `skip` (with a reason) or `unsure`. Not an answer."""

    id: int
    task_id: str
    annotator: str
    outcome: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Lease:
    task_id: str
    annotator: str
    leased_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    at: datetime
    event: str
    annotator: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Submission:
    """One answer to record. Without `submission_id` the retry key is task + annotator."""

    task_id: str
    annotator: str
    label: str
    submission_id: str | None = None
    answered_at: datetime | None = None
    time_spent_s: float | None = None


ACCEPTED, ALREADY_RECORDED, REJECTED = "accepted", "already_recorded", "rejected"


@dataclass(frozen=True)
class SubmitOutcome:
    """What became of one submission: accepted (a new answer, or a revision of the person's
    answer: then `answer.revises` is set), already_recorded (an identical retry) or rejected,
    with `code` (not_allowed, unknown_task, invalid_label, conflict, task_complete,
    slot_reserved, invalid_time, nothing_to_revise, grace_expired) and a sentence saying why."""

    submission: Submission
    status: str
    answer: Answer | None = None
    code: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Reprioritization:
    """Result of re-scoring open tasks with a new model."""

    model_version: str | None
    rescored: list[str]  # task ids with a fresh score, now ahead of the stale ones
    stale: list[str]  # open task ids the new model did not score (kept, ranked after)
    not_open: list[str]  # sample keys given a score that have no open task in scope


def _context(spec: TaskSpec) -> dict[str, Any]:
    context: dict[str, Any] = {
        "features_shown": spec.features_shown,
        "top_classes": [[str(c), float(p)] for c, p in spec.top_classes],
    }
    if spec.features_shown_version:
        context["features_shown_version"] = spec.features_shown_version
    if spec.column_tags:
        context["column_tags"] = {c: list(t) for c, t in spec.column_tags.items()}
    return context


def _task(row: sa.Row) -> Task:
    return Task(
        id=row.id,
        round=row.round,
        sample_key=row.sample_key,
        state=row.state,
        answers_needed=row.answers_needed,
        classes=json.loads(row.classes),
        priority=row.priority,
        strategy=row.strategy,
        score=row.score,
        reason=row.reason,
        model_version=row.model_version,
        feature_version=row.feature_version,
        context=json.loads(row.context),
        created_at=as_utc(row.created_at),
        label_set_version=int(row.label_set_version or 1),
    )


def _answer(row: sa.Row) -> Answer:
    return Answer(
        id=row.id,
        task_id=row.task_id,
        annotator=row.annotator,
        label=row.label,
        answered_at=as_utc(row.answered_at),
        time_spent_s=row.time_spent_s,
        submission_id=row.submission_id,
        revision=row.revision,
        revises=row.revises,
    )


def _pass(row: sa.Row) -> Pass:
    return Pass(row.id, row.task_id, row.annotator, row.outcome, row.reason, as_utc(row.at))


def default_submission_id(task_id: str, annotator: str) -> str:
    return f"{task_id}:{annotator}"


def overlap_selected(round_key: str, sample_key: str, fraction: float, seed: int = 0) -> bool:
    """Whether a sample belongs to the overlap fraction of its round: a hash, so the choice
    depends on nothing but (seed, round, sample) and survives re-running batch creation."""
    digest = hashlib.sha256(f"{seed}:{round_key}:{sample_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


T = TypeVar("T")


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    """A unique-key race (Postgres: two inserts not serialised by one task lock) or a
    Postgres deadlock/serialization failure: the transaction rolled back whole, so re-running
    it is safe and it will then see the row that won."""
    code = getattr(exc.orig, "pgcode", None)
    if code in ("23505", "40P01", "40001"):
        return True
    return isinstance(exc, sa.exc.IntegrityError) and "UNIQUE" in str(exc.orig)


class TaskQueue:
    def __init__(self, engine: sa.Engine, registry: AnnotatorRegistry | None = None) -> None:
        self.engine = engine
        # Only registered, active people with a labeling role may lease, answer, revise, skip.
        self.registry = registry or AnnotatorRegistry(engine)
        create_tables(engine, tasks, leases, answers, passes, task_events)

    def _write(self, work: Callable[[sa.Connection], T], attempts: int = 3) -> T:
        for attempt in range(attempts):
            try:
                with write_transaction(self.engine) as conn:
                    return work(conn)
            except sa.exc.DBAPIError as exc:
                if attempt == attempts - 1 or not _is_retryable(exc):
                    raise
        raise AssertionError("unreachable")

    # -- creating ---------------------------------------------------------------------------
    def create_batch(
        self,
        round_key: str,
        specs: Sequence[TaskSpec],
        classes: Sequence[str],
        answers_needed: int = 1,
        *,
        overlap_fraction: float = 0.0,
        overlap_answers: int | None = None,
        overlap_seed: int = 0,
        label_set_version: int | None = None,
        now: datetime | None = None,
    ) -> list[Task]:
        """Create one task per spec in one transaction. Re-running a round's batch creation
        returns the tasks that already exist instead of duplicating them.

        Overlap: every task wants `answers_needed` answers; additionally a deterministic
        `overlap_fraction` of the tasks (chosen by hash, see `overlap_selected`) wants
        `overlap_answers` (e.g. 10 % of tasks answered by 3 people to measure agreement).
        Once the store's label set has versions (labeling/label_sets.py), `classes` must be
        the newest version's (checked in the transaction, so a batch never races a change);
        `label_set_version`, when given, must be that version.
        """
        check_name(round_key, "round")  # becomes a partition key and folder names
        if answers_needed < 1:
            raise InvalidArgumentError("answers_needed must be at least 1.")
        if not 0.0 <= overlap_fraction <= 1.0:
            raise InvalidArgumentError(
                f"overlap_fraction must lie in [0, 1], got {overlap_fraction}."
            )
        if overlap_fraction > 0 and (overlap_answers is None or overlap_answers < 1):
            raise InvalidArgumentError("overlap_fraction needs overlap_answers >= 1.")
        created = now or utcnow()
        class_list = json.dumps([str(c) for c in classes])

        def work(conn: sa.Connection) -> None:
            version = _current_label_set(conn, json.loads(class_list), label_set_version)
            existing = set(
                conn.execute(
                    sa.select(tasks.c.sample_key).where(tasks.c.round == round_key)
                ).scalars()
            )
            rows = []
            for rank, spec in enumerate(specs):
                key = str(spec.sample_key)
                if key in existing:
                    continue
                existing.add(key)
                needed = answers_needed
                if overlap_fraction > 0 and overlap_selected(
                    round_key, key, overlap_fraction, overlap_seed
                ):
                    needed = max(answers_needed, int(overlap_answers or 1))
                rows.append(
                    {
                        "id": uuid.uuid4().hex,
                        "round": round_key,
                        "sample_key": key,
                        "state": PENDING,
                        "answers_needed": needed,
                        "classes": class_list,
                        "priority": float(len(specs) - rank),
                        "strategy": spec.strategy,
                        "score": float(spec.score),
                        "reason": spec.reason,
                        "model_version": spec.model_version,
                        "feature_version": spec.feature_version,
                        "context": json.dumps(_context(spec)),
                        "created_at": created,
                        "label_set_version": version,
                    }
                )
            if rows:
                conn.execute(tasks.insert(), rows)
                conn.execute(
                    task_events.insert(),
                    [
                        _event_row(
                            r["id"],
                            "created",
                            created,
                            None,
                            {"answers_needed": r["answers_needed"], "priority": r["priority"]},
                        )
                        for r in rows
                    ],
                )

        self._write(work)
        return self.tasks(round_key=round_key)

    # -- reading ----------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).first()
        if row is None:
            raise UnknownTaskError(f"Unknown task id {task_id!r}.")
        return _task(row)

    def find(self, round_key: str, sample_key: str) -> Task | None:
        """The task for one sample in one round, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(tasks).where(tasks.c.round == round_key, tasks.c.sample_key == sample_key)
            ).first()
        return _task(row) if row is not None else None

    def find_many(self, samples: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Task ids of (round, sample key) pairs, read in chunks; pairs without a task left out."""
        wanted = set(samples)
        found: dict[tuple[str, str], str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted({sample for _, sample in wanted})):
                for r in conn.execute(
                    sa.select(tasks.c.id, tasks.c.round, tasks.c.sample_key).where(
                        tasks.c.sample_key.in_(chunk)
                    )
                ):
                    if (r.round, r.sample_key) in wanted:
                        found[(r.round, r.sample_key)] = r.id
        return found

    def tasks(self, round_key: str | None = None, state: str | None = None) -> list[Task]:
        query = sa.select(tasks).order_by(tasks.c.round, tasks.c.priority.desc(), tasks.c.id)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        if state is not None:
            query = query.where(tasks.c.state == state)
        with self.engine.connect() as conn:
            return [_task(r) for r in conn.execute(query)]

    def answers(self, round_key: str | None = None, *, history: bool = False) -> pd.DataFrame:
        """Every effective answer (one per task and person: their latest revision) with its
        task's provenance (what the annotator was shown and why). With `history=True`, every
        revision instead, with an `effective` column."""
        later = answers.alias("later")
        is_effective = ~sa.exists().where(
            later.c.task_id == answers.c.task_id,
            later.c.annotator == answers.c.annotator,
            later.c.revision > answers.c.revision,
        )
        query = sa.select(
            answers.c.id.label("answer_id"),
            answers.c.task_id,
            tasks.c.round,
            tasks.c.sample_key,
            answers.c.annotator,
            answers.c.label,
            answers.c.answered_at,
            answers.c.time_spent_s,
            answers.c.submission_id,
            tasks.c.strategy,
            tasks.c.score,
            tasks.c.reason,
            tasks.c.model_version,
            tasks.c.feature_version,
            tasks.c.created_at.label("task_created_at"),
            answers.c.revision,
            answers.c.revises,
            answers.c.label_set_version,
        ).join(tasks, tasks.c.id == answers.c.task_id)
        if history:
            query = query.add_columns(is_effective.label("effective"))
        else:
            query = query.where(is_effective)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query.order_by(answers.c.id)).mappings().all())
        columns = [c.name for c in query.selected_columns]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        for column in ("answered_at", "task_created_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["revises"] = frame["revises"].astype("Int64")
        if history:
            frame["effective"] = frame["effective"].astype(bool)
        return frame[columns]

    def answer_history(self, task_id: str, annotator: str | None = None) -> list[Answer]:
        """Every revision of the answers to one task (of one person), oldest first."""
        query = sa.select(answers).where(answers.c.task_id == task_id)
        if annotator is not None:
            query = query.where(answers.c.annotator == annotator)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(answers.c.id)).all()
        return [_answer(r) for r in rows]

    def passes(self, round_key: str | None = None) -> pd.DataFrame:
        """Skip / unsure outcomes (task_id, round, sample_key, annotator, outcome, reason, at)."""
        query = sa.select(
            passes.c.task_id,
            tasks.c.round,
            tasks.c.sample_key,
            passes.c.annotator,
            passes.c.outcome,
            passes.c.reason,
            passes.c.at,
        ).join(tasks, tasks.c.id == passes.c.task_id)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        columns = [c.name for c in query.selected_columns]
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query.order_by(passes.c.id)).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=columns)
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame[columns]

    def counts(self, round_key: str | None = None) -> dict[str, int]:
        query = sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        with self.engine.connect() as conn:
            found = dict(conn.execute(query).all())
        return {s: int(found.get(s, 0)) for s in STATES}

    def rounds(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(tasks.c.round).distinct()).scalars())

    def sample_keys(self) -> set[str]:
        """Every sample that already has a task (so it is not offered again)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(tasks.c.sample_key)).scalars())

    def leases(
        self, annotator: str | None = None, now: datetime | None = None, *, expired: bool = False
    ) -> list[Lease]:
        """Live leases (not yet expired at `now`), oldest first; with `expired=True` the
        expired ones that are not requeued yet instead."""
        now = now or utcnow()
        query = (
            sa.select(leases)
            .where(leases.c.expires_at <= now if expired else leases.c.expires_at > now)
            .order_by(leases.c.leased_at, leases.c.task_id, leases.c.annotator)
        )
        if annotator is not None:
            query = query.where(leases.c.annotator == annotator)
        with self.engine.connect() as conn:
            return [
                Lease(r.task_id, r.annotator, as_utc(r.leased_at), as_utc(r.expires_at))
                for r in conn.execute(query)
            ]

    def history(self, task_id: str) -> list[TaskEvent]:
        """Every move of one task, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(task_events)
                .where(task_events.c.task_id == task_id)
                .order_by(task_events.c.id)
            ).all()
        if not rows:
            self.get(task_id)  # raises UnknownTaskError for a wrong id
        return [
            TaskEvent(r.task_id, as_utc(r.at), r.event, r.annotator, json.loads(r.detail))
            for r in rows
        ]

    def events(self, round_key: str | None = None) -> pd.DataFrame:
        """The event log as a frame (task_id, round, at, event, annotator, detail)."""
        query = sa.select(
            task_events.c.task_id,
            tasks.c.round,
            task_events.c.at,
            task_events.c.event,
            task_events.c.annotator,
            task_events.c.detail,
        ).join(tasks, tasks.c.id == task_events.c.task_id)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query.order_by(task_events.c.id)).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=["task_id", "round", "at", "event", "annotator", "detail"])
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        frame["detail"] = frame["detail"].map(json.loads)
        return frame

    # -- moving -----------------------------------------------------------------------------
    def lease(
        self,
        annotator: str,
        limit: int = 1,
        lease_seconds: float = 900,
        round_key: str | None = None,
        now: datetime | None = None,
    ) -> list[Task]:
        """Hand `annotator` up to `limit` open tasks, highest priority first.

        Never hands out more slots than a task has (answers plus live leases stay within
        `answers_needed`), never a task this annotator answered, holds or passed on (skip /
        unsure), and requeues expired leases first so a vanished annotator cannot strand a task.
        """
        if limit < 1:
            return []
        now = now or utcnow()
        expires = now + timedelta(seconds=lease_seconds)

        def work(conn: sa.Connection) -> list[Task]:
            _require_labeler(conn, annotator, "lease tasks")
            self._expire(conn, now)
            query = (
                sa.select(tasks.c.id)
                .where(tasks.c.state == PENDING)
                .where(
                    ~sa.exists().where(
                        answers.c.task_id == tasks.c.id, answers.c.annotator == annotator
                    )
                )
                .where(
                    ~sa.exists().where(
                        leases.c.task_id == tasks.c.id, leases.c.annotator == annotator
                    )
                )
                .where(
                    ~sa.exists().where(
                        passes.c.task_id == tasks.c.id, passes.c.annotator == annotator
                    )
                )
                .order_by(tasks.c.priority.desc(), tasks.c.created_at, tasks.c.id)
                .limit(limit)
                # Postgres: rows another transaction holds are skipped, not waited for.
                .with_for_update(skip_locked=True, of=tasks)
            )
            if round_key is not None:
                query = query.where(tasks.c.round == round_key)
            granted: list[str] = []
            for task_id in conn.execute(query).scalars().all():
                # Re-check under the row lock: the candidate query's subqueries may have read
                # an older snapshot than the lock (Postgres read committed).
                answered, live, mine = self._slots(conn, task_id, annotator, now)
                row = conn.execute(
                    sa.select(tasks.c.state, tasks.c.answers_needed).where(tasks.c.id == task_id)
                ).one()
                if row.state != PENDING or mine or answered + live >= row.answers_needed:
                    continue
                conn.execute(
                    leases.insert().values(
                        task_id=task_id, annotator=annotator, leased_at=now, expires_at=expires
                    )
                )
                log_event(conn, task_id, "leased", now, annotator, expires_at=expires.isoformat())
                self._refresh_state(conn, task_id, now)
                granted.append(task_id)
            if not granted:
                return []
            rows = {
                r.id: _task(r)
                for r in conn.execute(sa.select(tasks).where(tasks.c.id.in_(granted)))
            }
            return [rows[t] for t in granted]

        return self._write(work)

    def requeue_expired(self, now: datetime | None = None) -> int:
        """Drop expired leases so their tasks go back to pending. Returns how many expired."""
        now = now or utcnow()
        return self._write(lambda conn: self._expire(conn, now))

    def _expire(self, conn: sa.Connection, now: datetime) -> int:
        expiring = sa.select(leases.c.task_id).where(leases.c.expires_at <= now)
        task_ids = sorted(set(conn.execute(expiring).scalars()))
        if not task_ids:
            return 0
        _lock(conn, task_ids)
        # Re-read under the locks: a submission may have consumed a lease meanwhile.
        expired = conn.execute(
            sa.select(leases.c.task_id, leases.c.annotator, leases.c.leased_at).where(
                leases.c.expires_at <= now, leases.c.task_id.in_(task_ids)
            )
        ).all()
        conn.execute(
            leases.delete().where(leases.c.expires_at <= now, leases.c.task_id.in_(task_ids))
        )
        for lease in expired:
            log_event(
                conn,
                lease.task_id,
                "lease_expired",
                now,
                lease.annotator,
                leased_at=as_utc(lease.leased_at).isoformat(),
            )
        for task_id in sorted({lease.task_id for lease in expired}):
            self._refresh_state(conn, task_id, now)
        return len(expired)

    def submit(
        self,
        task_id: str,
        annotator: str,
        label: object,
        *,
        submission_id: str | None = None,
        answered_at: datetime | None = None,
        time_spent_s: float | None = None,
    ) -> Answer:
        """Record one answer. Idempotent: resubmitting the same answer (same submission id, or
        the same annotator and label for the task) returns the stored answer; the same
        submission id with a new label records a revision (see the module docstring).

        An answer is taken while the task still has a slot for `annotator`: their own live
        lease, or a slot nobody holds (imports from other tools never hold one; a slot leased
        to someone else stays theirs until the lease expires). Raises UnknownTaskError /
        InvalidAnswerError, recording nothing, otherwise.
        """
        submission = Submission(
            task_id, annotator, str(label), submission_id, answered_at, time_spent_s
        )
        outcome = self._write(lambda conn: self.submit_in(conn, submission))
        return _raise_or_answer(outcome)

    def revise(
        self,
        task_id: str,
        annotator: str,
        label: object,
        *,
        reason: str = "",
        within: timedelta | None = None,
        submission_id: str | None = None,
        answered_at: datetime | None = None,
        time_spent_s: float | None = None,
        now: datetime | None = None,
    ) -> Answer:
        """`annotator` corrects their own answer to the task: a new revision that revises
        their effective answer (kept, never overwritten). With `within`, refused once that
        long has passed since the answer being corrected (the web app's undo grace period).
        Idempotent on `submission_id` (default `<task>:<person>:r<revision>`); revising to the
        label already in force records nothing and returns the effective answer."""
        submission = Submission(
            task_id, annotator, str(label), submission_id, answered_at, time_spent_s
        )

        def work(conn: sa.Connection) -> SubmitOutcome:
            return self._record(conn, submission, now or utcnow(), within=within, reason=reason)

        return _raise_or_answer(self._write(work))

    def submit_many(self, submissions: Sequence[Submission]) -> list[SubmitOutcome]:
        """Record many answers in ONE transaction: each is accepted, recognised as already
        recorded, or rejected with a reason; a crash midway stores none of them. Outcomes come
        back in input order; rows are locked in task id order (no deadlock between batches)."""
        return self._write(lambda conn: self.submit_batch_in(conn, submissions))

    def submit_in(
        self, conn: sa.Connection, submission: Submission, now: datetime | None = None
    ) -> SubmitOutcome:
        """Record one answer inside the caller's `write_transaction` (for callers that must
        store everything or nothing together with their own bookkeeping)."""
        return self.submit_batch_in(conn, [submission], now)[0]

    def submit_batch_in(
        self, conn: sa.Connection, submissions: Sequence[Submission], now: datetime | None = None
    ) -> list[SubmitOutcome]:
        """The one write path of answers (revisions by the person: `revise`). Records
        `submissions` inside the caller's `write_transaction` as if one by one in task id
        order, in a bounded number of statements (tasks, answers and leases read in chunks of
        500; one insert per table). Outcomes come back in input order. When two submissions
        share a submission id or a (task, person) pair (one may then depend on the other's
        new row), they are recorded one batch of one after another instead."""
        clock = now or utcnow()
        order = sorted(range(len(submissions)), key=lambda i: (submissions[i].task_id, i))
        sids = [
            s.submission_id or default_submission_id(s.task_id, s.annotator) for s in submissions
        ]
        pairs = {(s.task_id, s.annotator) for s in submissions}
        if len(set(sids)) < len(submissions) or len(pairs) < len(submissions):
            outcomes = {i: self.submit_batch_in(conn, [submissions[i]], clock)[0] for i in order}
            return [outcomes[i] for i in range(len(submissions))]

        task_rows: dict[str, sa.Row] = {}
        mine: dict[tuple[str, str], list[sa.Row]] = {}
        answered: dict[str, int] = {}
        live: dict[str, list[sa.Row]] = {}
        held: set[tuple[str, str]] = set()  # leases, live or not (an answer deletes its own)
        for chunk in _chunks(sorted({s.task_id for s in submissions})):
            task_rows.update((r.id, r) for r in _lock(conn, chunk, full=True))
            for r in conn.execute(
                sa.select(answers).where(answers.c.task_id.in_(chunk)).order_by(answers.c.revision)
            ):
                mine.setdefault((r.task_id, r.annotator), []).append(r)
                answered[r.task_id] = answered.get(r.task_id, 0) + (r.revision == 1)
            for r in conn.execute(
                sa.select(leases.c.task_id, leases.c.annotator, leases.c.expires_at)
                .where(leases.c.task_id.in_(chunk))
                .order_by(leases.c.expires_at)
            ):
                held.add((r.task_id, r.annotator))
                if as_utc(r.expires_at) > clock:
                    live.setdefault(r.task_id, []).append(r)
        same_ids: dict[str, list[sa.Row]] = {}
        for chunk in _chunks(sorted(set(sids))):
            for r in conn.execute(
                sa.select(answers)
                .where(answers.c.submission_id.in_(chunk))
                .order_by(answers.c.submission_id, answers.c.label, answers.c.id)
            ):
                same_ids.setdefault(r.submission_id, []).append(r)
        states = {task_id: row.state for task_id, row in task_rows.items()}

        outcomes: dict[int, SubmitOutcome] = {}
        new_rows: list[dict[str, Any]] = []  # answers to insert, in the order decided
        new_of: list[tuple[int, Task, str | None]] = []  # (input index, task, previous label)
        events: list[tuple[int | None, dict[str, Any]]] = []  # (index in new_rows, event row)
        for i in order:
            sub = submissions[i]
            label = str(sub.label)

            def rejected(code: str, why: str, sub: Submission = sub) -> SubmitOutcome:
                return SubmitOutcome(sub, REJECTED, None, code, why)

            row = task_rows.get(sub.task_id)
            refused = _refused(conn, row, sub)
            if refused is not None:
                outcomes[i] = refused
                continue
            task = _task(row)
            stored = mine.get((task.id, sub.annotator), [])
            head = stored[-1] if stored else None
            submission_id = sids[i]
            same_id = same_ids.get(submission_id, [])
            foreign = [r for r in same_id if (r.task_id, r.annotator) != (task.id, sub.annotator)]
            if foreign:
                other = foreign[0]
                outcomes[i] = rejected(
                    "conflict",
                    f"Submission {submission_id!r} conflicts with stored answer {other.id}: "
                    f"annotator {other.annotator!r} answered task {other.task_id} with "
                    f"{other.label!r}; {sub.annotator!r} / {label!r} was not recorded.",
                )
                continue
            recorded = [r for r in same_id if r.label == label]
            if recorded:
                outcomes[i] = SubmitOutcome(sub, ALREADY_RECORDED, _answer(recorded[0]))
                continue
            if head is not None and head.label == label:
                outcomes[i] = SubmitOutcome(sub, ALREADY_RECORDED, _answer(head))
                continue
            # Rule 2 needs an id the caller gave (an answer edited in Label Studio keeps its
            # id); the default id only stands for "this person's answer", so a new label under
            # it is a conflict (rule 3), never a silent correction.
            if head is not None and same_id and sub.submission_id is not None:
                pass  # rule 2: a revision of the person's answer, recorded below
            elif head is not None:  # rule 3
                outcomes[i] = rejected(
                    "conflict",
                    f"Submission {submission_id!r} conflicts with stored answer {head.id}: "
                    f"annotator {head.annotator!r} answered task {task.id} with "
                    f"{head.label!r}; {label!r} was not recorded (to correct an answer, revise "
                    f"it).",
                )
                continue
            elif states[task.id] in (ANSWERED, RESOLVED):
                outcomes[i] = rejected(
                    "task_complete",
                    f"Task {task.id} already has its {task.answers_needed} answer(s) "
                    f"(state {states[task.id]}); the answer from {sub.annotator!r} was not "
                    f"recorded.",
                )
                continue
            else:
                now_live = live.get(task.id, [])
                holds = any(lease.annotator == sub.annotator for lease in now_live)
                if not holds and answered.get(task.id, 0) + len(now_live) >= task.answers_needed:
                    holders = ", ".join(
                        f"{lease.annotator!r} until {as_utc(lease.expires_at):%H:%M:%S} UTC"
                        for lease in now_live
                    )
                    outcomes[i] = rejected(
                        "slot_reserved",
                        f"Task {task.id}'s remaining slot(s) are leased by {holders}; the answer "
                        f"from {sub.annotator!r} was not recorded (a lease reserves its slot "
                        f"until it expires).",
                    )
                    continue
            # Recorded: what `_insert_answer` does, kept in memory until the inserts below.
            answered_at = sub.answered_at or clock
            new_rows.append(
                {
                    "task_id": task.id,
                    "annotator": sub.annotator,
                    "label": label,
                    "answered_at": answered_at,
                    "time_spent_s": sub.time_spent_s,
                    "submission_id": submission_id,
                    "revision": 1 if head is None else int(head.revision) + 1,
                    "revises": None if head is None else int(head.id),
                    "revision_reason": "",
                    "label_set_version": task.label_set_version,
                }
            )
            new_of.append((i, task, None if head is None else head.label))
            if head is None:
                answered[task.id] = answered.get(task.id, 0) + 1
            live[task.id] = [r for r in live.get(task.id, []) if r.annotator != sub.annotator]
            events.append((len(new_rows) - 1, {}))
            state = states[task.id]
            if state != RESOLVED:
                count, needed = answered[task.id], task.answers_needed
                new = (
                    ANSWERED
                    if count >= needed
                    else LEASED
                    if count + len(live[task.id]) >= needed
                    else PENDING
                )
                if new != state:
                    states[task.id] = new
                    events.append(
                        (
                            None,
                            _event_row(task.id, "state", clock, None, {"from": state, "to": new}),
                        )
                    )

        if new_rows:
            # One executemany, then the new ids by their unique (submission id, label): a
            # RETURNING in parameter order would be run row by row on SQLite.
            conn.execute(answers.insert(), new_rows)
            ids_of: dict[tuple[str, str], int] = {}
            for chunk in _chunks([v["submission_id"] for v in new_rows]):
                ids_of.update(
                    ((r.submission_id, r.label), int(r.id))
                    for r in conn.execute(
                        sa.select(answers.c.id, answers.c.submission_id, answers.c.label).where(
                            answers.c.submission_id.in_(chunk)
                        )
                    )
                )
            answer_ids = [ids_of[(v["submission_id"], v["label"])] for v in new_rows]
            for (i, task, _), values, answer_id in zip(new_of, new_rows, answer_ids, strict=True):
                outcomes[i] = SubmitOutcome(
                    submissions[i],
                    ACCEPTED,
                    Answer(
                        answer_id,
                        task.id,
                        values["annotator"],
                        values["label"],
                        as_utc(values["answered_at"]),
                        values["time_spent_s"],
                        values["submission_id"],
                        values["revision"],
                        values["revises"],
                    ),
                )
            gone = [
                {"b_task": v["task_id"], "b_annotator": v["annotator"]}
                for v in new_rows
                if (v["task_id"], v["annotator"]) in held
            ]
            if gone:
                conn.execute(
                    leases.delete().where(
                        leases.c.task_id == sa.bindparam("b_task"),
                        leases.c.annotator == sa.bindparam("b_annotator"),
                    ),
                    gone,
                )
            event_rows = []
            for index, event in events:
                if index is None:
                    event_rows.append(event)
                    continue
                values, answer_id = new_rows[index], answer_ids[index]
                detail: dict[str, Any] = {
                    "label": values["label"],
                    "answer_id": answer_id,
                    "time_spent_s": values["time_spent_s"],
                    "submission_id": values["submission_id"],
                }
                if values["revises"] is not None:
                    detail |= {
                        "revises": values["revises"],
                        "previous_label": new_of[index][2],
                        "reason": "",
                    }
                event_rows.append(
                    _event_row(
                        values["task_id"],
                        "answered" if values["revises"] is None else "revised",
                        values["answered_at"],
                        values["annotator"],
                        detail,
                    )
                )
            conn.execute(task_events.insert(), event_rows)
            changed = [
                {"b_id": task_id, "b_state": state}
                for task_id, state in sorted(states.items())
                if state != task_rows[task_id].state
            ]
            if changed:
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id == sa.bindparam("b_id"))
                    .values(state=sa.bindparam("b_state")),
                    changed,
                )
        return [outcomes[i] for i in range(len(submissions))]

    def _record(
        self,
        conn: sa.Connection,
        sub: Submission,
        clock: datetime,
        *,
        within: timedelta | None = None,
        reason: str = "",
    ) -> SubmitOutcome:
        """A person's correction of their own answer (`revise`): the same first checks and
        submission-id rules as `submit_batch_in`, then a new revision. `clock` decides the
        grace period; `answered_at` may be older."""
        label = str(sub.label)
        answered_at = sub.answered_at or clock

        def rejected(code: str, why: str) -> SubmitOutcome:
            return SubmitOutcome(sub, REJECTED, None, code, why)

        row = conn.execute(
            sa.select(tasks).where(tasks.c.id == sub.task_id).with_for_update()
        ).first()
        refused = _refused(conn, row, sub)
        if refused is not None:
            return refused
        task = _task(row)
        mine = conn.execute(
            sa.select(answers)
            .where(answers.c.task_id == task.id, answers.c.annotator == sub.annotator)
            .order_by(answers.c.revision)
        ).all()
        head = mine[-1] if mine else None
        if head is None:
            return rejected(
                "nothing_to_revise",
                f"Task {task.id} has no answer from {sub.annotator!r} to revise; submit one first.",
            )
        submission_id = sub.submission_id or (
            f"{default_submission_id(task.id, sub.annotator)}:r{len(mine) + 1}"
        )
        same_id = conn.execute(
            sa.select(answers).where(answers.c.submission_id == submission_id)
        ).all()
        foreign = [r for r in same_id if (r.task_id, r.annotator) != (task.id, sub.annotator)]
        if foreign:
            other = foreign[0]
            return rejected(
                "conflict",
                f"Submission {submission_id!r} conflicts with stored answer {other.id}: "
                f"annotator {other.annotator!r} answered task {other.task_id} with "
                f"{other.label!r}; {sub.annotator!r} / {label!r} was not recorded.",
            )
        recorded = [r for r in same_id if r.label == label]
        if recorded:  # this very submission is stored already (a retry)
            return SubmitOutcome(sub, ALREADY_RECORDED, _answer(recorded[0]))
        if head.label == label:
            return SubmitOutcome(sub, ALREADY_RECORDED, _answer(head))
        if within is not None and clock - as_utc(head.answered_at) > within:
            return rejected(
                "grace_expired",
                f"The grace period to correct answer {head.id} ({within}) is over: it was "
                f"given at {as_utc(head.answered_at):%Y-%m-%d %H:%M:%S} UTC; ask a reviewer "
                f"to adjudicate task {task.id} instead.",
            )
        return self._insert_answer(
            conn, task, sub, label, submission_id, answered_at, clock, head, reason
        )

    def _insert_answer(
        self,
        conn: sa.Connection,
        task: Task,
        sub: Submission,
        label: str,
        submission_id: str,
        answered_at: datetime,
        clock: datetime,
        head: sa.Row | None,
        reason: str,
    ) -> SubmitOutcome:
        revision = 1 if head is None else int(head.revision) + 1
        revises = None if head is None else int(head.id)
        inserted = conn.execute(
            answers.insert().values(
                task_id=task.id,
                annotator=sub.annotator,
                label=label,
                answered_at=answered_at,
                time_spent_s=sub.time_spent_s,
                submission_id=submission_id,
                revision=revision,
                revises=revises,
                revision_reason=reason,
                label_set_version=task.label_set_version,
            )
        )
        answer_id = int(inserted.inserted_primary_key[0])
        conn.execute(
            leases.delete().where(leases.c.task_id == task.id, leases.c.annotator == sub.annotator)
        )
        detail: dict[str, Any] = {
            "label": label,
            "answer_id": answer_id,
            "time_spent_s": sub.time_spent_s,
            "submission_id": submission_id,
        }
        if head is not None:
            detail |= {"revises": revises, "previous_label": head.label, "reason": reason}
        log_event(
            conn,
            task.id,
            "answered" if head is None else "revised",
            answered_at,
            sub.annotator,
            **detail,
        )
        self._refresh_state(conn, task.id, clock)
        answer = Answer(
            answer_id,
            task.id,
            sub.annotator,
            label,
            as_utc(answered_at),
            sub.time_spent_s,
            submission_id,
            revision,
            revises,
        )
        return SubmitOutcome(sub, ACCEPTED, answer)

    def skip(
        self, task_id: str, annotator: str, reason: str = "", now: datetime | None = None
    ) -> Pass:
        """`annotator` skips the task (e.g. the sample is unreadable): recorded with them,
        their lease released, the task not offered to them again; it fills no slot."""
        return self._pass(task_id, annotator, SKIP, reason, now)

    def unsure(
        self, task_id: str, annotator: str, note: str = "", now: datetime | None = None
    ) -> Pass:
        """`annotator` cannot decide: recorded like `skip` (outcome `unsure`)."""
        return self._pass(task_id, annotator, UNSURE, note, now)

    def _pass(
        self, task_id: str, annotator: str, outcome: str, reason: str, now: datetime | None
    ) -> Pass:
        now = now or utcnow()

        def work(conn: sa.Connection) -> Pass:
            _require_labeler(conn, annotator, f"mark tasks {outcome}")
            row = conn.execute(
                sa.select(tasks.c.id).where(tasks.c.id == task_id).with_for_update()
            ).first()
            if row is None:
                raise UnknownTaskError(f"Unknown task id {task_id!r}; nothing recorded.")
            existing = conn.execute(
                sa.select(passes).where(
                    passes.c.task_id == task_id,
                    passes.c.annotator == annotator,
                    passes.c.outcome == outcome,
                )
            ).first()
            if existing is not None:
                return _pass(existing)
            answered = conn.execute(
                sa.select(answers.c.id).where(
                    answers.c.task_id == task_id, answers.c.annotator == annotator
                )
            ).first()
            if answered is not None:
                raise InvalidAnswerError(
                    f"{annotator!r} already answered task {task_id} (answer {answered.id}); "
                    f"to change it, revise the answer instead of marking it {outcome}."
                )
            inserted = conn.execute(
                passes.insert().values(
                    task_id=task_id, annotator=annotator, outcome=outcome, reason=reason, at=now
                )
            )
            released = conn.execute(
                leases.delete().where(leases.c.task_id == task_id, leases.c.annotator == annotator)
            ).rowcount
            log_event(conn, task_id, outcome, now, annotator, reason=reason, released=released)
            self._refresh_state(conn, task_id, now)
            pass_id = int(inserted.inserted_primary_key[0])
            return Pass(pass_id, task_id, annotator, outcome, reason, now)

        return self._write(work)

    def mark_resolved(self, task_ids: Sequence[str], now: datetime | None = None) -> None:
        """Answered tasks whose answers went into a label snapshot become resolved."""
        now = now or utcnow()
        ids = sorted(set(task_ids))

        def work(conn: sa.Connection) -> None:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                locked = _lock(conn, chunk)
                moving = [r.id for r in locked if r.state == ANSWERED]
                if not moving:
                    continue
                conn.execute(tasks.update().where(tasks.c.id.in_(moving)).values(state=RESOLVED))
                conn.execute(
                    task_events.insert(),
                    [
                        _event_row(t, "state", now, None, {"from": ANSWERED, "to": RESOLVED})
                        for t in moving
                    ],
                )

        if ids:
            self._write(work)

    def reprioritize(
        self,
        scores: Mapping[str, float],
        model_version: str | None,
        *,
        round_key: str | None = None,
        top_classes: Mapping[str, Sequence[tuple[str, float]]] | None = None,
        reasons: Mapping[str, str] | None = None,
        strategy: str | None = None,
        now: datetime | None = None,
    ) -> Reprioritization:
        """Re-score open tasks after the model changed, so stale scores are not served.

        `scores` maps sample keys to the new model's informativeness (higher = ask first).
        Open tasks (pending or leased) of `round_key` (or of every round) are re-ranked:
        re-scored tasks first by new score, then tasks the new model did not score in their old
        order. Score, priority, model version, reason and top classes are updated; the values
        they replace are kept in the task's history (event `reprioritized`).
        """
        now = now or utcnow()
        top_classes = top_classes or {}
        reasons = reasons or {}

        def work(conn: sa.Connection) -> Reprioritization:
            scope = sa.select(tasks.c.id).where(tasks.c.state.in_(OPEN_STATES))
            if round_key is not None:
                scope = scope.where(tasks.c.round == round_key)
            ids = sorted(conn.execute(scope).scalars())
            rows = [r for r in _lock(conn, ids, full=True) if r.state in OPEN_STATES]
            by_key: dict[str, list[sa.Row]] = {}
            for r in rows:
                by_key.setdefault(r.sample_key, []).append(r)
            rescored = [r for r in rows if r.sample_key in scores]
            stale = [r for r in rows if r.sample_key not in scores]
            rescored.sort(key=lambda r: (-float(scores[r.sample_key]), r.created_at, r.id))
            stale.sort(key=lambda r: (-r.priority, r.created_at, r.id))
            total = len(rows)
            for position, r in enumerate(rescored + stale):
                priority = float(total - position)
                fresh = r.sample_key in scores
                context = json.loads(r.context)
                values: dict[str, Any] = {"priority": priority}
                before: dict[str, Any] = {"priority": r.priority}
                if fresh:
                    values |= {"score": float(scores[r.sample_key]), "model_version": model_version}
                    before |= {"score": r.score, "model_version": r.model_version}
                    if strategy is not None:
                        values["strategy"], before["strategy"] = strategy, r.strategy
                    if r.sample_key in reasons:
                        values["reason"], before["reason"] = reasons[r.sample_key], r.reason
                    if r.sample_key in top_classes:
                        before["top_classes"] = context.get("top_classes", [])
                        context["top_classes"] = [
                            [str(c), float(p)] for c, p in top_classes[r.sample_key]
                        ]
                        values["context"] = json.dumps(context)
                conn.execute(tasks.update().where(tasks.c.id == r.id).values(**values))
                after = {k: v for k, v in values.items() if k != "context"}
                if "top_classes" in before:
                    after["top_classes"] = context["top_classes"]
                log_event(
                    conn,
                    r.id,
                    "reprioritized",
                    now,
                    None,
                    stale=not fresh,
                    before=before,
                    after=after,
                )
            return Reprioritization(
                model_version,
                [r.id for r in rescored],
                [r.id for r in stale],
                sorted(k for k in scores if k not in by_key),
            )

        return self._write(work)

    def renew(
        self, task_id: str, annotator: str, lease_seconds: float = 900, now: datetime | None = None
    ) -> Lease | None:
        """Push a live lease's expiry to `now + lease_seconds` (a person still at work on it).
        None when `annotator` holds no live lease on the task (it expired or was answered)."""
        now = now or utcnow()
        expires = now + timedelta(seconds=lease_seconds)

        def work(conn: sa.Connection) -> Lease | None:
            _lock(conn, [task_id])
            mine = (leases.c.task_id == task_id) & (leases.c.annotator == annotator)
            row = conn.execute(sa.select(leases).where(mine, leases.c.expires_at > now)).first()
            if row is None:
                return None
            conn.execute(leases.update().where(mine).values(expires_at=expires))
            log_event(
                conn, task_id, "lease_renewed", now, annotator, expires_at=expires.isoformat()
            )
            return Lease(task_id, annotator, as_utc(row.leased_at), expires)

        return self._write(work)

    def release(
        self,
        task_id: str,
        annotator: str,
        *,
        event: str = "released",
        now: datetime | None = None,
        **detail: Any,
    ) -> bool:
        """Give a lease back before it expires (signed out, skipped), so the task is offered
        again at once; `event` and `detail` go into its history. False if none was held."""
        now = now or utcnow()

        def work(conn: sa.Connection) -> bool:
            _lock(conn, [task_id])
            mine = (leases.c.task_id == task_id) & (leases.c.annotator == annotator)
            if conn.execute(leases.delete().where(mine)).rowcount == 0:
                return False
            log_event(conn, task_id, event, now, annotator, **detail)
            self._refresh_state(conn, task_id, now)
            return True

        return self._write(work)

    @staticmethod
    def _counts(conn: sa.Connection, task_id: str, now: datetime) -> tuple[int, int]:
        """(answers, live leases) of a task; revisions do not count as more answers."""
        answered = conn.execute(
            sa.select(sa.func.count()).where(answers.c.task_id == task_id, answers.c.revision == 1)
        ).scalar_one()
        live = conn.execute(
            sa.select(sa.func.count()).where(leases.c.task_id == task_id, leases.c.expires_at > now)
        ).scalar_one()
        return int(answered), int(live)

    @staticmethod
    def _slots(
        conn: sa.Connection, task_id: str, annotator: str, now: datetime
    ) -> tuple[int, int, bool]:
        """(answers, live leases, whether `annotator` already answered, holds or passed it)."""
        answered, live = TaskQueue._counts(conn, task_id, now)
        mine = conn.execute(
            sa.select(sa.func.count()).where(
                sa.or_(
                    sa.exists().where(
                        answers.c.task_id == task_id, answers.c.annotator == annotator
                    ),
                    sa.exists().where(leases.c.task_id == task_id, leases.c.annotator == annotator),
                    sa.exists().where(passes.c.task_id == task_id, passes.c.annotator == annotator),
                )
            )
        ).scalar_one()
        return answered, live, bool(mine)

    @staticmethod
    def _refresh_state(conn: sa.Connection, task_id: str, now: datetime) -> None:
        """Derive a task's state from its answers and live leases (never from a counter)."""
        needed, state = conn.execute(
            sa.select(tasks.c.answers_needed, tasks.c.state).where(tasks.c.id == task_id)
        ).one()
        if state == RESOLVED:
            return
        answered, live = TaskQueue._counts(conn, task_id, now)
        if answered >= needed:
            new = ANSWERED
        elif answered + live >= needed:
            new = LEASED
        else:
            new = PENDING
        if new != state:
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(state=new))
            log_event(conn, task_id, "state", now, None, **{"from": state, "to": new})


def _labeler_problem(conn: sa.Connection, name: str) -> str | None:
    """Why `name` may not label, cached for the current transaction (an import checks the
    same few people for thousands of rows)."""
    transaction = conn.get_transaction()
    cached = conn.info.get("fp_labelers")
    if cached is None or cached[0] is not transaction:
        cached = conn.info["fp_labelers"] = (transaction, {})
    known: dict[str, str | None] = cached[1]
    if name not in known:
        known[name] = labeling_problem(conn, name)
    return known[name]


def _current_label_set(conn: sa.Connection, classes: list[str], asked: int | None) -> int:
    """The label set version a new batch's `classes` belong to: the newest one, which they must
    equal (1 while the label set never changed, any classes then)."""
    from feature_platform.labeling.label_sets import label_set_versions as versions
    from feature_platform.labeling.label_sets import lock_label_set

    lock_label_set(conn, exclusive=False)
    newest = conn.execute(
        sa.select(versions.c.version, versions.c.classes).order_by(versions.c.version.desc())
    ).first()
    current = int(newest.version) if newest else 1
    if asked is not None and asked != current:
        raise InvalidArgumentError(
            f"The label set changed while the batch was being made: its classes are of "
            f"version {asked}, the label set is at version {current}. Make the batch again."
        )
    if newest is not None and classes != json.loads(newest.classes):
        raise InvalidArgumentError(
            f"A batch's classes {classes} are not the label set's (version {current}: "
            f"{json.loads(newest.classes)}); new tasks offer the classes in force."
        )
    return current


def _refused(conn: sa.Connection, row: sa.Row | None, sub: Submission) -> SubmitOutcome | None:
    """The checks every answer passes first, or the refusal: the task exists, the label is
    one of its classes, the time spent is a number >= 0, the person may label."""
    label = str(sub.label)

    def rejected(code: str, why: str) -> SubmitOutcome:
        return SubmitOutcome(sub, REJECTED, None, code, why)

    if row is None:
        return rejected("unknown_task", f"Unknown task id {sub.task_id!r}; nothing recorded.")
    task = _task(row)
    if label not in task.classes:
        return rejected(
            "invalid_label",
            f"Label {label!r} for task {task.id} is not one of its classes {task.classes}."
            + _label_set_hint(conn, task, label),
        )
    if sub.time_spent_s is not None and not sub.time_spent_s >= 0:
        return rejected(
            "invalid_time", f"time_spent_s must be a number >= 0, got {sub.time_spent_s!r}."
        )
    problem = _labeler_problem(conn, sub.annotator)
    if problem is not None:
        return rejected("not_allowed", f"{problem}; nothing recorded.")
    return None


def _label_set_hint(conn: sa.Connection, task: Task, label: str) -> str:
    """Why an old class name is refused: the label set change that retired it, if any.
    (A label given under an older set is never guessed into the new one: it is re-given.)"""
    if task.label_set_version <= 1:
        return ""
    rows = conn.execute(
        sa.select(task_events.c.detail)
        .where(task_events.c.task_id == task.id, task_events.c.event == "label_set_changed")
        .order_by(task_events.c.id.desc())
    ).scalars()
    for detail in map(json.loads, rows):
        if label in detail.get("before", []):
            now = detail.get("renamed", {}).get(label)
            instead = f" (answer {now!r})" if now else ""
            return (
                f" The label set changed in version {detail['version']}: "
                f"{detail['change']}{instead}."
            )
    return ""


def _require_labeler(conn: sa.Connection, name: str, doing: str) -> None:
    problem = _labeler_problem(conn, name)
    if problem is not None:
        raise PermissionDeniedError(f"{problem}: may not {doing}.")


def _raise_or_answer(outcome: SubmitOutcome) -> Answer:
    if outcome.status == REJECTED:
        if outcome.code == "not_allowed":
            raise PermissionDeniedError(outcome.reason)
        if outcome.code == "unknown_task":
            raise UnknownTaskError(outcome.reason)
        raise InvalidAnswerError(outcome.reason)
    assert outcome.answer is not None
    return outcome.answer


def _chunks(values: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    """`values` in pieces of at most `size`: the IN (...) lists of batched lookups."""
    return [values[start : start + size] for start in range(0, len(values), size)]


def _lock(conn: sa.Connection, task_ids: Sequence[str], full: bool = False) -> list[sa.Row]:
    """Lock task rows in id order (one order everywhere, so lockers cannot deadlock)."""
    if not task_ids:
        return []
    columns = [tasks] if full else [tasks.c.id, tasks.c.state]
    return list(
        conn.execute(
            sa.select(*columns)
            .where(tasks.c.id.in_(list(task_ids)))
            .order_by(tasks.c.id)
            .with_for_update()
        ).all()
    )


def _event_row(
    task_id: str, event: str, at: datetime, annotator: str | None, detail: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "at": at,
        "event": event,
        "annotator": annotator,
        "detail": json.dumps(dict(detail), default=str, sort_keys=True),
    }


def log_event(
    conn: sa.Connection,
    task_id: str,
    event: str,
    at: datetime,
    annotator: str | None,
    **detail: Any,
) -> None:
    """Append one entry to a task's history, inside the caller's transaction."""
    conn.execute(task_events.insert().values(**_event_row(task_id, event, at, annotator, detail)))
