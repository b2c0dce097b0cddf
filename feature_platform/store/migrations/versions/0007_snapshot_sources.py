"""label snapshots that use machine labels (labeling/label_store.py)

- label_snapshot_source_weights: per snapshot, each source (kind or exact machine source) it
  used, with its weight, the votes it gave and the labels its votes support.
- label_snapshot_row_sources: `label_source_kind` (String(20), NULL) and `n_human_answers`
  (Integer, NULL) per row; NULL on rows written before (they came from people only).

Each step is skipped when already present (a database created by `create_all` after this
change).

Revision ID: 0007_snapshot_sources
Revises: 0006_machine_labels
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_snapshot_sources"
down_revision = "0006_machine_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "label_snapshot_source_weights" not in set(inspector.get_table_names()):
        op.create_table(
            "label_snapshot_source_weights",
            sa.Column("snapshot_id", sa.String(length=40), nullable=False),
            sa.Column("source", sa.String(length=260), nullable=False),
            sa.Column("weight", sa.Float(), nullable=False),
            sa.Column("n_votes", sa.Integer(), nullable=False),
            sa.Column("n_labels", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["snapshot_id"], ["label_snapshots.id"]),
            sa.PrimaryKeyConstraint("snapshot_id", "source"),
        )
    columns = {c["name"] for c in inspector.get_columns("label_snapshot_row_sources")}
    missing = [
        column
        for column in (
            sa.Column("label_source_kind", sa.String(length=20), nullable=True),
            sa.Column("n_human_answers", sa.Integer(), nullable=True),
        )
        if column.name not in columns
    ]
    if missing:
        # Nullable: existing rows keep NULL, read as "people only".
        with op.batch_alter_table("label_snapshot_row_sources") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("label_snapshot_row_sources") as batch:
        batch.drop_column("n_human_answers")
        batch.drop_column("label_source_kind")
    op.drop_table("label_snapshot_source_weights")
