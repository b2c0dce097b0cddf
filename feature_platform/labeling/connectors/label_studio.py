"""Label Studio: a round's batch out as an import file, Label Studio's exports back in.

Shapes follow what a real Label Studio 1.23.2 server reads and writes (the test fixtures in
feature_platform_tests/labeling/fixtures/label_studio): each task's `data` holds what the
annotator sees (an image when the features are a square pixel grid, a text line, the
features) plus our task id and sample key, so they come back untouched in the export;
`predictions` carry the model's best guess with `model_version` and `score` (the model's
probability of that class, which Label Studio shows as its confidence); `meta` carries the
context of the pick (with the selection score). On the way back each annotation becomes one
answer: `result[].value.choices` the label, `completed_by` the annotator (resolved through the
registry's "label-studio" ids), `created_at` the answer time, `lead_time` the seconds spent;
cancelled ones are rejected.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from feature_platform.errors import UnreadableFileError
from feature_platform.governance.privacy import STAMP, ensure_redacted
from feature_platform.labeling.imports import IncomingAnswer, parse_time
from feature_platform.labeling.queue import Task

SYSTEM = "label-studio"


def pixel_image(features: Mapping[str, Any], prefix: str = "p", zoom: int = 8) -> str | None:
    """A PNG data URL of features `p0..p{n-1}` laid out as a square grid (e.g. 8x8 digits),
    dark ink on white; None when the features are not such a grid or a pixel is withheld (a
    redacted marker: no picture may leak it)."""
    count = 0
    while f"{prefix}{count}" in features:
        count += 1
    side = math.isqrt(count)
    if count < 4 or side * side != count:
        return None
    if not all(isinstance(features[f"{prefix}{i}"], int | float) for i in range(count)):
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
    features = ensure_redacted(task).context.get("features_shown", {})
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
                # Label Studio shows this as the model's confidence in its guess: the guess's
                # probability. The selection score (informativeness) is meta["score"].
                "score": float(top[0][1]),
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
    if STAMP in task.context:  # which values were withheld from whom (governance/privacy.py)
        exported["meta"]["redacted"] = task.context[STAMP]["redacted"]
    return exported


def _cell(value: Any) -> Any:
    return round(float(value), 4) if isinstance(value, int | float) else value


def export_tasks(
    tasks: Sequence[Task],
    *,
    from_name: str = "label",
    to_name: str = "image",
    with_image: bool = True,
) -> list[dict[str, Any]]:
    """Label Studio import JSON (a list of tasks) for `tasks`."""
    return [
        task_to_label_studio(t, from_name=from_name, to_name=to_name, with_image=with_image)
        for t in tasks
    ]


def labeling_config(
    exported: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    *,
    from_name: str = "label",
    to_name: str = "image",
) -> str:
    """The Label Studio labeling config (XML) that matches `exported` (from `export_tasks`):
    one single-choice <Choices> named `from_name` over `classes`, pointing at an <Image> named
    `to_name` when the tasks carry an image, else at the <Text> describing the sample; the
    predictions' from_name/to_name then resolve in the project."""
    has_image = any("image" in t.get("data", {}) for t in exported)
    # Without an image the sample's text is what the choice is about, under `to_name`, so
    # the predictions' to_name still resolves.
    text_name = "text" if has_image and to_name != "text" else to_name
    lines = ["<View>"]
    if has_image:
        lines.append(f'  <Image name={quoteattr(to_name)} value="$image"/>')
    lines.append(f'  <Text name={quoteattr(text_name)} value="$text"/>')
    target = to_name
    lines.append(
        f"  <Choices name={quoteattr(from_name)} toName={quoteattr(target)} "
        f'choice="single" showInline="true">'
    )
    lines.extend(f"    <Choice value={quoteattr(str(c))}/>" for c in classes)
    lines += ["  </Choices>", "</View>", ""]
    return "\n".join(lines)


def _refuse(why: str) -> UnreadableFileError:
    return UnreadableFileError(f"{why}; nothing was imported.")


