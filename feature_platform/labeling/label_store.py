"""Label snapshots: aggregated labels frozen under an id, the input of every training set.

A snapshot records the aggregation method that produced it; each of its rows records whether
its label came from that method or from a reviewer's decision (which overrides it), and with
what confidence. Rows are written once and never updated; reading a snapshot re-checks its
content hash, so a snapshot changed behind the platform's back is refused, not trained on.

A snapshot may also use labels no person gave (`machine_labels.py`: a model's auto-labels, weak
rules' votes, downstream feedback): `sources` maps source kinds (or one exact source, e.g.
`rule:dark_center@<fingerprint>`) to weights. Each machine source votes like one more
annotator named by its source string, so Dawid-Skene estimates an accuracy for every rule,
model version and feedback system. The snapshot records which sources and weights it used and
how many votes each gave; each row records the kind behind its label (`human` whenever a
person's answer or a reviewer supports it) and how many people answered, so metrics, agreement
and budgets count people only.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, InvalidArgumentError, closest
from feature_platform.labeling.adjudication import Adjudications
from feature_platform.labeling.aggregation import (
    AGGREGATORS,
    CONFIDENCE,
    LABEL_COLUMNS,
    WEIGHT,
    aggregate,
)
from feature_platform.labeling.label_sets import LabelSets, map_through
from feature_platform.labeling.machine_labels import (
    FEEDBACK,
    HUMAN,
    MACHINE_KINDS,
    SOURCE_KINDS,
    MachineLabelStore,
)
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
    # The source kind behind the label (human | model | rule | feedback) and how many people
    # answered the sample; NULL on rows written before machine labels existed (all human).
    sa.Column("label_source_kind", sa.String(20)),
    sa.Column("n_human_answers", sa.Integer),
)

# Which sources (a kind or one exact source) a snapshot used, with what weight, how many votes
# each gave and how many of the snapshot's labels its votes support. None for snapshots
# written before machine labels existed: they used people's answers only, at weight 1.
snapshot_source_weights = sa.Table(
    "label_snapshot_source_weights",
    metadata,
    sa.Column("snapshot_id", sa.String(40), sa.ForeignKey("label_snapshots.id"), primary_key=True),
    sa.Column("source", sa.String(260), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("n_votes", sa.Integer, nullable=False),
    sa.Column("n_labels", sa.Integer, nullable=False),
)

DETAIL_COLUMNS = [
    *LABEL_COLUMNS,
    "source",
    CONFIDENCE,
    "adjudication_id",
    "reviewer",
    "label_source_kind",
    "n_human_answers",
]
_DECIDED_COLUMNS = DETAIL_COLUMNS[:-2]  # before each row's source kind is known
DEFAULT_SOURCES = {HUMAN: 1.0}


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
    # Source (kind, or one exact source string) -> weight used; votes each gave; how many
    # labels its votes support.
    sources: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SOURCES))
    source_votes: Mapping[str, int] = field(default_factory=dict)
    source_labels: Mapping[str, int] = field(default_factory=dict)
    # Per row: sample_key, label_source_kind, n_human_answers (same order as `labels`).
    kinds: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def human_labels(self) -> pd.DataFrame:
        """The rows whose label a person supports (an answer or a reviewer's decision): what
        metrics, learning curves and budgets count."""
        if self.kinds.empty:
            return self.labels
        human = set(self.kinds.loc[self.kinds["label_source_kind"] == HUMAN, "sample_key"])
        return self.labels[self.labels["sample_key"].isin(human)]

    @property
    def label_kind_counts(self) -> dict[str, int]:
        """How many labels each source kind stands behind (human first)."""
        if self.kinds.empty:
            return {HUMAN: len(self.labels)} if len(self.labels) else {}
        counts = self.kinds["label_source_kind"].value_counts()
        return {k: int(counts[k]) for k in SOURCE_KINDS if k in counts}


def _content_hash(labels: pd.DataFrame) -> str:
    text = labels[["sample_key", "label"]].sort_values("sample_key").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_sources(sources: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a snapshot's `sources`: keys are source kinds (SOURCE_KINDS) or exact machine
    sources ("rule:<name>@<fingerprint>", ...); weights finite and > 0. None: people only."""
    if sources is None:
        return dict(DEFAULT_SOURCES)
    if not isinstance(sources, Mapping) or not sources:
        raise InvalidArgumentError(
            f"sources must map source kinds {list(SOURCE_KINDS)} (or exact machine sources "
            f"like 'rule:<name>@<fingerprint>') to weights; got {sources!r}."
        )
    resolved = {}
    for key, weight in sources.items():
        kind = str(key).split(":", 1)[0]
        if key not in SOURCE_KINDS and not (kind in MACHINE_KINDS and ":" in str(key)):
            raise InvalidArgumentError(
                f"Unknown label source {key!r} in sources.{closest(str(key), SOURCE_KINDS)} "
                f"Known kinds: {list(SOURCE_KINDS)} (or an exact source like "
                f"'rule:<name>@<fingerprint>')."
            )
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise InvalidArgumentError(
                f"Weight of label source {key!r} must be a finite number > 0 (leave a source "
                f"out to not use it), got {weight!r}."
            )
        resolved[str(key)] = value
    return resolved


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
        decided = pd.DataFrame(rows, columns=_DECIDED_COLUMNS)
        result = decided if result.empty else pd.concat([result[_DECIDED_COLUMNS], decided])
    result = result.sort_values("sample_key", ignore_index=True)
    result["n_answers"] = result["n_answers"].astype(int)
    result["labeled_at"] = pd.to_datetime(result["labeled_at"], utc=True)
    return result[_DECIDED_COLUMNS]


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
        self,
        engine: sa.Engine,
        queue: TaskQueue,
        label_sets: LabelSets | None = None,
        machine_labels: MachineLabelStore | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.adjudications = Adjudications(engine, queue)
        self.label_sets = label_sets or LabelSets(engine, queue)
        self.machine_labels = machine_labels or MachineLabelStore(engine)
        create_tables(
            engine, label_snapshots, snapshot_labels, snapshot_sources, snapshot_source_weights
        )

    def create_snapshot(
        self,
        method: str = "majority",
        note: str = "",
        *,
        adjudicate: bool = True,
        sources: Mapping[str, float] | None = None,
    ) -> LabelSnapshot:
        """Aggregate every complete task's answers with `method` (see AGGREGATORS), let reviewer
        decisions override (unless `adjudicate=False`), and freeze the result under a new id.

        Tasks still waiting for answers are left out (their partial votes would change) unless
        a reviewer decided their sample. Complete tasks move to `resolved`.

        Answers, decisions and machine labels given under an older label set version are
        mapped to the current one (`label_sets.map_through`); one in a class split since is
        left out (as is a machine label from before versions were recorded, once its class
        is gone), and a
        sample re-queued for relabeling after a split keeps only its answers and decisions
        from the relabel on. The snapshot records the version.

        `sources` (default `{"human": 1.0}`: people's answers only) maps source kinds
        (`human`, `model`, `rule`, `feedback`) or exact machine sources to weights. Machine
        labels of the listed sources that are not withdrawn vote as annotators named by their
        source (one vote per source and sample: its latest), weighted: majority vote sums
        weights, Dawid-Skene counts a weight-w vote as w votes (see `aggregation`). An exact
        source's weight overrides its kind's; with `feedback` listed, a feedback label's own
        trust (its confidence, set at import) comes in between. A reviewer's decision still
        overrides everything.
        """
        if method not in AGGREGATORS:
            raise FeaturePlatformError(
                f"Unknown aggregation {method!r}.{closest(method, AGGREGATORS)} "
                f"Known: {sorted(AGGREGATORS)}."
            )
        weights = resolve_sources(sources)
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
        if HUMAN not in weights:
            answers = answers[:0]
        machine = self._machine_votes(weights, versions, label_set_version)
        votes = pd.concat(
            [_human_votes(answers, weights.get(HUMAN, 1.0)), machine], ignore_index=True
        )
        decided_keys = set(decisions["sample_key"])
        decided_votes = pd.concat(
            [
                _human_votes(decided, 1.0),
                machine[machine["sample_key"].isin(decided_keys)],
            ],
            ignore_index=True,
        )
        aggregated = aggregate(method, votes)
        labels = apply_adjudications(aggregated.labels, decided_votes, decisions)
        used = pd.concat([answers, decided]).drop_duplicates("answer_id")
        labels, source_rows = _label_kinds(labels, votes, decided_votes, weights, len(used))
        method_note = aggregated.note
        if weights != DEFAULT_SOURCES:  # say how the sources entered (people-only: as before)
            how = (
                "Dawid-Skene counts a weight-w vote as w votes (weighted likelihood)"
                if aggregated.method_used == "dawid_skene"
                else "majority vote sums the weights"
            )
            listed = ", ".join(f"{k}={v:g}" for k, v in sorted(weights.items()))
            said = f"label sources {listed}: each machine source votes as one annotator; {how}"
            method_note = f"{method_note}; {said}" if method_note else said
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
                    method_note=method_note,
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
                            "label_source_kind": r["label_source_kind"],
                            "n_human_answers": int(r["n_human_answers"]),
                        }
                        for r in rows
                    ],
                )
            conn.execute(
                snapshot_source_weights.insert(),
                [{"snapshot_id": snapshot_id, **row} for row in source_rows],
            )
        if HUMAN in weights:  # their answers are frozen into this snapshot
            self.queue.mark_resolved(sorted(complete))
        return self.get(snapshot_id)

    def votes(self, sources: Mapping[str, float] | None = None) -> pd.DataFrame:
        """What a snapshot with `sources` would aggregate, before reviewers' decisions: the
        answers of complete tasks (when `human` is listed) and the machine votes, as answers
        (sample_key, annotator, label, answered_at, weight, source_kind). Fit Dawid-Skene on
        it to estimate each source's accuracy (`aggregation.fit_dawid_skene`)."""
        weights = resolve_sources(sources)
        human = _human_votes(self._complete_answers(), weights[HUMAN]) if HUMAN in weights else None
        machine = self._machine_votes(weights)
        return machine if human is None else pd.concat([human, machine], ignore_index=True)

    def _complete_answers(self) -> pd.DataFrame:
        complete = {t.id for t in self.queue.tasks(state=ANSWERED)} | {
            t.id for t in self.queue.tasks(state=RESOLVED)
        }
        answers = self.queue.answers()
        return answers[answers["task_id"].isin(complete)]

    def _machine_votes(
        self, weights: Mapping[str, float], versions: list | None = None, to_version: int = 1
    ) -> pd.DataFrame:
        """The machine labels `weights` asks for, as answers: annotator = source, one vote per
        (source, sample) (its latest), weight from the exact source or else its kind. With
        `versions`, each label is mapped to `to_version`'s classes like people's answers (a
        split drops it); a label recorded before machine labels had versions counts only
        while its class is still in force."""
        kinds = sorted({key.split(":", 1)[0] for key in weights} & set(MACHINE_KINDS))
        if not kinds:
            return _votes_frame()
        stored = self.machine_labels.labels(kinds)
        weight = stored["source"].map(lambda s: weights.get(s))
        # Feedback carries its system's trust (given at import) as its confidence: that is
        # its weight unless `sources` names the system; the kind's weight comes last.
        trusted = (stored["source_kind"] == FEEDBACK) & (FEEDBACK in weights)
        weight = weight.fillna(stored["confidence"].where(trusted))
        weight = weight.fillna(stored["source_kind"].map(lambda k: weights.get(k)))
        stored = stored.assign(**{WEIGHT: weight})[weight.notna()]
        stored = stored.drop_duplicates(["source", "sample_key"], keep="last")
        if versions:
            known = stored["label_set_version"].notna()
            stored = stored[known | stored["label"].isin(versions[-1].classes)]
            version = stored["label_set_version"].fillna(to_version).astype(int)
            stored = _mapped(stored.assign(label_set_version=version), versions, to_version)
        return _votes_frame(
            sample_key=stored["sample_key"].astype(str),
            annotator=stored["source"],
            label=stored["label"].astype(str),
            answered_at=stored["created_at"],
            weight=stored[WEIGHT].astype(float),
            source_kind=stored["source_kind"],
        )

    def get(self, snapshot_id: str) -> LabelSnapshot:
        head, labels = self._read(snapshot_id)
        with self.engine.connect() as conn:
            used = conn.execute(
                sa.select(snapshot_source_weights)
                .where(snapshot_source_weights.c.snapshot_id == snapshot_id)
                .order_by(snapshot_source_weights.c.source)
            ).all()
        if used:
            sources = {r.source: float(r.weight) for r in used}
            votes = {r.source: int(r.n_votes) for r in used}
            supported = {r.source: int(r.n_labels) for r in used}
        else:  # written before machine labels existed: people only
            sources, votes = dict(DEFAULT_SOURCES), {HUMAN: int(head.answer_count)}
            supported = {HUMAN: len(labels)}
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
            sources=sources,
            source_votes=votes,
            source_labels=supported,
            kinds=labels[["sample_key", "label_source_kind", "n_human_answers"]].reset_index(
                drop=True
            ),
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
                    snapshot_sources.c.label_source_kind,
                    snapshot_sources.c.n_human_answers,
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
        # Rows written before machine labels existed: every label came from people.
        labels["label_source_kind"] = labels["label_source_kind"].fillna(HUMAN)
        labels["n_human_answers"] = (
            labels["n_human_answers"].fillna(labels["n_answers"]).astype(int)
        )
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


