"""Label snapshots: aggregated labels frozen under an id, the input of every training set.

A snapshot records the aggregation method that produced it; each of its rows records whether
its label came from that method or from a reviewer's decision (which overrides it), and with
what confidence. Rows are written once and never updated; reading a snapshot re-checks its
content hash, so a snapshot changed behind the platform's back is refused, not trained on.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.labeling.adjudication import Adjudications
from feature_platform.labeling.aggregation import (
    AGGREGATORS,
    CONFIDENCE,
    LABEL_COLUMNS,
    aggregate,
)
from feature_platform.labeling.label_sets import LabelSets, map_through
from feature_platform.labeling.queue import ANSWERED, RESOLVED, TaskQueue
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

AGGREGATE, ADJUDICATION = "aggregate", "adjudication"

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
    # The method that actually ran (Dawid-Skene falls back to majority vote when no sample has
    # two answers) and why; NULL on snapshots written before these columns existed.
    sa.Column("method_used", sa.String(50), nullable=True),
    sa.Column("method_note", sa.Text, nullable=True),
    # The label set version its labels are in (labeling/label_sets.py); NULL on snapshots
    # written before label sets had versions (their labels are in the template's classes).
    sa.Column("label_set_version", sa.Integer, nullable=True),
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

# Where each snapshot row's label came from (kept apart so the row table keeps its shape).
snapshot_sources = sa.Table(
    "label_snapshot_row_sources",
    metadata,
    sa.Column("snapshot_id", sa.String(40), sa.ForeignKey("label_snapshots.id"), primary_key=True),
    sa.Column("sample_key", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(20), nullable=False),  # aggregate | adjudication
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("adjudication_id", sa.Integer),
    sa.Column("reviewer", sa.String(200)),
)

DETAIL_COLUMNS = [
    *LABEL_COLUMNS,
    "source",
    CONFIDENCE,
    "adjudication_id",
    "reviewer",
]


@dataclass(frozen=True)
class LabelSnapshot:
    id: str
    created_at: datetime
    method: str
    labels: pd.DataFrame  # LABEL_COLUMNS
    answer_count: int
    content_hash: str
    method_used: str = ""  # the aggregation that actually ran (see `method_note`)
    method_note: str = ""  # why, when it differs from `method` or needs saying
    label_set_version: int | None = None  # None: made before label sets had versions


def _content_hash(labels: pd.DataFrame) -> str:
    text = labels[["sample_key", "label"]].sort_values("sample_key").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_adjudications(
    labels: pd.DataFrame, answers: pd.DataFrame, decisions: pd.DataFrame
) -> pd.DataFrame:
    """Labels with each reviewer decision in force replacing the aggregated label (or adding
    the sample when its task is not complete). `agreement` stays the share of raw answers that
    agree with the final label (0 when there are none); `labeled_at` becomes the decision time.
    """
    overridden = labels["sample_key"].isin(set(decisions["sample_key"]))
    result = labels[~overridden].assign(source=AGGREGATE, adjudication_id=None, reviewer=None)
    rows = []
    for decision in decisions.itertuples(index=False):
        sample_answers = answers.loc[answers["sample_key"] == decision.sample_key, "label"]
        n = int(len(sample_answers))
        rows.append(
            {
                "sample_key": decision.sample_key,
                "label": decision.label,
                "n_answers": n,
                "agreement": float((sample_answers == decision.label).mean()) if n else 0.0,
                "labeled_at": pd.Timestamp(decision.decided_at),
                CONFIDENCE: 1.0,
                "source": ADJUDICATION,
                "adjudication_id": int(decision.adjudication_id),
                "reviewer": decision.reviewer,
            }
        )
    if rows:
        decided = pd.DataFrame(rows, columns=DETAIL_COLUMNS)
        result = decided if result.empty else pd.concat([result[DETAIL_COLUMNS], decided])
    result = result.sort_values("sample_key", ignore_index=True)
    result["n_answers"] = result["n_answers"].astype(int)
    result["labeled_at"] = pd.to_datetime(result["labeled_at"], utc=True)
    return result[DETAIL_COLUMNS]


def _mapped(frame: pd.DataFrame, versions: list, to_version: int) -> pd.DataFrame:
    """Answers or decisions (`label`, `label_set_version`) with each label in `to_version`'s
    classes; rows whose class was split since are dropped."""
    if not versions or frame.empty:
        return frame
    labels = [
        map_through(versions, str(label), int(version), to_version)
        for label, version in zip(frame["label"], frame["label_set_version"], strict=True)
    ]
    kept = [label is not None for label in labels]
    return frame.assign(label=labels)[kept].reset_index(drop=True)


def _superseded(frame: pd.DataFrame, relabeled: dict[str, int]) -> pd.DataFrame:
    """Without the answers or decisions a relabel task supersedes: those on a re-queued
    sample given under a label set version before its relabel task's."""
    if not relabeled or frame.empty:
        return frame
    since = frame["sample_key"].map(relabeled)
    stale = since.notna() & (frame["label_set_version"].astype(int) < since.fillna(0))
    return frame[~stale].reset_index(drop=True)


