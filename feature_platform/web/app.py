"""The web app: its routes, security headers and `create_app`. The pages live in `auth`,
`annotate`, `review`, `dashboard` and `labels`; what every request passes through, in
`plumbing`.

Program pages live under `/p/<program>/` (annotate, review, dashboard, labels, lead), each on
that program's own stores, with its machine API (`/p/<program>/api/feedback`, by API token; see
`api`); `/` lists the programs the person can work on. Every page but `/login`,
`/healthz` and the API needs a live session; every other POST needs the session's
CSRF token, a form body under `max_body` bytes, and the role its action needs (checked here on
the server, whatever the page showed). Answers go through the queue's own submission
(`TaskQueue.submit_in`: the one write path file imports use in batches); every action is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feature_platform.programs.project import ProgramDefinition
from feature_platform.settings import Settings
from feature_platform.web.annotate import (
    annotate,
    answer,
    renew,
    revise,
    sample_png,
    skip,
    undo,
    unsure,
)
from feature_platform.web.api import feedback_api
from feature_platform.web.auth import (
    healthz,
    home,
    login,
    login_page,
    logout,
)
from feature_platform.web.dashboard import (
    change_settings,
    dashboard,
    lead,
    learning_png,
    move_alias,
    publish,
    throughput_png,
)
from feature_platform.web.labels import change_labels, labels
from feature_platform.web.plumbing import (
    HERE,
    SignInRequired,
    State,
    WebConfig,
    get_route,
    post_route,
)
from feature_platform.web.review import (
    adjudicate,
    review,
)
from feature_platform.web.sessions import load_secret

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
    settings: Settings | None = None,
    *,
    secret: str | None = None,
    config: WebConfig | None = None,
    programs: Sequence[ProgramDefinition] | None = None,
    project_dir: Path | None = None,
) -> Starlette:
    """The app over `programs`, or the programs of `project_dir` (default: the shipped
    examples) as the code location runs them (published template versions, FP_* overrides)."""
    # The platform stores (sign-ins); each program opens its own, whatever FP_PROGRAM says.
    settings = settings or Settings.from_env(scoped=False)
    config = config or WebConfig()
    state = State(settings, secret or load_secret(settings.home), config, programs, project_dir)

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
        Route("/healthz", get_route(healthz)),
        Route("/login", get_route(login_page), methods=["GET"]),
        Route("/login", post_route(login), methods=["POST"]),
        Route("/logout", post_route(logout), methods=["POST"]),
        Route("/", get_route(home)),
        # Every program page names its program: /p/<program>/...; a task id is looked up in
        # that program's own queue only, so another program's task is a 404 there.
        Mount(
            "/p/{program}",
            routes=[
                Route("/annotate", get_route(annotate)),
                Route("/annotate/answer", post_route(answer), methods=["POST"]),
                Route("/annotate/skip", post_route(skip), methods=["POST"]),
                Route("/annotate/unsure", post_route(unsure), methods=["POST"]),
                Route("/annotate/undo", post_route(undo), methods=["POST"]),
                Route("/annotate/revise", post_route(revise), methods=["POST"]),
                Route("/annotate/renew", post_route(renew), methods=["POST"]),
                Route("/sample/{task_id}.png", get_route(sample_png)),
                Route("/review", get_route(review)),
                Route("/review/adjudicate", post_route(adjudicate), methods=["POST"]),
                Route("/dashboard", get_route(dashboard)),
                Route("/dashboard/learning.png", get_route(learning_png)),
                Route("/dashboard/throughput.png", get_route(throughput_png)),
                Route("/labels", get_route(labels)),
                Route("/labels/change", post_route(change_labels), methods=["POST"]),
                Route("/lead", get_route(lead)),
                Route("/lead/alias", post_route(move_alias), methods=["POST"]),
                Route("/lead/publish", post_route(publish), methods=["POST"]),
                Route("/lead/settings", post_route(change_settings), methods=["POST"]),
                Route("/api/feedback", feedback_api, methods=["POST"]),
            ],
        ),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={SignInRequired: sign_in_required, HTTPException: http_error},
    )
    app.state.web = state
    return app