VOTE_COLUMNS = ["sample_key", "annotator", "label", "answered_at", WEIGHT, "source_kind"]


def _votes_frame(**columns: pd.Series) -> pd.DataFrame:
    if not columns:
        return pd.DataFrame(columns=VOTE_COLUMNS)
    return pd.DataFrame({c: columns[c].to_numpy() for c in VOTE_COLUMNS})


def _human_votes(answers: pd.DataFrame, weight: float) -> pd.DataFrame:
    if answers.empty:
        return _votes_frame()
    return _votes_frame(
        sample_key=answers["sample_key"].astype(str),
        annotator=answers["annotator"].astype(str),
        label=answers["label"].astype(str),
        answered_at=pd.to_datetime(answers["answered_at"], utc=True),
        weight=pd.Series(weight, index=answers.index, dtype=float),
        source_kind=pd.Series(HUMAN, index=answers.index),
    )


def _label_kinds(
    labels: pd.DataFrame,
    votes: pd.DataFrame,
    decided_votes: pd.DataFrame,
    weights: Mapping[str, float],
    human_answers: int,
) -> tuple[pd.DataFrame, list[dict]]:
    """Each row's `label_source_kind` (human when a person's answer or a reviewer supports the
    label, else the machine kind giving it the most weight) and `n_human_answers`; and per
    source in `weights`: votes given and labels supported."""
    every = pd.concat([votes, decided_votes], ignore_index=True).drop_duplicates(
        ["sample_key", "annotator", "label", "answered_at"]
    )
    chosen = labels.set_index("sample_key")["label"]
    every = every.assign(chosen=every["sample_key"].map(chosen))
    supporting = every[every["label"] == every["chosen"]]
    human = every[every["source_kind"] == HUMAN].groupby("sample_key").size()
    weight_by_kind = supporting.groupby(["sample_key", "source_kind"])[WEIGHT].sum()
    order = {kind: i for i, kind in enumerate(SOURCE_KINDS)}
    supported = set(weight_by_kind.index.get_level_values(0))

    def kind_of(row: pd.Series) -> str:
        if row["source"] == ADJUDICATION or (row["sample_key"], HUMAN) in weight_by_kind.index:
            return HUMAN
        if row["sample_key"] not in supported:
            return HUMAN if human.get(row["sample_key"], 0) else MACHINE_KINDS[0]
        given = weight_by_kind.loc[row["sample_key"]]
        return min(given.index, key=lambda k: (-given[k], order[k]))

    labels = labels.assign(
        label_source_kind=labels.apply(kind_of, axis=1) if len(labels) else [],
        n_human_answers=labels["sample_key"].map(human).fillna(0).astype(int)
        if len(labels)
        else [],
    )
    rows = []
    for key, weight in sorted(weights.items()):
        if key == HUMAN:
            n_votes = human_answers
            n_labels = int((labels["label_source_kind"] == HUMAN).sum())
        else:
            column = "source_kind" if key in SOURCE_KINDS else "annotator"
            n_votes = int((votes[column] == key).sum())
            mine = supporting[supporting[column] == key]
            n_labels = int(mine["sample_key"].nunique())
        rows.append(
            {"source": key, "weight": float(weight), "n_votes": int(n_votes), "n_labels": n_labels}
        )
    return labels, rows
