"""privacy (governance/privacy.py): privacy_column_tags, privacy_policy

Column tags of sources and feature set versions, and the program's policy (tag -> least role
that sees it unredacted). Both start empty (no tags; the default policy). Skipped when present.

Revision ID: 0007_privacy_tags
Revises: 0006_machine_labels
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_privacy_tags"
down_revision = "0006_machine_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "privacy_column_tags" not in present:
        op.create_table(
            "privacy_column_tags",
            sa.Column("subject", sa.String(length=300), nullable=False),
            sa.Column("column", sa.String(length=200), nullable=False),
            sa.Column("tags", sa.Text(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("subject", "column"),
        )
    if "privacy_policy" not in present:
        op.create_table(
            "privacy_policy",
            sa.Column("tag", sa.String(length=128), nullable=False),
            sa.Column("min_role", sa.String(length=20), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("tag"),
        )


def downgrade() -> None:
    op.drop_table("privacy_policy")
    op.drop_table("privacy_column_tags")
