"""baseline: the schema of main at commit 6e9c4ec (before Alembic)

Each table is created only when it is missing: a database made before Alembic by the stores'
`create_all` (any subset of these tables, created lazily) takes this revision in place, and
its rows are untouched. `feature_platform.store.migrations.upgrade` first checks that the
tables present carry the baseline's columns.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "audit_log" not in existing:
        op.create_table(
            "audit_log",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("action", sa.String(length=100), nullable=False),
            sa.Column("target", sa.String(length=300), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
        op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    if "feature_set_alias_moves" not in existing:
        op.create_table(
            "feature_set_alias_moves",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("alias", sa.String(length=100), nullable=False),
            sa.Column("from_version", sa.String(length=50), nullable=True),
            sa.Column("to_version", sa.String(length=50), nullable=False),
            sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "feature_set_aliases" not in existing:
        op.create_table(
            "feature_set_aliases",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("alias", sa.String(length=100), nullable=False),
            sa.Column("version", sa.String(length=50), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name", "alias"),
        )
    if "feature_set_status_changes" not in existing:
        op.create_table(
            "feature_set_status_changes",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("version", sa.String(length=50), nullable=False),
            sa.Column("from_status", sa.String(length=20), nullable=True),
            sa.Column("to_status", sa.String(length=20), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "feature_set_usage" not in existing:
        op.create_table(
            "feature_set_usage",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("version", sa.String(length=50), nullable=False),
            sa.Column("consumer_kind", sa.String(length=50), nullable=False),
            sa.Column("consumer_id", sa.String(length=300), nullable=False),
            sa.Column("upstream", sa.String(length=360), nullable=True),
            sa.Column("details", sa.Text(), nullable=False),
            sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("name", "version", "consumer_kind", "consumer_id"),
        )
    if "feature_set_versions" not in existing:
        op.create_table(
            "feature_set_versions",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("version", sa.String(length=50), nullable=False),
            sa.Column("entity", sa.String(length=200), nullable=False),
            sa.Column("features", sa.Text(), nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("transform_fingerprint", sa.String(length=64), nullable=False),
            sa.Column("params", sa.Text(), nullable=False),
            sa.Column("sources", sa.Text(), nullable=False),
            sa.Column("status", sa.String(length=20), nullable=False),
            sa.Column("description", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name", "version"),
        )
    if "feature_store_changes" not in existing:
        op.create_table(
            "feature_store_changes",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("counter", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "governance_people" not in existing:
        op.create_table(
            "governance_people",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("role", sa.String(length=20), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "label_snapshots" not in existing:
        op.create_table(
            "label_snapshots",
            sa.Column("id", sa.String(length=40), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("method", sa.String(length=50), nullable=False),
            sa.Column("label_count", sa.Integer(), nullable=False),
            sa.Column("answer_count", sa.Integer(), nullable=False),
            sa.Column("content_hash", sa.String(length=64), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "labeling_imports" not in existing:
        op.create_table(
            "labeling_imports",
            sa.Column("id", sa.String(length=40), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("format", sa.String(length=30), nullable=False),
            sa.Column("accepted", sa.Integer(), nullable=False),
            sa.Column("already_recorded", sa.Integer(), nullable=False),
            sa.Column("rejected", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "labeling_quarantine" not in existing:
        op.create_table(
            "labeling_quarantine",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("import_id", sa.String(length=40), nullable=False),
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("line", sa.Integer(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("raw", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_labeling_quarantine_import_id"),
            "labeling_quarantine",
            ["import_id"],
            unique=False,
        )
    if "labeling_tasks" not in existing:
        op.create_table(
            "labeling_tasks",
            sa.Column("id", sa.String(length=40), nullable=False),
            sa.Column("round", sa.String(length=100), nullable=False),
            sa.Column("sample_key", sa.String(length=200), nullable=False),
            sa.Column("state", sa.String(length=20), nullable=False),
            sa.Column("answers_needed", sa.Integer(), nullable=False),
            sa.Column("classes", sa.Text(), nullable=False),
            sa.Column("priority", sa.Float(), nullable=False),
            sa.Column("strategy", sa.String(length=50), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("model_version", sa.String(length=200), nullable=True),
            sa.Column("feature_version", sa.String(length=260), nullable=False),
            sa.Column("context", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("round", "sample_key", name="uq_task_round_sample"),
        )
        op.create_index(op.f("ix_labeling_tasks_round"), "labeling_tasks", ["round"], unique=False)
        op.create_index(op.f("ix_labeling_tasks_state"), "labeling_tasks", ["state"], unique=False)
    if "online_applied_snapshots" not in existing:
        op.create_table(
            "online_applied_snapshots",
            sa.Column("feature_set", sa.String(length=260), nullable=False),
            sa.Column("snapshot", sa.String(length=300), nullable=False),
            sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("feature_set", "snapshot"),
        )
    if "online_feature_sets" not in existing:
        op.create_table(
            "online_feature_sets",
            sa.Column("feature_set", sa.String(length=260), nullable=False),
            sa.Column("generation", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("feature_set"),
        )
    if "online_feature_values" not in existing:
        op.create_table(
            "online_feature_values",
            sa.Column("feature_set", sa.String(length=260), nullable=False),
            sa.Column("entity_key", sa.String(length=200), nullable=False),
            sa.Column("event_ns", sa.BigInteger(), nullable=False),
            sa.Column("created_ns", sa.BigInteger(), nullable=False),
            sa.Column("payload", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("feature_set", "entity_key"),
        )
    if "governance_identities" not in existing:
        op.create_table(
            "governance_identities",
            sa.Column("system", sa.String(length=50), nullable=False),
            sa.Column("external_id", sa.String(length=200), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.ForeignKeyConstraint(
                ["name"],
                ["governance_people.name"],
            ),
            sa.PrimaryKeyConstraint("system", "external_id"),
        )
    if "label_adjudications" not in existing:
        op.create_table(
            "label_adjudications",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("task_id", sa.String(length=40), nullable=False),
            sa.Column("sample_key", sa.String(length=200), nullable=False),
            sa.Column("label", sa.String(length=200), nullable=False),
            sa.Column("reviewer", sa.String(length=200), nullable=False),
            sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(
                ["task_id"],
                ["labeling_tasks.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            op.f("ix_label_adjudications_sample_key"),
            "label_adjudications",
            ["sample_key"],
            unique=False,
        )
    if "label_snapshot_row_sources" not in existing:
        op.create_table(
            "label_snapshot_row_sources",
            sa.Column("snapshot_id", sa.String(length=40), nullable=False),
            sa.Column("sample_key", sa.String(length=200), nullable=False),
            sa.Column("source", sa.String(length=20), nullable=False),
            sa.Column("confidence", sa.Float(), nullable=False),
            sa.Column("adjudication_id", sa.Integer(), nullable=True),
            sa.Column("reviewer", sa.String(length=200), nullable=True),
            sa.ForeignKeyConstraint(
                ["snapshot_id"],
                ["label_snapshots.id"],
            ),
            sa.PrimaryKeyConstraint("snapshot_id", "sample_key"),
        )
    if "label_snapshot_rows" not in existing:
        op.create_table(
            "label_snapshot_rows",
            sa.Column("snapshot_id", sa.String(length=40), nullable=False),
            sa.Column("sample_key", sa.String(length=200), nullable=False),
            sa.Column("label", sa.String(length=200), nullable=False),
            sa.Column("n_answers", sa.Integer(), nullable=False),
            sa.Column("agreement", sa.Float(), nullable=False),
            sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["snapshot_id"],
                ["label_snapshots.id"],
            ),
            sa.PrimaryKeyConstraint("snapshot_id", "sample_key"),
        )
    if "labeling_answers" not in existing:
        op.create_table(
            "labeling_answers",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("task_id", sa.String(length=40), nullable=False),
            sa.Column("annotator", sa.String(length=200), nullable=False),
            sa.Column("label", sa.String(length=200), nullable=False),
            sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("time_spent_s", sa.Float(), nullable=True),
            sa.Column("submission_id", sa.String(length=200), nullable=False),
            sa.ForeignKeyConstraint(
                ["task_id"],
                ["labeling_tasks.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("submission_id"),
            sa.UniqueConstraint("task_id", "annotator", name="uq_answer_task_annotator"),
        )
    if "labeling_leases" not in existing:
        op.create_table(
            "labeling_leases",
            sa.Column("task_id", sa.String(length=40), nullable=False),
            sa.Column("annotator", sa.String(length=200), nullable=False),
            sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(
                ["task_id"],
                ["labeling_tasks.id"],
            ),
            sa.PrimaryKeyConstraint("task_id", "annotator"),
        )
    if "labeling_task_events" not in existing:
        op.create_table(
            "labeling_task_events",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("task_id", sa.String(length=40), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("event", sa.String(length=40), nullable=False),
            sa.Column("annotator", sa.String(length=200), nullable=True),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(
                ["task_id"],
                ["labeling_tasks.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(
            "ix_labeling_task_events_task", "labeling_task_events", ["task_id", "id"], unique=False
        )


def downgrade() -> None:
    raise NotImplementedError("the baseline is the oldest schema; there is nothing below it")
