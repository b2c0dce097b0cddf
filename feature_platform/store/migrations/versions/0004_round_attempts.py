"""round attempts: a round retried after its run failed for good (learning/round_attempts.py)

- round_attempts: (round, attempt) -> who asked, why, when; the sensors' run keys carry the
  attempt number. Skipped when already present (made by `create_all` from the definitions).

Revision ID: 0004_round_attempts
Revises: 0003_signin_templates_methods
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_round_attempts"
down_revision = "0003_signin_templates_methods"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "round_attempts" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "round_attempts",
        sa.Column("round", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("round", "attempt"),
    )


def downgrade() -> None:
    op.drop_table("round_attempts")
