"""What every route shares: configuration, the stores, and the checks a request passes
(session, role, CSRF, form size), run as the signed-in person."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from feature_platform.errors import UnknownTaskError
from feature_platform.feature_store import FeatureStore
from feature_platform.governance.credentials import Credentials
from feature_platform.governance.identity import Actor, acting_as
from feature_platform.governance.roles import AnnotatorRegistry, Person
from feature_platform.labeling.queue import Task
from feature_platform.programs.project import ProgramDefinition
from feature_platform.settings import Settings
from feature_platform.web import render
from feature_platform.web.programs import WebProgram, load_programs, lookup_program
from feature_platform.web.sessions import LoginLimiter, Session, SessionStore, csrf_ok

HERE = Path(__file__).parent
COOKIE = "fp_session"
LOGIN_COOKIE = "fp_login"
# The same for every program (a digit, a day of weather, a text): nothing modality-specific.
SKIP_REASONS = ("unreadable or corrupt", "none of the labels fits", "offensive or private")
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
    """Everything the routes share: the platform store (people, passwords, sessions, sign-in
    audit), each program on its own stores, templates."""

    def __init__(
        self,
        settings: Settings,
        secret: str,
        config: WebConfig,
        programs: Sequence[ProgramDefinition] | None = None,
        project_dir: Path | None = None,
    ) -> None:
        self.settings, self.config = settings, config
        self.store = FeatureStore(settings)
        self.programs = load_programs(settings, programs, project_dir)
        self.registry = AnnotatorRegistry(self.store.engine)
        self.audit = self.registry.audit
        self.credentials = Credentials(self.store.engine, self.registry)
        self.sessions = SessionStore(
            self.store.engine, secret, idle=config.idle, absolute=config.absolute
        )
        self.limiter = LoginLimiter(config.login_attempts, config.login_window_s)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.templates.filters["pct"] = render.percent
        self._drift: dict[tuple[str, str], str] = {}
        # SQLite takes one writer at a time and makes the others sleep in growing steps (its
        # busy handler); the busiest writes of this process queue on a lock instead.
        sqlite = self.store.engine.dialect.name == "sqlite"  # every program's too
        self._write_lock = threading.Lock() if sqlite else None

    def writing(self) -> contextlib.AbstractContextManager:
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    def programs_for(self, name: str) -> list[tuple[WebProgram, Person]]:
        """The programs `name` can work on, each with their role there."""
        found = [(p, p.member(name)) for p in self.programs.values()]
        return [(p, person) for p, person in found if person is not None]

    def tracker(self, program: WebProgram):  # noqa: ANN201
        from feature_platform.learning.tracking import ModelTracker

        return ModelTracker(
            self.settings.mlflow_tracking_uri, self.settings.mlflow_artifact_dir, program.model_name
        )


# -- request plumbing ----------------------------------------------------------------------


def state_of(request: Request) -> State:
    return request.app.state.web


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def session_of(request: Request) -> Session | None:
    """The request's live session, looked up once per request."""
    if "session" not in request.scope.setdefault("fp", {}):
        cookie = request.cookies.get(COOKIE)
        request.scope["fp"]["session"] = state_of(request).sessions.resolve(cookie)
    return request.scope["fp"]["session"]


def signed_in(request: Request) -> tuple[Session, Person]:
    state = state_of(request)
    session = session_of(request)
    if session is None:
        raise SignInRequired()
    person = state.registry.find(session.name)
    if person is None or not person.active:
        state.sessions.end(session)
        raise SignInRequired()
    return session, person


def program_page(request: Request, permission: str | None) -> tuple[Session, Person, WebProgram]:
    """The program the URL names and the signed-in person as that program knows them (its own
    people registry, which its queue also checks): an unknown or malformed name, a program that
    has not registered the person or whose pool leaves them out, is a 404; a role there
    without `permission`, a 403."""
    session, signed = signed_in(request)
    name = request.path_params.get("program", "")
    program = lookup_program(state_of(request).programs, name)
    person = program.member(signed.name) if program is not None else None
    if program is None or person is None:
        raise HTTPException(404, f"No program {name!r} for {signed.name}.")
    if permission is not None and not person.may(permission):
        raise HTTPException(
            403,
            f"{person.name} ({person.role} in {program.name}) may not {permission}: "
            "this page is not for them.",
        )
    return session, person, program


def require_role(request: Request, permission: str | None) -> tuple[Session, Person]:
    session, person = signed_in(request)
    if permission is not None and not person.may(permission):
        raise HTTPException(
            403, f"{person.name} ({person.role}) may not {permission}: this page is not for them."
        )
    return session, person


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, refusing bodies over `max_body` before reading them (413)."""
    limit = state_of(request).config.max_body
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


def checked_form(request: Request, form: dict[str, str], permission: str | None):  # noqa: ANN202
    session, person = require_role(request, permission)
    if not csrf_ok(session.csrf, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the page and try again.")
    return session, person


def checked_program_form(
    request: Request, form: dict[str, str], permission: str | None
) -> tuple[Person, WebProgram]:
    """A POST on a program's page: role, CSRF, then the program the URL names (404)."""
    checked_form(request, form, None)
    _, person, program = program_page(request, permission)
    return person, program


def form_field(form: dict[str, str], name: str, max_length: int = 200) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise HTTPException(400, f"The form field {name!r} is missing.")
    if len(value) > max_length:
        raise HTTPException(400, f"The form field {name!r} is longer than {max_length}.")
    return value


def render_page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    state = state_of(request)
    html = state.templates.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status)


def session_actor(name: str) -> Actor:
    """The signed-in person `name` as the core's actor: who a page's reads (redaction) and
    writes (audit) are for, acting through their session."""
    return Actor(name, "session")


def as_signed_in(handler: Callable[..., Response], request: Request, *args: Any) -> Response:
    """Run a handler as the person the session names (`governance.acting_as`), so every core
    write checks and audits that person; without a session, as nobody in particular."""
    session = session_of(request)
    if session is None:
        return handler(request, *args)
    with acting_as(session.name, via="session"):
        return handler(request, *args)


def post_route(handler: Callable[[Request, dict[str, str]], Response]):  # noqa: ANN202
    """A POST endpoint: read the form here (async), do the work in a worker thread."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request)
        return await run_in_threadpool(as_signed_in, handler, request, form)

    return endpoint


def get_route(handler: Callable[[Request], Response]):  # noqa: ANN202
    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(as_signed_in, handler, request)

    return endpoint


def nav_context(
    person: Person, session: Session, program: WebProgram | None = None
) -> dict[str, Any]:
    return {
        "me": person,
        "program": program,
        "prefix": program.prefix if program is not None else "",
        "csrf": session.csrf,
        "may_label": person.may("label"),
        "may_review": person.may("adjudicate"),
        "may_lead": person.may("publish"),
    }


def label_keys(classes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(keyboard key, label) for every class: a one-character label is its own key, others
    are numbered 1-9; a tenth class and beyond get a button without a key ('')."""
    if all(len(c) == 1 for c in classes):
        return [(c, c) for c in classes]
    return [(str(i + 1) if i < 9 else "", c) for i, c in enumerate(classes)]


def task_or_404(program: WebProgram, task_id: str) -> Task:
    """A task of this program's own queue: another program's task id is unknown here."""
    try:
        return program.store.queue.get(task_id)
    except UnknownTaskError as exc:
        raise HTTPException(404, f"No task {task_id!r}; nothing was recorded.") from exc


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso")) if len(frame) else []
