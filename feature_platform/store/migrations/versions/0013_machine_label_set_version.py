"""machine label set version: the label set version each machine label's class belongs to

- machine_labels.label_set_version (NULL on older rows, which snapshots keep only while their
  class is still in force); labeling/machine_labels.py. Skipped when already present (made by
  `create_all` from the definitions).

Revision ID: 0013_machine_label_set_version
Revises: 0012_auto_label_scorer
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_machine_label_set_version"
down_revision = "0012_auto_label_scorer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("machine_labels")}
    if "label_set_version" not in present:
        with op.batch_alter_table("machine_labels") as batch:
            batch.add_column(sa.Column("label_set_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machine_labels") as batch:
        batch.drop_column("label_set_version")
