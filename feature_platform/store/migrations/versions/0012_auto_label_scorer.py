"""auto-label scorer: which scorer proposed a round's auto-labels and its parameters

- auto_label_rounds.scorer (`champion` on older rows) and scorer_params (JSON, `{}` on older
  rows); learning/auto_label_scorers.py. Skipped when already present (made by `create_all`
  from the definitions).

Revision ID: 0012_auto_label_scorer
Revises: 0011_auto_label_rounds
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_auto_label_scorer"
down_revision = "0011_auto_label_rounds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("auto_label_rounds")}
    missing = [
        column
        for column in (
            sa.Column("scorer", sa.String(length=40), server_default="champion", nullable=False),
            sa.Column("scorer_params", sa.Text(), server_default="{}", nullable=False),
        )
        if column.name not in present
    ]
    if missing:
        with op.batch_alter_table("auto_label_rounds") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("auto_label_rounds") as batch:
        batch.drop_column("scorer_params")
        batch.drop_column("scorer")
