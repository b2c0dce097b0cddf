"""web sign-in (credentials, sessions), program templates, label snapshot methods

- governance_credentials: scrypt password hashes per person (web branch).
- web_sessions: server-side web sessions, indexed by person (web branch).
- program_templates: published program template versions (programs branch).
- label_snapshots: `method_used` (String(50), NULL) and `method_note` (Text, NULL), the
  aggregation method that actually ran and why (learning branch); NULL on older snapshots.
Each step is skipped when already present (a database the stores' `create_all` made from the
same definitions before this revision existed).

Revision ID: 0003_signin_templates_methods
Revises: 0002_answer_revisions_sources
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_signin_templates_methods"
down_revision = "0002_answer_revisions_sources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "governance_credentials" not in tables:
        op.create_table(
            "governance_credentials",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("salt", sa.LargeBinary(length=64), nullable=False),
            sa.Column("hash", sa.LargeBinary(length=128), nullable=False),
            sa.Column("n", sa.Integer(), nullable=False),
            sa.Column("r", sa.Integer(), nullable=False),
            sa.Column("p", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "web_sessions" not in tables:
        op.create_table(
            "web_sessions",
            sa.Column("id_hash", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("csrf", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id_hash"),
        )
        op.create_index("ix_web_sessions_name", "web_sessions", ["name"])
    if "program_templates" not in tables:
        op.create_table(
            "program_templates",
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("version", sa.String(length=20), nullable=False),
            sa.Column("fingerprint", sa.String(length=64), nullable=False),
            sa.Column("document", sa.Text(), nullable=False),
            sa.Column("base_dir", sa.Text(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("name", "version"),
            sa.UniqueConstraint("name", "fingerprint", name="uq_program_template_content"),
        )
    columns = {c["name"] for c in inspector.get_columns("label_snapshots")}
    missing = [
        column
        for column in (
            sa.Column("method_used", sa.String(length=50), nullable=True),
            sa.Column("method_note", sa.Text(), nullable=True),
        )
        if column.name not in columns
    ]
    if missing:
        # Nullable columns: existing snapshots keep NULL ("written before this was recorded").
        with op.batch_alter_table("label_snapshots") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("label_snapshots") as batch:
        batch.drop_column("method_note")
        batch.drop_column("method_used")
    op.drop_table("program_templates")
    op.drop_index("ix_web_sessions_name", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("governance_credentials")
