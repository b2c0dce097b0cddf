"""Per-round pictures: a learning curve and a confusion matrix, as PNG files plus a markdown
snippet with the image inlined (Dagster renders `MetadataValue.md` of it in the asset view;
MLflow takes the PNG as an artifact).

Figures are drawn with matplotlib's Agg canvas directly (no pyplot), so rendering never
touches global backend state and is safe in Dagster's worker processes and threads.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from feature_platform.errors import FeaturePlatformError

BASELINE = "random"


@dataclass(frozen=True)
class Picture:
    path: Path
    title: str

    @property
    def markdown(self) -> str:
        """The PNG inlined as a data URI, so the picture travels with the metadata."""
        data = base64.b64encode(self.path.read_bytes()).decode("ascii")
        return f"**{self.title}**\n\n![{self.title}](data:image/png;base64,{data})"


def _save(figure: Figure, path: Path, title: str) -> Picture:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=90)
    return Picture(path, title)


def learning_curve_png(
    path: Path,
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "Learning curve",
    full_pool_accuracy: float | None = None,
    metric: str = "accuracy",
) -> Picture:
    """Accuracy against labels, one line per curve (`{"margin": [(20, 0.61), ...], "random":
    [...]}`); the `random` baseline is drawn dashed grey, and `full_pool_accuracy` (a model
    trained on every sample) as a dotted line with its 95% mark."""
    drawable = {name: list(points) for name, points in curves.items() if len(points)}
    if not drawable:
        raise FeaturePlatformError(f"No points to draw for {title!r}: every curve is empty.")
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    for name, points in drawable.items():
        labels, values = zip(*sorted(points), strict=True)
        style = (
            {"color": "grey", "linestyle": "--", "marker": "."}
            if name == BASELINE
            else {"linewidth": 2, "marker": "o", "markersize": 4}
        )
        axes.plot(labels, values, label=name, **style)
    if full_pool_accuracy is not None:
        axes.axhline(full_pool_accuracy, color="black", linestyle=":", linewidth=1)
        axes.axhline(0.95 * full_pool_accuracy, color="black", linestyle=":", linewidth=0.6)
        axes.text(
            axes.get_xlim()[0],
            full_pool_accuracy,
            f" full pool {full_pool_accuracy:.3f}",
            va="bottom",
            fontsize=8,
        )
        axes.text(axes.get_xlim()[0], 0.95 * full_pool_accuracy, " 95%", va="bottom", fontsize=8)
    axes.set_xlabel("labels")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return _save(figure, path, title)


def confusion_matrix_png(
    path: Path,
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    *,
    title: str = "Confusion matrix",
) -> Picture:
    """Counts of true (rows) against predicted (columns) classes, with the count in each cell."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) != len(y_pred):
        raise FeaturePlatformError(
            f"{len(y_true)} true labels but {len(y_pred)} predictions for {title!r}."
        )
    if not len(y_true):
        raise FeaturePlatformError(f"No samples to draw {title!r} from.")
    labels = [str(c) for c in classes]
    counts = confusion_matrix(
        np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str), labels=labels
    )
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(len(labels)), labels=labels)
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = float(np.trace(counts) / counts.sum())
    axes.set_title(f"{title} (accuracy {accuracy:.3f}, n={int(counts.sum())})")
    threshold = counts.max() / 2 if counts.max() else 1
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                color = "white" if counts[i, j] > threshold else "black"
                axes.text(
                    j, i, str(counts[i, j]), ha="center", va="center", color=color, fontsize=8
                )
    figure.tight_layout()
    return _save(figure, path, title)


def curve_from_history(history: Sequence[object]) -> list[tuple[float, float]]:
    """(labels, accuracy) points from stopping.RoundRecord-like records that have accuracy."""
    return [
        (float(r.labels), float(r.accuracy))
        for r in history
        if getattr(r, "accuracy", None) is not None
    ]


def round_pictures(
    folder: Path,
    round_name: str,
    strategy: str,
    history: Sequence[object],
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    *,
    baseline: Sequence[tuple[float, float]] | None = None,
    full_pool_accuracy: float | None = None,
) -> dict[str, Picture]:
    """A round's two pictures under `folder`: `learning_curve` (the program's rounds so far,
    `history` as stopping.RoundRecord, beside a random `baseline` when one is known) and
    `confusion_matrix` (the round's model on the held-out split)."""
    curves = {strategy: curve_from_history(history)}
    if baseline:
        curves[BASELINE] = list(baseline)
    return {
        "learning_curve": learning_curve_png(
            Path(folder) / f"{round_name}-learning-curve.png",
            curves,
            title=f"{round_name}: accuracy vs labels",
            full_pool_accuracy=full_pool_accuracy,
        ),
        "confusion_matrix": confusion_matrix_png(
            Path(folder) / f"{round_name}-confusion-matrix.png",
            y_true,
            y_pred,
            classes,
            title=f"{round_name} confusion matrix",
        ),
    }
