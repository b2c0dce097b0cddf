"""The web app: routes and the checks every request passes.

Every page but `/login` and `/healthz` needs a live session; every POST needs the session's
CSRF token, a form body under `max_body` bytes, and the role its action needs (checked here on
the server, whatever the page showed). Answers go through the queue's own submission
(`TaskQueue.submit_in`), the same write path as file imports; every action is audited.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pandas as pd
import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feature_platform.errors import FeaturePlatformError, InvalidAnswerError, UnknownTaskError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import Actor, acting_as
from feature_platform.governance.roles import AnnotatorRegistry, PermissionDeniedError, Person
from feature_platform.labeling import metrics
from feature_platform.labeling.adjudication import Adjudications
from feature_platform.labeling.aggregation import fit_dawid_skene
from feature_platform.labeling.agreement import annotator_agreement
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
from feature_platform.settings import Settings
from feature_platform.store.db import as_utc, utcnow, write_transaction
from feature_platform.web import render
from feature_platform.web.programs import WebProgram, lookup_program
from feature_platform.web.sessions import LoginLimiter, Session, SessionStore, csrf_ok, load_secret

HERE = Path(__file__).parent
COOKIE = "fp_session"
LOGIN_COOKIE = "fp_login"
SKIP_REASONS = ("not a digit / not readable", "two samples in one", "offensive or private")
MAX_REASON = 500


@dataclass
class WebConfig:
    lease_seconds: float = 600.0
    undo_seconds: float = 60.0
    max_body: int = 64 * 1024  # forms are tiny: anything bigger is refused with 413
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    login_attempts: int = 5
    login_window_s: float = 300.0
    secure_cookies: bool = False  # set behind HTTPS
    dagster_url: str = field(
        default_factory=lambda: os.environ.get("FP_DAGSTER_URL", "http://127.0.0.1:3000")
    )
    mlflow_url: str = field(
        default_factory=lambda: os.environ.get("FP_MLFLOW_URL", "http://127.0.0.1:5000")
    )


class SignInRequired(Exception):
    pass


class State:
    """Everything the routes share: the stores, sessions, templates."""

    def __init__(self, settings: Settings, secret: str, config: WebConfig) -> None:
        self.settings, self.config = settings, config
        self.store = FeatureStore(settings)
        self.registry = AnnotatorRegistry(self.store.engine)
        self.audit = self.registry.audit
        self.credentials = Credentials(self.store.engine, self.registry)
        self.sessions = SessionStore(
            self.store.engine, secret, idle=config.idle, absolute=config.absolute
        )
        self.limiter = LoginLimiter(config.login_attempts, config.login_window_s)
        self.adjudications = Adjudications(self.store.engine, self.store.queue, self.registry)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.templates.filters["pct"] = render.percent
        self._drift: dict[str, str] = {}
        # SQLite takes one writer at a time and makes the others sleep in growing steps (its
        # busy handler); the busiest writes of this process queue on a lock instead.
        sqlite = self.store.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if sqlite else None

    def writing(self) -> contextlib.AbstractContextManager:
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    def tracker(self, program: WebProgram):  # noqa: ANN201
        from feature_platform.learning.tracking import ModelTracker

        return ModelTracker(
            self.settings.mlflow_tracking_uri, self.settings.mlflow_artifact_dir, program.model_name
        )


# -- request plumbing ----------------------------------------------------------------------


def _state(request: Request) -> State:
    return request.app.state.web


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _session(request: Request) -> Session | None:
    """The request's live session, looked up once per request."""
    if "session" not in request.scope.setdefault("fp", {}):
        cookie = request.cookies.get(COOKIE)
        request.scope["fp"]["session"] = _state(request).sessions.resolve(cookie)
    return request.scope["fp"]["session"]


def _signed_in(request: Request) -> tuple[Session, Person]:
    state = _state(request)
    session = _session(request)
    if session is None:
        raise SignInRequired()
    person = state.registry.find(session.name)
    if person is None or not person.active:
        state.sessions.end(session)
        raise SignInRequired()
    return session, person


def _require(request: Request, permission: str | None) -> tuple[Session, Person]:
    session, person = _signed_in(request)
    if permission is not None and not person.may(permission):
        raise HTTPException(
            403, f"{person.name} ({person.role}) may not {permission}: this page is not for them."
        )
    return session, person


