"""Privacy of what people see: tagged columns, who may see each tag, redaction, audited views.

Columns of sources and feature sets carry tags (`pii`, `sensitive` or any custom name), declared
with the definition (`FeatureSetSpec.tags`, a template's `source.columns_tags` and
`privacy.feature_tags`) and recorded per subject (`source:<name>`, `feature_set:<name@ver>`,
the lineage's node ids) in `privacy_column_tags`. A program's policy says the least role that
sees each tag unredacted (`privacy_policy`; defaults `DEFAULT_POLICY`, and `DEFAULT_MIN_ROLE`
for a tag the policy does not name, so a forgotten entry hides rather than leaks).

`Privacy.redact_tasks(tasks, actor, purpose=...)` is the one redaction every front end calls
(web pages, `tasks export` to Label Studio JSON or JSONL): each tagged value the person may not
see becomes a marker such as "[redacted: pii]" (never dropped, so the person knows something is
withheld), the context is stamped with who it was prepared for, and every tagged value shown
unredacted is written to the audit log (`privacy.view`: person, task, columns and tags,
purpose). Renderers and exporters call `ensure_redacted(task)`, which refuses a task with tagged
columns that has not been through redaction, so a new front end cannot forget it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from feature_platform.errors import FeaturePlatformError, closest
from feature_platform.governance.identity import Actor, as_actor
from feature_platform.governance.roles import (
    ADMIN,
    LEAD,
    REVIEWER,
    ROLE_ALIASES,
    ROLES,
    AnnotatorRegistry,
    canonical_role,
    people,
)
from feature_platform.names import InvalidNameError, check_name
from feature_platform.store.db import create_tables, metadata, utcnow, write_transaction

if TYPE_CHECKING:
    from feature_platform.labeling.queue import Task

PII, SENSITIVE = "pii", "sensitive"
DEFAULT_POLICY: dict[str, str] = {PII: LEAD, SENSITIVE: REVIEWER}
DEFAULT_MIN_ROLE = LEAD  # a tag the policy does not name
STAMP = "privacy"  # the context key a redacted task carries
COLUMN_TAGS = "column_tags"  # the context key: tags of the features shown, when the task was made
SHOWN_VERSION = "features_shown_version"  # the context key: the version the values come from

column_tags = sa.Table(
    "privacy_column_tags",
    metadata,
    sa.Column("subject", sa.String(300), primary_key=True),  # source:<name> | feature_set:<id>
    sa.Column("column", sa.String(200), primary_key=True),
    sa.Column("tags", sa.Text, nullable=False),  # JSON list, sorted
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

policy_table = sa.Table(
    "privacy_policy",
    metadata,
    sa.Column("tag", sa.String(128), primary_key=True),
    sa.Column("min_role", sa.String(20), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

Tags = dict[str, tuple[str, ...]]  # column -> tags


class PrivacyError(FeaturePlatformError):
    """Tags or a policy that cannot be recorded, or a task shown without redaction."""


def marker(tags: Iterable[str]) -> str:
    """What a withheld value is replaced by."""
    return f"[redacted: {', '.join(sorted(tags))}]"


def check_tags(tags: Mapping[str, Any] | None, where: str) -> Tags:
    """`{column: [tag, ...]}` checked (names by the one name rule), tags sorted and unique.
    A single tag may be given as a string."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise PrivacyError(f"{where}: expected a mapping of column -> tags, got {tags!r}.")
    out: Tags = {}
    for column, given in tags.items():
        values = [given] if isinstance(given, str) else given
        if not isinstance(values, list | tuple | set | frozenset) or not values:
            raise PrivacyError(
                f"{where}.{column}: expected a tag or a non-empty list of tags, got {given!r}."
            )
        try:
            check_name(str(column), f"column name in {where}")
            out[str(column)] = tuple(
                sorted({check_name(v, f"tag of {where}.{column}") for v in values})
            )
        except InvalidNameError as exc:
            raise PrivacyError(str(exc)) from exc
    return dict(sorted(out.items()))


def check_policy(policy: Mapping[str, Any] | None, where: str = "privacy.policy") -> dict[str, str]:
    """`{tag: least role}` checked; `engineer` is read as `lead`."""
    if policy is None:
        return {}
    if not isinstance(policy, Mapping):
        raise PrivacyError(f"{where}: expected a mapping of tag -> role, got {policy!r}.")
    out: dict[str, str] = {}
    for tag, role in policy.items():
        try:
            check_name(str(tag), f"tag in {where}")
        except InvalidNameError as exc:
            raise PrivacyError(str(exc)) from exc
        role = canonical_role(str(role))
        if role not in ROLES:
            known = [*ROLES, *ROLE_ALIASES]
            raise PrivacyError(
                f"{where}.{tag}: unknown role {role!r}.{closest(role, known)} Known: {known}."
            )
        out[str(tag)] = role
    return out


