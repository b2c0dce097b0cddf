"""Label snapshots: aggregated labels frozen under an id, the input of every training set."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.labeling.aggregation import AGGREGATORS, LABEL_COLUMNS
from feature_platform.labeling.queue import ANSWERED, TaskQueue
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

label_snapshots = sa.Table(
    "label_snapshots",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("method", sa.String(50), nullable=False),
    sa.Column("label_count", sa.Integer, nullable=False),
    sa.Column("answer_count", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

snapshot_labels = sa.Table(
    "label_snapshot_rows",
    metadata,
    sa.Column("snapshot_id", sa.String(40), sa.ForeignKey("label_snapshots.id"), primary_key=True),
    sa.Column("sample_key", sa.String(200), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("n_answers", sa.Integer, nullable=False),
    sa.Column("agreement", sa.Float, nullable=False),
    sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class LabelSnapshot:
    id: str
    created_at: datetime
    method: str
    labels: pd.DataFrame  # LABEL_COLUMNS
    answer_count: int
    content_hash: str


def _content_hash(labels: pd.DataFrame) -> str:
    text = labels[["sample_key", "label"]].sort_values("sample_key").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LabelStore:
    """Every answer stays in the queue's answer table; this freezes aggregations of them."""

    def __init__(self, engine: sa.Engine, queue: TaskQueue) -> None:
        self.engine = engine
        self.queue = queue
        create_tables(engine, label_snapshots, snapshot_labels)

    def create_snapshot(self, method: str = "majority", note: str = "") -> LabelSnapshot:
        """Aggregate every complete task's answers and freeze the result under a new id.

        Tasks still waiting for answers are left out (their partial votes would change).
        Their tasks move to `resolved`.
        """
        if method not in AGGREGATORS:
            raise FeaturePlatformError(
                f"Unknown aggregation {method!r}.{closest(method, AGGREGATORS)} "
                f"Known: {sorted(AGGREGATORS)}."
            )
        complete = {t.id for t in self.queue.tasks(state=ANSWERED)} | {
            t.id for t in self.queue.tasks(state="resolved")
        }
        answers = self.queue.answers()
        answers = answers[answers["task_id"].isin(complete)]
        labels = AGGREGATORS[method](answers)
        snapshot_id = f"ls-{uuid.uuid4().hex[:12]}"
        created = utcnow()
        content_hash = _content_hash(labels)
        with self.engine.begin() as conn:
            conn.execute(
                label_snapshots.insert().values(
                    id=snapshot_id,
                    created_at=created,
                    method=method,
                    label_count=len(labels),
                    answer_count=len(answers),
                    content_hash=content_hash,
                    note=note,
                )
            )
            if len(labels):
                rows = labels.assign(snapshot_id=snapshot_id).to_dict("records")
                for row in rows:
                    row["labeled_at"] = pd.Timestamp(row["labeled_at"]).to_pydatetime()
                conn.execute(snapshot_labels.insert(), rows)
        self.queue.mark_resolved(sorted(complete))
        return self.get(snapshot_id)

    def get(self, snapshot_id: str) -> LabelSnapshot:
        with self.engine.connect() as conn:
            head = conn.execute(
                sa.select(label_snapshots).where(label_snapshots.c.id == snapshot_id)
            ).first()
            if head is None:
                known = conn.execute(sa.select(label_snapshots.c.id)).scalars().all()
                raise FeaturePlatformError(
                    f"Unknown label snapshot {snapshot_id!r}.{closest(snapshot_id, known)}"
                )
            rows = conn.execute(
                sa.select(snapshot_labels)
                .where(snapshot_labels.c.snapshot_id == snapshot_id)
                .order_by(snapshot_labels.c.sample_key)
            ).mappings().all()
        labels = pd.DataFrame(rows, columns=["snapshot_id", *LABEL_COLUMNS])[LABEL_COLUMNS]
        labels["labeled_at"] = pd.to_datetime(labels["labeled_at"], utc=True)
        return LabelSnapshot(
            id=head.id,
            created_at=as_utc(head.created_at),
            method=head.method,
            labels=labels,
            answer_count=head.answer_count,
            content_hash=head.content_hash,
        )

    def latest(self) -> LabelSnapshot | None:
        with self.engine.connect() as conn:
            snapshot_id = conn.execute(
                sa.select(label_snapshots.c.id).order_by(label_snapshots.c.created_at.desc()).limit(1)
            ).scalar()
        return self.get(snapshot_id) if snapshot_id else None
