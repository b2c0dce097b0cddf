"""labels no person gave (labeling/machine_labels.py): machine_labels, machine_label_withdrawals

Skipped when already present (a database created by `create_all` after this change).

Revision ID: 0006_machine_labels
Revises: 0005_template_current
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_machine_labels"
down_revision = "0005_template_current"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "machine_labels" not in present:
        op.create_table(
            "machine_labels",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("sample_key", sa.String(length=200), nullable=False),
            sa.Column("label", sa.String(length=200), nullable=False),
            sa.Column("source_kind", sa.String(length=20), nullable=False),
            sa.Column("source", sa.String(length=260), nullable=False),
            sa.Column("event_id", sa.String(length=200), nullable=False),
            sa.Column("confidence", sa.Float(), nullable=True),
            sa.Column("round", sa.String(length=100), nullable=True),
            sa.Column("provenance", sa.Text(), nullable=False),
            sa.Column("recorded_by", sa.String(length=200), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("source", "event_id", name="uq_machine_labels_source_event"),
        )
        op.create_index("ix_machine_labels_sample_key", "machine_labels", ["sample_key"])
        op.create_index("ix_machine_labels_source_kind", "machine_labels", ["source_kind"])
    if "machine_label_withdrawals" not in present:
        op.create_table(
            "machine_label_withdrawals",
            sa.Column("label_id", sa.Integer(), nullable=False),
            sa.Column("by", sa.String(length=200), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["label_id"], ["machine_labels.id"]),
            sa.PrimaryKeyConstraint("label_id"),
        )


def downgrade() -> None:
    op.drop_table("machine_label_withdrawals")
    op.drop_index("ix_machine_labels_source_kind", table_name="machine_labels")
    op.drop_index("ix_machine_labels_sample_key", table_name="machine_labels")
    op.drop_table("machine_labels")