def inherited_tags(features: Iterable[str], source_tags: Mapping[str, Sequence[str]]) -> Tags:
    """Tags a feature set's columns inherit from its source: a feature named like a tagged
    source column is taken to carry its values (transforms usually pass such columns through).
    Derived features that hide a tagged value under another name must be tagged explicitly."""
    return {f: tuple(sorted(source_tags[f])) for f in features if f in source_tags}


def merge_tags(*parts: Mapping[str, Sequence[str]]) -> Tags:
    merged: dict[str, set[str]] = {}
    for part in parts:
        for column, tags in part.items():
            merged.setdefault(column, set()).update(tags)
    return {c: tuple(sorted(t)) for c, t in sorted(merged.items())}


def feature_subject(feature_set_id: str) -> str:
    return f"feature_set:{feature_set_id}"


def source_subject(name: str) -> str:
    return f"source:{name}"


def trained_on_tagged_columns(privacy: Privacy, feature_set: Any) -> list[str]:
    """The tagged columns a model trained on `feature_set` (a FeatureSetVersion) learned
    from, as sorted "column:tag" entries (empty: none)."""
    tags = privacy.tags(feature_subject(feature_set.id))
    return sorted(f"{c}:{t}" for c, ts in tags.items() if c in feature_set.features for t in ts)


def ensure_redacted(task: Task) -> Task:
    """`task` if its context is safe to show (no tagged column, or prepared by
    `Privacy.redact_tasks`); raises PrivacyError otherwise. Every renderer and exporter calls it."""
    if task.context.get(COLUMN_TAGS) and STAMP not in task.context:
        raise PrivacyError(
            f"Task {task.id} shows tagged columns {sorted(task.context[COLUMN_TAGS])}: pass it "
            f"through Privacy.redact_tasks (feature_store.privacy) before showing or exporting it."
        )
    return task


