"""Published program templates: immutable, fingerprinted versions in the platform database.

Publishing a template validates it first (every error, nothing written on any); the same
content publishes as the version it already has, changed content as the next version
(`v1`, `v2`, ...). A published version is never rewritten. Each program has one *current*
version, the one it runs: the version published last, including content published again
(so publishing an older file or older settings again is how a program goes back to them).
Publishing needs the `manage_programs` permission in this database's people registry; each new
version and each move of the current one is audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.names import check_name
from feature_platform.programs.template import (
    ProgramTemplate,
    TemplateError,
    TemplateValidationError,
)
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow, write_transaction

program_templates = sa.Table(
    "program_templates",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(20), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # resolved template, JSON
    sa.Column("base_dir", sa.Text, nullable=False),  # where relative source paths resolve
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("name", "fingerprint", name="uq_program_template_content"),
)

# The version each program runs: moved by every publish (see the module docstring).
program_template_current = sa.Table(
    "program_template_current",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(20), nullable=False),
    sa.Column("set_by", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


class UnknownTemplateError(FeaturePlatformError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class PublishedTemplate:
    name: str
    version: str
    fingerprint: str
    document: dict[str, Any]
    base_dir: Path
    created_at: datetime
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def template(self) -> ProgramTemplate:
        return ProgramTemplate(self.document, self.base_dir)


def _row(row: sa.Row) -> PublishedTemplate:
    return PublishedTemplate(
        name=row.name,
        version=row.version,
        fingerprint=row.fingerprint,
        document=json.loads(row.document),
        base_dir=Path(row.base_dir),
        created_at=as_utc(row.created_at),
        note=row.note or "",
    )


def _version_number(version: str) -> int:
    return int(version[1:]) if version[1:].isdigit() else 0


class TemplateRegistry:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, program_templates, program_template_current)

    def publish(
        self,
        template: ProgramTemplate,
        note: str = "",
        check_data: bool = True,
        *,
        actor: Actor | str | None = None,
    ) -> tuple[PublishedTemplate, bool]:
        """Validate and publish; returns (the version, whether it is new). Content already
        published returns its existing version unchanged."""
        return self.publish_many([template], note, check_data, actor=actor)[0]

    def publish_many(
        self,
        templates: list[ProgramTemplate],
        note: str = "",
        check_data: bool = True,
        *,
        actor: Actor | str | None = None,
    ) -> list[tuple[PublishedTemplate, bool]]:
        """Validate every template (all errors of all of them in one exception, nothing
        written), then publish them in one transaction: all or none. `actor` (default: the
        current actor) must be allowed to `manage_programs`."""
        acting = as_actor(actor)
        AnnotatorRegistry(self.engine).require(acting, "manage_programs")
        audit = AuditLog(self.engine)
        errors: list[TemplateError] = []
        names = [t.name for t in templates]
        for template in templates:
            found = template.validate(check_data)
            if names.count(template.name) > 1:
                found.append(TemplateError("name", f"duplicate program name {template.name!r}"))
            errors += [TemplateError(f"{template.name or '?'}:{e.path}", e.message) for e in found]
        if errors:
            raise TemplateValidationError("publish refused, nothing was published", errors)
        published: list[tuple[str, str, bool]] = []
        with write_transaction(self.engine) as conn:
            for template in templates:
                name, fingerprint = (
                    check_name(template.name, "program name"),
                    template.fingerprint(),
                )
                rows = conn.execute(
                    sa.select(program_templates).where(program_templates.c.name == name)
                ).all()
                same = [r for r in rows if r.fingerprint == fingerprint]
                if same:
                    self._make_current(conn, audit, acting, name, same[0].version)
                    published.append((name, same[0].version, False))
                    continue
                number = max((_version_number(r.version) for r in rows), default=0) + 1
                conn.execute(
                    program_templates.insert().values(
                        name=name,
                        version=f"v{number}",
                        fingerprint=fingerprint,
                        document=json.dumps(template.resolved, sort_keys=True),
                        base_dir=str(Path(template.base_dir).resolve()),
                        created_at=utcnow(),
                        note=note,
                    )
                )
                audit.record(
                    acting,
                    "program_template.publish",
                    f"{name}@v{number}",
                    {"fingerprint": fingerprint, "note": note},
                    conn=conn,
                )
                self._make_current(conn, audit, acting, name, f"v{number}")
                published.append((name, f"v{number}", True))
        return [(self.get(name, version), new) for name, version, new in published]

    def current(self, name: str) -> str | None:
        """The version program `name` runs (the one published last), or None."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(program_template_current.c.version).where(
                    program_template_current.c.name == name
                )
            ).scalar()

    @staticmethod
    def _make_current(
        conn: sa.Connection, audit: AuditLog, acting: Actor, name: str, version: str
    ) -> None:
        table = program_template_current
        was = conn.execute(sa.select(table.c.version).where(table.c.name == name)).scalar()
        if was == version:
            return
        values = {"version": version, "set_by": acting.name, "at": utcnow()}
        if was is None:
            conn.execute(table.insert().values(name=name, **values))
        else:
            conn.execute(table.update().where(table.c.name == name).values(**values))
        audit.record(
            acting, "program_template.current", f"{name}@{version}", {"was": was}, conn=conn
        )

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(program_templates.c.name).distinct()).scalars())

    def versions(self, name: str) -> list[PublishedTemplate]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(program_templates).where(program_templates.c.name == name)
            ).all()
        return sorted((_row(r) for r in rows), key=lambda t: _version_number(t.version))

    def get(self, name: str, version: str | None = None) -> PublishedTemplate:
        """`version` None or 'latest': the newest."""
        found = self.versions(name)
        if not found:
            raise UnknownTemplateError(
                f"No published template {name!r}.{closest(name, self.names())} "
                f"Published: {self.names()}."
            )
        if version in (None, "latest"):
            return found[-1]
        for template in found:
            if template.version == version:
                return template
        raise UnknownTemplateError(
            f"Unknown version {name}@{version}; published: {[t.version for t in found]}."
        )

    def resolve(self, reference: str) -> PublishedTemplate:
        """`name` (its current version, the one it runs), `name@latest` or `name@v2`."""
        name, _, version = reference.partition("@")
        return self.get(name, version or self.current(name))

    def diff(self, left: str, right: str) -> list[str]:
        """One line per setting that differs: `path: old -> new`."""
        a, b = self.resolve(left), self.resolve(right)
        flat_a, flat_b = _flatten(a.document), _flatten(b.document)
        lines = []
        for key in sorted(set(flat_a) | set(flat_b)):
            old, new = flat_a.get(key, "<absent>"), flat_b.get(key, "<absent>")
            if old != new:
                lines.append(f"{key}: {json.dumps(old)} -> {json.dumps(new)}")
        return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, inner in enumerate(value):
            out |= _flatten(inner, f"{prefix}[{i}]")
        return out
    return {prefix: value}
