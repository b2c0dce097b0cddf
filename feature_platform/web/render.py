"""What the pages show about a task, computed on the server: the sample as a picture (or text,
or a table), the model's guesses and why the sample was picked, in words; and the dashboard's
charts as PNG bytes."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from feature_platform.governance.privacy import ensure_redacted
from feature_platform.labeling.queue import Task
from feature_platform.web.programs import IMAGE_8X8, TEXT, WebProgram


def png_gray(pixels: np.ndarray, scale: int = 20) -> bytes:
    """A grayscale PNG of `pixels` (2-D, values in [0, 1], 1 = ink drawn dark), each pixel a
    `scale` x `scale` block. A few lines of zlib instead of a plotting library per request."""
    values = np.clip(np.asarray(pixels, dtype=float), 0.0, 1.0)
    image = (255 - np.round(values * 255)).astype(np.uint8)
    image = np.kron(image, np.ones((scale, scale), dtype=np.uint8))
    height, width = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def sample_image(task: Task) -> bytes | None:
    """The 8x8 digit of a task from the pixel features it was shown with (p0..p63); None
    when a pixel is missing or withheld (a redacted marker), so no picture leaks it."""
    shown = ensure_redacted(task).context.get("features_shown", {})
    try:
        pixels = np.array([float(shown[f"p{i}"]) for i in range(64)]).reshape(8, 8)
    except (KeyError, TypeError, ValueError):
        return None
    top = pixels.max()
    return png_gray(pixels / top if top > 1 else pixels)


@dataclass(frozen=True)
class SampleView:
    modality: str  # IMAGE_8X8, TEXT or TABLE (what the template draws)
    text: str
    table: list[tuple[str, str]]


def sample_view(task: Task, program: WebProgram, table_rows: int = 12) -> SampleView:
    shown = ensure_redacted(task).context.get("features_shown", {})
    rows = [(str(k), f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in shown.items()]
    # A redacted pixel makes no picture: the table then shows the markers instead.
    if program.modality == IMAGE_8X8 and sample_image(task) is not None:
        return SampleView(IMAGE_8X8, "", [r for r in rows if not re.fullmatch(r"p\d+", r[0])])
    if program.modality == TEXT and isinstance(task.context.get("text"), str):
        return SampleView(TEXT, task.context["text"], [])
    return SampleView("table", "", rows[:table_rows])


def top_guesses(task: Task, n: int = 3) -> list[tuple[str, float]]:
    return [(str(c), float(p)) for c, p in task.context.get("top_classes", [])[:n]]


def percent(p: float) -> str:
    return f"{round(100 * p)} %"


_COLD = re.compile(r"cold start \(([^)]*)\)")
_CLUSTER = re.compile(r"(?:group of|typical of) (\d+) similar")
_COMMITTEE = re.compile(r"committee: (\d+) models .*?\((\d+ says? [^;]*);")


def why_in_words(task: Task) -> list[str]:
    """Why this sample is asked, in sentences, from what the task stores (its strategy, its
    model's top classes and the selection's reason)."""
    sentences = []
    top = top_guesses(task, 2)
    if task.strategy == "cold_start":
        cold = _COLD.search(task.reason)
        why = cold.group(1) if cold else "no model yet"
        sentences.append(f"Cold start ({why}): this sample helps the first model get going.")
    elif not top:
        pass
    elif task.strategy in ("margin", "cluster_margin", "entropy", "committee") and len(top) == 2:
        (c1, p1), (c2, p2) = top
        sentences.append(
            f"The model is torn between {c1} ({percent(p1)}) and {c2} ({percent(p2)})."
        )
    elif task.strategy == "least_confidence":
        c1, p1 = top[0]
        sentences.append(f"The model's best guess, {c1}, has only {percent(p1)}.")
    if match := _CLUSTER.search(task.reason):
        sentences.append(f"It represents a cluster of {match.group(1)} unlabeled samples.")
    if match := _COMMITTEE.search(task.reason):
        sentences.append(
            f"A committee of {match.group(1)} models disagrees about it ({match.group(2)})."
        )
    if task.strategy == "kcenter":
        sentences.append("It lies far from everything labeled so far: an unexplored region.")
    if task.strategy == "random":
        sentences.append("It was drawn at random (the control the other strategies beat).")
    if not sentences:
        sentences.append(task.reason)
    return sentences


# -- charts --------------------------------------------------------------------------------


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def learning_curve(
    curves: Mapping[str, Sequence[tuple[float, float]]], title: str = "Accuracy vs labels"
) -> bytes:
    """Accuracy against labels, the program's strategy beside the random reference (dashed)."""
    figure = Figure(figsize=(6.0, 3.4))
    axes = figure.add_subplot()
    drawn = False
    for name, points in curves.items():
        if not points:
            continue
        labels, values = zip(*sorted(points), strict=True)
        style = {"color": "grey", "linestyle": "--"} if name == "random" else {"linewidth": 2}
        axes.plot(labels, values, marker="o", markersize=3, label=name, **style)
        drawn = True
    if not drawn:
        axes.text(0.5, 0.5, "no trained round yet", ha="center", va="center")
    else:
        axes.legend(loc="lower right")
    axes.set_xlabel("labels")
    axes.set_ylabel("held-out accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return _png(figure)


def bar_chart(values: Mapping[str, float], title: str, ylabel: str) -> bytes:
    figure = Figure(figsize=(6.0, 2.8))
    axes = figure.add_subplot()
    names = list(values)
    if names:
        axes.bar(names, [values[n] for n in names], color="#3b6ea5")
        axes.tick_params(axis="x", labelrotation=30)
    else:
        axes.text(0.5, 0.5, "nothing yet", ha="center", va="center")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3, axis="y")
    return _png(figure)