class Privacy:
    """Column tags and the policy of one store (a program's own database), and redaction."""

    def __init__(self, engine: sa.Engine, people: AnnotatorRegistry) -> None:
        self.engine = engine
        self.people = people
        self.audit = people.audit
        create_tables(engine, column_tags, policy_table)

    # -- declarations ----------------------------------------------------------------------
    def declare(
        self, subject: str, tags: Mapping[str, Any] | None, *, actor: Actor | str | None = None
    ) -> bool:
        """Make `subject`'s tags exactly `tags` (columns not named lose theirs). Writes only a
        change: then `actor` needs `publish` and the change is audited (`privacy.tags`).
        Returns whether anything changed."""
        wanted = check_tags(tags, subject)
        if wanted == self.tags(subject):
            return False
        acting = as_actor(actor)
        self.people.require(acting, "publish")
        now = utcnow()
        with write_transaction(self.engine) as conn:
            before = self._tags(conn, subject)
            conn.execute(column_tags.delete().where(column_tags.c.subject == subject))
            if wanted:
                conn.execute(
                    column_tags.insert(),
                    [
                        {
                            "subject": subject,
                            "column": c,
                            "tags": json.dumps(list(t)),
                            "updated_at": now,
                        }
                        for c, t in wanted.items()
                    ],
                )
            self.audit.record(
                acting,
                "privacy.tags",
                subject,
                {"before": before, "after": wanted},
                conn=conn,
                now=now,
            )
        return True

    def set_policy(
        self, policy: Mapping[str, Any] | None, *, actor: Actor | str | None = None
    ) -> bool:
        """Make the store's policy `DEFAULT_POLICY` overridden by `policy` (tag -> least role).
        Writes only a change (needs `manage_programs`, audited as `privacy.policy`)."""
        wanted = {**DEFAULT_POLICY, **check_policy(policy)}
        if wanted == self.policy():
            return False
        acting = as_actor(actor)
        self.people.require(acting, "manage_programs")
        now = utcnow()
        with write_transaction(self.engine) as conn:
            before = dict(
                conn.execute(sa.select(policy_table.c.tag, policy_table.c.min_role)).all()
            )
            conn.execute(policy_table.delete())
            conn.execute(
                policy_table.insert(),
                [{"tag": t, "min_role": r, "updated_at": now} for t, r in sorted(wanted.items())],
            )
            self.audit.record(
                acting,
                "privacy.policy",
                "policy",
                {"before": before, "after": wanted},
                conn=conn,
                now=now,
            )
        return True

    # -- reads -----------------------------------------------------------------------------
    def _tags(self, conn: sa.Connection, subject: str) -> Tags:
        rows = conn.execute(
            sa.select(column_tags.c.column, column_tags.c.tags)
            .where(column_tags.c.subject == subject)
            .order_by(column_tags.c.column)
        ).all()
        return {r.column: tuple(json.loads(r.tags)) for r in rows}

    def tags(self, subject: str) -> Tags:
        """`subject`'s tagged columns (`source:<name>` or `feature_set:<name@version>`)."""
        with self.engine.connect() as conn:
            return self._tags(conn, subject)

    def all_tags(self) -> dict[str, Tags]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(column_tags).order_by(column_tags.c.subject, column_tags.c.column)
            ).all()
        out: dict[str, Tags] = {}
        for r in rows:
            out.setdefault(r.subject, {})[r.column] = tuple(json.loads(r.tags))
        return out

    def policy(self) -> dict[str, str]:
        """Tag -> the least role that sees it unredacted (the defaults until a program sets one)."""
        with self.engine.connect() as conn:
            return self._policy(conn)

    @staticmethod
    def _policy(conn: sa.Connection) -> dict[str, str]:
        stored = dict(conn.execute(sa.select(policy_table.c.tag, policy_table.c.min_role)).all())
        return stored or dict(DEFAULT_POLICY)

    def role_of(self, actor: Actor | str | None) -> str | None:
        """The role redaction goes by: the person's, if registered and active; the system
        identity is an admin; anyone else has none (sees no tagged value)."""
        with self.engine.connect() as conn:
            return self._role_of(conn, as_actor(actor))

    @staticmethod
    def _role_of(conn: sa.Connection, acting: Actor) -> str | None:
        if acting.is_system:
            return ADMIN
        found = conn.execute(
            sa.select(people.c.role, people.c.active).where(people.c.name == acting.name)
        ).first()
        if found is None or not found.active:
            return None
        return canonical_role(found.role)

    @staticmethod
    def may_see(role: str | None, tag: str, policy: Mapping[str, str]) -> bool:
        if role is None:
            return False
        least = policy.get(tag, DEFAULT_MIN_ROLE)
        return ROLES.index(role) >= ROLES.index(least)

    # -- redaction -------------------------------------------------------------------------
    def redact_tasks(
        self, tasks: Sequence[Task], actor: Actor | str | None, *, purpose: str
    ) -> list[Task]:
        """`tasks` as `actor` may see them: each tagged feature value their role may not see
        replaced by `marker(tags)`, the context stamped, and one audit entry (`privacy.view`)
        per task whose tagged values were shown unredacted (naming the person, the task, the
        columns and tags, and `purpose`, e.g. "web:annotate" or "export:jsonl")."""
        acting = as_actor(actor)
        versions = {t.context.get(SHOWN_VERSION) or t.feature_version for t in tasks}
        with self.engine.connect() as conn:  # one connection for every read
            role, policy = self._role_of(conn, acting), self._policy(conn)
            known = {v: self._tags(conn, feature_subject(v)) for v in versions}
        out: list[Task] = []
        views: list[tuple[str, dict[str, Any]]] = []
        for task in tasks:
            version = task.context.get(SHOWN_VERSION) or task.feature_version
            context, shown = redact(task.context, role, policy, known[version], acting.name)
            out.append(dataclasses.replace(task, context=context))
            if shown:
                views.append((task.id, shown))
        if views:
            now = utcnow()
            with write_transaction(self.engine) as conn:
                for task_id, shown in views:
                    self.audit.record(
                        acting,
                        "privacy.view",
                        f"task:{task_id}",
                        {
                            "columns": {c: list(t) for c, t in shown.items()},
                            "tags": sorted({t for ts in shown.values() for t in ts}),
                            "purpose": purpose,
                            "role": role,
                        },
                        conn=conn,
                        now=now,
                    )
        return out

    def redact_task(self, task: Task, actor: Actor | str | None, *, purpose: str) -> Task:
        return self.redact_tasks([task], actor, purpose=purpose)[0]


def redact(
    context: Mapping[str, Any],
    role: str | None,
    policy: Mapping[str, str],
    current_tags: Mapping[str, Sequence[str]],
    viewer: str,
) -> tuple[dict[str, Any], Tags]:
    """The context with the values `role` may not see replaced by markers, and the tagged
    columns shown unredacted (what the audit entry names). The tags are those recorded with
    the task and those the feature set version carries now (a tag added later applies to
    tasks made before it)."""
    tags = merge_tags(
        {c: list(t) for c, t in (context.get(COLUMN_TAGS) or {}).items()}, current_tags
    )
    shown = dict(context.get("features_shown") or {})
    redacted: Tags = {}
    visible: Tags = {}
    for column, column_tags_ in tags.items():
        if column not in shown or not column_tags_:
            continue
        hidden = tuple(t for t in column_tags_ if not Privacy.may_see(role, t, policy))
        if hidden:
            shown[column] = marker(hidden)
            redacted[column] = hidden
        else:
            visible[column] = tuple(column_tags_)
    out = dict(context)
    out["features_shown"] = shown
    out[COLUMN_TAGS] = {c: list(t) for c, t in tags.items() if c in shown}
    out[STAMP] = {
        "viewer": viewer,
        "role": role,
        "redacted": {c: list(t) for c, t in redacted.items()},
    }
    return out, visible
