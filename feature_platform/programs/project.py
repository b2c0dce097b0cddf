"""A user's project: a folder with `programs/*.yaml` templates and Python feature modules,
loaded the way a Dagster code location is (the folder goes on `sys.path`).

Each program runs on its own stores, under `FP_HOME/programs/<name>/`: its raw sources,
feature sets, queue, labels and snapshots never mix with another program's, so a round of one
never blocks or retrains another. The template registry lives in the platform database.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError
from feature_platform.feature_store import FeatureStore
from feature_platform.names import check_name, path_under
from feature_platform.programs.model import Program
from feature_platform.programs.registry import TemplateRegistry
from feature_platform.programs.template import (
    ProgramTemplate,
    TemplateError,
    TemplateValidationError,
)
from feature_platform.settings import Settings, offline_under
from feature_platform.store.db import create_engine
from feature_platform.store.feature_set import FeatureSetSpec
from feature_platform.store.sources import SourceSpec

PROGRAMS_DIR = "programs"
# Settings that override every program of a deployment (e.g. a smaller batch in a test
# deployment); a program's own settings live in its template.
ENV_OVERRIDES = {
    "FP_STRATEGY": ("strategy", str),
    "FP_BATCH_SIZE": ("batch_size", int),
    "FP_LABEL_BUDGET": ("label_budget", int),
    "FP_ANSWERS_PER_TASK": ("answers_per_task", int),
    "FP_SEED": ("seed", int),
    "FP_PROMOTION_TOLERANCE": ("promotion_tolerance", float),
}


@dataclass(frozen=True)
class ProgramDefinition:
    """One program as a code location runs it: its template (and version, when published),
    the core `Program` (with any overrides), its source and feature set specs."""

    template: ProgramTemplate
    version: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def program(self) -> Program:
        version = f"{self.name}@{self.version}" if self.version else None
        return self.template.program(version, **self.overrides)

    @property
    def source(self) -> SourceSpec:
        return self.template.source()

    @property
    def feature_sets(self) -> list[FeatureSetSpec]:
        return self.template.feature_sets()

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self.template.resolved["aliases"])

    @property
    def model_name(self) -> str:
        return self.template.model_name

    def with_overrides(self, **overrides: Any) -> ProgramDefinition:
        return ProgramDefinition(self.template, self.version, {**self.overrides, **overrides})


def template_files(project_dir: Path) -> list[Path]:
    folder = Path(project_dir) / PROGRAMS_DIR
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_templates(project_dir: Path) -> list[ProgramTemplate]:
    """Every template of the project, parsed (not validated); the folder joins sys.path so
    `features.xxx:SPEC` import paths resolve."""
    project_dir = Path(project_dir).resolve()
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    return [ProgramTemplate.from_file(p, project_dir) for p in template_files(project_dir)]


def validate_project(project_dir: Path, check_data: bool = True) -> dict[str, list[TemplateError]]:
    """Errors per template file (empty lists for valid ones), duplicate program names included."""
    found: dict[str, list[TemplateError]] = {}
    seen: dict[str, str] = {}
    for path in template_files(project_dir):
        try:
            template = ProgramTemplate.from_file(path, Path(project_dir).resolve())
        except TemplateValidationError as exc:
            found[str(path)] = exc.errors
            continue
        load_templates(project_dir)  # sys.path
        errors = template.validate(check_data)
        if template.name in seen:
            errors.append(
                TemplateError(
                    "name",
                    f"duplicate program name {template.name!r} (also in {seen[template.name]})",
                )
            )
        seen.setdefault(template.name, str(path))
        found[str(path)] = errors
    return found


def load_project(
    project_dir: Path, check_data: bool = False, registry: Any | None = None
) -> list[ProgramDefinition]:
    """The project's programs, validated (all errors of all files in one exception). With a
    `TemplateRegistry`, a program that was ever published runs its current version (recorded
    on every model it trains): the one published last, the file's (`programs publish`) or a
    lead's settings change in the web app; edits to the file take effect once published. A
    program never published runs its file as a draft."""
    problems = {p: e for p, e in validate_project(project_dir, check_data).items() if e}
    if problems:
        errors = [
            TemplateError(f"{Path(p).name}:{e.path}", e.message)
            for p, es in problems.items()
            for e in es
        ]
        raise TemplateValidationError(f"project {project_dir}", errors)
    templates = load_templates(project_dir)
    if registry is None:
        return [ProgramDefinition(t) for t in templates]
    return [_published(registry, t) for t in templates]


def _published(registry: Any, template: ProgramTemplate) -> ProgramDefinition:
    current = registry.current(template.name)
    if current is None:  # never published: the file runs as a draft
        return ProgramDefinition(template)
    published = registry.get(template.name, current)
    if published.fingerprint == template.fingerprint():
        return ProgramDefinition(template, current)
    return ProgramDefinition(published.template(), current)


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    return {field: cast(environ[k]) for k, (field, cast) in ENV_OVERRIDES.items() if environ.get(k)}


def location_programs(
    settings: Settings, project_dir: Path, environ: Mapping[str, str] | None = None
) -> list[ProgramDefinition]:
    """The programs a code location runs (and the web app serves): the project's templates
    under their published versions, with the deployment's FP_* overrides."""
    registry = template_registry(settings)
    try:
        programs = load_project(project_dir, registry=registry)
    finally:
        registry.engine.dispose()
    overrides = env_overrides(environ)
    return [p.with_overrides(**overrides) if overrides else p for p in programs]


