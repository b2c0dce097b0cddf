"""Feedback from downstream systems: "a user corrected this prediction" becomes a label.

An event is `{event_id, sample_key, label, predicted?, at?, note?}` (`label`: the corrected
label). `import_feedback` checks every event and, in one transaction, records the valid ones
as `feedback` machine labels of source `feedback:<system>` (never as people's answers: the
user of a downstream app is not a registered annotator), puts every rejected event in the
labels quarantine with its reason (the table `labels import` uses), and logs the import.

- Idempotent: `(source, event_id)` is unique; re-sending an event is a duplicate, recorded
  once. Re-sending an event id with another label is refused (quarantined, naming the label
  stored first): a new correction needs a new event id.
- Rejected: unknown sample keys, held-out samples (their true labels judge the model), labels
  outside the program's label set, missing or NaN labels, unreadable times, an event id given
  twice in one batch with different content.
- Trust: `trust` (in (0, 1]) is stored as each label's confidence; a label snapshot that uses
  `feedback` weighs the system's votes by it, unless its sources name `feedback:<system>`;
  without one, by the program's `feedback_trust`.
- Review: with `review=True`, each event's sample gets a task in the queue round
  `feedback-<system>` for people, its reason "feedback from <system>: user corrected
  <predicted> -> <label>" (one task per sample and system; re-sending creates no second).
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_platform.errors import FeaturePlatformError, InvalidArgumentError
from feature_platform.governance import require
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.labeling.imports import (
    RejectedRow,
    log_import,
    parse_time,
)
from feature_platform.labeling.machine_labels import FEEDBACK, MachineLabel
from feature_platform.labeling.queue import TaskSpec
from feature_platform.names import InvalidNameError, check_name
from feature_platform.store.db import utcnow, write_transaction

if TYPE_CHECKING:
    from feature_platform.feature_store import FeatureStore

FIELDS = ("event_id", "sample_key", "label", "predicted", "at", "note")
MAX_EVENTS = 10_000  # one call; send more in several


@dataclass(frozen=True)
class FeedbackEvent:
    """One event as received (`line`: its line in a file, or position in a request, from 1)."""

    line: int
    raw: str
    event_id: str | None = None
    sample_key: str | None = None
    label: str | None = None
    predicted: str | None = None
    at: datetime | None = None
    note: str = ""
    error: str | None = None


@dataclass(frozen=True)
class FeedbackReport:
    import_id: str
    system: str
    accepted: list[str] = field(default_factory=list)  # event ids newly recorded
    duplicates: list[str] = field(default_factory=list)  # event ids already recorded
    quarantined: list[RejectedRow] = field(default_factory=list)
    review_tasks: int = 0  # tasks created for people

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "system": self.system,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": [
                {"line": r.line, "reason": r.reason, "raw": r.raw} for r in self.quarantined
            ],
            "review_tasks": self.review_tasks,
        }


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return None if text == "" or text.lower() == "nan" else text


def parse_events(items: Iterable[Any]) -> list[FeedbackEvent]:
    """Events from mappings (a JSON body, JSONL or CSV rows), each checked for its shape."""
    events = []
    for line, item in enumerate(items, start=1):
        raw = json.dumps(item, sort_keys=True, default=str)[:2000]
        if not isinstance(item, Mapping):
            events.append(FeedbackEvent(line, raw, error="not an object with event fields"))
            continue
        unknown = sorted(set(map(str, item)) - set(FIELDS))
        values = {name: _text(item.get(name)) for name in FIELDS}
        error = None
        if unknown:
            error = f"unknown field(s) {unknown}; known: {list(FIELDS)}"
        for name in ("event_id", "sample_key"):
            if error is None and values[name] is None:
                error = f"no {name} given"
        if error is None and values["label"] is None:
            error = "no label given (missing, empty or NaN)"
        for name in ("event_id", "sample_key", "label", "predicted"):
            if error is None and values[name] is not None and len(values[name]) > 200:
                error = f"{name} is longer than 200 characters"
        at = None
        if error is None:
            try:
                at = parse_time(item.get("at"))
            except ValueError as exc:
                error = f"at: {exc}"
        events.append(
            FeedbackEvent(
                line,
                raw,
                values["event_id"],
                values["sample_key"],
                values["label"],
                values["predicted"],
                at,
                (values["note"] or "")[:1000],
                error,
            )
        )
    return events


def read_feedback_file(path: Path) -> list[FeedbackEvent]:
    """A .jsonl (one JSON object a line) or .csv file (a header naming FIELDS) of events."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FeaturePlatformError(f"No feedback file {path}.") from None
    except UnicodeDecodeError as exc:
        raise FeaturePlatformError(f"{path} is not UTF-8 text: {exc}") from exc
    if path.suffix.lower() == ".csv":
        return parse_events(csv.DictReader(io.StringIO(text)))
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise FeaturePlatformError(f"{path}: expected a .jsonl or .csv file of feedback events.")
    items: list[Any] = []
    bad: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            items.append(None)
            bad[len(items)] = f"line {number} is not JSON: {exc.msg}"
    events = parse_events(items)
    return [FeedbackEvent(e.line, e.raw, error=bad[e.line]) if e.line in bad else e for e in events]


def check_system(system: str) -> str:
    try:
        return check_name(system, "feedback system")
    except InvalidNameError as exc:
        raise InvalidArgumentError(str(exc)) from exc


