"""Registry of feature set versions: definitions, lifecycle, aliases, usage and lineage (SQL).

- A registered version is immutable: re-registering it with another definition (transform
  code, schema, params, entity or sources) is refused, naming the difference.
- Lifecycle: draft -> active -> deprecated (a draft may also be abandoned straight to
  deprecated); every transition is recorded. A version that a registered model still uses,
  or that an alias still points at, cannot be deprecated.
- Aliases (`serving`, `labeling`, any name) point at one version and move atomically;
  every move is recorded. Nothing pinned to an explicit version is affected by a move.
- Usage: training sets and models record which version they were built from
  (`record_usage`); that is what deprecation checks and lineage walks.

Reads are served from an in-process cache that is revalidated against the store-wide change
counter on every call (see `changes.py`), so a move made by any process is seen at once.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from feature_platform.errors import (
    FeaturePlatformError,
    FeatureVersionConflictError,
    UnknownFeatureSetError,
    closest,
)
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.privacy import Privacy, PrivacyError, feature_subject
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.names import check_name
from feature_platform.store.changes import change_feed
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow, write_transaction
from feature_platform.store.feature_set import FeatureSetSpec, FeatureSetVersion

if TYPE_CHECKING:
    from feature_platform.store.lineage import LineageGraph

STATUSES = ("draft", "active", "deprecated")
# Allowed lifecycle moves. Deprecation is final: a retired version is replaced by a new one.
TRANSITIONS = {
    "draft": ("active", "deprecated"),
    "active": ("deprecated",),
    "deprecated": (),
}
# Consumers whose use of a version blocks its deprecation (a training set does not: it is a
# frozen artefact; a registered model may still be serving).
BLOCKING_CONSUMERS = ("model",)
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

feature_set_versions = sa.Table(
    "feature_set_versions",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(50), primary_key=True),
    sa.Column("entity", sa.String(200), nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON: name -> dtype, in order
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("transform_fingerprint", sa.String(64), nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

feature_set_aliases = sa.Table(
    "feature_set_aliases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("alias", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(50), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

alias_moves = sa.Table(
    "feature_set_alias_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(100), nullable=False),
    sa.Column("from_version", sa.String(50)),
    sa.Column("to_version", sa.String(50), nullable=False),
    sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
)

status_changes = sa.Table(
    "feature_set_status_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.String(50), nullable=False),
    sa.Column("from_status", sa.String(20)),  # NULL: registered
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

feature_set_usage = sa.Table(
    "feature_set_usage",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(50), primary_key=True),
    sa.Column("consumer_kind", sa.String(50), primary_key=True),
    sa.Column("consumer_id", sa.String(300), primary_key=True),
    sa.Column("upstream", sa.String(360)),  # "<kind>:<id>" the consumer was built from
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("released_at", sa.DateTime(timezone=True)),
)


class LifecycleError(FeaturePlatformError, ValueError):
    """A status change the lifecycle does not allow (e.g. reviving a deprecated version)."""


class FeatureSetInUseError(LifecycleError):
    """A version cannot be retired while registered models or aliases still depend on it."""


class DeprecatedFeatureSetWarning(UserWarning):
    """A deprecated feature set version was used; the message lists what depends on it."""


@dataclass(frozen=True)
class Usage:
    """One consumer (training set, model, ...) built from one feature set version."""

    feature_set: str  # "name@version"
    consumer_kind: str
    consumer_id: str
    upstream: str | None
    details: dict[str, Any]
    recorded_at: datetime
    released_at: datetime | None

    @property
    def consumer(self) -> str:
        return f"{self.consumer_kind}:{self.consumer_id}"

    @property
    def active(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class Dependents:
    """What still depends on one version: aliases pointing at it and active consumers."""

    feature_set: str
    aliases: list[str]
    usages: list[Usage]

    def of_kind(self, kind: str) -> list[str]:
        return [u.consumer_id for u in self.usages if u.consumer_kind == kind]

    def __bool__(self) -> bool:
        return bool(self.aliases or self.usages)

    def describe(self) -> str:
        parts = [f"aliases {self.aliases}"] if self.aliases else []
        kinds = sorted({u.consumer_kind for u in self.usages})
        parts += [f"{kind.replace('_', ' ')}s {self.of_kind(kind)}" for kind in kinds]
        return "; ".join(parts) or "nothing"


def _looks_like_version(alias: str) -> bool:
    return alias.startswith("v") and alias[1:].isdigit()


def _natural_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", version))


def _describe_difference(old: sa.Row, spec: FeatureSetSpec) -> str:
    changes = []
    old_features = json.loads(old.features)
    if old_features != dict(spec.features):
        added = sorted(set(spec.features) - set(old_features))
        removed = sorted(set(old_features) - set(spec.features))
        retyped = sorted(
            f"{k}: {old_features[k]} -> {spec.features[k]}"
            for k in set(old_features) & set(spec.features)
            if old_features[k] != spec.features[k]
        )
        parts = [f"added {added}" if added else "", f"removed {removed}" if removed else ""]
        parts.append(f"retyped {retyped}" if retyped else "")
        changes.append("schema " + ", ".join(p for p in parts if p) if any(parts) else "")
    if old.transform_fingerprint != spec.transform_fingerprint:
        changes.append(
            f"transform code (fingerprint {old.transform_fingerprint} -> "
            f"{spec.transform_fingerprint})"
        )
    old_params = json.loads(old.params)
    if old_params != json.loads(json.dumps(dict(spec.params), default=str)):
        changes.append(f"params {old_params} -> {dict(spec.params)}")
    if old.entity != spec.entity:
        changes.append(f"entity {old.entity!r} -> {spec.entity!r}")
    if json.loads(old.sources) != list(spec.sources):
        changes.append(f"sources {json.loads(old.sources)} -> {list(spec.sources)}")
    return "; ".join(c for c in changes if c) or "fingerprint"


def _conflict(old: sa.Row, spec: FeatureSetSpec) -> FeatureVersionConflictError:
    return FeatureVersionConflictError(
        f"{spec.id} is already registered ({old.status}) with a different definition: "
        f"{_describe_difference(old, spec)}. A registered version is immutable: register "
        f"the change as a new version instead."
    )


class Registry:
    """Feature set versions keyed by (name, version); aliases resolve to versions."""

    def __init__(self, engine: sa.Engine, actor: Actor | str | None = None) -> None:
        """`actor`: who this registry's writes act as when a call names nobody (Dagster's
        store acts as `platform`); None: the current actor (`governance.current_actor`)."""
        self.engine = engine
        self.actor = actor
        self.people = AnnotatorRegistry(engine)
        self.privacy = Privacy(engine, self.people)
        create_tables(
            engine,
            feature_set_versions,
            feature_set_aliases,
            alias_moves,
            status_changes,
            feature_set_usage,
        )
        self.changes = change_feed(engine)
        self._lock = threading.Lock()
        self._token: int | None = None
        self._versions: dict[str, dict[str, FeatureSetVersion]] = {}
        self._aliases: dict[str, dict[str, str]] = {}

    # -- cache -----------------------------------------------------------------------------
    def token(self) -> int:
        """The store-wide change counter; the caches below are valid for one value of it."""
        token = self.changes.token()
        if self._token is None or token > self._token:  # the counter only grows
            with self._lock:
                if self._token is None or token > self._token:
                    self._versions, self._aliases, self._token = {}, {}, token
        return token

    def _load(self, name: str) -> tuple[dict[str, FeatureSetVersion], dict[str, str]]:
        token = self.token()
        versions, aliases = self._versions.get(name), self._aliases.get(name)
        if versions is not None and aliases is not None:
            return versions, aliases
        with self.engine.connect() as conn:
            # Aliases first: versions are never deleted, so every alias read here points at a
            # version the second read still finds.
            alias_rows = conn.execute(
                sa.select(feature_set_aliases.c.alias, feature_set_aliases.c.version).where(
                    feature_set_aliases.c.name == name
                )
            ).all()
            rows = conn.execute(
                sa.select(feature_set_versions).where(feature_set_versions.c.name == name)
            ).all()
        ordered = sorted(rows, key=lambda r: _natural_key(r.version))
        versions = {r.version: self._to_version(r) for r in ordered}
        aliases = {r.alias: r.version for r in sorted(alias_rows, key=lambda r: r.alias)}
        with self._lock:
            # Cached only if nothing changed since `token`: a load that raced a change must
            # not outlive the invalidation (it still serves this call: it is not older).
            if self._token == token:
                self._versions[name], self._aliases[name] = versions, aliases
        return versions, aliases

    # -- writing ---------------------------------------------------------------------------
    def _authorize(self, actor: Actor | str | None, permission: str) -> Actor:
        """Who acts (the call's actor, else this registry's, else the current one), once
        they are allowed `permission` (lifecycle changes: lead or admin)."""
        acting = as_actor(actor if actor is not None else self.actor)
        self.people.require(acting, permission)
        return acting

    def register(
        self, spec: FeatureSetSpec, status: str = "draft", *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        """Register `spec`. Re-registering the identical definition is a no-op; a changed
        definition under an existing version is refused with the difference spelled out.
        Registering takes the `publish` permission. The spec's column tags are recorded for
        the version (a change of tags alone is recorded and audited, not refused: tags are
        not part of the fingerprint, see `FeatureSetSpec.tags`)."""
        check_name(spec.name, "feature set name")
        check_name(spec.version, "version")
        acting = self._authorize(actor, "publish")
        untagged = sorted(set(spec.tags) - set(spec.features))
        if untagged:
            raise PrivacyError(
                f"{spec.id} tags {untagged}, which are not among its features "
                f"{sorted(spec.features)[:20]}."
            )
        fsv = self._register(spec, status, acting)
        self.privacy.declare(feature_subject(spec.id), spec.tags, actor=acting)
        return fsv

    def _register(self, spec: FeatureSetSpec, status: str, acting: Actor) -> FeatureSetVersion:
        if status not in ("draft", "active"):
            raise LifecycleError(f"A new version starts as 'draft' or 'active', not {status!r}.")
        if not spec.features:
            raise FeaturePlatformError(f"{spec.id} declares no features.")
        if spec.entity in spec.features:
            raise FeaturePlatformError(
                f"{spec.id}: the entity key {spec.entity!r} is also declared as a feature."
            )
        fingerprint, transform_fingerprint = spec.fingerprint, spec.transform_fingerprint
        with write_transaction(self.engine) as conn:
            self.changes.bump(conn)  # first: serializes registry writers on every backend
            old = conn.execute(
                sa.select(feature_set_versions).where(
                    feature_set_versions.c.name == spec.name,
                    feature_set_versions.c.version == spec.version,
                )
            ).first()
            if old is not None:
                if old.fingerprint != fingerprint or json.loads(old.sources) != list(spec.sources):
                    raise _conflict(old, spec)
                return self._to_version(old)
            clash = conn.execute(
                sa.select(feature_set_aliases.c.version).where(
                    feature_set_aliases.c.name == spec.name,
                    feature_set_aliases.c.alias == spec.version,
                )
            ).scalar()
            if clash is not None:
                raise FeaturePlatformError(
                    f"{spec.name}@{spec.version} is already an alias (pointing at {clash}); "
                    f"choose another version name."
                )
            now = utcnow()
            conn.execute(
                feature_set_versions.insert().values(
                    name=spec.name,
                    version=spec.version,
                    entity=spec.entity,
                    features=json.dumps(dict(spec.features)),
                    fingerprint=fingerprint,
                    transform_fingerprint=transform_fingerprint,
                    params=json.dumps(dict(spec.params), default=str),
                    sources=json.dumps(list(spec.sources)),
                    status=status,
                    description=spec.description,
                    created_at=now,
                )
            )
            conn.execute(
                status_changes.insert().values(
                    name=spec.name,
                    version=spec.version,
                    from_status=None,
                    to_status=status,
                    reason="registered",
                    changed_at=now,
                )
            )
            self.people.audit.record(
                acting, "feature_set.register", spec.id, {"status": status}, conn=conn, now=now
            )
        return self.get(spec.name, spec.version)

    def check(self, spec: FeatureSetSpec) -> None:
        """Raise FeatureVersionConflictError if `spec`'s version is registered with another
        definition (writes nothing; `register` checks again under its lock)."""
        old = self._load(spec.name)[0].get(spec.version)
        if old is not None and (
            old.fingerprint != spec.fingerprint or list(old.sources) != list(spec.sources)
        ):
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(feature_set_versions).where(
                        feature_set_versions.c.name == spec.name,
                        feature_set_versions.c.version == spec.version,
                    )
                ).one()
            raise _conflict(row, spec)

    def set_status(
        self,
        name: str,
        version: str,
        status: str,
        reason: str = "",
        *,
        actor: Actor | str | None = None,
    ) -> FeatureSetVersion:
        """Move a version along its lifecycle (draft -> active -> deprecated), recorded.

        Deprecating is refused while a registered model uses the version or an alias points
        at it; the error lists them. Takes the `publish` / `deprecate` permission."""
        if status not in STATUSES:
            raise LifecycleError(f"Unknown status {status!r}; expected one of {STATUSES}.")
        acting = self._authorize(actor, "deprecate" if status == "deprecated" else "publish")
        self.get(name, version)  # unknown version: a clear error before any write
        with write_transaction(self.engine) as conn:
            self.changes.bump(conn)
            current = conn.execute(
                sa.select(feature_set_versions.c.status).where(
                    feature_set_versions.c.name == name,
                    feature_set_versions.c.version == version,
                )
            ).scalar_one()
            if current == status:
                return self.get(name, version)
            if status not in TRANSITIONS[current]:
                allowed = TRANSITIONS[current] or ("nothing: deprecation is final",)
                raise LifecycleError(
                    f"{name}@{version} is {current}; it cannot become {status} "
                    f"(allowed: {', '.join(allowed)}). Register a new version instead."
                )
            if status == "deprecated":
                dependents = self._dependents(conn, name, version)
                blocking = [u for u in dependents.usages if u.consumer_kind in BLOCKING_CONSUMERS]
                if blocking or dependents.aliases:
                    hint = []
                    if dependents.aliases:
                        hint.append(f"move aliases {dependents.aliases} to another version")
                    if blocking:
                        hint.append(
                            "retire or release the models "
                            f"{[u.consumer_id for u in blocking]} (Registry.release_usage)"
                        )
                    raise FeatureSetInUseError(
                        f"Cannot deprecate {name}@{version}: still used by "
                        f"{dependents.describe()}. First {' and '.join(hint)}."
                    )
            conn.execute(
                feature_set_versions.update()
                .where(
                    feature_set_versions.c.name == name,
                    feature_set_versions.c.version == version,
                )
                .values(status=status)
            )
            conn.execute(
                status_changes.insert().values(
                    name=name,
                    version=version,
                    from_status=current,
                    to_status=status,
                    reason=reason,
                    changed_at=utcnow(),
                )
            )
            self.people.audit.record(
                acting,
                "feature_set.status",
                f"{name}@{version}",
                {"from": current, "to": status, "reason": reason},
                conn=conn,
            )
        return self.get(name, version)

    def publish(
        self, name: str, version: str, reason: str = "", *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        """draft -> active. Publishing an active version is a no-op."""
        return self.set_status(name, version, "active", reason, actor=actor)

    def deprecate(
        self, name: str, version: str, reason: str = "", *, actor: Actor | str | None = None
    ) -> FeatureSetVersion:
        """-> deprecated, refused while a registered model or an alias depends on it."""
        return self.set_status(name, version, "deprecated", reason, actor=actor)

    def set_alias(
        self, name: str, alias: str, version: str, *, actor: Actor | str | None = None
    ) -> dict[str, Any] | None:
        """Point `name@alias` at `version` in one transaction, recording the move (and who
        moved it, in the audit log). Takes the `alias` permission.

        Returns the recorded move, or None when the alias already points there."""
        check_name(alias, "alias")
        acting = self._authorize(actor, "alias")
        versions, _ = self._load(name)
        if alias in versions or _looks_like_version(alias):
            raise FeaturePlatformError(
                f"Alias {alias!r} looks like a version of {name}; choose another name."
            )
        target = self.get(name, version)
        if target.status == "deprecated":
            raise LifecycleError(
                f"{target.id} is deprecated; an alias may only point at a draft or active version."
            )
        now = utcnow()
        with write_transaction(self.engine) as conn:
            self.changes.bump(conn)  # holds the write lock: concurrent moves serialize here
            status = conn.execute(
                sa.select(feature_set_versions.c.status).where(
                    feature_set_versions.c.name == name,
                    feature_set_versions.c.version == version,
                )
            ).scalar_one()
            if status == "deprecated":  # deprecated since the check above
                raise LifecycleError(f"{target.id} was deprecated meanwhile; alias not moved.")
            current = conn.execute(
                sa.select(feature_set_aliases.c.version).where(
                    feature_set_aliases.c.name == name, feature_set_aliases.c.alias == alias
                )
            ).scalar()
            if current == version:
                return None
            if current is None:
                conn.execute(
                    feature_set_aliases.insert().values(
                        name=name, alias=alias, version=version, updated_at=now
                    )
                )
            else:
                conn.execute(
                    feature_set_aliases.update()
                    .where(feature_set_aliases.c.name == name, feature_set_aliases.c.alias == alias)
                    .values(version=version, updated_at=now)
                )
            move = {
                "name": name,
                "alias": alias,
                "from_version": current,
                "to_version": version,
                "moved_at": now,
            }
            conn.execute(alias_moves.insert().values(**move))
            self.people.audit.record(
                acting,
                "feature_set.alias",
                f"{name}@{alias}",
                {"from": current, "to": version},
                conn=conn,
                now=now,
            )
        return move

    def record_usage(
        self,
        feature_set: str,
        consumer_kind: str,
        consumer_id: str,
        *,
        upstream: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Usage:
        """Record that a consumer (`"training_set"`, `"model"`, ...) was built from a version.

        `feature_set` is `"name@version"` (an alias is resolved now and the explicit version
        recorded). `upstream` optionally names the consumer it was built from as
        `"<kind>:<id>"`, e.g. a model's training set. Recording the same consumer again
        updates it (and re-activates a released one). Models block deprecation."""
        from feature_platform.store.refs import parse_feature_set

        name, selector = parse_feature_set(feature_set)
        if not isinstance(consumer_kind, str) or not KIND_PATTERN.match(consumer_kind):
            raise FeaturePlatformError(
                f"Invalid consumer kind {consumer_kind!r}: use lower-case words joined by "
                f"'_', e.g. 'training_set' or 'model'."
            )
        if not consumer_id or not isinstance(consumer_id, str):
            raise FeaturePlatformError("A usage needs a non-empty consumer id.")
        if upstream is not None and not re.match(r"^[a-z][a-z0-9_]*:.+", upstream):
            raise FeaturePlatformError(
                f"Invalid upstream {upstream!r}: use '<kind>:<id>', e.g. 'training_set:ab12'."
            )
        fsv = self.resolve(name, selector)
        payload = json.dumps(dict(details or {}), default=str, sort_keys=True)
        now = utcnow()
        key = (
            feature_set_usage.c.name == fsv.name,
            feature_set_usage.c.version == fsv.version,
            feature_set_usage.c.consumer_kind == consumer_kind,
            feature_set_usage.c.consumer_id == consumer_id,
        )
        with write_transaction(self.engine) as conn:
            self.changes.bump(conn)
            if conn.execute(sa.select(feature_set_usage.c.name).where(*key)).first() is None:
                conn.execute(
                    feature_set_usage.insert().values(
                        name=fsv.name,
                        version=fsv.version,
                        consumer_kind=consumer_kind,
                        consumer_id=consumer_id,
                        upstream=upstream,
                        details=payload,
                        recorded_at=now,
                        released_at=None,
                    )
                )
            else:
                conn.execute(
                    feature_set_usage.update()
                    .where(*key)
                    .values(upstream=upstream, details=payload, released_at=None)
                )
            row = conn.execute(sa.select(feature_set_usage).where(*key)).one()
        return self._to_usage(row)

    def release_usage(self, feature_set: str, consumer_kind: str, consumer_id: str) -> bool:
        """Mark a consumer as no longer depending on the version (e.g. a model archived).
        The record stays for lineage. Returns False if there was no such active usage."""
        from feature_platform.store.refs import parse_feature_set

        name, selector = parse_feature_set(feature_set)
        fsv = self.resolve(name, selector, warn=False)
        with write_transaction(self.engine) as conn:
            self.changes.bump(conn)
            result = conn.execute(
                feature_set_usage.update()
                .where(
                    feature_set_usage.c.name == fsv.name,
                    feature_set_usage.c.version == fsv.version,
                    feature_set_usage.c.consumer_kind == consumer_kind,
                    feature_set_usage.c.consumer_id == consumer_id,
                    feature_set_usage.c.released_at.is_(None),
                )
                .values(released_at=utcnow())
            )
        return result.rowcount > 0

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(feature_set_versions.c.name).distinct()).scalars()
            return sorted(rows)

    def versions(self, name: str) -> list[str]:
        """Version names of `name`, in natural order (v2 before v10)."""
        return list(self._load(name)[0])

    def aliases(self, name: str) -> dict[str, str]:
        return dict(self._load(name)[1])

    def list_versions(self, name: str | None = None) -> list[FeatureSetVersion]:
        """Every registered version (of one feature set, or of all)."""
        names = [name] if name is not None else self.names()
        return [fsv for n in names for fsv in self._load(n)[0].values()]

    def alias_history(self, name: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(alias_moves).where(alias_moves.c.name == name).order_by(alias_moves.c.id)
            )
            return [{**r._mapping, "moved_at": as_utc(r.moved_at)} for r in rows]

    def status_history(self, name: str, version: str | None = None) -> list[dict]:
        query = sa.select(status_changes).where(status_changes.c.name == name)
        if version is not None:
            query = query.where(status_changes.c.version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(status_changes.c.id))
            return [{**r._mapping, "changed_at": as_utc(r.changed_at)} for r in rows]

    def get(self, name: str, version: str) -> FeatureSetVersion:
        versions, aliases = self._load(name)
        found = versions.get(version)
        if found is not None:
            return found
        if not versions:
            names = self.names()
            raise UnknownFeatureSetError(
                f"Unknown feature set {name!r}.{closest(name, names)} Registered: {names}."
            )
        raise UnknownFeatureSetError(
            f"Unknown version {name}@{version}.{closest(version, [*versions, *aliases])} "
            f"Versions: {list(versions)}; aliases: {sorted(aliases)}."
        )

    def resolve(self, name: str, version_or_alias: str, *, warn: bool = True) -> FeatureSetVersion:
        """`name@v2` or `name@serving` -> the registered version (an explicit version wins
        over an alias of the same name). Warns if the version is deprecated."""
        versions, aliases = self._load(name)
        fsv = versions.get(version_or_alias)
        if fsv is None and version_or_alias in aliases:
            fsv = versions.get(aliases[version_or_alias])
        if fsv is None:
            return self.get(name, version_or_alias)  # raises with suggestions
        if warn and fsv.status == "deprecated":
            self.warn_deprecated(fsv, stacklevel=3)
        return fsv

    def warn_deprecated(self, fsv: FeatureSetVersion, stacklevel: int = 2) -> None:
        """Issue the DeprecatedFeatureSetWarning for `fsv`, listing what still depends on it."""
        dependents = self.dependents(fsv.name, fsv.version)
        active = [v.version for v in self._load(fsv.name)[0].values() if v.status == "active"]
        warnings.warn(
            f"{fsv.id} is deprecated. Still depending on it: {dependents.describe()}. "
            f"Active versions of {fsv.name}: {active or 'none'}.",
            DeprecatedFeatureSetWarning,
            stacklevel=stacklevel + 1,
        )

    def dependents(self, name: str, version: str) -> Dependents:
        """Aliases pointing at `name@version` and the consumers still using it."""
        self.get(name, version)
        with self.engine.connect() as conn:
            return self._dependents(conn, name, version)

    def usages(
        self,
        feature_set: str | None = None,
        *,
        consumer_kind: str | None = None,
        consumer_id: str | None = None,
        include_released: bool = False,
    ) -> list[Usage]:
        """Recorded usages, filtered by version (`name@version` or just `name`) and consumer."""
        query = sa.select(feature_set_usage)
        if feature_set is not None:
            name, _, selector = feature_set.partition("@")
            query = query.where(feature_set_usage.c.name == name)
            if selector:
                fsv = self.resolve(name, selector, warn=False)
                query = query.where(feature_set_usage.c.version == fsv.version)
        if consumer_kind is not None:
            query = query.where(feature_set_usage.c.consumer_kind == consumer_kind)
        if consumer_id is not None:
            query = query.where(feature_set_usage.c.consumer_id == consumer_id)
        if not include_released:
            query = query.where(feature_set_usage.c.released_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(feature_set_usage.c.recorded_at)).all()
        return [self._to_usage(r) for r in rows]

    def lineage(self, target: str) -> LineageGraph:
        """The lineage graph around `target`: a feature set (`digits`), a version
        (`digits@v1`, `digits@serving`), a consumer (`model:<id>`, `training_set:<id>`, or
        a bare consumer id) or a raw source (`source:<name>`). See `store.lineage`."""
        from feature_platform.store.lineage import build_lineage

        return build_lineage(self, target)

    # -- helpers ---------------------------------------------------------------------------
    def _dependents(self, conn: sa.Connection, name: str, version: str) -> Dependents:
        aliases = conn.execute(
            sa.select(feature_set_aliases.c.alias).where(
                feature_set_aliases.c.name == name, feature_set_aliases.c.version == version
            )
        ).scalars()
        usages = conn.execute(
            sa.select(feature_set_usage)
            .where(
                feature_set_usage.c.name == name,
                feature_set_usage.c.version == version,
                feature_set_usage.c.released_at.is_(None),
            )
            .order_by(feature_set_usage.c.recorded_at)
        ).all()
        return Dependents(f"{name}@{version}", sorted(aliases), [self._to_usage(u) for u in usages])

    @staticmethod
    def _to_usage(row: sa.Row) -> Usage:
        return Usage(
            feature_set=f"{row.name}@{row.version}",
            consumer_kind=row.consumer_kind,
            consumer_id=row.consumer_id,
            upstream=row.upstream,
            details=json.loads(row.details or "{}"),
            recorded_at=as_utc(row.recorded_at),
            released_at=as_utc(row.released_at),
        )

    @staticmethod
    def _to_version(row: sa.Row) -> FeatureSetVersion:
        return FeatureSetVersion(
            name=row.name,
            version=row.version,
            entity=row.entity,
            features=json.loads(row.features),
            fingerprint=row.fingerprint,
            transform_fingerprint=row.transform_fingerprint,
            params=json.loads(row.params),
            sources=tuple(json.loads(row.sources)),
            status=row.status,
            description=row.description,
            created_at=as_utc(row.created_at),
        )
