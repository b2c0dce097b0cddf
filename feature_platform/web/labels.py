"""The program's label set page: its versions and the classes in force for everyone the
program registered, and, for people who may `manage_programs`, forms that change it through
the core's one write path (`LabelSets.evolve`), which checks that permission itself."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling.label_sets import ADD, MERGE, RENAME, SPLIT, LabelChange
from feature_platform.web.plumbing import (
    MAX_REASON,
    checked_program_form,
    nav_context,
    program_page,
    render_page,
    session_actor,
    session_of,
    state_of,
)
from feature_platform.web.programs import WebProgram


def _labels_page(
    request: Request,
    program: WebProgram,
    status: int = 200,
    message: str = "",
    error: str = "",
) -> Response:
    session, person, _ = program_page(request, None)
    versions = program.store.label_sets.versions()
    return render_page(
        request,
        "labels.html",
        status=status,
        versions=list(reversed(versions)),  # newest first
        template_classes=[str(c) for c in program.program.classes],
        classes=program.classes,
        may_change=person.may("manage_programs"),
        message=message,
        error=error,
        **nav_context(person, session, program),
    )


def labels(request: Request) -> Response:
    """The page; `?notice=` carries what the last change did (sealed for this session)."""
    session, _, program = program_page(request, None)
    notice = state_of(request).sessions.open_notice(session, request.query_params.get("notice"))
    return _labels_page(request, program, message=notice)


def _names(text: str) -> list[str]:
    """A comma-separated list of class names, each stripped (a class name never starts or
    ends with a space); empty and repeated names are kept for the core to refuse."""
    return [part.strip() for part in text.split(",")]


def _change(form: dict[str, str]) -> LabelChange:
    """The change the form asks for; the names are checked by the core, not here."""
    kind = form.get("kind", "")

    def one(name: str) -> str:
        return form.get(name, "").strip()

    if kind == ADD:
        return LabelChange.add(one("name"))
    if kind == RENAME:
        return LabelChange.rename(one("old"), one("new"))
    if kind == MERGE:
        return LabelChange.merge(_names(form.get("sources", "")), one("into"))
    if kind == SPLIT:
        return LabelChange.split(one("source"), _names(form.get("into", "")))
    return LabelChange(kind[:40])  # the core names the known kinds


def change_labels(request: Request, form: dict[str, str]) -> Response:
    """Apply one label set change as the signed-in person: the core refuses it (403) unless
    they may `manage_programs` in this program, and refuses an invalid change (422, its
    sentence on the page) without changing anything. A change made redirects to the page
    (303) with what it did, so reloading that page does not submit the change again."""
    state = state_of(request)
    person, program = checked_program_form(request, form, None)
    note = form.get("note", "").strip()[:MAX_REASON]
    try:
        with state.writing():
            evolution = program.store.label_sets.evolve(
                program.name,
                _change(form),
                initial_classes=program.program.classes,
                actor=session_actor(person.name),
                note=note,
            )
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except FeaturePlatformError as exc:
        return _labels_page(request, program, 422, error=f"{exc} Nothing was changed.")
    made = evolution.version
    message = (
        f"Label set version {made.version}: {made.describe()}. "
        f"{len(evolution.remapped_tasks)} task(s) now offer the new classes."
    )
    if evolution.relabel_tasks:
        message += (
            f" {len(evolution.relabel_tasks)} sample(s) re-queued for relabeling in round "
            f"{evolution.relabel_tasks[0].round}."
        )
    elif made.change is not None and made.change.kind == SPLIT:
        message += " No sample was labeled in the split class: nothing to relabel."
    sealed = state.sessions.seal_notice(session_of(request), message)
    return RedirectResponse(f"{program.prefix}/labels?notice={sealed}", status_code=303)
