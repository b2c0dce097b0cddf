"""Weak labeling rules: functions declared with a program that vote on samples.

A rule is a function `rule(features, params)` taking the samples' feature frame (index: sample
key as text; columns: the feature set version's features) and returning one label per row (a
Series aligned on the index, or a sequence in row order), or None/NaN to abstain. Rules are
declared in the program template like feature transforms (`rules: [{name, function, params,
weight}]`) and fingerprinted like them (`code_fingerprint`: the function's source and the
project code it reaches, plus its params), so a changed rule body is a new source string
`rule:<name>@<fingerprint>` and votes of two versions of a rule never mix.

Votes are stored as `rule` machine labels (event_id = sample key, so re-running the same rule
version is idempotent) and join people's answers in label snapshots as one annotator per rule:
Dawid-Skene estimates each rule's accuracy like a person's (`rule_report`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.identity import Actor
from feature_platform.labeling.aggregation import fit_dawid_skene, majority_vote
from feature_platform.labeling.machine_labels import RULE, MachineLabel, RecordOutcome
from feature_platform.names import check_name
from feature_platform.store.feature_set import code_fingerprint

if TYPE_CHECKING:
    from feature_platform.feature_store import FeatureStore
    from feature_platform.store.feature_set import FeatureSetVersion

RuleFunction = Callable[[pd.DataFrame, Mapping[str, Any]], Any]


class RuleError(FeaturePlatformError):
    """A rule that failed or gave something that is not a label: nothing was recorded."""


@dataclass(frozen=True)
class LabelingRule:
    name: str
    function: RuleFunction
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float | None = None  # its weight in snapshots (None: the program's rules_weight)

    def __post_init__(self) -> None:
        check_name(self.name, "rule name")

    @property
    def fingerprint(self) -> str:
        """The rule's code (as `code_fingerprint` sees it) and params."""
        text = json.dumps(
            {"code": code_fingerprint(self.function), "params": dict(self.params)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def source(self) -> str:
        return f"{RULE}:{self.name}@{self.fingerprint}"


def _as_label(value: Any) -> str | None:
    """A rule's output as a label: None/NaN abstain; 3 and 3.0 are '3'."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def apply_rules(
    rules: Sequence[LabelingRule], features: pd.DataFrame, classes: Sequence[str]
) -> pd.DataFrame:
    """Every rule's votes on `features` (index: sample keys): columns sample_key, rule,
    source, label. A rule that raises, returns the wrong number of rows or a label outside
    `classes` is an error naming the rule (and the first sample concerned)."""
    allowed = {str(c) for c in classes}
    frames = []
    for rule in rules:
        try:
            output = rule.function(features.copy(), dict(rule.params))
        except Exception as exc:  # noqa: BLE001 - the rule's own failure, reported as such
            raise RuleError(f"Rule {rule.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if isinstance(output, pd.Series) and set(output.index) == set(features.index):
            output = output[~output.index.duplicated()].reindex(features.index)
        iterable = isinstance(output, Iterable) and not isinstance(output, str | bytes)
        values = list(output) if iterable else None
        if values is None or len(values) != len(features):
            got = f"{len(values)} values" if values is not None else type(output).__name__
            raise RuleError(
                f"Rule {rule.name!r} returned {got} for {len(features)} samples: return one "
                f"label (or None to abstain) per sample."
            )
        rows = []
        for key, value in zip(features.index, values, strict=True):
            label = _as_label(value)
            if label is None:
                continue
            if label not in allowed:
                raise RuleError(
                    f"Rule {rule.name!r} labeled sample {key!r} {label!r}, which is not in the "
                    f"label set {sorted(allowed)}."
                )
            rows.append((str(key), rule.name, rule.source, label))
        frames.append(pd.DataFrame(rows, columns=["sample_key", "rule", "source", "label"]))
    if not frames:
        return pd.DataFrame(columns=["sample_key", "rule", "source", "label"])
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class RuleRun:
    """What running a program's rules did: samples evaluated, votes per rule, and how many
    were new or already stored (same rule version, same sample)."""

    samples: int
    votes: dict[str, int]  # rule source -> votes (abstentions left out)
    outcome: RecordOutcome


def rule_samples(store: FeatureStore, program: Any, as_of: datetime) -> list[str]:
    """The samples rules vote on: every sample arrived by `as_of` outside the held-out split
    (held-out samples judge the model; a rule's label on them would leak into training)."""
    from feature_platform.learning.training import program_samples

    return program_samples(store, program, as_of).pool


def rule_features(
    store: FeatureStore, fsv: FeatureSetVersion, keys: Sequence[str], as_of: datetime
) -> pd.DataFrame:
    """The feature frame a rule reads: index sample key (text), one column per feature."""
    from feature_platform.store.feature_set import EVENT_TIMESTAMP

    entity_df = pd.DataFrame({fsv.entity: list(keys), EVENT_TIMESTAMP: pd.Timestamp(as_of)})
    frame = store.get_historical_features(entity_df, [f"{fsv.id}:*"])
    frame.index = pd.Index(frame[fsv.entity].astype(str), name="sample_key")
    return frame[fsv.feature_names]


def run_rules(
    store: FeatureStore,
    program: Any,
    *,
    as_of: datetime | None = None,
    round: str | None = None,
    actor: Actor | str | None = None,
) -> RuleRun:
    """Run the program's rules over its samples (`rule_samples`) and record their votes as
    `rule` machine labels, all or nothing (a bad rule records no vote of any rule)."""
    from feature_platform.learning.training import resolve_feature_set
    from feature_platform.store.db import utcnow

    rules = tuple(program.rules)
    as_of = as_of or utcnow()
    if not rules:
        return RuleRun(0, {}, RecordOutcome(0, 0))
    fsv = resolve_feature_set(store, program.feature_set)
    keys = rule_samples(store, program, as_of)
    features = rule_features(store, fsv, keys, as_of)
    votes = apply_rules(rules, features, program.classes)
    labels = [
        MachineLabel(
            sample_key=row.sample_key,
            label=row.label,
            source_kind=RULE,
            source=row.source,
            # One event per (sample, label): a re-run that votes the same is a duplicate, one
            # that votes otherwise (features changed since) is a new, later vote, not a conflict.
            event_id=vote_event_id(row.sample_key, row.label),
            round=round,
            provenance={"rule": row.rule, "feature_set_version": fsv.id},
        )
        for row in votes.itertuples(index=False)
    ]
    outcome = store.machine_labels.record(labels, actor=actor)
    counts = votes["source"].value_counts()
    return RuleRun(len(keys), {r.source: int(counts.get(r.source, 0)) for r in rules}, outcome)


REPORT_COLUMNS = [
    "rule",
    "source",
    "weight",
    "votes",
    "coverage",
    "estimated_accuracy",
    "overlap_with_people",
    "agrees_with_people",
]


def rule_report(store: FeatureStore, program: Any, as_of: datetime | None = None) -> pd.DataFrame:
    """Per declared rule (its current version): weight, votes, coverage (votes / samples
    rules run on), Dawid-Skene's estimated accuracy (fitted on people's answers and every
    machine source the program's snapshots use; NaN when Dawid-Skene had nothing to estimate
    from), and against people: on how many samples people answered, and the share where the
    rule gave the people's majority label."""
    from feature_platform.store.db import utcnow

    sources = program.label_sources()
    rules = tuple(program.rules)
    samples = len(rule_samples(store, program, as_of or utcnow())) if rules else 0
    stored = store.machine_labels.labels([RULE])
    votes = store.labels.votes(sources)
    fit = fit_dawid_skene(votes) if len(votes) else None
    accuracy = fit.annotator_accuracy() if fit is not None else pd.Series(dtype=float)
    people = store.labels.votes({"human": 1.0})
    majority = majority_vote(people).set_index("sample_key")["label"] if len(people) else None
    rows = []
    for rule in rules:
        mine = stored[stored["source"] == rule.source].drop_duplicates("sample_key", keep="last")
        overlap = agree = 0
        if majority is not None and len(mine):
            shared = mine[mine["sample_key"].isin(majority.index)]
            overlap = len(shared)
            agree = int((shared["label"].to_numpy() == majority[shared["sample_key"]]).sum())
        rows.append(
            {
                "rule": rule.name,
                "source": rule.source,
                "weight": sources.get(rule.source, float("nan")),
                "votes": len(mine),
                "coverage": len(mine) / samples if samples else float("nan"),
                "estimated_accuracy": float(accuracy.get(rule.source, float("nan"))),
                "overlap_with_people": overlap,
                "agrees_with_people": agree / overlap if overlap else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def vote_event_id(sample_key: str, label: str) -> str:
    """A rule vote's event id: the sample and the label voted (hashed, within 200 characters)."""
    return hashlib.sha256(f"{sample_key}\0{label}".encode()).hexdigest()[:40]
