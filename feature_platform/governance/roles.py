"""Known people and their roles: who may label, adjudicate, publish or deprecate.

An annotator is registered once under a name, with a role and optionally the ids other tools
know them by (`identities`, e.g. {"label-studio": "7"}), so an import can say which of our
people a Label Studio `completed_by` is. Every change is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance.audit import AuditLog
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow

ANNOTATOR, REVIEWER, ENGINEER, ADMIN = "annotator", "reviewer", "engineer", "admin"
ROLES = (ANNOTATOR, REVIEWER, ENGINEER, ADMIN)
PERMISSIONS: dict[str, frozenset[str]] = {
    "label": frozenset({ANNOTATOR, REVIEWER, ADMIN}),
    "adjudicate": frozenset({REVIEWER, ADMIN}),
    "publish": frozenset({ENGINEER, ADMIN}),
    "deprecate": frozenset({ENGINEER, ADMIN}),
    "manage_people": frozenset({ADMIN}),
}


class UnknownAnnotatorError(FeaturePlatformError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class PermissionDeniedError(FeaturePlatformError):
    """Someone tried something their role does not allow."""


people = sa.Table(
    "governance_people",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

identities = sa.Table(
    "governance_identities",
    metadata,
    sa.Column("system", sa.String(50), primary_key=True),
    sa.Column("external_id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), sa.ForeignKey("governance_people.name"), nullable=False),
)


@dataclass(frozen=True)
class Person:
    name: str
    role: str
    active: bool
    created_at: datetime
    identities: dict[str, str] = field(default_factory=dict)  # system -> external id

    def may(self, permission: str) -> bool:
        return self.active and self.role in PERMISSIONS[permission]


class AnnotatorRegistry:
    """People who may touch labels, with roles. Small on purpose: names, roles, external ids."""

    def __init__(self, engine: sa.Engine, audit: AuditLog | None = None) -> None:
        self.engine = engine
        self.audit = audit or AuditLog(engine)
        create_tables(engine, people, identities)

    def add(
        self,
        name: str,
        role: str = ANNOTATOR,
        external_ids: Mapping[str, str] | None = None,
        *,
        actor: str = "system",
        now: datetime | None = None,
    ) -> Person:
        """Register `name` (or update its role and add identities). Idempotent."""
        _check_role(role)
        if not name or not name.strip():
            raise FeaturePlatformError("A person needs a non-empty name.")
        now = now or utcnow()
        ids = {str(k): str(v) for k, v in (external_ids or {}).items()}
        with self.engine.begin() as conn:
            current = conn.execute(sa.select(people).where(people.c.name == name)).first()
            if current is None:
                conn.execute(
                    people.insert().values(name=name, role=role, active=True, created_at=now)
                )
            elif current.role != role or not current.active:
                conn.execute(
                    people.update().where(people.c.name == name).values(role=role, active=True)
                )
            added: dict[str, str] = {}
            for system, external_id in sorted(ids.items()):
                owner = conn.execute(
                    sa.select(identities.c.name).where(
                        identities.c.system == system, identities.c.external_id == external_id
                    )
                ).scalar()
                if owner is not None and owner != name:
                    raise FeaturePlatformError(
                        f"{system} id {external_id!r} already belongs to {owner!r}; "
                        f"it cannot also be {name!r}."
                    )
                if owner is None:
                    conn.execute(
                        identities.insert().values(
                            system=system, external_id=external_id, name=name
                        )
                    )
                    added[system] = external_id
            if current is None or current.role != role or not current.active or added:
                self.audit.record(
                    actor,
                    "person.add" if current is None else "person.update",
                    name,
                    {"role": role, "identities": added},
                    conn=conn,
                    now=now,
                )
        return self.get(name)

    def deactivate(self, name: str, *, actor: str = "system") -> Person:
        """Keep the person (their answers still point at them) but stop accepting their work."""
        self.get(name)
        with self.engine.begin() as conn:
            conn.execute(people.update().where(people.c.name == name).values(active=False))
            self.audit.record(actor, "person.deactivate", name, conn=conn)
        return self.get(name)

    def find(self, name: str) -> Person | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(people).where(people.c.name == name)).first()
            if row is None:
                return None
            ids = conn.execute(
                sa.select(identities.c.system, identities.c.external_id).where(
                    identities.c.name == name
                )
            ).all()
        return Person(row.name, row.role, bool(row.active), as_utc(row.created_at), dict(ids))

    def get(self, name: str) -> Person:
        person = self.find(name)
        if person is None:
            known = [p.name for p in self.list()]
            raise UnknownAnnotatorError(
                f"Unknown annotator {name!r}; register them first "
                f"(feature-platform annotators add {name} --role annotator).{closest(name, known)}"
            )
        return person

    def resolve(self, system: str, external_id: object) -> Person | None:
        """The person another tool calls `external_id` (e.g. Label Studio user 7), if known."""
        with self.engine.connect() as conn:
            name = conn.execute(
                sa.select(identities.c.name).where(
                    identities.c.system == system, identities.c.external_id == str(external_id)
                )
            ).scalar()
        return self.find(name) if name is not None else None

    def list(self) -> list[Person]:
        with self.engine.connect() as conn:
            names = conn.execute(sa.select(people.c.name).order_by(people.c.name)).scalars().all()
        return [p for p in (self.find(n) for n in names) if p is not None]

    def require(self, name: str, permission: str) -> Person:
        """The person, if registered, active and allowed `permission`; raises otherwise."""
        if permission not in PERMISSIONS:
            raise FeaturePlatformError(
                f"Unknown permission {permission!r}; known: {sorted(PERMISSIONS)}."
            )
        person = self.get(name)
        if not person.may(permission):
            why = "they are deactivated" if not person.active else f"their role is {person.role!r}"
            allowed = sorted(PERMISSIONS[permission])
            raise PermissionDeniedError(
                f"{name!r} may not {permission}: {why}; roles allowed: {allowed}."
            )
        return person


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise FeaturePlatformError(f"Unknown role {role!r}.{closest(role, ROLES)} Known: {ROLES}.")