class LabelStore:
    """Every answer stays in the queue's answer table; this freezes aggregations of them."""

    def __init__(
        self, engine: sa.Engine, queue: TaskQueue, label_sets: LabelSets | None = None
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.adjudications = Adjudications(engine, queue)
        self.label_sets = label_sets or LabelSets(engine, queue)
        create_tables(engine, label_snapshots, snapshot_labels, snapshot_sources)

    def create_snapshot(
        self, method: str = "majority", note: str = "", *, adjudicate: bool = True
    ) -> LabelSnapshot:
        """Aggregate every complete task's answers with `method` (see AGGREGATORS), let reviewer
        decisions override (unless `adjudicate=False`), and freeze the result under a new id.

        Tasks still waiting for answers are left out (their partial votes would change) unless
        a reviewer decided their sample. Complete tasks move to `resolved`.

        Answers and decisions given under an older label set version are mapped to the
        current one (`label_sets.map_through`); one in a class split since is left out, and a
        sample re-queued for relabeling after a split keeps only its answers and decisions
        from the relabel on. The snapshot records the version.
        """
        if method not in AGGREGATORS:
            raise FeaturePlatformError(
                f"Unknown aggregation {method!r}.{closest(method, AGGREGATORS)} "
                f"Known: {sorted(AGGREGATORS)}."
            )
        complete = {t.id for t in self.queue.tasks(state=ANSWERED)} | {
            t.id for t in self.queue.tasks(state=RESOLVED)
        }
        every_answer = self.queue.answers()
        decisions = self.adjudications.latest() if adjudicate else self.adjudications.all()[:0]
        # Read after the answers: every version an answer was given under is known.
        versions = self.label_sets.versions()
        label_set_version = versions[-1].version if versions else 1
        relabeled = self.label_sets.relabeled()
        every_answer = _mapped(_superseded(every_answer, relabeled), versions, label_set_version)
        answers = every_answer[every_answer["task_id"].isin(complete)]
        decisions = _mapped(_superseded(decisions, relabeled), versions, label_set_version)
        decided = every_answer[every_answer["sample_key"].isin(set(decisions["sample_key"]))]
        aggregated = aggregate(method, answers)
        labels = apply_adjudications(aggregated.labels, decided, decisions)
        used = pd.concat([answers, decided]).drop_duplicates("answer_id")
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
                    answer_count=len(used),
                    content_hash=content_hash,
                    note=note,
                    method_used=aggregated.method_used,
                    method_note=aggregated.note,
                    label_set_version=label_set_version,
                )
            )
            if len(labels):
                rows = labels.assign(snapshot_id=snapshot_id).to_dict("records")
                conn.execute(
                    snapshot_labels.insert(),
                    [
                        {
                            "snapshot_id": snapshot_id,
                            "sample_key": r["sample_key"],
                            "label": r["label"],
                            "n_answers": int(r["n_answers"]),
                            "agreement": float(r["agreement"]),
                            "labeled_at": pd.Timestamp(r["labeled_at"]).to_pydatetime(),
                        }
                        for r in rows
                    ],
                )
                conn.execute(
                    snapshot_sources.insert(),
                    [
                        {
                            "snapshot_id": snapshot_id,
                            "sample_key": r["sample_key"],
                            "source": r["source"],
                            "confidence": float(r[CONFIDENCE]),
                            "adjudication_id": None
                            if pd.isna(r["adjudication_id"])
                            else int(r["adjudication_id"]),
                            "reviewer": None if pd.isna(r["reviewer"]) else r["reviewer"],
                        }
                        for r in rows
                    ],
                )
        self.queue.mark_resolved(sorted(complete))
        return self.get(snapshot_id)

    def get(self, snapshot_id: str) -> LabelSnapshot:
        head, labels = self._read(snapshot_id)
        return LabelSnapshot(
            id=head.id,
            created_at=as_utc(head.created_at),
            method=head.method,
            labels=labels[LABEL_COLUMNS],
            answer_count=head.answer_count,
            content_hash=head.content_hash,
            method_used=head.method_used or head.method,
            method_note=head.method_note or "",
            label_set_version=head.label_set_version,
        )

    def details(self, snapshot_id: str) -> pd.DataFrame:
        """The snapshot's rows with where each label came from (DETAIL_COLUMNS)."""
        return self._read(snapshot_id)[1]

    def _read(self, snapshot_id: str) -> tuple[sa.Row, pd.DataFrame]:
        with self.engine.connect() as conn:
            head = conn.execute(
                sa.select(label_snapshots).where(label_snapshots.c.id == snapshot_id)
            ).first()
            if head is None:
                known = conn.execute(sa.select(label_snapshots.c.id)).scalars().all()
                raise FeaturePlatformError(
                    f"Unknown label snapshot {snapshot_id!r}.{closest(snapshot_id, known)}"
                )
            query = (
                sa.select(
                    *[snapshot_labels.c[c] for c in LABEL_COLUMNS],
                    snapshot_sources.c.source,
                    snapshot_sources.c.confidence,
                    snapshot_sources.c.adjudication_id,
                    snapshot_sources.c.reviewer,
                )
                .outerjoin(
                    snapshot_sources,
                    sa.and_(
                        snapshot_sources.c.snapshot_id == snapshot_labels.c.snapshot_id,
                        snapshot_sources.c.sample_key == snapshot_labels.c.sample_key,
                    ),
                )
                .where(snapshot_labels.c.snapshot_id == snapshot_id)
                .order_by(snapshot_labels.c.sample_key)
            )
            rows = conn.execute(query).mappings().all()
        labels = pd.DataFrame(rows, columns=DETAIL_COLUMNS)
        labels["labeled_at"] = pd.to_datetime(labels["labeled_at"], utc=True)
        if _content_hash(labels) != head.content_hash or len(labels) != head.label_count:
            raise FeaturePlatformError(
                f"Label snapshot {snapshot_id} does not match the content hash recorded when it "
                f"was created ({head.content_hash}): its rows were changed after the fact. "
                f"Create a new snapshot instead of editing one."
            )
        return head, labels

    def latest(self) -> LabelSnapshot | None:
        with self.engine.connect() as conn:
            snapshot_id = conn.execute(
                sa.select(label_snapshots.c.id)
                .order_by(label_snapshots.c.created_at.desc())
                .limit(1)
            ).scalar()
        return self.get(snapshot_id) if snapshot_id else None

    def snapshots(self) -> pd.DataFrame:
        """Every snapshot's header, oldest first."""
        columns = [
            "id",
            "created_at",
            "method",
            "method_used",
            "label_count",
            "answer_count",
            "note",
            "method_note",
            "label_set_version",
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*[label_snapshots.c[c] for c in columns]).order_by(
                    label_snapshots.c.created_at, label_snapshots.c.id
                )
            ).all()
        frame = pd.DataFrame(rows, columns=columns)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["method_used"] = frame["method_used"].fillna(frame["method"])
        frame["method_note"] = frame["method_note"].fillna("")
        return frame
