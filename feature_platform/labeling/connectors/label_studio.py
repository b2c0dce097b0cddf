"""Label Studio: a round's batch out as an import file, Label Studio's JSON export back in.

Shapes follow what a real Label Studio 1.23.2 server reads and writes (see
/work/shared/reference): each task's `data` holds what the annotator sees (an image when the
features are a square pixel grid, a text line, the features) plus our task id and sample key,
so they come back untouched in the export; `predictions` carry the model's best guess with
`model_version` and `score` (our informativeness score); `meta` carries the context of the
pick. On the way back each annotation becomes one answer: `result[].value.choices` the label,
`completed_by` the annotator (resolved through the registry's "label-studio" ids),
`created_at` the answer time, `lead_time` the seconds spent; cancelled ones are rejected.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from feature_platform.labeling.imports import IncomingAnswer, parse_time
from feature_platform.labeling.queue import Task

SYSTEM = "label-studio"


def pixel_image(features: Mapping[str, Any], prefix: str = "p", zoom: int = 8) -> str | None:
    """A PNG data URL of features `p0..p{n-1}` laid out as a square grid (e.g. 8x8 digits),
    dark ink on white; None when the features are not such a grid."""
    count = 0
    while f"{prefix}{count}" in features:
        count += 1
    side = math.isqrt(count)
    if count < 4 or side * side != count:
        return None
    import matplotlib.image  # deferred: only exports with images pay for it

    grid = np.array([float(features[f"{prefix}{i}"]) for i in range(count)]).reshape(side, side)
    upscaled = np.kron(grid, np.ones((zoom, zoom)))
    buffer = io.BytesIO()
    matplotlib.image.imsave(
        buffer, upscaled, cmap="gray_r", vmin=0.0, vmax=max(1.0, float(grid.max())), format="png"
    )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def task_to_label_studio(
    task: Task, *, from_name: str = "label", to_name: str = "image", with_image: bool = True
) -> dict[str, Any]:
    features = task.context.get("features_shown", {})
    top = task.context.get("top_classes", [])
    data: dict[str, Any] = {
        "task_id": task.id,
        "round": task.round,
        "sample_key": task.sample_key,
        "text": f"sample {task.sample_key} ({task.round}): {task.reason}",
        "features": features,
    }
    image = pixel_image(features) if with_image else None
    if image is not None:
        data["image"] = image
    else:
        # Tabular (or any non-image) samples render as a table: `<Table value="$table"/>`.
        data["table"] = {k: _cell(v) for k, v in features.items()}
    exported: dict[str, Any] = {"data": data}
    if top:
        exported["predictions"] = [
            {
                "model_version": task.model_version or "unknown",
                "score": float(task.score),
                "result": [
                    {
                        "from_name": from_name,
                        "to_name": to_name,
                        "type": "choices",
                        "value": {"choices": [str(top[0][0])]},
                    }
                ],
            }
        ]
    exported["meta"] = {
        "task_id": task.id,
        "round": task.round,
        "sample_key": task.sample_key,
        "classes": task.classes,
        "answers_needed": task.answers_needed,
        "strategy": task.strategy,
        "score": task.score,
        "reason": task.reason,
        "model_version": task.model_version,
        "feature_version": task.feature_version,
        "top_classes": top,
        "created_at": task.created_at.isoformat(),
    }
    return exported


def _cell(value: Any) -> Any:
    return round(float(value), 4) if isinstance(value, int | float) else value


def export_tasks(
    tasks: Sequence[Task], *, from_name: str = "label", to_name: str = "image"
) -> list[dict[str, Any]]:
    """Label Studio import JSON (a list of tasks) for `tasks`."""
    return [task_to_label_studio(t, from_name=from_name, to_name=to_name) for t in tasks]


def _elements(text: str) -> Iterator[tuple[int, Any, str | None]]:
    """(line, element, error) for each element of a top-level JSON array, decoded one by one
    so a break late in the file still lets the earlier elements through."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if position >= len(text) or text[position] != "[":
        yield 1, None, "expected a JSON array of tasks (Label Studio's JSON export)"
        return
    position = _skip(text, position + 1)
    if position < len(text) and text[position] == "]":
        return
    while True:
        line = text.count("\n", 0, position) + 1
        try:
            element, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            yield (
                exc.lineno,
                None,
                f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
                f"the rest of the file was not read",
            )
            return
        yield line, element, None
        position = _skip(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            if _skip(text, position + 1) < len(text):
                end_line = text.count("\n", 0, position) + 1
                yield end_line, None, "unexpected text after the JSON array"
            return
        line = text.count("\n", 0, position) + 1
        yield line, None, f"malformed JSON at line {line}: expected ',' or ']' between tasks"
        return


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _choice(annotation: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(label, error) from an annotation's result."""
    result = annotation.get("result")
    if not isinstance(result, list):
        return None, "annotation has no result list"
    choices: list[str] = []
    for region in result:
        if isinstance(region, dict) and region.get("type") == "choices":
            value = region.get("value") or {}
            choices.extend(str(c) for c in value.get("choices") or [])
    if not choices:
        return None, "annotation result holds no choice"
    if len(set(choices)) > 1:
        return None, f"annotation holds several choices {choices}; one label per task expected"
    return choices[0], None


def read_export(text: str) -> list[IncomingAnswer]:
    """One IncomingAnswer per annotation in a Label Studio JSON export (tasks without
    annotations have nothing to import and are skipped)."""
    rows: list[IncomingAnswer] = []
    for line, element, error in _elements(text):
        if error is not None:
            rows.append(IncomingAnswer(line, "", error=error))
            continue
        if not isinstance(element, dict):
            rows.append(
                IncomingAnswer(
                    line,
                    json.dumps(element)[:2000],
                    error=f"expected a task object, got {type(element).__name__}",
                )
            )
            continue
        ls_id = element.get("id")
        data = element.get("data") if isinstance(element.get("data"), dict) else {}
        meta = element.get("meta") if isinstance(element.get("meta"), dict) else {}
        task_id = data.get("task_id") or meta.get("task_id")
        round_ = data.get("round") or meta.get("round")
        sample_key = data.get("sample_key") or meta.get("sample_key")
        annotations = element.get("annotations") or []
        if not isinstance(annotations, list):
            annotations = [annotations]
        for number, annotation in enumerate(annotations, start=1):
            where = f"Label Studio task {ls_id}, annotation {number}"
            if isinstance(annotation, dict) and annotation.get("id") is not None:
                where += f" (id {annotation['id']})"
            raw = json.dumps(
                {"task": ls_id, "task_id": task_id, "annotation": annotation}, sort_keys=True
            )
            if not isinstance(annotation, dict):
                rows.append(
                    IncomingAnswer(line, raw, where=where, error="not an annotation object")
                )
                continue
            cancelled = bool(annotation.get("was_cancelled"))
            if not cancelled and not task_id and not (round_ and sample_key):
                rows.append(
                    IncomingAnswer(
                        line,
                        raw,
                        where=where,
                        error="unknown task: no task_id (or round and sample_key) in the task's "
                        "data or meta; was it exported by feature-platform?",
                    )
                )
                continue
            completed_by = annotation.get("completed_by")
            if isinstance(completed_by, dict):
                completed_by = completed_by.get("id")
            label, problem = (None, None) if cancelled else _choice(annotation)
            try:
                answered_at = parse_time(annotation.get("created_at"))
            except ValueError:
                problem = problem or f"created_at {annotation.get('created_at')!r} is not a time"
                answered_at = None
            lead_time = annotation.get("lead_time")
            if lead_time is not None and not isinstance(lead_time, int | float):
                problem = problem or f"lead_time {lead_time!r} is not a number of seconds"
                lead_time = None
            unique = annotation.get("unique_id") or annotation.get("id")
            rows.append(
                IncomingAnswer(
                    line=line,
                    raw=raw,
                    where=where,
                    label=label,
                    task_id=str(task_id) if task_id else None,
                    round=str(round_) if round_ else None,
                    sample_key=str(sample_key) if sample_key else None,
                    external=(SYSTEM, str(completed_by)) if completed_by is not None else None,
                    answered_at=answered_at,
                    time_spent_s=float(lead_time) if lead_time is not None else None,
                    submission_id=f"{SYSTEM}:{unique}" if unique is not None else None,
                    cancelled=cancelled,
                    error=problem,
                )
            )
    return rows