async def _read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, refusing bodies over `max_body` before reading them (413)."""
    limit = _state(request).config.max_body
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"Request body over {limit} bytes refused.")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Forms must be sent as application/x-www-form-urlencoded.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(413, f"Request body over {limit} bytes refused.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(400, "The form is not valid UTF-8 urlencoded data.") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _checked(request: Request, form: dict[str, str], permission: str | None):  # noqa: ANN202
    session, person = _require(request, permission)
    if not csrf_ok(session.csrf, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the page and try again.")
    return session, person


def _field(form: dict[str, str], name: str, max_length: int = 200) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise HTTPException(400, f"The form field {name!r} is missing.")
    if len(value) > max_length:
        raise HTTPException(400, f"The form field {name!r} is longer than {max_length}.")
    return value


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    state = _state(request)
    html = state.templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status)


def _as_signed_in(handler: Callable[..., Response], request: Request, *args: Any) -> Response:
    """Run a handler as the person the session names (`governance.acting_as`), so every core
    write checks and audits that person; without a session, as nobody in particular."""
    session = _session(request)
    if session is None:
        return handler(request, *args)
    with acting_as(session.name, via="session"):
        return handler(request, *args)


def _post(handler: Callable[[Request, dict[str, str]], Response]):  # noqa: ANN202
    """A POST endpoint: read the form here (async), do the work in a worker thread."""

    async def endpoint(request: Request) -> Response:
        form = await _read_form(request)
        return await run_in_threadpool(_as_signed_in, handler, request, form)

    return endpoint


def _get(handler: Callable[[Request], Response]):  # noqa: ANN202
    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(_as_signed_in, handler, request)

    return endpoint


def _nav(person: Person, session: Session) -> dict[str, Any]:
    return {
        "me": person,
        "csrf": session.csrf,
        "may_label": person.may("label"),
        "may_review": person.may("adjudicate"),
        "may_lead": person.may("publish"),
    }


# -- sign-in -------------------------------------------------------------------------------


def healthz(request: Request) -> Response:
    with _state(request).store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return JSONResponse({"status": "ok"})


def login_page(request: Request, error: str = "", status: int = 200) -> Response:
    import secrets

    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = _page(
        request,
        "login.html",
        status,
        login_csrf=token,
        error=error,
        next=request.query_params.get("next", ""),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_state(request).config.secure_cookies,
    )
    return response


def login(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the sign-in page.")
    name, password = form.get("name", "").strip()[:200], form.get("password", "")
    client = _client(request)
    wait = state.limiter.retry_after(client, name)
    if wait > 0:
        state.audit.record(name or "?", "web.login_throttled", client)
        return Response(
            f"Too many failed sign-ins; try again in {int(wait) + 1} s.",
            status_code=429,
            headers={"Retry-After": str(int(wait) + 1)},
        )
    person = state.registry.find(name) if name else None
    if not (state.credentials.verify(name, password) and person is not None and person.active):
        state.limiter.failed(client, name)
        state.audit.record(name or "?", "web.login_failed", client)
        return login_page(request, "Wrong name or password.", 401)
    state.limiter.succeeded(client, name)
    cookie, _ = state.sessions.start(name)
    state.audit.record(Actor(name, "session"), "web.login", client)
    target = form.get("next", "")
    # Only a path on this site: "//host" and "/\\host" would leave it.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        target = "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=state.config.secure_cookies,
        max_age=int(state.config.absolute.total_seconds()),
    )
    return response


def logout(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    session, person = _checked(request, form, None)
    returned = 0
    for lease in state.store.queue.leases(annotator=person.name):
        returned += state.store.queue.release(lease.task_id, person.name, event="signed_out")
    state.sessions.end(session)
    state.audit.record(
        Actor(person.name, "session"), "web.logout", "", {"leases_returned": returned}
    )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def home(request: Request) -> Response:
    _, person = _signed_in(request)
    # Leads land on the dashboard and reviewers on their conflicts: opening /annotate leases
    # a task (reserving its slot), which only someone about to label should do.
    if person.may("publish"):
        return RedirectResponse("/dashboard", status_code=303)
    if person.may("adjudicate"):
        return RedirectResponse("/review", status_code=303)
    if person.may("label"):
        return RedirectResponse("/annotate", status_code=303)
    return RedirectResponse("/dashboard", status_code=303)


# -- annotating ----------------------------------------------------------------------------


def _progress(state: State, task_round: str, me: str) -> dict[str, Any]:
    counts = state.store.queue.counts(task_round)
    total = sum(counts.values())
    done = counts[ANSWERED] + counts[RESOLVED]
    # A count, not the answers frame: this runs on every page an annotator opens.
    with state.store.engine.connect() as conn:
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


def _my_last_answer(state: State, me: str) -> dict[str, Any] | None:
    """My newest answer while it can still be undone (within the grace period)."""
    with state.store.engine.connect() as conn:
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
    state = _state(request)
    session, person = _require(request, "label")
    queue = state.store.queue
    held = queue.leases(annotator=person.name)
    leased = []
    if not held:
        with state.writing():
            leased = queue.lease(person.name, 1, state.config.lease_seconds)
    if not held and leased:
        held = queue.leases(annotator=person.name)
    last = _my_last_answer(state, person.name)
    context = _nav(person, session) | {"last": last}
    correcting = request.query_params.get("revise")
    if correcting is not None:
        if last is None or last["task_id"] != correcting:
            raise HTTPException(409, "The grace period to change that answer is over.")
        task = _task_or_404(state, correcting)
        program = lookup_program(task=task)
        return _page(
            request,
            "annotate.html",
            task=task,
            program=program,
            lease=None,
            revising=last,
            sample=render.sample_view(task, program),
            guesses=render.top_guesses(task),
            why=render.why_in_words(task),
            progress=_progress(state, task.round, person.name),
            skip_reasons=SKIP_REASONS,
            keys=_label_keys(program.classes),
            **context,
        )
    if not held:
        rounds = queue.rounds()
        return _page(
            request,
            "annotate_empty.html",
            progress=_progress(state, rounds[-1], person.name) if rounds else None,
            **context,
        )
    lease = held[0]
    task = queue.get(lease.task_id)
    program = lookup_program(task=task)
    return _page(
        request,
        "annotate.html",
        task=task,
        program=program,
        lease=lease,
        revising=None,
        sample=render.sample_view(task, program),
        guesses=render.top_guesses(task),
        why=render.why_in_words(task),
        progress=_progress(state, task.round, person.name),
        skip_reasons=SKIP_REASONS,
        keys=_label_keys(program.classes),
        **context,
    )


def _label_keys(classes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(keyboard key, label): a one-character label is its own key, others are numbered."""
    if all(len(c) == 1 for c in classes):
        return [(c, c) for c in classes]
    return [(str(i + 1), c) for i, c in enumerate(classes[:9])]


