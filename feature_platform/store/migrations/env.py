"""Alembic environment: runs on the connection `feature_platform.store.migrations` hands over
(config.attributes["connection"]); there is no alembic.ini and no URL here."""

from __future__ import annotations

from alembic import context

from feature_platform.store.migrations import VERSION_TABLE, target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things: batch mode copies the table, rows included.
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
