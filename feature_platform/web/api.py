"""The web app's machine API: JSON in, JSON out, authenticated by API token.

`POST /p/<program>/api/feedback` takes a downstream system's corrections:

    Authorization: Bearer fpt_...            (feature-platform annotators token NAME)
    {"system": "shop-app", "trust": 0.8, "review": false,
     "events": [{"event_id": "e1", "sample_key": "17", "label": "3", "predicted": "8",
                 "at": "2026-11-27T10:00:00Z", "note": "..."}]}

and answers with the events accepted, already recorded (duplicates) and quarantined (with
reasons): `labeling.feedback.import_feedback`, run as the token's person, whose role in the
program must allow `import` (checked in the core). Browser sessions are not accepted here: a
token is sent on purpose, a cookie by any page, so no CSRF token is needed.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.identity import acting_as
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling.feedback import import_feedback, parse_events
from feature_platform.web.plumbing import state_of
from feature_platform.web.programs import lookup_program

MAX_API_BODY = 2 * 1024 * 1024


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def _body(request: Request) -> bytes | JSONResponse:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_API_BODY):
        return _error(413, f"Request body over {MAX_API_BODY} bytes refused.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_API_BODY:
            return _error(413, f"Request body over {MAX_API_BODY} bytes refused.")
    return bytes(body)


async def feedback_api(request: Request) -> Response:
    body = await _body(request)
    if isinstance(body, Response):
        return body
    return await run_in_threadpool(_feedback, request, body)


def _feedback(request: Request, body: bytes) -> Response:
    state = state_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    name = state.credentials.token_owner(token.strip()) if scheme.lower() == "bearer" else None
    person = state.registry.find(name) if name else None
    if person is None or not person.active:
        return _error(
            401,
            "Send a live API token: 'Authorization: Bearer fpt_...' "
            "(feature-platform annotators token NAME).",
            **{"WWW-Authenticate": "Bearer"},
        )
    wanted = request.path_params.get("program", "")
    program = lookup_program(state.programs, wanted)
    if program is None or program.member(person.name) is None:
        return _error(404, f"No program {wanted!r} for {person.name}.")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/json":
        return _error(415, "Send the events as application/json.")
    try:
        document: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, f"The body is not valid JSON: {exc}")
    if not isinstance(document, dict):
        return _error(400, "The body must be a JSON object with system and events.")
    unknown = sorted(set(document) - {"system", "trust", "review", "events"})
    if unknown:
        return _error(400, f"Unknown field(s) {unknown}; known: system, trust, review, events.")
    events, system = document.get("events"), document.get("system")
    if not isinstance(system, str) or not system:
        return _error(400, "'system' must name the system sending the feedback.")
    if not isinstance(events, list):
        return _error(400, "'events' must be a list of event objects.")
    review = document.get("review", False)
    if not isinstance(review, bool):
        return _error(400, "'review' must be true or false.")
    trust = document.get("trust")
    if trust is not None and (isinstance(trust, bool) or not isinstance(trust, int | float)):
        return _error(400, "'trust' must be a number in (0, 1].")
    try:
        with acting_as(person.name, via="api-token"), state.writing():
            report = import_feedback(
                program.store,
                program.program,
                parse_events(events),
                system=system,
                trust=trust,
                review=review,
                source=f"http:{system}",
            )
    except PermissionDeniedError as exc:
        return _error(403, str(exc))
    except FeaturePlatformError as exc:
        return _error(400, str(exc))
    return JSONResponse(report.as_dict())