def import_feedback(
    store: FeatureStore,
    program: Any,
    events: list[FeedbackEvent],
    *,
    system: str,
    trust: float | None = None,
    review: bool = False,
    source: str = "",
    actor: Actor | str | None = None,
) -> FeedbackReport:
    """Check `events` and record them (see the module docstring). Needs `import`; refused
    before anything is read otherwise."""
    from feature_platform.learning.training import program_samples

    who = as_actor(actor)
    require(who, "import", store.registry.people)
    system = check_system(system)
    if trust is not None and not (isinstance(trust, int | float) and 0 < float(trust) <= 1):
        raise InvalidArgumentError(f"trust must be a number in (0, 1], got {trust!r}.")
    if len(events) > MAX_EVENTS:
        raise InvalidArgumentError(
            f"{len(events)} events in one call; at most {MAX_EVENTS} (send several)."
        )
    label_source = f"{FEEDBACK}:{system}"
    samples = program_samples(store, program)  # every stored sample, reused while unchanged
    classes = set(store.label_sets.classes(program.classes))  # after renames, merges, splits
    import_id = f"fb-{uuid.uuid4().hex[:12]}"
    now = utcnow()
    rejected: list[RejectedRow] = []
    valid: list[FeedbackEvent] = []
    first: dict[str, FeedbackEvent] = {}
    repeated: list[str] = []
    for event in events:
        problem = event.error
        if problem is None and event.sample_key not in samples.arrived:
            problem = f"unknown sample key {event.sample_key!r}: no such sample in the program"
        if problem is None and event.sample_key in samples.held_out:
            problem = (
                f"sample {event.sample_key!r} is held out: its true label judges the model, "
                f"so feedback on it is not used"
            )
        if problem is None and event.label not in classes:
            problem = f"label {event.label!r} is not in the label set {sorted(classes)}"
        if problem is None and event.event_id in first:
            earlier = first[event.event_id]
            if (earlier.sample_key, earlier.label) != (event.sample_key, event.label):
                problem = (
                    f"event {event.event_id!r} is also line {earlier.line} of this batch "
                    f"with other content; one event id is one correction"
                )
            else:
                repeated.append(str(event.event_id))  # the same event twice: recorded once
                continue
        if problem is not None:
            rejected.append(
                RejectedRow(
                    event.line,
                    f"event {event.event_id!r}: {problem}" if event.event_id else problem,
                    event.raw,
                )
            )
            continue
        first[str(event.event_id)] = event
        valid.append(event)

    with write_transaction(store.engine) as conn:
        stored = store.machine_labels.stored_labels(
            label_source, [str(e.event_id) for e in valid], conn
        )
        fresh, duplicates = [], []
        for event in valid:
            before = stored.get(str(event.event_id))
            if before is None:
                fresh.append(event)
            elif before == event.label:
                duplicates.append(str(event.event_id))
            else:
                rejected.append(
                    RejectedRow(
                        event.line,
                        f"event {event.event_id!r} was already recorded with label {before!r}; "
                        f"refusing {event.label!r} for the same event (send a new event id "
                        f"for a new correction)",
                        event.raw,
                    )
                )
        store.machine_labels.record(
            [
                MachineLabel(
                    sample_key=str(e.sample_key),
                    label=str(e.label),
                    source_kind=FEEDBACK,
                    source=label_source,
                    event_id=str(e.event_id),
                    confidence=None if trust is None else float(trust),
                    provenance={
                        "predicted": e.predicted,
                        "at": e.at.isoformat() if e.at else None,
                        "note": e.note,
                        "import_id": import_id,
                        "trust": trust,
                    },
                )
                for e in fresh
            ],
            actor=who,
            now=now,
            conn=conn,
        )
        rejected = log_import(
            conn,
            import_id=import_id,
            at=now,
            actor=str(who),
            source=source or label_source,
            format="feedback",
            accepted=len(fresh),
            already_recorded=len(duplicates),
            rejected=rejected,
        )
    recorded = set(duplicates) | {str(e.event_id) for e in fresh}
    accepted = [e for e in valid if str(e.event_id) in recorded]
    tasks = _review_tasks(store, program, system, accepted) if review else 0
    return FeedbackReport(
        import_id, system, [str(e.event_id) for e in fresh], duplicates + repeated, rejected, tasks
    )


def review_round(system: str) -> str:
    return f"feedback-{system}"


def _review_tasks(
    store: FeatureStore, program: Any, system: str, events: list[FeedbackEvent]
) -> int:
    """A task per event's sample in round `feedback-<system>` (existing ones kept): people
    look again at what a downstream user corrected. Returns how many were created."""
    from feature_platform.learning.training import resolve_feature_set

    if not events:
        return 0
    round_key = review_round(system)
    before = {t.sample_key for t in store.queue.tasks(round_key=round_key)}
    latest = {str(e.sample_key): e for e in events}  # one task per sample: its last event
    keys = [k for k in latest if k not in before]
    if not keys:
        return 0
    shown_fsv = resolve_feature_set(store, program.shown_feature_set)
    shown = store.get_online_features([f"{shown_fsv.id}:*"], keys).set_index(shown_fsv.entity)
    shown.index = shown.index.astype(str)
    specs = []
    for key in keys:
        event = latest[key]
        corrected = f"{event.predicted} -> {event.label}" if event.predicted else event.label
        values = shown.loc[key].to_dict() if key in shown.index else {}
        specs.append(
            TaskSpec(
                sample_key=key,
                strategy="feedback",
                score=1.0,
                reason=f"feedback from {system}: user corrected {corrected}",
                feature_version=shown_fsv.id,
                features_shown={
                    k: float(v) for k, v in values.items() if isinstance(v, int | float)
                },
            )
        )
    created = store.queue.create_batch(
        round_key,
        specs,
        store.label_sets.classes(program.classes),
        answers_needed=program.answers_per_task,
        label_set_version=store.label_sets.current_number(),
    )
    return len({t.sample_key for t in created} - before)
