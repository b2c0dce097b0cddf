"""Learning-curve and confusion-matrix pictures: valid PNGs, inlined markdown, clear errors."""

from __future__ import annotations

import base64

import matplotlib.image
import pytest

from feature_platform.errors import FeaturePlatformError
from feature_platform.learning.plots import (
    confusion_matrix_png,
    curve_from_history,
    learning_curve_png,
    round_pictures,
)
from feature_platform.learning.stopping import RoundRecord

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_learning_curve_is_a_png_and_its_markdown_inlines_it(tmp_path) -> None:
    history = [RoundRecord("round-001", 20, 0.55), RoundRecord("round-002", 40, 0.81)]
    picture = learning_curve_png(
        tmp_path / "plots" / "curve.png",
        {"cluster_margin": curve_from_history(history), "random": [(20, 0.55), (40, 0.7)]},
        title="round-002 learning curve",
        full_pool_accuracy=0.97,
    )
    data = picture.path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    height, width, _ = matplotlib.image.imread(picture.path).shape
    assert width > height > 200
    head, encoded = picture.markdown.split("data:image/png;base64,")
    assert head.startswith("**round-002 learning curve**")
    assert base64.b64decode(encoded.rstrip(")")) == data


def test_confusion_matrix_png(tmp_path) -> None:
    picture = confusion_matrix_png(
        tmp_path / "cm.png", ["a", "a", "b", "c"], ["a", "b", "b", "c"], ["a", "b", "c"]
    )
    assert picture.path.read_bytes().startswith(PNG_MAGIC)
    assert matplotlib.image.imread(picture.path).shape[0] > 200


def test_pictures_refuse_what_cannot_be_drawn(tmp_path) -> None:
    with pytest.raises(FeaturePlatformError, match="every curve is empty"):
        learning_curve_png(tmp_path / "c.png", {"margin": []})
    with pytest.raises(FeaturePlatformError, match="3 true labels but 2 predictions"):
        confusion_matrix_png(tmp_path / "m.png", ["a", "b", "a"], ["a", "b"], ["a", "b"])
    assert curve_from_history([RoundRecord("round-001", 10, None)]) == []


def test_round_pictures_names_both_files_after_the_round(tmp_path) -> None:
    history = [RoundRecord("round-001", 10, 0.5), RoundRecord("round-002", 20, 0.7)]
    pictures = round_pictures(
        tmp_path,
        "round-002",
        "margin",
        history,
        ["a", "b"],
        ["a", "a"],
        ["a", "b"],
        baseline=[(10, 0.5), (20, 0.6)],
    )
    assert pictures["learning_curve"].path == tmp_path / "round-002-learning-curve.png"
    assert pictures["confusion_matrix"].path == tmp_path / "round-002-confusion-matrix.png"
    assert all(p.path.read_bytes().startswith(PNG_MAGIC) for p in pictures.values())
    assert pictures["confusion_matrix"].markdown.startswith("**round-002 confusion matrix**")
