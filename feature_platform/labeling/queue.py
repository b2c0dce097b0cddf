"""The labeling queue: tasks with state, leases that expire, idempotent answer submission.

A task moves pending -> leased -> answered -> resolved (answers frozen into a label snapshot),
and back to pending when a lease expires. A task wants `answers_needed` answers from distinct
annotators (overlap), so it counts as leased only while answers plus live leases fill that.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import InvalidAnswerError, UnknownTaskError
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

PENDING, LEASED, ANSWERED, RESOLVED = "pending", "leased", "answered", "resolved"

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
    sa.Column("submission_id", sa.String(200), nullable=False, unique=True),
    # One answer per annotator per task: a retried submission can never count twice.
    sa.UniqueConstraint("task_id", "annotator", name="uq_answer_task_annotator"),
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


@dataclass(frozen=True)
class Answer:
    id: int
    task_id: str
    annotator: str
    label: str
    answered_at: datetime
    time_spent_s: float | None
    submission_id: str


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
    )


class TaskQueue:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, tasks, leases, answers)

    # -- creating ---------------------------------------------------------------------------
    def create_batch(
        self,
        round_key: str,
        specs: Sequence[TaskSpec],
        classes: Sequence[str],
        answers_needed: int = 1,
    ) -> list[Task]:
        """Create one task per spec in one transaction. Re-running a round's batch creation
        returns the tasks that already exist instead of duplicating them."""
        if answers_needed < 1:
            raise ValueError("answers_needed must be at least 1.")
        existing = {t.sample_key: t for t in self.tasks(round_key=round_key)}
        now = utcnow()
        rows = []
        for rank, spec in enumerate(specs):
            if spec.sample_key in existing:
                continue
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "round": round_key,
                    "sample_key": str(spec.sample_key),
                    "state": PENDING,
                    "answers_needed": answers_needed,
                    "classes": json.dumps([str(c) for c in classes]),
                    "priority": float(len(specs) - rank),
                    "strategy": spec.strategy,
                    "score": float(spec.score),
                    "reason": spec.reason,
                    "model_version": spec.model_version,
                    "feature_version": spec.feature_version,
                    "context": json.dumps(
                        {
                            "features_shown": spec.features_shown,
                            "top_classes": [[str(c), float(p)] for c, p in spec.top_classes],
                        }
                    ),
                    "created_at": now,
                }
            )
        if rows:
            with self.engine.begin() as conn:
                conn.execute(tasks.insert(), rows)
        return self.tasks(round_key=round_key)

    # -- reading ----------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).first()
        if row is None:
            raise UnknownTaskError(f"Unknown task id {task_id!r}.")
        return _task(row)

    def tasks(self, round_key: str | None = None, state: str | None = None) -> list[Task]:
        query = sa.select(tasks).order_by(tasks.c.round, tasks.c.priority.desc(), tasks.c.id)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        if state is not None:
            query = query.where(tasks.c.state == state)
        with self.engine.connect() as conn:
            return [_task(r) for r in conn.execute(query)]

    def answers(self, round_key: str | None = None) -> pd.DataFrame:
        """Every answer with its task's provenance (what the annotator was shown and why)."""
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
        ).join(tasks, tasks.c.id == answers.c.task_id)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query.order_by(answers.c.id)).mappings().all())
        columns = [c.name for c in query.selected_columns]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        for column in ("answered_at", "task_created_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame[columns]

    def counts(self, round_key: str | None = None) -> dict[str, int]:
        query = sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state)
        if round_key is not None:
            query = query.where(tasks.c.round == round_key)
        with self.engine.connect() as conn:
            found = dict(conn.execute(query).all())
        return {s: int(found.get(s, 0)) for s in (PENDING, LEASED, ANSWERED, RESOLVED)}

    def rounds(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(tasks.c.round).distinct()).scalars())

    def sample_keys(self) -> set[str]:
        """Every sample that already has a task (so it is not offered again)."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(tasks.c.sample_key)).scalars())

    # -- moving -----------------------------------------------------------------------------
    def lease(
        self,
        annotator: str,
        limit: int = 1,
        lease_seconds: float = 900,
        round_key: str | None = None,
        now: datetime | None = None,
    ) -> list[Task]:
        """Hand `annotator` up to `limit` open tasks, highest priority first."""
        now = now or utcnow()
        leased: list[str] = []
        with self.engine.begin() as conn:
            query = (
                sa.select(tasks.c.id)
                .where(tasks.c.state == PENDING)
                .where(
                    ~sa.exists().where(answers.c.task_id == tasks.c.id, answers.c.annotator == annotator)
                )
                .where(
                    ~sa.exists().where(leases.c.task_id == tasks.c.id, leases.c.annotator == annotator)
                )
                .order_by(tasks.c.priority.desc(), tasks.c.created_at, tasks.c.id)
                .limit(limit)
            )
            if round_key is not None:
                query = query.where(tasks.c.round == round_key)
            for task_id in conn.execute(query).scalars().all():
                conn.execute(
                    leases.insert().values(
                        task_id=task_id,
                        annotator=annotator,
                        leased_at=now,
                        expires_at=now + timedelta(seconds=lease_seconds),
                    )
                )
                self._refresh_state(conn, task_id, now)
                leased.append(task_id)
        return [self.get(t) for t in leased]

    def requeue_expired(self, now: datetime | None = None) -> int:
        """Drop expired leases so their tasks go back to pending. Returns how many expired."""
        now = now or utcnow()
        with self.engine.begin() as conn:
            expired = conn.execute(
                sa.select(leases.c.task_id).where(leases.c.expires_at <= now)
            ).scalars().all()
            conn.execute(leases.delete().where(leases.c.expires_at <= now))
            for task_id in set(expired):
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
        the same annotator and label for the task) returns the stored answer."""
        label = str(label)
        submission_id = submission_id or f"{task_id}:{annotator}"
        now = answered_at or utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).first()
            if row is None:
                raise UnknownTaskError(f"Unknown task id {task_id!r}; nothing was recorded.")
            task = _task(row)
            if label not in task.classes:
                raise InvalidAnswerError(
                    f"Label {label!r} for task {task_id} is not one of its classes {task.classes}."
                )
            previous = conn.execute(
                sa.select(answers).where(
                    sa.or_(
                        answers.c.submission_id == submission_id,
                        sa.and_(answers.c.task_id == task_id, answers.c.annotator == annotator),
                    )
                )
            ).first()
            if previous is not None:
                if (previous.task_id, previous.annotator, previous.label) == (
                    task_id,
                    annotator,
                    label,
                ):
                    return _answer(previous)
                raise InvalidAnswerError(
                    f"Annotator {annotator!r} already answered task {task_id} with "
                    f"{previous.label!r} (submission {previous.submission_id}); a different "
                    f"answer {label!r} was not recorded."
                )
            if task.state in (ANSWERED, RESOLVED):
                raise InvalidAnswerError(
                    f"Task {task_id} already has its {task.answers_needed} answer(s) "
                    f"(state {task.state}); the answer from {annotator!r} was not recorded."
                )
            conn.execute(
                answers.insert().values(
                    task_id=task_id,
                    annotator=annotator,
                    label=label,
                    answered_at=now,
                    time_spent_s=time_spent_s,
                    submission_id=submission_id,
                )
            )
            conn.execute(
                leases.delete().where(leases.c.task_id == task_id, leases.c.annotator == annotator)
            )
            self._refresh_state(conn, task_id, now)
            stored = conn.execute(
                sa.select(answers).where(answers.c.submission_id == submission_id)
            ).first()
        return _answer(stored)

    def mark_resolved(self, task_ids: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            for start in range(0, len(task_ids), 500):
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id.in_(task_ids[start : start + 500]))
                    .where(tasks.c.state == ANSWERED)
                    .values(state=RESOLVED)
                )

    @staticmethod
    def _refresh_state(conn: sa.Connection, task_id: str, now: datetime) -> None:
        """Derive a task's state from its answers and live leases (never from a counter)."""
        needed, state = conn.execute(
            sa.select(tasks.c.answers_needed, tasks.c.state).where(tasks.c.id == task_id)
        ).one()
        if state == RESOLVED:
            return
        answered = conn.execute(
            sa.select(sa.func.count()).where(answers.c.task_id == task_id)
        ).scalar_one()
        live = conn.execute(
            sa.select(sa.func.count()).where(leases.c.task_id == task_id, leases.c.expires_at > now)
        ).scalar_one()
        if answered >= needed:
            new = ANSWERED
        elif answered + live >= needed:
            new = LEASED
        else:
            new = PENDING
        conn.execute(tasks.update().where(tasks.c.id == task_id).values(state=new))