def _elements(text: str) -> Iterator[tuple[int, Any]]:
    """(line, element) for each element of a top-level JSON array. The whole array is checked
    before anything is taken: a truncated or damaged export is refused whole."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if position >= len(text) or text[position] != "[":
        raise _refuse(
            "expected a JSON array of tasks (Label Studio's JSON or JSON-MIN export) or "
            "Label Studio's CSV export"
        )
    elements: list[tuple[int, Any]] = []
    position = _skip(text, position + 1)
    if position < len(text) and text[position] == "]":
        return iter(elements)
    while True:
        line = text.count("\n", 0, position) + 1
        try:
            element, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise _refuse(
                f"malformed JSON at line {exc.lineno} column {exc.colno} ({exc.msg}): a "
                f"truncated or damaged export"
            ) from None
        elements.append((line, element))
        position = _skip(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip(text, position + 1)
            continue
        if position < len(text) and text[position] == "]":
            if _skip(text, position + 1) < len(text):
                end_line = text.count("\n", 0, position) + 1
                raise _refuse(f"unexpected text after the JSON array (line {end_line})")
            return iter(elements)
        line = text.count("\n", 0, position) + 1
        raise _refuse(
            f"malformed JSON at line {line}: expected ',' or ']' between tasks (a truncated "
            f"or damaged export)"
        )


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
            found = value.get("choices") if isinstance(value, dict) else None
            choices.extend(str(c) for c in found or [] if isinstance(found, list))
    return _one(choices)


def _one(choices: list[str]) -> tuple[str | None, str | None]:
    if not choices:
        return None, "annotation result holds no choice"
    if len(set(choices)) > 1:
        return None, f"annotation holds several choices {choices}; one label per task expected"
    return choices[0], None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _seconds(value: object) -> tuple[float | None, str | None]:
    """Label Studio's lead_time: seconds, or null (JSON) / empty (CSV)."""
    if value is None or value == "":
        return None, None
    if isinstance(value, bool):
        return None, f"lead_time {value!r} is not a number of seconds"
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"lead_time {value!r} is not a number of seconds"
    if not math.isfinite(seconds) or seconds < 0:
        return None, f"lead_time {value!r} is not a finite number of seconds >= 0"
    return seconds, None


def _answer(
    line: int,
    raw: str,
    where: str,
    ids: tuple[str | None, str | None, str | None],
    task: Mapping[str, Any],
    *,
    label: str | None,
    problem: str | None,
    user: object,
    created_at: object,
    lead_time: object,
    unique: object,
    cancelled: bool = False,
) -> IncomingAnswer:
    """One answer from any of the export shapes. `ids` = (our task id, round, sample key);
    `task` names Label Studio's task id under "id"."""
    task_id, round_, sample_key = ids
    if not cancelled and not task_id and not (round_ and sample_key):
        problem = problem or (
            "unknown task: no task_id (or round and sample_key) in the task's data or meta; "
            "was it exported by feature-platform?"
        )
    try:
        answered_at = parse_time(created_at)
    except ValueError as exc:
        problem = problem or f"created_at {exc}"
        answered_at = None
    seconds, why = _seconds(lead_time)
    problem = problem or why
    if isinstance(user, dict):
        user = user.get("id", user.get("email"))
    user_id = _text(user)
    annotation_id = _text(unique)
    return IncomingAnswer(
        line=line,
        raw=raw,
        where=where,
        label=label,
        task_id=task_id,
        round=round_,
        sample_key=sample_key,
        external=(SYSTEM, user_id) if user_id is not None else None,
        answered_at=answered_at,
        time_spent_s=seconds,
        submission_id=f"{SYSTEM}:{annotation_id}" if annotation_id is not None else None,
        cancelled=cancelled,
        error=problem,
        provenance=(SYSTEM, _text(task.get("id")), _text(task.get("annotation_id")), user_id),
    )


