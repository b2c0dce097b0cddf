"""Machine labels (model, rule, feedback) are stored apart from people's answers."""

from __future__ import annotations

import pytest

from feature_platform import FeatureStore
from feature_platform.errors import InvalidAnswerError
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling.machine_labels import FEEDBACK, MODEL, RULE, MachineLabel
from feature_platform_tests.conftest import register_people


def _label(sample: str, label: str = "3", kind: str = MODEL, event: str | None = None):
    source = {
        MODEL: "model:digits-classifier/2",
        RULE: "rule:dark@abc123",
        FEEDBACK: "feedback:app",
    }
    return MachineLabel(
        sample_key=sample,
        label=label,
        source_kind=kind,
        source=source[kind],
        event_id=event or sample,
        confidence=0.99,
        provenance={"why": "test"},
    )


def test_machine_labels_are_kept_apart_from_answers_and_idempotent(store: FeatureStore) -> None:
    outcome = store.machine_labels.record([_label("s1"), _label("s2", kind=RULE)])
    assert (outcome.recorded, outcome.duplicates) == (2, 0)
    again = store.machine_labels.record([_label("s1")])
    assert (again.recorded, again.duplicates) == (0, 1)

    stored = store.machine_labels.labels()
    assert list(stored["sample_key"]) == ["s1", "s2"]
    assert list(stored["source_kind"]) == [MODEL, RULE]
    assert stored["provenance"][0] == {"why": "test"}
    assert store.queue.answers().empty  # no person answered anything
    assert list(store.machine_labels.labels([RULE])["sample_key"]) == ["s2"]


def test_the_same_event_with_another_label_is_refused_and_nothing_is_written(
    store: FeatureStore,
) -> None:
    store.machine_labels.record([_label("s1", "3", FEEDBACK, "ev-1")])
    with pytest.raises(InvalidAnswerError, match="ev-1"):
        store.machine_labels.record(
            [_label("s2", "4", FEEDBACK, "ev-2"), _label("s1", "5", FEEDBACK, "ev-1")]
        )
    assert list(store.machine_labels.labels()["event_id"]) == ["ev-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source_kind": "human"}, "not a machine source"),
        ({"source": "rule:x"}, "source must read 'model:"),
        ({"label": ""}, "label must be non-empty"),
        ({"confidence": float("nan")}, "confidence must lie in"),
    ],
)
def test_malformed_machine_labels_are_refused(store: FeatureStore, change, message) -> None:
    good = _label("s1").__dict__ | change
    with pytest.raises(InvalidAnswerError, match=message):
        store.machine_labels.record([MachineLabel(**good)])
    assert store.machine_labels.labels().empty


def test_withdrawal_keeps_the_row_and_needs_a_reviewer(store: FeatureStore) -> None:
    store.machine_labels.record([_label("s1"), _label("s2")])
    first = int(store.machine_labels.labels()["label_id"][0])
    register_people(store.engine, "annotator", "ann")
    with pytest.raises(PermissionDeniedError):
        store.machine_labels.withdraw([first], "wrong", actor="ann")
    with pytest.raises(PermissionDeniedError):
        store.machine_labels.record([_label("s3")], actor="ann")
    assert store.machine_labels.withdraw([first], "reviewer said 8") == 1
    assert store.machine_labels.withdraw([first], "again") == 0
    assert list(store.machine_labels.labels()["sample_key"]) == ["s2"]
    every = store.machine_labels.labels(include_withdrawn=True)
    assert list(every["withdrawn"]) == [True, False]
