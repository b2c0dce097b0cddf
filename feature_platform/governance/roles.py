"""Known people and their roles: who may label, adjudicate, publish or deprecate.

A person is registered once under a name (`names.check_name`), with a role and optionally the
ids other tools know them by (`identities`, e.g. {"label-studio": "7"}), so an import can say
which of our people a Label Studio `completed_by` is. Every change is written to the audit log.

Roles, each allowed what the one before it is, plus more:

| permission        | viewer | annotator | reviewer | lead | admin |
|-------------------|--------|-----------|----------|------|-------|
| view              |   x    |     x     |    x     |  x   |   x   |
| label (lease, submit, revise, skip, unsure) |  |  x  |  x  |  x  |  x  |
| adjudicate        |        |           |    x     |  x   |   x   |
| import, publish, deprecate, alias, manage_programs, manage_queue | | | |  x  |  x  |
| manage_people     |        |           |          |      |   x   |

Seeing tagged columns unredacted (pii, sensitive, custom tags) is not a permission of this
table but the program's privacy policy, tag -> least role (default pii: lead, sensitive:
reviewer, other tags: lead; see governance/privacy.py).

`engineer` is accepted as another name for `lead`. Who may register people: an admin; the
system identity `platform` (registered as admin the first time it acts); and, on a platform
with no admin yet, a person registering themselves as its first admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance.audit import AuditLog
from feature_platform.governance.identity import SYSTEM, Actor, as_actor
from feature_platform.names import check_name, printable
from feature_platform.store.db import (
    as_utc,
    create_tables,
    metadata,
    utcnow,
    write_transaction,
)

VIEWER, ANNOTATOR, REVIEWER, LEAD, ADMIN = "viewer", "annotator", "reviewer", "lead", "admin"
ENGINEER = "engineer"  # another name for lead
ROLES = (VIEWER, ANNOTATOR, REVIEWER, LEAD, ADMIN)
ROLE_ALIASES = {ENGINEER: LEAD}
_AT_LEAST = {role: frozenset(ROLES[i:]) for i, role in enumerate(ROLES)}
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": _AT_LEAST[VIEWER],
    "label": _AT_LEAST[ANNOTATOR],
    "adjudicate": _AT_LEAST[REVIEWER],
    "import": _AT_LEAST[LEAD],
    "publish": _AT_LEAST[LEAD],
    "deprecate": _AT_LEAST[LEAD],
    "alias": _AT_LEAST[LEAD],
    "manage_programs": _AT_LEAST[LEAD],
    "manage_queue": _AT_LEAST[LEAD],
    "manage_people": _AT_LEAST[ADMIN],
}


def canonical_role(role: str) -> str:
    return ROLE_ALIASES.get(role, role)


class PermissionDeniedError(FeaturePlatformError):
    """Someone tried something their role does not allow."""


class UnknownAnnotatorError(PermissionDeniedError, KeyError):
    """A name nobody registered (refused like any other missing permission)."""

    def __str__(self) -> str:
        return str(self.args[0])


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
        return self.active and canonical_role(self.role) in PERMISSIONS[permission]


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
        actor: Actor | str | None = None,
        now: datetime | None = None,
    ) -> Person:
        """Register `name` (or update its role and add identities). Idempotent. `actor`
        (default: the current actor) must be allowed to manage people (see the module)."""
        role = canonical_role(role)
        _check_role(role)
        check_name(name, "person name")
        acting = as_actor(actor)
        if name == SYSTEM and not acting.is_system:
            raise PermissionDeniedError(
                f"{SYSTEM!r} is the platform's own identity; it cannot be registered or changed."
            )
        now = now or utcnow()
        ids = {str(k): str(v) for k, v in (external_ids or {}).items()}
        for system, external_id in ids.items():
            check_name(system, "identity system")
            if not external_id or len(external_id) > 200 or not external_id.isprintable():
                raise FeaturePlatformError(
                    f"Invalid {system} id {printable(external_id)!r} for {name!r}: expected "
                    f"1 to 200 printable characters."
                )
        with write_transaction(self.engine) as conn:
            action = self._authorize_people_change(conn, acting, name, role, now)
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
                    acting,
                    action or ("person.add" if current is None else "person.update"),
                    name,
                    {"role": role, "identities": added},
                    conn=conn,
                    now=now,
                )
        return self.get(name)

    def deactivate(self, name: str, *, actor: Actor | str | None = None) -> Person:
        """Keep the person (their answers still point at them) but stop accepting their work."""
        person = self.get(name)
        acting = as_actor(actor)
        if name == SYSTEM:
            raise PermissionDeniedError(f"{SYSTEM!r} is the platform's own identity.")
        with write_transaction(self.engine) as conn:
            self._authorize_people_change(conn, acting, name, person.role, utcnow())
            conn.execute(people.update().where(people.c.name == name).values(active=False))
            self.audit.record(acting, "person.deactivate", name, conn=conn)
        return self.get(name)

    def ensure_system(self) -> Person:
        """Register the system identity `platform` as admin if it is not yet (audited)."""
        with write_transaction(self.engine) as conn:
            self._ensure_system(conn)
        return self.get(SYSTEM)

    def _ensure_system(self, conn: sa.Connection) -> None:
        if conn.execute(sa.select(people.c.name).where(people.c.name == SYSTEM)).first():
            return
        now = utcnow()
        conn.execute(people.insert().values(name=SYSTEM, role=ADMIN, active=True, created_at=now))
        self.audit.record(
            Actor(SYSTEM, "system"),
            "person.bootstrap",
            SYSTEM,
            {"role": ADMIN, "why": "the platform's own identity (Dagster assets, sensors, demo)"},
            conn=conn,
            now=now,
        )

    def _authorize_people_change(
        self, conn: sa.Connection, acting: Actor, name: str, role: str, now: datetime
    ) -> str | None:
        """Raise unless `acting` may register or change `name`; the audit action when it is a
        bootstrap (the first admin registering themselves), else None."""
        if acting.is_system:
            self._ensure_system(conn)
            return None
        row = conn.execute(sa.select(people).where(people.c.name == acting.name)).first()
        if row is not None and row.active and canonical_role(row.role) == ADMIN:
            return None
        admins = conn.execute(
            sa.select(sa.func.count()).where(
                people.c.role == ADMIN, people.c.active.is_(True), people.c.name != SYSTEM
            )
        ).scalar_one()
        if not admins and name == acting.name and role == ADMIN:
            return "person.bootstrap"
        why = (
            "they are not registered"
            if row is None
            else "they are deactivated"
            if not row.active
            else f"their role is {row.role!r}"
        )
        hint = (
            f" No admin exists yet: register yourself first "
            f"(feature-platform annotators add {acting.name} --role admin)."
            if not admins
            else ""
        )
        raise PermissionDeniedError(
            f"{acting.name!r} (via {acting.via}) may not manage people: {why}; roles allowed: "
            f"['admin'].{hint}"
        )

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

    def require(self, actor: Actor | str | None, permission: str) -> Person:
        """The acting person (default: the current actor), if registered, active and allowed
        `permission`; raises UnknownAnnotatorError / PermissionDeniedError otherwise."""
        if permission not in PERMISSIONS:
            raise FeaturePlatformError(
                f"Unknown permission {permission!r}; known: {sorted(PERMISSIONS)}."
            )
        acting = as_actor(actor)
        person = self.find(acting.name)
        if person is None and acting.is_system:
            person = self.ensure_system()
        if person is None:
            raise UnknownAnnotatorError(
                f"Unknown annotator {printable(acting.name)!r} (via {acting.via}) may not "
                f"{permission}: they are not registered; an admin registers people with "
                f"`feature-platform annotators add NAME --role ROLE`."
            )
        if not person.may(permission):
            why = "they are deactivated" if not person.active else f"their role is {person.role!r}"
            allowed = [r for r in ROLES if r in PERMISSIONS[permission]]
            raise PermissionDeniedError(
                f"{acting.name!r} may not {permission}: {why}; roles allowed: {allowed}."
            )
        return person


def labeling_problem(conn: sa.Connection, name: str) -> str | None:
    """Why `name` may not label (read inside the caller's transaction), or None."""
    row = conn.execute(sa.select(people.c.role, people.c.active).where(people.c.name == name))
    found = row.first()
    if found is None:
        return f"{printable(name)!r} is not a registered person (feature-platform annotators add)"
    if not found.active:
        return f"{name!r} is deactivated"
    if canonical_role(found.role) not in PERMISSIONS["label"]:
        return f"{name!r} may not label (role {found.role!r})"
    return None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise FeaturePlatformError(f"Unknown role {role!r}.{closest(role, ROLES)} Known: {ROLES}.")