def _task_or_404(state: State, task_id: str) -> Task:
    try:
        return state.store.queue.get(task_id)
    except UnknownTaskError as exc:
        raise HTTPException(404, f"No task {task_id!r}; nothing was recorded.") from exc


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


def submit_answer(state: State, task_id: str, annotator: str, label: str) -> int:
    """Record one answer from the web through the queue's own submission, in one transaction
    with its check that `annotator` still holds a live lease on the task and its audit entry.
    Returns the answer id; raises HTTPException (4xx) recording nothing otherwise."""
    with state.writing(), write_transaction(state.store.engine) as conn:
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
                sa.select(answers.c.label).where(
                    answers.c.task_id == task_id, answers.c.annotator == annotator
                )
            ).scalar()
            if previous is not None:
                raise HTTPException(
                    409, f"You already answered this task ({previous!r}); nothing changed."
                )
            raise HTTPException(
                409,
                "This task is no longer leased to you (the lease expired and it went back to "
                "the queue or to someone else); your answer was not recorded.",
            )
        outcome = state.store.queue.submit_in(
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
        state.audit.record(
            Actor(annotator, "session"),
            "label.answer",
            f"task:{task_id}",
            {"label": label, "answer_id": outcome.answer.id, "via": "web"},
            conn=conn,
            now=now,
        )
        return outcome.answer.id


def answer(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "label")
    task = _task_or_404(state, _field(form, "task_id", 64))
    label = _field(form, "label")
    if label not in task.classes:
        raise HTTPException(
            422, f"{label!r} is not one of this task's labels {task.classes}; nothing recorded."
        )
    submit_answer(state, task.id, person.name, label)
    return RedirectResponse("/annotate", status_code=303)


def _pass(request: Request, form: dict[str, str], outcome: str) -> Response:
    """Skip (with a reason) or unsure: the queue records the pass with the person, releases
    their lease and never offers them the task again."""
    state = _state(request)
    _, person = _checked(request, form, "label")
    task = _task_or_404(state, _field(form, "task_id", 64))
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"The reason is longer than {MAX_REASON} characters.")
    if outcome == "skip" and not reason:
        raise HTTPException(400, "A skip needs a reason.")
    if not any(lease.task_id == task.id for lease in state.store.queue.leases(person.name)):
        raise HTTPException(409, "This task is not leased to you; nothing changed.")
    try:
        if outcome == "skip":
            state.store.queue.skip(task.id, person.name, reason)
        else:
            state.store.queue.unsure(task.id, person.name, reason)
    except InvalidAnswerError as exc:
        raise HTTPException(409, str(exc)) from exc
    state.audit.record(
        Actor(person.name, "session"), f"label.{outcome}", f"task:{task.id}", {"reason": reason}
    )
    return RedirectResponse("/annotate", status_code=303)


