"""auto-labels from the model, one row per round (learning/auto_labels.py): auto_label_rounds

Skipped when already present (a database created by `create_all` after this change).

Revision ID: 0011_auto_label_rounds
Revises: 0010_api_tokens
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_auto_label_rounds"
down_revision = "0010_api_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "auto_label_rounds" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "auto_label_rounds",
        sa.Column("round", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("feature_version", sa.String(length=260), nullable=False),
        sa.Column("target_precision", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("calibrated_threshold", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("raise_steps", sa.Integer(), nullable=False),
        sa.Column("holdout_precision_bound", sa.Float(), nullable=True),
        sa.Column("holdout_accepted", sa.Integer(), nullable=False),
        sa.Column("holdout_evaluated", sa.Integer(), nullable=False),
        sa.Column("pool", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.Column("labeled", sa.Integer(), nullable=False),
        sa.Column("reviewed", sa.Integer(), nullable=False),
        sa.Column("confirmed", sa.Integer(), nullable=False),
        sa.Column("measured_lower", sa.Float(), nullable=True),
        sa.Column("measured_upper", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round"),
    )


def downgrade() -> None:
    op.drop_table("auto_label_rounds")
