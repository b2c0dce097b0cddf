"""What the pages say about a task: the picture, and why it was picked, in words."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from matplotlib.image import imread

from feature_platform.labeling.queue import Task
from feature_platform.web import render


def _task(strategy: str, reason: str, top: list, shown: dict | None = None) -> Task:
    return Task(
        id="t1",
        round="round-002",
        sample_key="7",
        state="leased",
        answers_needed=1,
        classes=[str(c) for c in range(10)],
        priority=1.0,
        strategy=strategy,
        score=0.5,
        reason=reason,
        model_version="digits-classifier/1",
        feature_version="digits@v1",
        context={"features_shown": shown or {}, "top_classes": top},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_why_this_sample_in_words() -> None:
    top = [["3", 0.41], ["8", 0.38], ["5", 0.1]]
    margin = _task("margin", "margin: ...", top)
    assert render.why_in_words(margin) == ["The model is torn between 3 (41 %) and 8 (38 %)."]
    cluster = _task(
        "cluster_margin",
        "cluster-margin: the model hesitates between 3 (0.41) and 8 (0.38), a margin of 0.03; "
        "the most typical of a group of 212 similar samples among the 200 least certain",
        top,
    )
    assert render.why_in_words(cluster)[1] == "It represents a cluster of 212 unlabeled samples."
    cold = _task("cold_start", "cold start (only 6 labeled samples for 10 classes): drawn", [])
    assert "only 6 labeled samples for 10 classes" in render.why_in_words(cold)[0]
    unsure = _task("least_confidence", "least confidence: ...", top)
    assert render.why_in_words(unsure) == ["The model's best guess, 3, has only 41 %."]
    committee = _task(
        "committee",
        "committee: 5 models trained on resamples of the labels together hesitate between 3 "
        "(0.41) and 8 (0.38), a margin of 0.03 (3 say 3, 2 say 8; disagreement 0.21); rank 1 "
        "of 9 unlabeled samples",
        top,
    )
    assert render.why_in_words(committee) == [
        "The model is torn between 3 (41 %) and 8 (38 %).",
        "A committee of 5 models disagrees about it (3 say 3, 2 say 8).",
    ]


def test_digit_picture_is_a_valid_png_of_the_pixels() -> None:
    pixels = {f"p{i}": (i % 8) / 7 for i in range(64)}
    png = render.sample_image(_task("margin", "", [], pixels))
    image = imread(io.BytesIO(png))
    assert image.shape[:2] == (160, 160)
    # Left column blank (white), right column full ink (black); 20x20 blocks.
    assert np.isclose(image[0, 0], 1.0) and np.isclose(image[0, 159], 0.0)
    assert render.sample_image(_task("margin", "", [], {"p0": 1.0})) is None
