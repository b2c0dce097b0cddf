"""label set versions (labeling/label_sets.py)

- label_set_versions: a store's label set, version by version (classes, the change, the
  mapping from the previous version, who and when).
- labeling_tasks.label_set_version, labeling_answers.label_set_version,
  label_adjudications.label_set_version: the version a task's classes belong to and an answer
  or decision was checked against; existing rows are version 1 (the template's classes).
- label_snapshots.label_set_version: the version a snapshot's labels are in; NULL on existing
  snapshots (made before versions existed).
Each step is skipped when already present (made by `create_all` from the definitions).

Revision ID: 0008_label_sets
Revises: 0007_privacy_tags
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_label_sets"
down_revision = "0007_privacy_tags"
branch_labels = None
depends_on = None

VERSIONED = ("labeling_tasks", "labeling_answers", "label_adjudications")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "label_set_versions" not in tables:
        op.create_table(
            "label_set_versions",
            sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("program", sa.String(length=128), nullable=False),
            sa.Column("classes", sa.Text(), nullable=False),
            sa.Column("change", sa.Text(), nullable=False),
            sa.Column("mapping", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("created_by", sa.String(length=200), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("version"),
        )
    for table in VERSIONED:
        if table not in tables:
            continue
        if "label_set_version" in {c["name"] for c in inspector.get_columns(table)}:
            continue
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("label_set_version", sa.Integer(), server_default="1", nullable=False)
            )
    if "label_snapshots" in tables and "label_set_version" not in {
        c["name"] for c in inspector.get_columns("label_snapshots")
    }:
        with op.batch_alter_table("label_snapshots") as batch:
            batch.add_column(sa.Column("label_set_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in (*VERSIONED, "label_snapshots"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("label_set_version")
    op.drop_table("label_set_versions")
