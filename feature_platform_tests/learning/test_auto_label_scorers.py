"""The label-spreading scorer for auto-labels: its labels are calibrated on the held-out split
like the champion's, it keeps the cap and high-stakes classes, its name and parameters are in
every label's provenance and in the round's record, and a template naming an unknown scorer
is refused with the key that is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from feature_platform import FeatureStore
from feature_platform.catalog import digits
from feature_platform.commands.init import scaffold
from feature_platform.errors import FeaturePlatformError
from feature_platform.labeling.machine_labels import MODEL
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import auto_labels
from feature_platform.learning.auto_label_scorers import (
    LABEL_SPREADING,
    SCORER_PARAMS,
    label_spreading_proba,
)
from feature_platform.learning.auto_labels import AutoLabelRounds, calibrate_threshold
from feature_platform.learning.loop import MemoryTracker
from feature_platform.learning.rounds import (
    candidate_pool,
)
from feature_platform.learning.training import feature_matrix, holdout_split
from feature_platform.programs.model import AutoLabelSettings
from feature_platform.programs.template import ProgramTemplate
from feature_platform_tests.conftest import run_simulated_round

SPREADING = AutoLabelSettings(
    enabled=True,
    target_precision=0.95,
    confidence=0.9,
    max_share=0.1,
    high_stakes=("0",),
    review_fraction=0.0,
    scorer=LABEL_SPREADING,
    scorer_params={"n_neighbors": 10},
)


def test_label_spreading_labels_clusters_from_a_few_labels_and_never_reads_theirs() -> None:
    rng = np.random.default_rng(0)
    centres = {"a": (0.0, 0.0), "b": (10.0, 10.0)}
    blobs = {c: rng.normal(centre, 0.5, size=(40, 2)) for c, centre in centres.items()}
    labeled = np.vstack([blobs["a"][:2], blobs["b"][:2]])
    pool = np.vstack([blobs["a"][2:30], blobs["b"][2:30]])
    held_out = np.vstack([blobs["a"][30:], blobs["b"][30:]])

    pool_proba, held_proba = label_spreading_proba(
        labeled, ["a", "a", "b", "b"], [pool, held_out], ["a", "b", "c"]
    )

    assert pool_proba.shape == (56, 3) and held_proba.shape == (20, 3)
    assert (pool_proba.argmax(axis=1) == np.repeat([0, 1], 28)).all()
    assert (held_proba.argmax(axis=1) == np.repeat([0, 1], 10)).all()
    assert (pool_proba[:, 2] == 0).all()  # no labeled sample of "c": never proposed
    # A labeled set of one class proposes nothing.
    none, _ = label_spreading_proba(labeled[:2], ["a", "a"], [pool, held_out], ["a", "b"])
    assert (none == 0).all()


def test_spreading_scorer_is_calibrated_on_the_held_out_split_and_recorded(
    digits_store: FeatureStore,
) -> None:
    store, tracker = digits_store, MemoryTracker("digits-in-memory")
    program = digits.program(
        feature_set="digits@v1", batch_size=120, label_budget=400, auto_labels=SPREADING
    )
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    pool_before = candidate_pool(store, program, None)["sample_key"].tolist()

    _, training_set, outcome = run_simulated_round(store, program, tracker, 1, annotators)

    record = outcome.auto_labels
    assert record is not None and record.status == auto_labels.ON, record.reason
    params = {**SCORER_PARAMS[LABEL_SPREADING], "n_neighbors": 10}
    assert (record.scorer, record.scorer_params) == (LABEL_SPREADING, params)
    assert AutoLabelRounds(store.engine).get("round-001") == record  # stored and read back
    # The threshold is the one the held-out split calibrates for the spreading's own
    # distributions over the same graph (people's labels, the pool, the held-out split).
    fsv = training_set.feature_set
    as_of = store.labels.get(training_set.label_snapshot_id).created_at
    _, held_X, held_y = holdout_split(store, program, fsv, as_of)  # noqa: N806
    pool_keys = [k for k in pool_before if k not in store.queue.sample_keys()]
    pool_X = feature_matrix(store, fsv, pool_keys, record.created_at)  # noqa: N806
    pool_proba, held_proba = label_spreading_proba(
        training_set.X, training_set.y, [pool_X, held_X], program.classes, params
    )
    classes = np.asarray(program.classes)
    expected = calibrate_threshold(
        held_proba.max(axis=1),
        classes[held_proba.argmax(axis=1)],
        held_y,
        target=0.95,
        level=0.9,
        high_stakes=["0"],
    )
    assert record.holdout_evaluated == expected.evaluated > 0
    assert record.calibrated_threshold == pytest.approx(expected.threshold)
    assert record.holdout_precision_bound == pytest.approx(expected.precision_bound)
    assert record.holdout_precision_bound >= 0.95
    # The cap, the high-stakes class and the threshold hold; the labels are the spreading's.
    made = store.machine_labels.labels([MODEL]).set_index("sample_key")
    assert 0 < len(made) == record.labeled <= record.cap == int(0.1 * len(pool_keys))
    assert "0" not in set(made["label"])
    assert (made["confidence"] >= record.threshold).all()
    spread = dict(zip(pool_keys, classes[pool_proba.argmax(axis=1)], strict=True))
    assert all(made.loc[k, "label"] == spread[k] for k in made.index)
    provenance = made["provenance"].iloc[0]
    assert provenance["scorer"] == LABEL_SPREADING
    assert provenance["scorer_params"] == params
    assert provenance["label_snapshot_id"] == training_set.label_snapshot_id
    assert provenance["seed_labels"] == 120  # people's labels only
    assert set(made["source"]) == {f"model:{LABEL_SPREADING}:digits-in-memory/1"}
    assert program.params()["auto_labels_scorer"] == LABEL_SPREADING


def test_spreading_scorer_stays_off_when_the_held_out_split_cannot_bound_the_target(
    digits_store: FeatureStore,
) -> None:
    store, tracker = digits_store, MemoryTracker("digits-in-memory")
    settings = AutoLabelSettings(
        enabled=True, target_precision=0.999, confidence=0.95, scorer=LABEL_SPREADING
    )
    program = digits.program(
        feature_set="digits@v1", batch_size=40, label_budget=400, auto_labels=settings
    )
    annotators = SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=1)
    *_, outcome = run_simulated_round(store, program, tracker, 1, annotators)
    record = outcome.auto_labels
    # 0.999 at 95 % needs 2995 right held-out predictions; the split has about 360.
    assert record.status == auto_labels.OFF and record.labeled == 0
    assert record.scorer == LABEL_SPREADING and "no threshold" in record.reason
    assert store.machine_labels.labels([MODEL]).empty


def test_an_unknown_scorer_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(FeaturePlatformError, match=r"scorer: unknown scorer 'label_spread'\."):
        digits.program(auto_labels={"enabled": True, "scorer": "label_spread"})
    with pytest.raises(FeaturePlatformError, match=r"scorer_params.k: not a parameter"):
        digits.program(
            auto_labels={"enabled": True, "scorer": LABEL_SPREADING, "scorer_params": {"k": 3}}
        )
    project = scaffold(tmp_path / "proj", "wine")[0].parent
    path = project / "programs" / "wine.yaml"
    document = yaml.safe_load(path.read_text())
    document["auto_labels"] = {
        "enabled": True,
        "scorer": "label_spread",
        "scorer_params": {"n_neighbors": 0},
    }
    path.write_text(yaml.safe_dump(document))
    errors = {e.path: e.message for e in ProgramTemplate.from_file(path).validate(False)}
    assert errors["auto_labels.scorer"] == (
        "unknown scorer 'label_spread'. Did you mean 'label_spreading'? "
        "Known: champion, label_spreading."
    )
    document["auto_labels"]["scorer"] = LABEL_SPREADING
    path.write_text(yaml.safe_dump(document))
    errors = {e.path: e.message for e in ProgramTemplate.from_file(path).validate(False)}
    assert errors["auto_labels.scorer_params.n_neighbors"] == "expected an integer >= 1, got 0"
    # The default stays the champion.
    assert AutoLabelSettings().scorer == "champion"
