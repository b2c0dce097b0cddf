"""The dashboard (everyone signed in) and the lead's page (settings, aliases, publishing)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any
from urllib.parse import quote

import pandas as pd
import yaml
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.roles import PermissionDeniedError
from feature_platform.labeling import metrics
from feature_platform.labeling.agreement import annotator_agreement
from feature_platform.learning.strategies import STRATEGIES
from feature_platform.programs.registry import PublishedTemplate, TemplateRegistry
from feature_platform.programs.template import ProgramTemplate, TemplateValidationError
from feature_platform.store.db import utcnow
from feature_platform.web import render
from feature_platform.web.plumbing import (
    MAX_REASON,
    State,
    checked_program_form,
    form_field,
    nav_context,
    program_page,
    records,
    render_page,
    session_actor,
    state_of,
)
from feature_platform.web.programs import WebProgram

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
    if (program.name, champion.label) in state._drift:
        return state._drift[(program.name, champion.label)]
    try:
        tags = tracker.run(champion.run_id).data.tags
        report = rounds.champion_drift(
            program.store,
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
    state._drift[(program.name, champion.label)] = status
    return status


def dashboard(request: Request) -> Response:
    state = state_of(request)
    session, person, program = program_page(request, None)
    queue = program.store.queue
    round_names = queue.rounds()
    selected = request.query_params.get("round") or (round_names[-1] if round_names else None)
    if selected is not None and selected not in round_names:
        raise HTTPException(404, f"No round {selected!r}; rounds: {round_names}.")
    models = _model_rounds(state, program)
    per_round = metrics.round_metrics(queue) if round_names else pd.DataFrame()
    row = (
        records(per_round[per_round["round"] == selected])[0]
        if selected is not None and len(per_round)
        else None
    )
    registered = {r: m["registered_at"].to_pydatetime() for r, m in models.items()}
    lead = (
        metrics.lead_time_by_round(
            metrics.lead_times(queue, program.store.labels, registered, "round")
        )
        if registered and round_names
        else pd.DataFrame()
    )
    lead_row = records(lead[lead["round"] == selected]) if len(lead) else []
    health = metrics.queue_status(queue, selected)
    round_answers = queue.answers(selected) if selected else pd.DataFrame()
    agreement = annotator_agreement(round_answers) if len(round_answers) else pd.DataFrame()
    oldest = health.oldest_lease
    return render_page(
        request,
        "dashboard.html",
        rounds=round_names,
        selected=selected,
        model=models.get(selected or ""),
        trained_rounds=sorted(models),
        labeling=row,
        lead=lead_row[0] if lead_row else None,
        health=health,
        oldest_age_s=(utcnow() - oldest.leased_at).total_seconds() if oldest else None,
        agreement=records(agreement),
        drift=_drift_status(state, program),
        dagster_url=state.config.dagster_url.rstrip("/"),
        mlflow_url=state.config.mlflow_url.rstrip("/"),
        quote=quote,
        **nav_context(person, session, program),
    )


def learning_png(request: Request) -> Response:
    state = state_of(request)
    _, _, program = program_page(request, None)
    models = _model_rounds(state, program)
    curve = [(m["labels"], m["accuracy"]) for m in models.values() if m["accuracy"] is not None]
    reference = state.tracker(program).reference_curve("random") if models else []
    image = render.learning_curve({program.program.strategy: curve, "random": reference})
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


def throughput_png(request: Request) -> Response:
    _, _, program = program_page(request, None)
    round_name = request.query_params.get("round")
    frame = program.store.queue.answers(round_name)
    counts = frame["annotator"].value_counts().sort_index().to_dict() if len(frame) else {}
    image = render.bar_chart(
        {str(k): float(v) for k, v in counts.items()},
        f"Answers per annotator{f' in {round_name}' if round_name else ''}",
        "answers",
    )
    return Response(image, media_type="image/png", headers={"Cache-Control": "no-store"})


# -- lead ----------------------------------------------------------------------------------


# The settings a lead may change on the page: form field -> (template path, type, label).
SETTINGS_FIELDS: dict[str, tuple[tuple[str, ...], type, str]] = {
    "strategy": (("strategy", "name"), str, "Query strategy"),
    "batch_size": (("batch_size",), int, "Batch size (tasks per round)"),
    "overlap": (("overlap",), int, "Answers per task (overlap)"),
    "label_budget": (("label_budget",), int, "Label budget"),
    "promotion_tolerance": (("promotion", "tolerance"), float, "Promotion tolerance"),
    "target_accuracy": (("stopping", "target_accuracy"), float, "Target accuracy (blank: none)"),
}
# A template error's path -> the form field it is shown next to (`stopping` is checked as a
# whole by StoppingRules; only its target accuracy is editable here).
ERROR_FIELDS = {".".join(path): name for name, (path, _, _) in SETTINGS_FIELDS.items()}
ERROR_FIELDS["stopping"] = "target_accuracy"


def _template_registry(state: State) -> TemplateRegistry:
    """The published templates, in the platform database (as `programs publish` writes)."""
    return TemplateRegistry(state.store.engine)


def _newest(state: State, program: WebProgram) -> PublishedTemplate | None:
    """The program's current published version (the one it runs after a reload)."""
    registry = _template_registry(state)
    current = registry.current(program.name)
    return registry.get(program.name, current) if current is not None else None


