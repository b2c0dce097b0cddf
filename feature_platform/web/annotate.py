"""The annotator's page: one leased task at a time, answered through the queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from feature_platform.errors import InvalidAnswerError, UnknownTaskError
from feature_platform.labeling.queue import (
    ACCEPTED,
    ALREADY_RECORDED,
    ANSWERED,
    RESOLVED,
    Submission,
    Task,
    answers,
    leases,
    tasks,
)
from feature_platform.store.db import as_utc, utcnow, write_transaction
from feature_platform.web import render
from feature_platform.web.plumbing import (
    MAX_REASON,
    SKIP_REASONS,
    State,
    checked_program_form,
    form_field,
    label_keys,
    nav_context,
    program_page,
    render_page,
    session_actor,
    state_of,
    task_or_404,
)
from feature_platform.web.programs import WebProgram


def _progress(program: WebProgram, task_round: str, me: str) -> dict[str, Any]:
    counts = program.store.queue.counts(task_round)
    total = sum(counts.values())
    done = counts[ANSWERED] + counts[RESOLVED]
    # A count, not the answers frame: this runs on every page an annotator opens.
    with program.store.engine.connect() as conn:
        mine = conn.execute(
            sa.select(sa.func.count(sa.distinct(answers.c.task_id)))
            .select_from(answers.join(tasks, tasks.c.id == answers.c.task_id))
            .where(tasks.c.round == task_round, answers.c.annotator == me)
        ).scalar_one()
    return {
        "round": task_round,
        "total": total,
        "done": done,
        "percent": round(100 * done / total) if total else 0,
        "mine": int(mine),
    }


def _my_last_answer(state: State, program: WebProgram, me: str) -> dict[str, Any] | None:
    """My newest answer in this program while it can still be undone (grace period)."""
    with program.store.engine.connect() as conn:
        row = conn.execute(
            sa.select(answers).where(answers.c.annotator == me).order_by(answers.c.id.desc())
        ).first()
    if row is None:
        return None
    left = state.config.undo_seconds - (utcnow() - as_utc(row.answered_at)).total_seconds()
    if left <= 0:
        return None
    return {"task_id": row.task_id, "label": row.label, "seconds_left": int(left)}


def annotate(request: Request) -> Response:
    state = state_of(request)
    session, person, program = program_page(request, "label")
    queue = program.store.queue
    correcting = request.query_params.get("revise")
    held = queue.leases(annotator=person.name)
    leased = []
    if not held and correcting is None:  # changing an answer leases nothing new
        with state.writing():
            leased = queue.lease(person.name, 1, state.config.lease_seconds)
    if not held and leased:
        held = queue.leases(annotator=person.name)
    last = _my_last_answer(state, program, person.name)
    context = nav_context(person, session, program) | {"last": last}
    lease = None
    if correcting is not None:
        if last is None or last["task_id"] != correcting:
            raise HTTPException(409, "The grace period to change that answer is over.")
        task = task_or_404(program, correcting)
    elif not held:
        rounds = queue.rounds()
        return render_page(
            request,
            "annotate_empty.html",
            progress=_progress(program, rounds[-1], person.name) if rounds else None,
            **context,
        )
    else:
        lease = held[0]
        task = queue.get(lease.task_id)
    task = program.store.privacy.redact_task(
        task, session_actor(person.name), purpose="web:annotate"
    )
    return render_page(
        request,
        "annotate.html",
        task=task,
        lease=lease,
        revising=last if correcting is not None else None,
        sample=render.sample_view(task, program),
        guesses=render.top_guesses(task),
        why=render.why_in_words(task),
        progress=_progress(program, task.round, person.name),
        skip_reasons=SKIP_REASONS,
        keys=label_keys(tuple(task.classes)),  # the task's own (a relabel task offers few)
        **context,
    )


_STATUS_FOR = {
    "unknown_task": 404,
    "invalid_label": 422,
    "invalid_time": 422,
    "conflict": 409,
    "task_complete": 409,
    "slot_reserved": 409,
    "nothing_to_revise": 409,
    "grace_expired": 409,
    "not_allowed": 403,
}


def submit_answer(
    state: State, program: WebProgram, task_id: str, annotator: str, label: str
) -> int:
    """Record one answer from the web through the queue's own submission, in one transaction
    with its check that `annotator` still holds a live lease on the task and its audit entry.
    Returns the answer id; raises HTTPException (4xx) recording nothing otherwise."""
    with state.writing(), write_transaction(program.store.engine) as conn:
        now = utcnow()
        found = conn.execute(
            sa.select(tasks.c.id).where(tasks.c.id == task_id).with_for_update()
        ).first()
        if found is None:
            raise HTTPException(404, f"No task {task_id!r}; nothing was recorded.")
        lease = conn.execute(
            sa.select(leases).where(
                leases.c.task_id == task_id,
                leases.c.annotator == annotator,
                leases.c.expires_at > now,
            )
        ).first()
        if lease is None:
            previous = conn.execute(
                sa.select(answers.c.label)
                .where(answers.c.task_id == task_id, answers.c.annotator == annotator)
                .order_by(answers.c.revision.desc())  # the effective (latest) revision
            ).first()
            previous = previous.label if previous is not None else None
            if previous is not None:
                raise HTTPException(
                    409, f"You already answered this task ({previous!r}); nothing changed."
                )
            raise HTTPException(
                409,
                "This task is no longer leased to you (the lease expired and it went back to "
                "the queue or to someone else); your answer was not recorded.",
            )
        outcome = program.store.queue.submit_in(
            conn,
            Submission(
                task_id,
                annotator,
                label,
                answered_at=now,
                time_spent_s=(now - as_utc(lease.leased_at)).total_seconds(),
            ),
            now=now,
        )
        if outcome.status == ALREADY_RECORDED:
            raise HTTPException(409, "This answer is already recorded; nothing changed.")
        if outcome.status != ACCEPTED:
            raise HTTPException(_STATUS_FOR.get(outcome.code, 400), outcome.reason)
        assert outcome.answer is not None
        program.audit.record(
            session_actor(annotator),
            "label.answer",
            f"task:{task_id}",
            {"label": label, "answer_id": outcome.answer.id, "via": "web"},
            conn=conn,
            now=now,
        )
        return outcome.answer.id


def _task_and_label(program: WebProgram, form: dict[str, str]) -> tuple[Task, str]:
    """The program's task the form names (404 if not its own) and a label from its set (422)."""
    task = task_or_404(program, form_field(form, "task_id", 64))
    label = form_field(form, "label")
    if label not in task.classes:
        raise HTTPException(
            422, f"{label!r} is not one of this task's labels {task.classes}; nothing recorded."
        )
    return task, label