def skip(request: Request, form: dict[str, str]) -> Response:
    return _pass(request, form, "skip")


def unsure(request: Request, form: dict[str, str]) -> Response:
    return _pass(request, form, "unsure")


def undo(request: Request, form: dict[str, str]) -> Response:
    """`z`: take back the last answer within the grace period: the task comes back on screen
    and the new answer is recorded as a revision of the old one (kept, never overwritten)."""
    state = _state(request)
    _, person = _checked(request, form, "label")
    task = _task_or_404(state, _field(form, "task_id", 64))
    last = _my_last_answer(state, person.name)
    if last is None or last["task_id"] != task.id:
        raise HTTPException(
            409, "Only your last answer can be undone, within its grace period; nothing changed."
        )
    return RedirectResponse(f"/annotate?revise={quote(task.id)}", status_code=303)


def revise(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "label")
    task = _task_or_404(state, _field(form, "task_id", 64))
    label = _field(form, "label")
    if label not in task.classes:
        raise HTTPException(
            422, f"{label!r} is not one of this task's labels {task.classes}; nothing recorded."
        )
    try:
        answer = state.store.queue.revise(
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
    state.audit.record(
        Actor(person.name, "session"),
        "label.revise",
        f"task:{task.id}",
        {"label": label, "answer_id": answer.id, "revises": answer.revises, "via": "web"},
    )
    return RedirectResponse("/annotate", status_code=303)


def renew(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "label")
    task = _task_or_404(state, _field(form, "task_id", 64))
    lease = state.store.queue.renew(task.id, person.name, state.config.lease_seconds)
    if lease is None:
        return JSONResponse({"error": "this task is no longer leased to you"}, status_code=409)
    return JSONResponse({"expires_at": lease.expires_at.isoformat()})


def sample_png(request: Request) -> Response:
    state = _state(request)
    _, person = _signed_in(request)
    task = _task_or_404(state, request.path_params["task_id"])
    holds = any(lease.task_id == task.id for lease in state.store.queue.leases(person.name))
    holds = holds or bool(state.store.queue.answer_history(task.id, person.name))
    if not (holds or person.may("adjudicate") or person.may("publish")):
        raise HTTPException(403, "Only the person working on a task (or a reviewer) sees it.")
    image = render.sample_image(task)
    if image is None:
        raise HTTPException(404, "This task's sample has no picture.")
    return Response(image, media_type="image/png", headers={"Cache-Control": "private"})


# -- reviewing -----------------------------------------------------------------------------


def review(request: Request) -> Response:
    state = _state(request)
    session, person = _require(request, "adjudicate")
    queue = state.store.queue
    conflicts = state.adjudications.conflicts()
    all_answers = queue.answers()
    accuracy = (
        fit_dawid_skene(all_answers).annotator_accuracy() if len(all_answers) else pd.Series()
    )
    items = []
    for row in conflicts.head(20).itertuples():
        task = queue.get(row.task_id)
        given = all_answers[all_answers["task_id"] == row.task_id]
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
                "label_keys": _label_keys(lookup_program(task=task).classes),
                "has_image": render.sample_image(task) is not None,
            }
        )
    return _page(
        request, "review.html", items=items, remaining=len(conflicts), **_nav(person, session)
    )


def adjudicate(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "adjudicate")
    task = _task_or_404(state, _field(form, "task_id", 64))
    label = _field(form, "label")
    reason = form.get("reason", "").strip()
    if len(reason) > MAX_REASON:
        raise HTTPException(400, f"The reason is longer than {MAX_REASON} characters.")
    latest = state.adjudications.latest()
    mine = latest[latest["task_id"] == task.id]
    if len(mine) and mine.iloc[-1]["label"] == label:
        raise HTTPException(409, f"Task {task.id} is already decided as {label!r}.")
    try:
        state.adjudications.decide(task.id, label, person.name, reason or "web review")
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except InvalidAnswerError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse("/review", status_code=303)