# -- each program's own stores ---------------------------------------------------------------


def program_settings(base: Settings, name: str) -> Settings:
    """The stores of program `name`: files under `<home>/programs/<name>/`; on an embedded
    SQLite database its own file there; on another database (Postgres) its own schema
    `fp_<name>` in the same database (`program_schema`), where its migrations' version table
    lives too (search_path), brought to head by the stores' `ensure_schema`. MLflow is shared
    (each program registers its own model).
    """
    home = path_under(base.home, PROGRAMS_DIR, name, what="program name")
    url = sa.engine.make_url(base.database_url)
    if url.get_backend_name() == "sqlite":
        database_url = f"sqlite:///{home / 'platform.db'}"
    else:
        database_url = url.update_query_dict(
            {"options": f"-csearch_path={quoted_schema(name)}"}
        ).render_as_string(hide_password=False)
    return Settings(
        home=home,
        database_url=database_url,
        offline_dir=offline_under(base.offline_dir, PROGRAMS_DIR, name, what="program name"),
        mlflow_tracking_uri=base.mlflow_tracking_uri,
        mlflow_artifact_dir=base.mlflow_artifact_dir,
    )


# Postgres truncates identifiers past 63 bytes; a plain one needs no quotes anywhere.
MAX_SCHEMA_BYTES = 63
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")


def program_schema(name: str) -> str:
    """The Postgres schema of program `name`: `fp_<name>` with the name kept as it is (case,
    '-' and '.' included, so two programs never share a schema), a hash suffix past Postgres'
    63-byte limit. Used quoted (`quoted_schema`) wherever it is not a plain identifier."""
    check_name(name, "program name")
    schema = f"fp_{name}"
    if len(schema) > MAX_SCHEMA_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        schema = f"{schema[: MAX_SCHEMA_BYTES - 17]}_{digest}"
    return schema


def quoted_schema(name: str) -> str:
    """The program's schema as SQL and `search_path` spell it (double-quoted unless plain)."""
    schema = program_schema(name)
    return schema if _PLAIN_IDENTIFIER.match(schema) else f'"{schema}"'


def ensure_program_database(base: Settings, name: str) -> None:
    """Create the program's Postgres schema if missing (SQLite files create themselves)."""
    url = sa.engine.make_url(base.database_url)
    if url.get_backend_name() == "sqlite":
        return
    engine = sa.create_engine(base.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema(name)}"))
    finally:
        engine.dispose()


def open_program_store(base: Settings, name: str, actor: Any | None = None) -> FeatureStore:
    """The stores of program `name` (its database created if missing): what the code
    location's `StoreResource.for_program` and the web app both open."""
    ensure_program_database(base, name)
    return FeatureStore(program_settings(base, name), actor=actor)


def find_program(programs: list[ProgramDefinition], name: str) -> ProgramDefinition:
    for definition in programs:
        if definition.name == name:
            return definition
    raise FeaturePlatformError(
        f"No program {name!r} in this code location; programs: {[p.name for p in programs]}."
    )


def ensure_default_aliases(store: FeatureStore, name: str, aliases: dict[str, str]) -> None:
    """Point each of the template's aliases at its version unless a user already moved it."""
    current = store.registry.aliases(name)
    versions = store.registry.versions(name)
    for alias, version in aliases.items():
        if alias not in current and version in versions:
            store.set_alias(name, alias, version)


def apply_privacy(store: FeatureStore, template: ProgramTemplate, actor: Any | None = None) -> None:
    """Record the template's privacy declarations in the program's stores: its source's column
    tags and its policy (feature set tags are recorded when each version is registered). Writes
    (audited) only what changed; what every front end's redaction then reads."""
    from feature_platform.governance.privacy import source_subject

    actor = actor if actor is not None else store.registry.actor
    source = template.source()
    store.privacy.declare(source_subject(source.name), source.columns_tags, actor=actor)
    store.privacy.set_policy(template.privacy_policy(), actor=actor)


def bootstrap_program(store: FeatureStore, definition: ProgramDefinition) -> None:
    """Load the program's declared source and publish its feature set versions in one go (the
    plain-Python path; the Dagster assets run the same steps by day of arrival)."""
    source = definition.source
    apply_privacy(store, definition.template)
    raw = source.read()
    store.sources.write(source.name, raw)
    store.sources.write(source.holdout_name, source.holdout_labels(raw))
    for spec in definition.feature_sets:
        store.materialize(spec, raw)
        ensure_default_aliases(store, spec.name, definition.aliases)


def template_registry(settings: Settings) -> TemplateRegistry:
    """The published templates, in the platform database."""
    return TemplateRegistry(create_engine(settings.database_url))
