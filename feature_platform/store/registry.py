"""Registry of feature set versions, their lineage, lifecycle status and aliases (SQL)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from feature_platform.errors import (
    FeatureVersionConflictError,
    UnknownFeatureSetError,
    closest,
)
from feature_platform.store.db import as_utc, create_tables, metadata, utcnow
from feature_platform.store.feature_set import FeatureSetSpec, FeatureSetVersion

STATUSES = ("draft", "active", "deprecated")

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
    return "; ".join(c for c in changes if c) or "fingerprint"


class Registry:
    """Feature set versions keyed by (name, version); aliases resolve to versions."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(engine, feature_set_versions, feature_set_aliases, alias_moves)

    # -- writing ---------------------------------------------------------------------------
    def register(self, spec: FeatureSetSpec, status: str = "draft") -> FeatureSetVersion:
        """Register `spec`. Re-registering the identical definition is a no-op; a changed
        definition under an existing version is refused with the difference spelled out."""
        with self.engine.begin() as conn:
            old = conn.execute(
                sa.select(feature_set_versions).where(
                    feature_set_versions.c.name == spec.name,
                    feature_set_versions.c.version == spec.version,
                )
            ).first()
            if old is not None:
                if old.fingerprint != spec.fingerprint:
                    raise FeatureVersionConflictError(
                        f"{spec.id} is already registered with a different definition: "
                        f"{_describe_difference(old, spec)}. Register the change as a new "
                        f"version instead of overwriting {spec.id}."
                    )
                return self._to_version(old)
            conn.execute(
                feature_set_versions.insert().values(
                    name=spec.name,
                    version=spec.version,
                    entity=spec.entity,
                    features=json.dumps(dict(spec.features)),
                    fingerprint=spec.fingerprint,
                    transform_fingerprint=spec.transform_fingerprint,
                    params=json.dumps(dict(spec.params), default=str),
                    sources=json.dumps(list(spec.sources)),
                    status=status,
                    description=spec.description,
                    created_at=utcnow(),
                )
            )
        return self.get(spec.name, spec.version)

    def set_status(self, name: str, version: str, status: str) -> FeatureSetVersion:
        if status not in STATUSES:
            raise ValueError(f"Unknown status {status!r}; expected one of {STATUSES}.")
        self.get(name, version)
        with self.engine.begin() as conn:
            conn.execute(
                feature_set_versions.update()
                .where(
                    feature_set_versions.c.name == name,
                    feature_set_versions.c.version == version,
                )
                .values(status=status)
            )
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `name@alias` at `version` in one transaction, recording the move."""
        if alias in self.versions(name) or alias.startswith("v") and alias[1:].isdigit():
            raise ValueError(f"Alias {alias!r} looks like a version; choose another name.")
        self.get(name, version)
        now = utcnow()
        with self.engine.begin() as conn:
            current = conn.execute(
                sa.select(feature_set_aliases.c.version).where(
                    feature_set_aliases.c.name == name, feature_set_aliases.c.alias == alias
                )
            ).scalar()
            if current is None:
                conn.execute(
                    feature_set_aliases.insert().values(
                        name=name, alias=alias, version=version, updated_at=now
                    )
                )
            else:
                conn.execute(
                    feature_set_aliases.update()
                    .where(
                        feature_set_aliases.c.name == name, feature_set_aliases.c.alias == alias
                    )
                    .values(version=version, updated_at=now)
                )
            conn.execute(
                alias_moves.insert().values(
                    name=name, alias=alias, from_version=current, to_version=version, moved_at=now
                )
            )

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(feature_set_versions.c.name).distinct()).scalars()
            return sorted(rows)

    def versions(self, name: str) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(feature_set_versions.c.version).where(
                    feature_set_versions.c.name == name
                )
            ).scalars()
            return sorted(rows)

    def aliases(self, name: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(feature_set_aliases.c.alias, feature_set_aliases.c.version).where(
                    feature_set_aliases.c.name == name
                )
            )
            return {r.alias: r.version for r in rows}

    def alias_history(self, name: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(alias_moves)
                .where(alias_moves.c.name == name)
                .order_by(alias_moves.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def get(self, name: str, version: str) -> FeatureSetVersion:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(feature_set_versions).where(
                    feature_set_versions.c.name == name,
                    feature_set_versions.c.version == version,
                )
            ).first()
        if row is None:
            known = self.versions(name)
            if not known:
                raise UnknownFeatureSetError(
                    f"Unknown feature set {name!r}.{closest(name, self.names())} "
                    f"Registered: {self.names()}."
                )
            raise UnknownFeatureSetError(
                f"Unknown version {name}@{version}.{closest(version, known)} "
                f"Versions: {known}; aliases: {sorted(self.aliases(name))}."
            )
        return self._to_version(row)

    def resolve(self, name: str, version_or_alias: str) -> FeatureSetVersion:
        """`name@v2` or `name@serving` -> the registered version."""
        if version_or_alias in self.versions(name):
            return self.get(name, version_or_alias)
        aliases = self.aliases(name)
        if version_or_alias in aliases:
            return self.get(name, aliases[version_or_alias])
        return self.get(name, version_or_alias)  # raises with suggestions

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
