"""Reviewer adjudication: a reviewer's decision on a sample overrides every aggregation.

Decisions are stored apart from the answers (the raw answers stay untouched), with who decided,
when and why; a later decision on the same sample supersedes an earlier one, and both are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import InvalidAnswerError, UnknownTaskError
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.queue import ANSWERED, RESOLVED, TaskQueue, log_event, tasks
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction

adjudications = sa.Table(
    "label_adjudications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(40), sa.ForeignKey("labeling_tasks.id"), nullable=False),
    sa.Column("sample_key", sa.String(200), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    # The label set version the label was checked against (its task's at the time).
    sa.Column("label_set_version", sa.Integer, nullable=False, server_default="1"),
)

ADJUDICATION_COLUMNS = [
    "adjudication_id",
    "task_id",
    "sample_key",
    "label",
    "reviewer",
    "decided_at",
    "reason",
    "label_set_version",
]


@dataclass(frozen=True)
class Adjudication:
    id: int
    task_id: str
    sample_key: str
    label: str
    reviewer: str
    decided_at: datetime
    reason: str


class Adjudications:
    def __init__(
        self, engine: sa.Engine, queue: TaskQueue, registry: AnnotatorRegistry | None = None
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.registry = registry or AnnotatorRegistry(engine)
        create_tables(engine, adjudications)

    def decide(
        self,
        task_id: str,
        label: object,
        reviewer: str,
        reason: str = "",
        now: datetime | None = None,
    ) -> Adjudication:
        """Record `reviewer`'s label for the task's sample. Only reviewers and admins may."""
        self.registry.require(reviewer, "adjudicate")
        label = str(label)
        now = now or utcnow()
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                sa.select(tasks).where(tasks.c.id == task_id).with_for_update()
            ).first()
            if row is None:
                raise UnknownTaskError(f"Unknown task id {task_id!r}; no decision recorded.")
            task = self.queue.get(task_id)
            classes = task.classes
            if label not in classes:
                raise InvalidAnswerError(
                    f"Label {label!r} for task {task_id} is not one of its classes {classes}."
                )
            inserted = conn.execute(
                adjudications.insert().values(
                    task_id=task_id,
                    sample_key=row.sample_key,
                    label=label,
                    reviewer=reviewer,
                    decided_at=now,
                    reason=reason,
                    label_set_version=task.label_set_version,
                )
            )
            decision_id = int(inserted.inserted_primary_key[0])
            log_event(
                conn, task_id, "adjudicated", now, reviewer, label=label, adjudication=decision_id
            )
            self.registry.audit.record(
                reviewer,
                "label.adjudicate",
                f"task:{task_id}",
                {"sample_key": row.sample_key, "label": label, "reason": reason},
                conn=conn,
                now=now,
            )
        return Adjudication(decision_id, task_id, row.sample_key, label, reviewer, now, reason)

    def all(self) -> pd.DataFrame:
        """Every decision, oldest first (superseded ones included)."""
        query = sa.select(
            adjudications.c.id.label("adjudication_id"),
            *[adjudications.c[c] for c in ADJUDICATION_COLUMNS[1:]],
        ).order_by(adjudications.c.id)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=ADJUDICATION_COLUMNS)
        frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
        return frame

    def latest(self) -> pd.DataFrame:
        """The decision in force per sample: the most recent one."""
        return self.all().drop_duplicates("sample_key", keep="last").reset_index(drop=True)

    def conflicts(self, round_key: str | None = None) -> pd.DataFrame:
        """Complete tasks whose answers disagree and that no reviewer has decided yet: the
        reviewer's work list, most divided first."""
        answers = self.queue.answers(round_key)
        complete = {t.id for t in self.queue.tasks(round_key, ANSWERED)} | {
            t.id for t in self.queue.tasks(round_key, RESOLVED)
        }
        answers = answers[answers["task_id"].isin(complete)]
        columns = ["task_id", "round", "sample_key", "n_answers", "votes", "agreement"]
        if answers.empty:
            return pd.DataFrame(columns=columns)
        decided = set(self.all()["task_id"])
        rows = []
        for (task_id, round_, key), group in answers.groupby(
            ["task_id", "round", "sample_key"], sort=True
        ):
            votes = group["label"].value_counts()
            if len(votes) < 2 or task_id in decided:
                continue
            rows.append(
                {
                    "task_id": task_id,
                    "round": round_,
                    "sample_key": key,
                    "n_answers": int(len(group)),
                    "votes": {str(k): int(v) for k, v in sorted(votes.items())},
                    "agreement": float(votes.iloc[0] / len(group)),
                }
            )
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(["agreement", "task_id"], ignore_index=True)
