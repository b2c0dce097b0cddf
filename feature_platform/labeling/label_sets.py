"""Label sets that evolve without breaking the past: versioned class lists with a mapping.

A store's label set (one program's) starts as version 1, the classes of the program's
template, and changes one step at a time; each change is a new, immutable version with the
mapping from the version before it:

- `add x`: a new class; no old label changes.
- `rename a -> b`: every `a` becomes `b` (exact).
- `merge [a, b] -> c`: every `a` and `b` becomes `c` (exact; `c` may be `a` or `b`).
- `split a -> [a1, a2]`: an old `a` could be either (ambiguous; `a1` may keep the name `a`).

Every task records the label set version its classes belong to, every answer and reviewer
decision the version it was validated against. A change moves every task's allowed classes
forward through the mapping in the same transaction (an old name is then refused with a
sentence naming the change: a label given under the old set must be re-given), and re-queues
each sample that has an answer or decision in a split class as a relabel task (round
`relabel-v<N>`) that allows only the split's new classes, with the reason
"class a was split into a1 and a2".

Nothing already stored is rewritten: label snapshots map answers forward when they are made
(`map_through`: exact steps only; a label in a split class is left out; a re-queued sample's
answers and decisions from before its relabel task are superseded by the relabel's) and
record the version they were made under, so a snapshot made before a change keeps its rows,
and a model trained on it rebuilds the same training set. The held-out ground truth is read
in version 1's classes and mapped to a snapshot's version the same way (`rounds.holdout`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance import require
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.labeling.adjudication import adjudications
from feature_platform.labeling.queue import (
    PENDING,
    Task,
    TaskQueue,
    _event_row,
    _lock,
    _task,
    answers,
    task_events,
    tasks,
)
from feature_platform.names import check_name, printable
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow, write_transaction

ADD, RENAME, MERGE, SPLIT = "add", "rename", "merge", "split"
CHANGE_KINDS = (ADD, RENAME, MERGE, SPLIT)
INITIAL = "initial"
RELABEL_STRATEGY = "relabel"
RELABEL_ROUND_PREFIX = "relabel-v"
MAX_LABEL_LENGTH = 200  # labeling_answers.label

label_set_versions = sa.Table(
    "label_set_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("program", sa.String(128), nullable=False),
    sa.Column("classes", sa.Text, nullable=False),  # JSON list, in display order
    sa.Column("change", sa.Text, nullable=False),  # JSON {"kind", "sources", "targets"}
    sa.Column("mapping", sa.Text, nullable=False),  # JSON {previous class: [its classes now]}
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
)


class LabelSetChangeError(FeaturePlatformError, ValueError):
    """A label set change that cannot be applied (unknown class, name taken...)."""


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class LabelChange:
    """One change of a label set: `sources` (old classes) become `targets` (new classes)."""

    kind: str
    sources: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    @classmethod
    def add(cls, name: str) -> LabelChange:
        return cls(ADD, (), (name,))

    @classmethod
    def rename(cls, old: str, new: str) -> LabelChange:
        return cls(RENAME, (old,), (new,))

    @classmethod
    def merge(cls, sources: Sequence[str], into: str) -> LabelChange:
        return cls(MERGE, tuple(sources), (into,))

    @classmethod
    def split(cls, source: str, into: Sequence[str]) -> LabelChange:
        return cls(SPLIT, (source,), tuple(into))

    def describe(self) -> str:
        """The change in words; for a split, the reason its relabel tasks carry."""
        if self.kind == ADD:
            return f"class {self.targets[0]} was added"
        if self.kind == RENAME:
            return f"class {self.sources[0]} was renamed to {self.targets[0]}"
        if self.kind == MERGE:
            return f"classes {_and(self.sources)} were merged into {self.targets[0]}"
        if self.kind == SPLIT:
            return f"class {self.sources[0]} was split into {_and(self.targets)}"
        return INITIAL

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "sources": list(self.sources), "targets": list(self.targets)}


@dataclass(frozen=True)
class LabelSetVersion:
    program: str
    version: int
    classes: tuple[str, ...]
    change: LabelChange | None  # None for version 1 (the template's classes)
    mapping: dict[str, tuple[str, ...]]  # each class of the previous version -> its classes now
    created_at: datetime
    created_by: str
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.program}@labels-v{self.version}"

    def describe(self) -> str:
        return self.change.describe() if self.change else "the template's classes"


@dataclass(frozen=True)
class Evolution:
    """What one change did: the new version, the tasks whose allowed classes moved forward,
    and the relabel tasks opened for samples labeled with a split class."""

    version: LabelSetVersion
    remapped_tasks: list[str] = field(default_factory=list)
    relabel_tasks: list[Task] = field(default_factory=list)


def check_label(value: object, where: str = "class") -> str:
    """A class name: non-empty text without surrounding spaces, control characters, ',' or
    '=' (the command line's separators), at most MAX_LABEL_LENGTH characters."""
    if not isinstance(value, str):
        raise LabelSetChangeError(f"Invalid {where}: expected text, got {type(value).__name__}.")
    if not value or value != value.strip():
        raise LabelSetChangeError(
            f"Invalid {where} {printable(value)!r}: empty or surrounded by spaces."
        )
    if len(value) > MAX_LABEL_LENGTH:
        raise LabelSetChangeError(
            f"Invalid {where}: {len(value)} characters, at most {MAX_LABEL_LENGTH}."
        )
    if printable(value) != value or "," in value or "=" in value:
        raise LabelSetChangeError(
            f"Invalid {where} {printable(value)!r}: no control characters, ',' or '='."
        )
    return value


def apply_change(
    classes: Sequence[str], change: LabelChange
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(the new classes, the mapping from each old class) or LabelSetChangeError saying why."""
    classes = tuple(classes)
    kind, sources, targets = change.kind, change.sources, change.targets
    if kind not in CHANGE_KINDS:
        raise LabelSetChangeError(
            f"Unknown label set change {kind!r}.{closest(kind, CHANGE_KINDS)} "
            f"Known: {list(CHANGE_KINDS)}."
        )
    for name in (*sources, *targets):
        check_label(name)

    def unknown(name: str) -> LabelSetChangeError:
        return LabelSetChangeError(
            f"Cannot {kind} {name!r}: no such class.{closest(name, classes)} "
            f"Classes: {list(classes)}."
        )

    def taken(name: str, doing: str) -> LabelSetChangeError:
        return LabelSetChangeError(
            f"Cannot {doing}: {name!r} is already a class ({list(classes)}); "
            f"to combine classes, merge them."
        )

    def distinct(names: Sequence[str], what: str, at_least: int) -> None:
        if len(set(names)) != len(names) or len(names) < at_least:
            raise LabelSetChangeError(
                f"A {kind} needs at least {at_least} distinct {what}, got {list(names)}."
            )

    mapping = {c: (c,) for c in classes}
    if kind == ADD:
        (new,) = targets
        if new in classes:
            raise taken(new, f"add {new!r}")
        return (*classes, new), mapping
    if kind == RENAME:
        (old,), (new,) = sources, targets
        if old not in classes:
            raise unknown(old)
        if new == old:
            raise LabelSetChangeError(f"Cannot rename {old!r} to itself.")
        if new in classes:
            raise taken(new, f"rename {old!r} to {new!r}")
        mapping[old] = (new,)
        return tuple(new if c == old else c for c in classes), mapping
    if kind == MERGE:
        (new,) = targets
        distinct(sources, "classes to merge", 2)
        for old in sources:
            if old not in classes:
                raise unknown(old)
        if new in classes and new not in sources:
            raise taken(new, f"merge {list(sources)} into {new!r}")
        kept = [c for c in classes if c == sources[0] or c not in sources]
        merged = [new if c == sources[0] else c for c in kept]
        if len(merged) < 2:
            raise LabelSetChangeError(
                f"Merging {list(sources)} would leave {merged}: a label set needs two classes."
            )
        mapping |= {old: (new,) for old in sources}
        return tuple(merged), mapping
    (old,) = sources
    if old not in classes:
        raise unknown(old)
    distinct(targets, "new classes", 2)
    for new in targets:
        if new in classes and new != old:
            raise taken(new, f"split {old!r} into {list(targets)}")
    mapping[old] = tuple(targets)
    split = [t for c in classes for t in (targets if c == old else (c,))]
    return tuple(split), mapping


def _version(row: sa.Row) -> LabelSetVersion:
    change = json.loads(row.change)
    return LabelSetVersion(
        program=row.program,
        version=int(row.version),
        classes=tuple(json.loads(row.classes)),
        change=None
        if change["kind"] == INITIAL
        else LabelChange(change["kind"], tuple(change["sources"]), tuple(change["targets"])),
        mapping={k: tuple(v) for k, v in json.loads(row.mapping).items()},
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        note=row.note or "",
    )


def map_through(
    versions: Sequence[LabelSetVersion], label: str, from_version: int, to_version: int
) -> str | None:
    """`label`, given under `from_version`, in the classes of `to_version` (later or equal);
    None when a split on the way makes it ambiguous. A label its version's mapping does not
    name (it was never a class there) is kept as it is."""
    by_number = {v.version: v for v in versions}
    for step in range(max(from_version, 1) + 1, to_version + 1):
        targets = by_number[step].mapping.get(label, (label,))
        if len(targets) != 1:
            return None
        label = targets[0]
    return label


def lock_label_set(conn: sa.Connection, *, exclusive: bool) -> None:
    """Serialise label set changes with batch creation on Postgres (SQLite's write transaction
    already holds the database): a change waits for batches being made, so it moves their
    tasks too, and a batch waits for a change, then reads the new version. Batches do not
    wait for each other (SHARE); a change waits for every one (SHARE ROW EXCLUSIVE)."""
    if conn.dialect.name != "postgresql":
        return
    mode = "SHARE ROW EXCLUSIVE" if exclusive else "SHARE"
    conn.exec_driver_sql(f"LOCK TABLE label_set_versions IN {mode} MODE")


class LabelSets:
    """The store's label set versions, and the one write path that changes them (`evolve`)."""

    def __init__(self, engine: sa.Engine, queue: TaskQueue) -> None:
        self.engine = engine
        self.queue = queue
        create_tables(engine, label_set_versions)

    # -- reading ----------------------------------------------------------------------------
    def versions(self, conn: sa.Connection | None = None) -> list[LabelSetVersion]:
        """Every version, oldest first (empty until the first change)."""
        query = sa.select(label_set_versions).order_by(label_set_versions.c.version)
        if conn is not None:
            return [_version(r) for r in conn.execute(query)]
        with self.engine.connect() as own:
            return [_version(r) for r in own.execute(query)]

    def current(self) -> LabelSetVersion | None:
        """The newest version, or None while the label set never changed (the template's)."""
        found = self.versions()
        return found[-1] if found else None

    def current_number(self) -> int:
        """The version new tasks, answers and snapshots are made under (1 before any change)."""
        current = self.current()
        return current.version if current else 1

    def classes(self, default: Sequence[str]) -> tuple[str, ...]:
        """The classes in force: the newest version's, else `default` (the template's)."""
        current = self.current()
        return current.classes if current else tuple(str(c) for c in default)

    def classes_at(self, version: int | None, default: Sequence[str]) -> tuple[str, ...]:
        """The classes of `version` (None or 1 before any change: `default`, the template's)."""
        versions = {v.version: v for v in self.versions()}
        if version is None or version not in versions:
            return tuple(str(c) for c in default)
        return versions[version].classes

    def map_labels(
        self, labels: Iterable[str], from_version: int, to_version: int | None = None
    ) -> list[str | None]:
        """Each label mapped forward (None: ambiguous after a split); see `map_through`."""
        versions = self.versions()
        target = to_version or (versions[-1].version if versions else 1)
        return [map_through(versions, str(x), from_version, target) for x in labels]

    def relabeled(self) -> dict[str, int]:
        """Samples re-queued after a split: sample key -> the label set version of its latest
        relabel task. Their answers and decisions from before that version are superseded."""
        query = sa.select(tasks.c.sample_key, tasks.c.round).where(
            tasks.c.strategy == RELABEL_STRATEGY,
            tasks.c.round.startswith(RELABEL_ROUND_PREFIX, autoescape=True),
        )
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for key, round_key in conn.execute(query):
                number = round_key[len(RELABEL_ROUND_PREFIX) :]
                if number.isdigit():
                    found[key] = max(found.get(key, 0), int(number))
        return found

    # -- changing ---------------------------------------------------------------------------
    def evolve(
        self,
        program: str,
        change: LabelChange,
        *,
        initial_classes: Sequence[str] | None = None,
        actor: Actor | str | None = None,
        note: str = "",
        now: datetime | None = None,
    ) -> Evolution:
        """Apply `change` as a new version, in one transaction: every task's allowed classes
        follow the mapping, and each sample with an answer or reviewer decision in a split
        class is re-queued for relabeling. `initial_classes` (the template's) become version 1
        the first time. `actor` must be allowed to `manage_programs`; the change is audited.
        """
        check_name(program, "program name")
        acting = as_actor(actor)
        require(acting, "manage_programs", self.queue.registry)
        now = now or utcnow()
        audit = AuditLog(self.engine)
        with write_transaction(self.engine) as conn:
            lock_label_set(conn, exclusive=True)
            versions = self.versions(conn)
            if not versions:
                if initial_classes is None:
                    raise LabelSetChangeError(
                        f"Program {program!r} has no label set version yet: give its "
                        f"template's classes (initial_classes) to start from."
                    )
                versions = [self._insert_initial(conn, program, initial_classes, acting, now)]
            previous = versions[-1]
            if previous.program != program:
                raise LabelSetChangeError(
                    f"This store's label set belongs to program {previous.program!r}, not "
                    f"{program!r}: open program {program!r}'s own stores."
                )
            classes, mapping = apply_change(previous.classes, change)
            number = previous.version + 1
            conn.execute(
                label_set_versions.insert().values(
                    version=number,
                    program=program,
                    classes=json.dumps(list(classes)),
                    change=json.dumps(change.to_json()),
                    mapping=json.dumps({k: list(v) for k, v in mapping.items()}),
                    created_at=now,
                    created_by=acting.name,
                    note=note,
                )
            )
            made = LabelSetVersion(
                program, number, classes, change, mapping, now, acting.name, note
            )
            remapped = self._move_tasks(conn, previous, made, now)
            relabel = (
                self._requeue_split(conn, [*versions, made], made, now)
                if change.kind == SPLIT
                else []
            )
            audit.record(
                acting,
                "label_set.evolve",
                made.id,
                {
                    "change": change.to_json(),
                    "classes": list(classes),
                    "previous": previous.version,
                    "remapped_tasks": len(remapped),
                    "relabel_tasks": len(relabel),
                    "note": note,
                },
                conn=conn,
                now=now,
            )
        return Evolution(made, remapped, relabel)

    @staticmethod
    def _insert_initial(
        conn: sa.Connection, program: str, classes: Sequence[str], acting: Actor, now: datetime
    ) -> LabelSetVersion:
        names = tuple(check_label(str(c)) for c in classes)
        if len(set(names)) != len(names) or len(names) < 2:
            raise LabelSetChangeError(
                f"A label set needs at least two distinct classes, got {list(names)}."
            )
        conn.execute(
            label_set_versions.insert().values(
                version=1,
                program=program,
                classes=json.dumps(list(names)),
                change=json.dumps({"kind": INITIAL, "sources": [], "targets": []}),
                mapping="{}",
                created_at=now,
                created_by=acting.name,
                note="",
            )
        )
        return LabelSetVersion(program, 1, names, None, {}, now, acting.name, "")

    @staticmethod
    def _move_tasks(
        conn: sa.Connection, previous: LabelSetVersion, made: LabelSetVersion, now: datetime
    ) -> list[str]:
        """Every task's allowed classes in the new version: a task offering the whole previous
        set offers the whole new one (an added class included); a task limited to some
        classes (a relabel task) offers what those became."""
        ids = sorted(conn.execute(sa.select(tasks.c.id)).scalars())
        renamed = {
            old: new[0] for old, new in made.mapping.items() if len(new) == 1 and new[0] != old
        }
        moved: list[str] = []
        for start in range(0, len(ids), 500):
            # One UPDATE per distinct class list (most tasks share the whole set).
            groups: dict[str, list[str]] = {}
            for row in _lock(conn, ids[start : start + 500], full=True):
                groups.setdefault(row.classes, []).append(row.id)
            events = []
            for classes, group in groups.items():
                before = json.loads(classes)
                if tuple(before) == previous.classes:
                    after = list(made.classes)
                else:
                    moved_to = (t for c in before for t in made.mapping.get(c, (c,)))
                    after = list(dict.fromkeys(moved_to))
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id.in_(group))
                    .values(classes=json.dumps(after), label_set_version=made.version)
                )
                if after == before:
                    continue
                moved += group
                detail = {
                    "version": made.version,
                    "change": made.describe(),
                    "renamed": renamed,
                    "before": before,
                    "after": after,
                }
                events += [_event_row(t, "label_set_changed", now, None, detail) for t in group]
            if events:
                conn.execute(task_events.insert(), events)
        return moved

    @staticmethod
    def _requeue_split(
        conn: sa.Connection,
        versions: list[LabelSetVersion],
        made: LabelSetVersion,
        now: datetime,
    ) -> list[Task]:
        """A relabel task (only the split's classes allowed) for every sample whose effective
        answer or latest reviewer decision, read in the previous version, is the split class."""
        assert made.change is not None
        (split,) = made.change.sources
        before = made.version - 1
        later = answers.alias("later")
        effective = (
            sa.select(tasks.c.sample_key, tasks.c.id, answers.c.label, answers.c.label_set_version)
            .join(tasks, tasks.c.id == answers.c.task_id)
            .where(
                ~sa.exists().where(
                    later.c.task_id == answers.c.task_id,
                    later.c.annotator == answers.c.annotator,
                    later.c.revision > answers.c.revision,
                )
            )
        )
        decided = sa.select(
            adjudications.c.sample_key,
            adjudications.c.task_id.label("id"),
            adjudications.c.label,
            adjudications.c.label_set_version,
        ).order_by(adjudications.c.id)
        latest_decision = {r.sample_key: r for r in conn.execute(decided)}
        source_task: dict[str, str] = {}
        for row in [*conn.execute(effective), *latest_decision.values()]:
            if map_through(versions, row.label, row.label_set_version, before) == split:
                source_task.setdefault(row.sample_key, row.id)
        round_key = f"{RELABEL_ROUND_PREFIX}{made.version}"
        if not source_task:
            return []
        top = conn.execute(sa.select(sa.func.max(tasks.c.priority))).scalar() or 0.0
        sources = {
            r.id: r
            for r in conn.execute(
                sa.select(tasks).where(tasks.c.id.in_(sorted(set(source_task.values()))))
            )
        }
        reason = made.change.describe()
        keys = sorted(source_task, key=lambda k: (len(k), k))
        rows = []
        for rank, key in enumerate(keys):
            origin = sources[source_task[key]]
            shown_context = json.loads(origin.context)
            # The shown values, with the version they came from and its column tags, so the
            # relabel task is redacted exactly as the task it replaces.
            context = {
                key: shown_context[key]
                for key in ("features_shown", "features_shown_version", "column_tags")
                if key in shown_context
            }
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "round": round_key,
                    "sample_key": key,
                    "state": PENDING,
                    "answers_needed": origin.answers_needed,
                    "classes": json.dumps(list(made.change.targets)),
                    # Asked before the open rounds' tasks: these samples left the training set.
                    "priority": float(top) + len(keys) - rank,
                    "strategy": RELABEL_STRATEGY,
                    "score": 0.0,
                    "reason": reason,
                    "model_version": origin.model_version,
                    "feature_version": origin.feature_version,
                    "context": json.dumps({"features_shown": {}, **context, "top_classes": []}),
                    "created_at": now,
                    "label_set_version": made.version,
                }
            )
        conn.execute(tasks.insert(), rows)
        conn.execute(
            task_events.insert(),
            [
                _event_row(
                    r["id"],
                    "created",
                    now,
                    None,
                    {
                        "answers_needed": r["answers_needed"],
                        "priority": r["priority"],
                        "relabel_of": source_task[r["sample_key"]],
                        "reason": reason,
                    },
                )
                for r in rows
            ],
        )
        created = conn.execute(
            sa.select(tasks).where(tasks.c.id.in_([r["id"] for r in rows]))
        ).all()
        order = {r["id"]: i for i, r in enumerate(rows)}
        return sorted((_task(r) for r in created), key=lambda t: order[t.id])
