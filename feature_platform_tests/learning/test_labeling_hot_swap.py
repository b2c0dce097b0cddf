"""Hot-swap for labeling: moving a program's `labeling` alias to a newer feature version changes
what new tasks show, while a task leased before the move keeps the version it was created
with (its context, its feature version and the annotator's page), experiments pinned to
`digits@v1` or reading through the `training` alias are untouched, and another process that
reads through the alias the whole time only ever gets one whole version per response."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform import FeatureStore
from feature_platform.catalog import digits
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.training import build_training_set
from feature_platform.settings import Settings
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform_tests.web.conftest import D, make_web

KEYS = [str(k) for k in range(0, 1700, 50)]  # a spread of samples, some arriving late
LABELING, TRAINING, PINNED = "digits@labeling:*", "digits@training:*", "digits@v1:*"


def _read_through_aliases(settings: Settings, results, stop) -> None:  # noqa: ANN001
    """Another process: online reads through the aliases until told to stop. Every labeling
    response must be exactly one version's values (the columns and values of v1 or of v2,
    nothing mixed, no hole); `training` and `digits@v1` must stay v1."""
    store = FeatureStore(settings)
    whole = {
        version: store.get_online_features([f"digits@{version}:*"], KEYS)
        for version in ("v1", "v2")
    }
    seen: dict[str, int] = {}
    problems: list[str] = []
    announced = False
    while not stop.is_set():
        for features, allowed in ((LABELING, ("v1", "v2")), (TRAINING, ("v1",)), (PINNED, ("v1",))):
            got = store.get_online_features([features], KEYS, consistency="strong")
            served = got.attrs["feature_sets"]
            version = served[0].split("@")[1] if len(served) == 1 else None
            if version not in allowed:
                problems.append(f"{features} served {served}")
                continue
            expected = whole[version]
            if list(got.columns) != list(expected.columns) or not got.equals(expected):
                problems.append(f"{features} torn: not exactly {served[0]}'s values")
            if features == LABELING:
                seen[version] = seen.get(version, 0) + 1
        if not announced and seen.get("v1", 0) >= 20:  # reading steadily before the move
            results.put(("ready", None))
            announced = True
        if seen.get("v2") == 1:
            results.put(("saw", "v2"))
    results.put(("done", {"seen": seen, "problems": problems[:5]}))


def _page(client, path: str = f"{D}/annotate") -> str:  # noqa: ANN001
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def _versions_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>(feature set|features shown)</dt><dd>([^<]*)</dd>", html))


def test_moving_the_labeling_alias_changes_new_tasks_only(tmp_path: Path) -> None:
    web = make_web(tmp_path / "fp", batch=())
    store = web.program("digits").store
    digits.bootstrap(store)  # digits@v1, digits@v2; training, labeling, serving -> v1
    program = digits.program(batch_size=6, seed=3)
    assert program.feature_set == "digits@training"
    assert program.labeling_feature_set == "digits@labeling"

    # Round 1 opens on v1; ann leases one of its tasks through her page.
    pool = rounds.candidate_pool(store, program, model=None)
    first = rounds.open_batch(store, program, "round-001", pool, model_version=None)
    assert {t.context["features_shown_version"] for t in first} == {"digits@v1"}
    ann = web.sign_in("ann")
    page_before = _page(ann)
    (lease,) = store.queue.leases(annotator="ann")
    leased = store.queue.get(lease.task_id)
    assert leased.state == "leased" and len(leased.context["features_shown"]) == 64
    image_before = ann.get(f"{D}/sample/{leased.id}.png")
    # Experiments of the moment: one pinned to digits@v1, one through the training alias.
    entity_df = pd.DataFrame(
        {
            digits.ENTITY: [int(k) for k in KEYS],
            EVENT_TIMESTAMP: pd.Timestamp("2026-03-15", tz="UTC"),
        }
    )
    pinned = store.get_historical_features(entity_df, [PINNED])
    via_training = store.get_historical_features(entity_df, [TRAINING])

    reader_results = multiprocessing.get_context("spawn").Queue()
    stop = multiprocessing.get_context("spawn").Event()
    reader = multiprocessing.get_context("spawn").Process(
        target=_read_through_aliases, args=(store.settings, reader_results, stop)
    )
    reader.start()
    try:
        assert reader_results.get(timeout=120) == ("ready", None)
        store.set_alias("digits", "labeling", "v2")  # the hot swap, while the reader reads
        assert reader_results.get(timeout=60) == ("saw", "v2")

        # New tasks show v2's features (pixels plus the shape descriptors).
        pool = rounds.candidate_pool(store, program, model=None)
        second = rounds.open_batch(store, program, "round-002", pool, model_version=None)
        assert {t.context["features_shown_version"] for t in second} == {"digits@v2"}
        v2_features = set(store.resolve_feature_set("digits@v2").feature_names)
        assert all(set(t.context["features_shown"]) == v2_features for t in second)
        sample = second[0]
        expected = store.get_online_features(["digits@v2:*"], [sample.sample_key])
        assert sample.context["features_shown"]["symmetry_lr"] == expected["symmetry_lr"][0]
        # ...while the round still trains on the training alias' version.
        assert {t.feature_version for t in second} == {"digits@v1"}

        # The leased task keeps what it was created with, and ann's page still shows it;
        # a lookup through the version it records gives exactly the values it shows.
        assert store.queue.get(leased.id) == leased
        recorded = leased.context["features_shown_version"]
        looked_up = store.get_online_features([f"{recorded}:*"], [leased.sample_key])
        assert (
            looked_up.drop(columns=digits.ENTITY).iloc[0].to_dict()
            == (leased.context["features_shown"])
        )
        page_after = _page(ann)
        assert (
            _versions_on_page(page_after)
            == _versions_on_page(page_before)
            == {
                "feature set": "digits@v1",
                "features shown": "digits@v1",
            }
        )
        assert f'name="task_id" value="{leased.id}"' in page_after
        image_after = ann.get(f"{D}/sample/{leased.id}.png")
        assert image_after.status_code == 200 and image_after.content == image_before.content

        # Experiments pinned to digits@v1 or reading through `training` are untouched.
        again_pinned = store.get_historical_features(entity_df, [PINNED])
        again_training = store.get_historical_features(entity_df, [TRAINING])
        pd.testing.assert_frame_equal(again_pinned, pinned)
        pd.testing.assert_frame_equal(again_training, via_training)
        assert again_training.attrs["feature_sets"] == ["digits@v1"]
        assert rounds.round_feature_version(store, program, "round-001") == "digits@v1"
        # ann answers the task she held through the move; the team answers the rest.
        token = web.csrf(ann, f"{D}/annotate")
        truth = digits.ground_truth_oracle()[leased.sample_key]
        answered = ann.post(
            f"{D}/annotate/answer", data={"csrf": token, "task_id": leased.id, "label": truth}
        )
        assert answered.status_code == 303, answered.text
        assert store.queue.answer_history(leased.id, "ann")[0].label == truth
        SimulatedAnnotators(digits.ground_truth_oracle(), digits.CLASSES, count=2, seed=1).answer(
            store.queue, "round-001"
        )
        _, training_set = rounds.freeze_training_set(store, program, "round-001")
        assert training_set.feature_set.id == "digits@v1"
        snapshot = store.labels.latest()
        pinned_set = build_training_set(store, snapshot, "digits@v1")
        np.testing.assert_array_equal(pinned_set.X, training_set.X)
    finally:
        stop.set()
    outcome = None
    while outcome is None:
        kind, value = reader_results.get(timeout=60)
        outcome = value if kind == "done" else None
    reader.join(timeout=60)
    assert reader.exitcode == 0
    assert outcome["problems"] == []
    assert outcome["seen"].get("v1", 0) >= 1 and outcome["seen"].get("v2", 0) >= 1
