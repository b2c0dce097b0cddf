"""The reviewer's page: disagreeing answers, adjudicated in one key."""

from __future__ import annotations

import pandas as pd
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feature_platform.errors import InvalidAnswerError
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling.aggregation import fit_dawid_skene
from feature_platform.web import render
from feature_platform.web.plumbing import (
    MAX_REASON,
    checked_program_form,
    form_field,
    label_keys,
    nav_context,
    program_page,
    render_page,
    session_actor,
    task_or_404,
)


def review(request: Request) -> Response:
    session, person, program = program_page(request, "adjudicate")
    queue = program.store.queue
    conflicts = program.adjudications.conflicts()
    all_answers = queue.answers()
    fit = fit_dawid_skene(all_answers) if len(all_answers) else None
    # Dawid–Skene estimates people only from samples answered more than once; when there are
    # too few it falls back to majority vote and says why (shown instead of made-up figures).
    ran = fit is not None and fit.method == "dawid_skene"
    accuracy = fit.annotator_accuracy() if ran else pd.Series(dtype=float)
    accuracy_note = "" if ran or fit is None else fit.reason
    page = conflicts.head(20)
    # The whole page in one redaction: one read of tags and policy, one audit transaction.
    shown = program.store.privacy.redact_tasks(
        [queue.get(task_id) for task_id in page["task_id"]],
        session_actor(person.name),
        purpose="web:review",
    )
    items = []
    for task in shown:
        given = all_answers[all_answers["task_id"] == task.id]
        items.append(
            {
                "task": task,
                "answers": [
                    {
                        "annotator": a.annotator,
                        "label": a.label,
                        "accuracy": float(accuracy.get(a.annotator, float("nan"))),
                    }
                    for a in given.itertuples()
                ],
                "guesses": render.top_guesses(task),
                "why": render.why_in_words(task),
                "label_keys": label_keys(program.classes),
                "has_image": render.sample_image(task) is not None,
            }
        )
    return render_page(
        request,
        "review.html",
        items=items,
        remaining=len(conflicts),
        accuracy_note=accuracy_note,
        **nav_context(person, session, program),
    )


def adjudicate(request: Request, form: dict[str, str]) -> Response:
    person, program = checked_program_form(request, form, "adjudicate")
    task = task_or_404(program, form_field(form, "task_id", 64))
    label = form_field(form, "label")
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"The reason is longer than {MAX_REASON} characters.")
    latest = program.adjudications.latest()
    mine = latest[latest["task_id"] == task.id]
    if len(mine) and mine.iloc[-1]["label"] == label:
        raise HTTPException(409, f"Task {task.id} is already decided as {label!r}.")
    try:
        program.adjudications.decide(task.id, label, person.name, reason or "web review")
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except InvalidAnswerError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse(f"{program.prefix}/review", status_code=303)