def _current_values(template: ProgramTemplate) -> dict[str, str]:
    values = {}
    for name, (path, _, _) in SETTINGS_FIELDS.items():
        value: Any = template.resolved
        for key in path:
            value = (value or {}).get(key)
        values[name] = "" if value is None else str(value)
    return values


def _lead_page(
    request: Request,
    program: WebProgram,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    message: str = "",
) -> Response:
    state = state_of(request)
    session, person, _ = program_page(request, "publish")
    registry = program.store.registry
    feature_sets = [
        {
            "name": name,
            "versions": registry.list_versions(name),
            "aliases": registry.aliases(name),
        }
        for name in registry.names()
    ]
    recent = program.audit.entries(limit=25).iloc[::-1]
    newest = _newest(state, program)
    base = newest.template() if newest is not None else program.definition.template
    return render_page(
        request,
        "lead.html",
        status=status,
        settings_yaml=yaml.safe_dump(program.settings, sort_keys=False),
        feature_sets=feature_sets,
        audit=records(recent.assign(detail=recent["detail"].map(json.dumps))),
        newest=newest,
        fields=SETTINGS_FIELDS,
        strategies=STRATEGIES,
        values=values or _current_values(base),
        errors=errors or {},
        message=message,
        **nav_context(person, session, program),
    )


def lead(request: Request) -> Response:
    _, _, program = program_page(request, "publish")
    return _lead_page(request, program)


def _parse_settings(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The form's values typed (blank target accuracy: no target), or each field's error."""
    parsed: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, (_, kind, _) in SETTINGS_FIELDS.items():
        raw = form.get(name, "").strip()
        if not raw and name == "target_accuracy":
            parsed[name] = None
            continue
        if not raw:
            errors[name] = ["required"]
            continue
        try:
            parsed[name] = kind(raw)
            if kind is float and not math.isfinite(parsed[name]):
                raise ValueError(raw)  # 'nan' and 'inf' parse as floats but are no setting
        except ValueError:
            noun = {int: "a whole number", float: "a number"}.get(kind, "text")
            errors[name] = [f"expected {noun}, got {raw[:40]!r}"]
    return parsed, errors


def change_settings(request: Request, form: dict[str, str]) -> Response:
    """Publish a new template version of this program with the lead's settings: validated
    like `programs validate` (every error next to its field, nothing published on any),
    published as the signed-in person (`manage_programs` on the platform), audited."""
    state = state_of(request)
    person, program = checked_program_form(request, form, "manage_programs")
    values = {name: form.get(name, "").strip()[:MAX_REASON] for name in SETTINGS_FIELDS}
    parsed, errors = _parse_settings(form)
    if errors:
        return _lead_page(request, program, 422, values, errors)
    newest = _newest(state, program)
    base = newest.template() if newest is not None else program.definition.template
    document = copy.deepcopy(dict(base.document))
    changes = []
    for name, (path, _, _) in SETTINGS_FIELDS.items():
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
        old = base.resolved
        for key in path:
            old = (old or {}).get(key)
        if old != parsed[name]:
            changes.append(f"{'.'.join(path)}: {old!r} -> {parsed[name]!r}")
        node[path[-1]] = parsed[name]
    template = ProgramTemplate(document, base.base_dir)
    note = f"settings changed by {person.name} (web): " + ("; ".join(changes) or "none")
    was_current = newest.version if newest is not None else None
    try:
        with state.writing():
            published, new = _template_registry(state).publish(
                template, note=note[:MAX_REASON], actor=session_actor(person.name)
            )
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except TemplateValidationError as exc:
        found: dict[str, list[str]] = {}
        for error in exc.errors:
            path = error.path.partition(":")[2] or error.path  # publish prefixes the name
            found.setdefault(ERROR_FIELDS.get(path, "template"), []).append(
                f"{path}: {error.message}"
            )
        return _lead_page(request, program, 422, values, found)
    if not new and published.version == was_current:
        # The same content is the current version already (a replayed form, nothing changed).
        return _lead_page(
            request,
            program,
            409,
            values,
            message=f"These settings are already the current version {published.id}; nothing "
            "was published.",
        )
    # New content is a new version; an older version's content makes that one current again.
    return RedirectResponse(f"{program.prefix}/lead#settings", status_code=303)


def move_alias(request: Request, form: dict[str, str]) -> Response:
    person, program = checked_program_form(request, form, "publish")
    name, alias, version = (
        form_field(form, "name"),
        form_field(form, "alias"),
        form_field(form, "version"),
    )
    try:
        program.store.set_alias(name, alias, version, actor=session_actor(person.name))
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except FeaturePlatformError as exc:
        raise HTTPException(422, str(exc)) from exc
    # The registry audits the move as this person (via session).
    return RedirectResponse(f"{program.prefix}/lead", status_code=303)


def publish(request: Request, form: dict[str, str]) -> Response:
    person, program = checked_program_form(request, form, "publish")
    name, version = form_field(form, "name"), form_field(form, "version")
    reason = form.get("reason", "").strip()[:MAX_REASON]
    try:
        program.store.publish(
            name,
            version,
            reason or f"published by {person.name} (web)",
            actor=session_actor(person.name),
        )
    except PermissionDeniedError as exc:
        raise HTTPException(403, str(exc)) from exc
    except FeaturePlatformError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse(f"{program.prefix}/lead", status_code=303)