# -- dashboard -----------------------------------------------------------------------------


def _model_rounds(state: State, program: WebProgram) -> dict[str, dict[str, Any]]:
    """Per round with a registered model: its latest version, MLflow run, Dagster run,
    accuracy and label count (from MLflow, where the retrain logged them)."""
    tracker = state.tracker(program)
    found: dict[str, dict[str, Any]] = {}
    try:
        versions = tracker.client.search_model_versions(f"name='{program.model_name}'")
    except Exception:  # noqa: BLE001 - no tracking DB yet: no rounds trained
        return {}
    for version in versions:
        round_name = version.tags.get("round")
        if not round_name:
            continue
        if round_name in found and int(version.version) < int(found[round_name]["version"]):
            continue
        run = tracker.run(version.run_id)
        found[round_name] = {
            "version": str(version.version),
            "run_id": version.run_id,
            "experiment_id": run.info.experiment_id,
            "dagster_run_id": run.data.tags.get("dagster_run_id", ""),
            "accuracy": run.data.metrics.get("accuracy"),
            "labels": int(run.data.metrics.get("labels", 0)),
            "registered_at": pd.Timestamp(version.creation_timestamp, unit="ms", tz="UTC"),
        }
    return found


def _drift_status(state: State, program: WebProgram) -> str:
    from feature_platform.learning import rounds
    from feature_platform.learning.tracking import CHAMPION

    tracker = state.tracker(program)
    try:
        champion = tracker.by_alias(CHAMPION)
    except Exception:  # noqa: BLE001
        champion = None
    if champion is None:
        return "no champion model yet: nothing to compare"
    if champion.label in state._drift:
        return state._drift[champion.label]
    try:
        tags = tracker.run(champion.run_id).data.tags
        report = rounds.champion_drift(
            state.store,
            program.program,
            tags["feature_set_version"],
            tags["label_snapshot_id"],
        )
        drifted = int(report["drifted"].sum())
        status = (
            f"{drifted} of {len(report)} features drifted (max PSI {report['psi'].max():.3f}) "
            f"in the unlabeled pool against {champion.label}'s training set"
        )
    except (FeaturePlatformError, KeyError, ValueError) as exc:
        status = f"not measurable: {exc}"
    state._drift[champion.label] = status
    return status


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso")) if len(frame) else []


def dashboard(request: Request) -> Response:
    state = _state(request)
    session, person = _require(request, None)
    program = lookup_program(request.query_params.get("program"))
    queue = state.store.queue
    round_names = queue.rounds()
    selected = request.query_params.get("round") or (round_names[-1] if round_names else None)
    if selected is not None and selected not in round_names:
        raise HTTPException(404, f"No round {selected!r}; rounds: {round_names}.")
    models = _model_rounds(state, program)
    per_round = metrics.round_metrics(queue) if round_names else pd.DataFrame()
    row = (
        _records(per_round[per_round["round"] == selected])[0]
        if selected is not None and len(per_round)
        else None
    )
    registered = {r: m["registered_at"].to_pydatetime() for r, m in models.items()}
    lead = (
        metrics.lead_time_by_round(
            metrics.lead_times(queue, state.store.labels, registered, "round")
        )
        if registered and round_names
        else pd.DataFrame()
    )
    lead_row = _records(lead[lead["round"] == selected]) if len(lead) else []
    health = metrics.queue_status(queue, selected)
    round_answers = queue.answers(selected) if selected else pd.DataFrame()
    agreement = annotator_agreement(round_answers) if len(round_answers) else pd.DataFrame()
    oldest = health.oldest_lease
    return _page(
        request,
        "dashboard.html",
        program=program,
        rounds=round_names,
        selected=selected,
        model=models.get(selected or ""),
        trained_rounds=sorted(models),
        labeling=row,
        lead=lead_row[0] if lead_row else None,
        health=health,
        oldest_age_s=(utcnow() - oldest.leased_at).total_seconds() if oldest else None,
        agreement=_records(agreement),
        drift=_drift_status(state, program),
        dagster_url=state.config.dagster_url.rstrip("/"),
        mlflow_url=state.config.mlflow_url.rstrip("/"),
        quote=quote,
        **_nav(person, session),
    )


