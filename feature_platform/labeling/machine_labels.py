"""Labels that no person gave: a model's auto-labels, weak labeling rules' votes and feedback
from downstream systems.

They live in their own append-only table, never in the queue's answer table, so every metric,
agreement figure and label budget that reads the queue counts people only, by construction.
Each row names its source kind (`model`, `rule`, `feedback`), the exact source (a model
version, a rule's name and fingerprint, a feedback system) and its provenance (JSON). A row is
withdrawn, never deleted or edited, when a person's review rejects it: the withdrawal is a row
of its own table with who and why.

`(source, event_id)` is unique, so re-sending the same feedback event or re-running the same
rule version on the same sample is idempotent instead of counted twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from feature_platform.errors import InvalidAnswerError
from feature_platform.governance import AnnotatorRegistry, require
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.labeling.label_sets import label_set_versions
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction

HUMAN, MODEL, RULE, FEEDBACK = "human", "model", "rule", "feedback"
SOURCE_KINDS = (HUMAN, MODEL, RULE, FEEDBACK)
MACHINE_KINDS = (MODEL, RULE, FEEDBACK)

machine_labels = sa.Table(
    "machine_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sample_key", sa.String(200), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("source_kind", sa.String(20), nullable=False, index=True),
    # "model:<registered model>/<version>", "rule:<name>@<fingerprint>", "feedback:<system>"
    sa.Column("source", sa.String(260), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("round", sa.String(100)),
    sa.Column("provenance", sa.Text, nullable=False),  # JSON
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The label set version its label is a class of (NULL on rows from before versions were
    # recorded): snapshots map it through later renames and merges, as people's answers.
    sa.Column("label_set_version", sa.Integer, nullable=True),
    sa.UniqueConstraint("source", "event_id", name="uq_machine_labels_source_event"),
)

machine_label_withdrawals = sa.Table(
    "machine_label_withdrawals",
    metadata,
    sa.Column("label_id", sa.Integer, sa.ForeignKey("machine_labels.id"), primary_key=True),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

MACHINE_LABEL_COLUMNS = [
    "label_id",
    "sample_key",
    "label",
    "source_kind",
    "source",
    "event_id",
    "confidence",
    "round",
    "provenance",
    "recorded_by",
    "created_at",
    "label_set_version",
    "withdrawn",
]


@dataclass(frozen=True)
class MachineLabel:
    """One label to record. `event_id` makes recording idempotent per `source` (a feedback
    event's id; for a model or rule, e.g. the sample key within one model/rule version)."""

    sample_key: str
    label: str
    source_kind: str
    source: str
    event_id: str
    confidence: float | None = None
    round: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    # The label set version `label` belongs to; None: the one in force when it is recorded.
    label_set_version: int | None = None


@dataclass(frozen=True)
class RecordOutcome:
    recorded: int  # new rows
    duplicates: int  # (source, event_id) already stored with the same label: nothing written


def _check(label: MachineLabel, position: int) -> None:
    where = f"machine label #{position} (sample {label.sample_key!r}, source {label.source!r})"
    if label.source_kind not in MACHINE_KINDS:
        raise InvalidAnswerError(
            f"{where}: source kind {label.source_kind!r} is not a machine source; "
            f"expected one of {list(MACHINE_KINDS)} (people's answers go through the queue)."
        )
    if not label.source.startswith(f"{label.source_kind}:") or len(label.source) > 260:
        raise InvalidAnswerError(
            f"{where}: source must read '{label.source_kind}:<name>' (at most 260 characters)."
        )
    for name, value, limit in (
        ("sample_key", label.sample_key, 200),
        ("label", label.label, 200),
        ("event_id", label.event_id, 200),
    ):
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise InvalidAnswerError(
                f"{where}: {name} must be non-empty text of at most {limit} characters, "
                f"got {value!r}."
            )
    if label.confidence is not None and not 0.0 <= float(label.confidence) <= 1.0:
        raise InvalidAnswerError(
            f"{where}: confidence must lie in [0, 1] (NaN is refused), got {label.confidence!r}."
        )


class MachineLabelStore:
    """Record, list and withdraw labels whose source is not a person."""

    def __init__(self, engine: sa.Engine, registry: AnnotatorRegistry | None = None) -> None:
        """`registry`: the people registry permissions are checked in (the store's own)."""
        self.engine = engine
        self.registry = registry or AnnotatorRegistry(engine)
        self.audit = self.registry.audit
        create_tables(engine, label_set_versions, machine_labels, machine_label_withdrawals)

    def record(
        self,
        labels: Sequence[MachineLabel],
        *,
        actor: Actor | str | None = None,
        now: datetime | None = None,
        conn: sa.Connection | None = None,
    ) -> RecordOutcome:
        """Store `labels` in one transaction, all or nothing. Needs the `import` permission
        (the platform itself has it). A (source, event_id) already stored with the same label
        is a duplicate and skipped; with another label it is refused, naming the event.
        With `conn`, inside the caller's (write) transaction."""
        who = as_actor(actor)
        require(who, "import", self.registry)
        for position, label in enumerate(labels):
            _check(label, position)
        at = now or utcnow()

        def work(conn: sa.Connection) -> RecordOutcome:
            in_force = conn.execute(sa.select(sa.func.max(label_set_versions.c.version)))
            version_now = in_force.scalar() or 1  # 1: the template's, before any change
            stored = {}
            pairs = {(label.source, label.event_id) for label in labels}
            for source in {source for source, _ in pairs}:
                events = [event for s, event in pairs if s == source]
                for start in range(0, len(events), 500):
                    rows = conn.execute(
                        sa.select(machine_labels.c.event_id, machine_labels.c.label).where(
                            machine_labels.c.source == source,
                            machine_labels.c.event_id.in_(events[start : start + 500]),
                        )
                    )
                    stored.update({(source, event): label for event, label in rows})
            fresh, duplicates, seen = [], 0, {}
            for label in labels:
                key = (label.source, label.event_id)
                known = stored.get(key, seen.get(key))
                if known is not None:
                    if known != label.label:
                        raise InvalidAnswerError(
                            f"{label.source} event {label.event_id!r} was already recorded "
                            f"with label {known!r}; refusing {label.label!r} for the same "
                            f"event (send a new event id for a new label)."
                        )
                    duplicates += 1
                    continue
                seen[key] = label.label
                fresh.append(
                    {
                        "sample_key": label.sample_key,
                        "label": label.label,
                        "source_kind": label.source_kind,
                        "source": label.source,
                        "event_id": label.event_id,
                        "confidence": None if label.confidence is None else float(label.confidence),
                        "round": label.round,
                        "provenance": json.dumps(
                            dict(label.provenance), sort_keys=True, default=str
                        ),
                        "recorded_by": str(who),
                        "created_at": at,
                        "label_set_version": label.label_set_version or version_now,
                    }
                )
            if fresh:
                conn.execute(machine_labels.insert(), fresh)
            kinds = sorted({row["source_kind"] for row in fresh})
            self.audit.record(
                who,
                "machine_labels.record",
                ",".join(sorted({row["source"] for row in fresh})),
                {"recorded": len(fresh), "duplicates": duplicates, "kinds": kinds},
                conn=conn,
                now=at,
            )
            return RecordOutcome(len(fresh), duplicates)

        if conn is not None:
            return work(conn)
        with write_transaction(self.engine) as conn:
            return work(conn)

    def stored_labels(
        self, source: str, event_ids: Sequence[str], conn: sa.Connection | None = None
    ) -> dict[str, str]:
        """event_id -> label of the events of `source` already stored."""
        found: dict[str, str] = {}
        ids = sorted(set(event_ids))
        with contextlib.ExitStack() as stack:
            reading = conn or stack.enter_context(self.engine.connect())
            for start in range(0, len(ids), 500):
                rows = reading.execute(
                    sa.select(machine_labels.c.event_id, machine_labels.c.label).where(
                        machine_labels.c.source == source,
                        machine_labels.c.event_id.in_(ids[start : start + 500]),
                    )
                )
                found.update({event: label for event, label in rows})
        return found

    def labels(
        self,
        kinds: Sequence[str] | None = None,
        *,
        include_withdrawn: bool = False,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Stored machine labels (MACHINE_LABEL_COLUMNS), oldest first, provenance decoded."""
        if kinds is not None:
            unknown = sorted(set(kinds) - set(MACHINE_KINDS))
            if unknown:
                raise InvalidAnswerError(
                    f"Unknown machine source kinds {unknown}; known: {list(MACHINE_KINDS)}."
                )
        withdrawn = sa.exists().where(machine_label_withdrawals.c.label_id == machine_labels.c.id)
        query = sa.select(
            machine_labels.c.id.label("label_id"),
            *[machine_labels.c[c] for c in MACHINE_LABEL_COLUMNS[1:-1]],
            withdrawn.label("withdrawn"),
        ).order_by(machine_labels.c.id)
        if kinds is not None:
            query = query.where(machine_labels.c.source_kind.in_(list(kinds)))
        if source is not None:
            query = query.where(machine_labels.c.source == source)
        if not include_withdrawn:
            query = query.where(~withdrawn)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(rows, columns=MACHINE_LABEL_COLUMNS)
        frame["provenance"] = frame["provenance"].map(json.loads)
        frame["withdrawn"] = frame["withdrawn"].astype(bool)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        frame["label_set_version"] = frame["label_set_version"].astype("Int64")
        return frame

    def withdraw(
        self,
        label_ids: Sequence[int],
        reason: str,
        *,
        actor: Actor | str | None = None,
        now: datetime | None = None,
        conn: sa.Connection | None = None,
    ) -> int:
        """Withdraw machine labels (e.g. an auto-label a reviewer rejected); they stay stored
        and listed with `include_withdrawn=True`. Needs `adjudicate`. Returns how many were
        newly withdrawn (withdrawing twice is a no-op). With `conn`, inside the caller's
        (write) transaction."""
        who = as_actor(actor)
        require(who, "adjudicate", self.registry)
        if not reason.strip():
            raise InvalidAnswerError("Withdrawing machine labels needs a reason.")
        ids = sorted({int(i) for i in label_ids})
        at = now or utcnow()

        def work(conn: sa.Connection) -> int:
            known = set(
                conn.execute(
                    sa.select(machine_labels.c.id).where(machine_labels.c.id.in_(ids))
                ).scalars()
            )
            missing = sorted(set(ids) - known)
            if missing:
                raise InvalidAnswerError(f"Unknown machine label ids {missing[:10]}.")
            done = set(
                conn.execute(
                    sa.select(machine_label_withdrawals.c.label_id).where(
                        machine_label_withdrawals.c.label_id.in_(ids)
                    )
                ).scalars()
            )
            new = [i for i in ids if i not in done]
            if new:
                conn.execute(
                    machine_label_withdrawals.insert(),
                    [{"label_id": i, "by": str(who), "at": at, "reason": reason} for i in new],
                )
            self.audit.record(
                who, "machine_labels.withdraw", "", {"ids": new, "reason": reason}, conn=conn
            )
            return len(new)

        if conn is not None:
            return work(conn)
        with write_transaction(self.engine) as conn:
            return work(conn)