def _ours(*sources: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(task id, round, sample key) we put in the task's data/meta on export."""

    def first(key: str) -> str | None:
        for source in sources:
            value = _text(source.get(key))
            if value is not None:
                return value
        return None

    return first("task_id"), first("round"), first("sample_key")


def _json_task(line: int, element: Mapping[str, Any]) -> list[IncomingAnswer]:
    """The answers of one task of Label Studio's JSON export (tasks without annotations have
    nothing to import)."""
    ls_id = element.get("id")
    data = element.get("data") if isinstance(element.get("data"), dict) else {}
    meta = element.get("meta") if isinstance(element.get("meta"), dict) else {}
    ids = _ours(data, meta)
    annotations = element.get("annotations") or []
    if not isinstance(annotations, list):
        annotations = [annotations]
    rows = []
    for number, annotation in enumerate(annotations, start=1):
        where = f"Label Studio task {ls_id}, annotation {number}"
        if isinstance(annotation, dict) and annotation.get("id") is not None:
            where += f" (id {annotation['id']})"
        raw = json.dumps(
            {"task": ls_id, "task_id": ids[0], "annotation": annotation},
            sort_keys=True,
            default=str,
        )
        if not isinstance(annotation, dict):
            rows.append(IncomingAnswer(line, raw, where=where, error="not an annotation object"))
            continue
        cancelled = bool(annotation.get("was_cancelled"))
        label, problem = (None, None) if cancelled else _choice(annotation)
        rows.append(
            _answer(
                line,
                raw,
                where,
                ids,
                {"id": ls_id, "annotation_id": annotation.get("id")},
                label=label,
                problem=problem,
                user=annotation.get("completed_by"),
                created_at=annotation.get("created_at"),
                lead_time=annotation.get("lead_time"),
                unique=annotation.get("unique_id") or annotation.get("id"),
                cancelled=cancelled,
            )
        )
    return rows


def _min_label(value: object) -> tuple[str | None, str | None]:
    """JSON-MIN / CSV write one choice as its text and several as {"choices": [...]} (CSV:
    that object as JSON text)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, dict):
        found = value.get("choices")
        return _one([str(c) for c in found] if isinstance(found, list) else [])
    if isinstance(value, list):
        return _one([str(c) for c in value])
    text = _text(value)
    return _one([text] if text is not None else [])


def _min_record(line: int, record: Mapping[str, Any], from_name: str, raw: str) -> IncomingAnswer:
    """One annotation of Label Studio's JSON-MIN or CSV export: the task's data flattened,
    `id` the Label Studio task, the choice under the <Choices> name, then annotator,
    annotation_id, created_at, lead_time."""
    where = f"Label Studio task {record.get('id')}, annotation {record.get('annotation_id')}"
    label, problem = _min_label(record.get(from_name))
    if from_name not in record:
        problem = f"no {from_name!r} field (the <Choices> name; see --from-name)"
    return _answer(
        line,
        raw,
        where,
        _ours(record),
        record,
        label=label,
        problem=problem,
        user=record.get("annotator"),
        created_at=record.get("created_at"),
        lead_time=record.get("lead_time"),
        unique=record.get("annotation_id"),
    )


def _is_min(element: object) -> bool:
    return isinstance(element, dict) and "annotation_id" in element


def _is_full(element: object) -> bool:
    return isinstance(element, dict) and ("annotations" in element or "data" in element)


def read_export(text: str, *, from_name: str = "label") -> list[IncomingAnswer]:
    """One IncomingAnswer per annotation in any of Label Studio's exports that carry answers:
    JSON (tasks with `annotations`), JSON-MIN (one flat object per annotation) or CSV (the
    same columns as JSON-MIN). The shape is recognised from the content. A file that is not
    whole (truncated, malformed) or not one of these shapes is refused whole
    (UnreadableFileError), so nothing of it is imported."""
    stripped = text.lstrip()
    if not stripped.startswith(("[", "{")):
        return _read_csv(text, from_name)
    elements = list(_elements(text))
    if elements and not any(_is_full(e) or _is_min(e) for _, e in elements):
        raise _refuse(
            "not a Label Studio export: its objects have neither `annotations`/`data` (JSON "
            "export) nor `annotation_id` (JSON-MIN export)"
        )
    rows: list[IncomingAnswer] = []
    for line, element in elements:
        if _is_full(element):
            rows.extend(_json_task(line, element))
        elif _is_min(element):
            raw = json.dumps(element, sort_keys=True, default=str)
            rows.append(_min_record(line, element, from_name, raw))
        else:
            shown = json.dumps(element, default=str)[:2000]
            kind = type(element).__name__
            rows.append(
                IncomingAnswer(
                    line,
                    shown,
                    error=f"expected a task or an annotation object, got {kind}",
                )
            )
    return rows


def _read_csv(text: str, from_name: str) -> list[IncomingAnswer]:
    """Label Studio's CSV export: a header of the task's data columns, `id`, the choice
    column, annotator, annotation_id, created_at, updated_at, lead_time. Broken rows (an
    unterminated quote included) are rejected one by one, as in any CSV import."""
    from feature_platform.labeling.connectors.files import csv_records

    records = csv_records(text)
    header: list[str] | None = None
    for _, _, fields, error in records:
        if error is not None or fields is None:
            raise _refuse(f"malformed CSV header: {error}")
        if any(f.strip() for f in fields):
            header = [h.strip() for h in fields]
            break
    if header is None:
        return []
    if "annotation_id" not in header or "id" not in header:
        raise _refuse(
            "not a Label Studio export: neither a JSON array nor a CSV with Label Studio's "
            "`id` and `annotation_id` columns"
        )
    rows: list[IncomingAnswer] = []
    for line, raw, fields, error in records:
        if error is not None or fields is None:
            rows.append(IncomingAnswer(line, raw, error=error))
            continue
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            rows.append(
                IncomingAnswer(line, raw, error=f"expected {len(header)} fields, got {len(fields)}")
            )
            continue
        rows.append(_min_record(line, dict(zip(header, fields, strict=True)), from_name, raw))
    return rows