def learning_png(request: Request) -> Response:
    state = _state(request)
    _require(request, None)
    program = lookup_program(request.query_params.get("program"))
    models = _model_rounds(state, program)
    curve = [(m["labels"], m["accuracy"]) for m in models.values() if m["accuracy"] is not None]
    reference = state.tracker(program).reference_curve("random") if models else []
    image = render.learning_curve({program.program.strategy: curve, "random": reference})
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


def throughput_png(request: Request) -> Response:
    state = _state(request)
    _require(request, None)
    round_name = request.query_params.get("round")
    frame = state.store.queue.answers(round_name)
    counts = frame["annotator"].value_counts().sort_index().to_dict() if len(frame) else {}
    image = render.bar_chart(
        {str(k): float(v) for k, v in counts.items()},
        f"Answers per annotator{f' in {round_name}' if round_name else ''}",
        "answers",
    )
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


# -- lead ----------------------------------------------------------------------------------


def lead(request: Request) -> Response:
    state = _state(request)
    session, person = _require(request, "publish")
    registry = state.store.registry
    feature_sets = [
        {
            "name": name,
            "versions": registry.list_versions(name),
            "aliases": registry.aliases(name),
        }
        for name in registry.names()
    ]
    recent = state.audit.entries().tail(25).iloc[::-1]
    return _page(
        request,
        "lead.html",
        program=lookup_program(),
        feature_sets=feature_sets,
        audit=_records(recent.assign(detail=recent["detail"].map(json.dumps))),
        **_nav(person, session),
    )


def move_alias(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "publish")
    name, alias, version = _field(form, "name"), _field(form, "alias"), _field(form, "version")
    try:
        state.store.set_alias(name, alias, version, actor=Actor(person.name, "session"))
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except FeaturePlatformError as exc:
        raise HTTPException(422, str(exc)) from exc
    # The registry audits the move as this person (via session).
    return RedirectResponse("/lead", status_code=303)


def publish(request: Request, form: dict[str, str]) -> Response:
    state = _state(request)
    _, person = _checked(request, form, "publish")
    name, version = _field(form, "name"), _field(form, "version")
    reason = form.get("reason", "").strip()[:MAX_REASON]
    try:
        state.store.publish(
            name,
            version,
            reason or f"published by {person.name} (web)",
            actor=Actor(person.name, "session"),
        )
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except FeaturePlatformError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse("/lead", status_code=303)


# -- the app -------------------------------------------------------------------------------


class SecurityHeaders:
    """Headers on every response: no inline script or style, no framing, no sniffing, and
    pages never cached (they hold CSRF tokens). Plain ASGI: no per-request task group."""

    HEADERS = [
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
    ]

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + self.HEADERS
                if any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None, *, secret: str | None = None, config: WebConfig | None = None
) -> Starlette:
    settings = settings or Settings.from_env()
    config = config or WebConfig()
    state = State(settings, secret or load_secret(settings.home), config)

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        return HTMLResponse("Sign in first.", status_code=401)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        html = state.templates.get_template("error.html").render(
            status=exc.status_code, message=exc.detail
        )
        return HTMLResponse(html, status_code=exc.status_code, headers=exc.headers)

    routes = [
        Route("/healthz", _get(healthz)),
        Route("/login", _get(login_page), methods=["GET"]),
        Route("/login", _post(login), methods=["POST"]),
        Route("/logout", _post(logout), methods=["POST"]),
        Route("/", _get(home)),
        Route("/annotate", _get(annotate)),
        Route("/annotate/answer", _post(answer), methods=["POST"]),
        Route("/annotate/skip", _post(skip), methods=["POST"]),
        Route("/annotate/unsure", _post(unsure), methods=["POST"]),
        Route("/annotate/undo", _post(undo), methods=["POST"]),
        Route("/annotate/revise", _post(revise), methods=["POST"]),
        Route("/annotate/renew", _post(renew), methods=["POST"]),
        Route("/sample/{task_id}.png", _get(sample_png)),
        Route("/review", _get(review)),
        Route("/review/adjudicate", _post(adjudicate), methods=["POST"]),
        Route("/dashboard", _get(dashboard)),
        Route("/dashboard/learning.png", _get(learning_png)),
        Route("/dashboard/throughput.png", _get(throughput_png)),
        Route("/lead", _get(lead)),
        Route("/lead/alias", _post(move_alias), methods=["POST"]),
        Route("/lead/publish", _post(publish), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={SignInRequired: sign_in_required, HTTPException: http_error},
    )
    app.state.web = state
    return app
