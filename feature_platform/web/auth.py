"""Sign-in, sign-out, the health URL and the landing page."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from feature_platform.web.plumbing import (
    COOKIE,
    LOGIN_COOKIE,
    checked_form,
    client_address,
    nav_context,
    render_page,
    session_actor,
    signed_in,
    state_of,
)
from feature_platform.web.sessions import csrf_ok


def healthz(request: Request) -> Response:
    with state_of(request).store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return JSONResponse({"status": "ok"})


def login_page(request: Request, error: str = "", status: int = 200) -> Response:
    import secrets

    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = render_page(
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
        secure=state_of(request).config.secure_cookies,
    )
    return response


def login(request: Request, form: dict[str, str]) -> Response:
    state = state_of(request)
    if not csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the sign-in page.")
    name, password = form.get("name", "").strip()[:200], form.get("password", "")
    client = client_address(request)
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
    state.audit.record(session_actor(name), "web.login", client)
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
    state = state_of(request)
    session, person = checked_form(request, form, None)
    returned = 0
    for program in state.programs.values():  # every program's leases go back on sign-out
        queue = program.store.queue
        for lease in queue.leases(annotator=person.name):
            returned += queue.release(lease.task_id, person.name, event="signed_out")
    state.sessions.end(session)
    state.audit.record(session_actor(person.name), "web.logout", "", {"leases_returned": returned})
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def home(request: Request) -> Response:
    """The programs this person can work on, with the pages their role opens in each. Nothing
    is leased here: opening a program's label page leases a task, which only someone about to
    label should do."""
    session, person = signed_in(request)
    state = state_of(request)
    programs = [
        {**nav_context(member, session), "program": program, "counts": program.store.queue.counts()}
        for program, member in state.programs_for(person.name)
    ]
    return render_page(request, "home.html", programs=programs, **nav_context(person, session))
