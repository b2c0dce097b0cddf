"""Governance: who is acting (identity), what they may do (roles), what they may see of
tagged columns (privacy), and an append-only log of who did what (audit).

Every write path asks `require(actor, permission, where)` before it writes: `actor` is an
`Actor`, a name, or None for `current_actor()`; `where` is the people registry, or an engine
(the registry on it). The web app wraps each request in `acting_as(signed_in_user)`; the
command line acts as `FP_USER` (default: the OS user); Dagster and the demo as `platform`.
"""

from __future__ import annotations

import sqlalchemy as sa

from feature_platform.governance.identity import (
    SYSTEM,
    Actor,
    ReservedIdentityError,
    acting_as,
    as_actor,
    configured_actor,
    current_actor,
    system_actor,
)
from feature_platform.governance.roles import (
    PERMISSIONS,
    ROLES,
    AnnotatorRegistry,
    PermissionDeniedError,
    Person,
)


def require(
    actor: Actor | str | None, permission: str, where: AnnotatorRegistry | sa.Engine
) -> Person:
    """The acting person if they may `permission`; raises PermissionDeniedError otherwise."""
    registry = where if isinstance(where, AnnotatorRegistry) else AnnotatorRegistry(where)
    return registry.require(actor, permission)


__all__ = [
    "PERMISSIONS",
    "ROLES",
    "SYSTEM",
    "Actor",
    "AnnotatorRegistry",
    "PermissionDeniedError",
    "Person",
    "ReservedIdentityError",
    "acting_as",
    "as_actor",
    "configured_actor",
    "current_actor",
    "require",
    "system_actor",
]
