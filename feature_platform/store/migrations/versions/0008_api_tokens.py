"""API tokens for machine clients (governance/credentials.py): governance_api_tokens

Skipped when already present (a database created by `create_all` after this change).

Revision ID: 0008_api_tokens
Revises: 0007_snapshot_sources
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_api_tokens"
down_revision = "0007_snapshot_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "governance_api_tokens" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "governance_api_tokens",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_governance_api_tokens_name", "governance_api_tokens", ["name"])


def downgrade() -> None:
    op.drop_index("ix_governance_api_tokens_name", table_name="governance_api_tokens")
    op.drop_table("governance_api_tokens")
