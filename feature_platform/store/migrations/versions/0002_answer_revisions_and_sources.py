"""answer revisions and passes (security branch), Label Studio provenance (imports branch)

- labeling_answers: `revision` (int, default 1), `revises` (answer id), `revision_reason`
  (text, default ''); one person's answer per task becomes one row per revision
  (uq_answer_task_annotator -> uq_answer_revision), and a submission id with one label is
  stored once (uq_answer_submission_label).
- labeling_passes: skip / unsure outcomes.
- labeling_answer_sources: the other tool's task / annotation / user ids per imported answer.
Each step is skipped when already present (a database the stores' `create_all` made from the
same definitions before this revision existed).

Revision ID: 0002_answer_revisions_sources
Revises: 0001_baseline
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_answer_revisions_sources"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "labeling_answer_sources" not in tables:
        op.create_table(
            "labeling_answer_sources",
            sa.Column("answer_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("submission_id", sa.String(length=200), nullable=False),
            sa.Column("system", sa.String(length=50), nullable=False),
            sa.Column("external_task", sa.String(length=200), nullable=True),
            sa.Column("external_annotation", sa.String(length=200), nullable=True),
            sa.Column("external_user", sa.String(length=200), nullable=True),
            sa.Column("import_id", sa.String(length=40), nullable=False),
            sa.Column("source", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("answer_id"),
        )
        op.create_index(
            "ix_labeling_answer_sources_submission_id",
            "labeling_answer_sources",
            ["submission_id"],
        )
    if "labeling_passes" not in tables:
        op.create_table(
            "labeling_passes",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("task_id", sa.String(length=40), nullable=False),
            sa.Column("annotator", sa.String(length=200), nullable=False),
            sa.Column("outcome", sa.String(length=20), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["task_id"], ["labeling_tasks.id"]),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("task_id", "annotator", "outcome", name="uq_pass_task_annotator"),
        )
    columns = {c["name"] for c in inspector.get_columns("labeling_answers")}
    if "revision" in columns:
        return  # made by create_all from these definitions already
    uniques = inspector.get_unique_constraints("labeling_answers")
    # The baseline's `submission_id UNIQUE` is unnamed on SQLite (named ..._key by Postgres):
    # the naming convention gives it a name batch mode can drop.
    on_submission = [u for u in uniques if u["column_names"] == ["submission_id"]]
    names = {u["name"] for u in uniques}
    convention = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
    # SQLite: batch mode rebuilds the table (rows copied); Postgres: plain ALTERs.
    with op.batch_alter_table("labeling_answers", naming_convention=convention) as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("revises", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("revision_reason", sa.Text(), server_default="", nullable=False))
        if "uq_answer_task_annotator" in names:
            batch.drop_constraint("uq_answer_task_annotator", type_="unique")
        for unique in on_submission:
            batch.drop_constraint(
                unique["name"] or "uq_labeling_answers_submission_id", type_="unique"
            )
        batch.create_unique_constraint("uq_answer_revision", ["task_id", "annotator", "revision"])
        batch.create_unique_constraint("uq_answer_submission_label", ["submission_id", "label"])
        batch.create_foreign_key("fk_answer_revises", "labeling_answers", ["revises"], ["id"])


def downgrade() -> None:
    raise NotImplementedError(
        "answer revisions cannot be folded back into one answer per person; restore a backup"
    )