def answer(request: Request, form: dict[str, str]) -> Response:
    state = state_of(request)
    person, program = checked_program_form(request, form, "label")
    task, label = _task_and_label(program, form)
    submit_answer(state, program, task.id, person.name, label)
    return RedirectResponse(f"{program.prefix}/annotate", status_code=303)


def _pass(request: Request, form: dict[str, str], outcome: str) -> Response:
    """Skip (with a reason) or unsure: the queue records the pass with the person, releases
    their lease and never offers them the task again."""
    person, program = checked_program_form(request, form, "label")
    task = task_or_404(program, form_field(form, "task_id", 64))
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"The reason is longer than {MAX_REASON} characters.")
    if outcome == "skip" and not reason:
        raise HTTPException(400, "A skip needs a reason.")
    if not any(lease.task_id == task.id for lease in program.store.queue.leases(person.name)):
        raise HTTPException(409, "This task is not leased to you; nothing changed.")
    try:
        if outcome == "skip":
            program.store.queue.skip(task.id, person.name, reason)
        else:
            program.store.queue.unsure(task.id, person.name, reason)
    except InvalidAnswerError as exc:
        raise HTTPException(409, str(exc)) from exc
    program.audit.record(
        session_actor(person.name), f"label.{outcome}", f"task:{task.id}", {"reason": reason}
    )
    return RedirectResponse(f"{program.prefix}/annotate", status_code=303)


def skip(request: Request, form: dict[str, str]) -> Response:
    return _pass(request, form, "skip")


def unsure(request: Request, form: dict[str, str]) -> Response:
    return _pass(request, form, "unsure")


def undo(request: Request, form: dict[str, str]) -> Response:
    """`z`: take back the last answer within the grace period: the task comes back on screen
    and the new answer is recorded as a revision of the old one (kept, never overwritten)."""
    state = state_of(request)
    person, program = checked_program_form(request, form, "label")
    task = task_or_404(program, form_field(form, "task_id", 64))
    last = _my_last_answer(state, program, person.name)
    if last is None or last["task_id"] != task.id:
        raise HTTPException(
            409, "Only your last answer can be undone, within its grace period; nothing changed."
        )
    return RedirectResponse(f"{program.prefix}/annotate?revise={quote(task.id)}", status_code=303)


def revise(request: Request, form: dict[str, str]) -> Response:
    state = state_of(request)
    person, program = checked_program_form(request, form, "label")
    task, label = _task_and_label(program, form)
    try:
        answer = program.store.queue.revise(
            task.id,
            person.name,
            label,
            reason="undone in the web app",
            within=timedelta(seconds=state.config.undo_seconds),
        )
    except UnknownTaskError as exc:
        raise HTTPException(404, str(exc)) from exc
    except InvalidAnswerError as exc:
        raise HTTPException(409, str(exc)) from exc
    program.audit.record(
        session_actor(person.name),
        "label.revise",
        f"task:{task.id}",
        {"label": label, "answer_id": answer.id, "revises": answer.revises, "via": "web"},
    )
    return RedirectResponse(f"{program.prefix}/annotate", status_code=303)


def renew(request: Request, form: dict[str, str]) -> Response:
    state = state_of(request)
    person, program = checked_program_form(request, form, "label")
    task = task_or_404(program, form_field(form, "task_id", 64))
    lease = program.store.queue.renew(task.id, person.name, state.config.lease_seconds)
    if lease is None:
        return JSONResponse({"error": "this task is no longer leased to you"}, status_code=409)
    return JSONResponse({"expires_at": lease.expires_at.isoformat()})


def sample_png(request: Request) -> Response:
    _, person, program = program_page(request, None)
    task = task_or_404(program, request.path_params["task_id"])
    holds = any(lease.task_id == task.id for lease in program.store.queue.leases(person.name))
    holds = holds or bool(program.store.queue.answer_history(task.id, person.name))
    if not (holds or person.may("adjudicate") or person.may("publish")):
        raise HTTPException(403, "Only the person working on a task (or a reviewer) sees it.")
    task = program.store.privacy.redact_task(
        task, session_actor(person.name), purpose="web:sample.png"
    )
    image = render.sample_image(task)
    if image is None:
        raise HTTPException(404, "This task's sample has no picture.")
    return Response(image, media_type="image/png", headers={"Cache-Control": "private"})
