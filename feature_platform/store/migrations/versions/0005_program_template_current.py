"""the version each program runs (programs/registry.py): program_template_current

Existing programs get their newest published version as current (what publishing last meant
before this table existed). Skipped when already present.

Revision ID: 0005_template_current
Revises: 0004_round_attempts
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_template_current"
down_revision = "0004_round_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if "program_template_current" in set(sa.inspect(bind).get_table_names()):
        return
    current = op.create_table(
        "program_template_current",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    templates = sa.table(
        "program_templates",
        sa.column("name", sa.String),
        sa.column("version", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    newest: dict[str, tuple[int, str, object]] = {}
    for name, version, created_at in bind.execute(
        sa.select(templates.c.name, templates.c.version, templates.c.created_at)
    ):
        number = int(version.lstrip("v"))
        if name not in newest or number > newest[name][0]:
            newest[name] = (number, version, created_at)
    if newest:
        op.bulk_insert(
            current,
            [
                {"name": name, "version": version, "set_by": "platform", "at": at}
                for name, (_, version, at) in newest.items()
            ],
        )


def downgrade() -> None:
    op.drop_table("program_template_current")
