"""Schema migrations of the platform database (Alembic), run by the stores on start-up and
by `feature-platform db upgrade`.

- A fresh database gets every table from the current definitions and is stamped at head
  (Alembic's recipe for a new database; the same result as replaying every revision).
- A database made before Alembic (tables created by the stores' `create_all`, no version
  table) is checked against the baseline's columns, then upgraded from the baseline in place
  (the baseline creates only the tables it lacks), every row kept.
- A database at an older revision is upgraded to head.
The version is kept in `feature_platform_alembic_version`, not `alembic_version`, so the
platform's schema can share a Postgres database with MLflow's or Dagster's (both use Alembic).
Adding a revision: see README.md beside this file.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from feature_platform.errors import FeaturePlatformError

VERSION_TABLE = "feature_platform_alembic_version"
BASELINE = "0001_baseline"
HERE = Path(__file__).parent

# Every module that defines platform tables (imported so `metadata` knows them all).
TABLE_MODULES = (
    "feature_platform.governance.audit",
    "feature_platform.governance.credentials",
    "feature_platform.governance.privacy",
    "feature_platform.governance.roles",
    "feature_platform.labeling.adjudication",
    "feature_platform.labeling.imports",
    "feature_platform.labeling.label_sets",
    "feature_platform.labeling.label_store",
    "feature_platform.labeling.machine_labels",
    "feature_platform.labeling.queue",
    "feature_platform.learning.auto_labels",
    "feature_platform.learning.round_attempts",
    "feature_platform.programs.registry",
    "feature_platform.store.changes",
    "feature_platform.store.online",
    "feature_platform.store.registry",
    "feature_platform.web.sessions",
)

_lock = threading.Lock()
_done: set[str] = set()  # databases brought to head by this process


class SchemaMismatchOnUpgradeError(FeaturePlatformError):
    """A database whose tables are neither the baseline's nor at a known revision."""


def target_metadata() -> sa.MetaData:
    for module in TABLE_MODULES:
        importlib.import_module(module)
    from feature_platform.store.db import metadata

    return metadata


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    return str(script.get_current_head())


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at, or None (fresh, or made before Alembic)."""
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


@contextlib.contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One migrator at a time across processes: a Postgres advisory lock, or a lock file
    beside a SQLite database file."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.migrate.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_lock(7346501)")
            conn.commit()
        try:
            yield conn
        finally:
            if conn.dialect.name == "postgresql":
                conn.rollback()
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7346501)")
                conn.commit()


def _baseline_columns() -> dict[str, set[str]]:
    """Table -> column names of the baseline revision (built in a scratch in-memory DB)."""
    scratch = sa.create_engine("sqlite://")
    with scratch.connect() as conn:
        command.upgrade(_config(conn), BASELINE)
        conn.commit()
        inspector = sa.inspect(conn)
        return {
            table: {c["name"] for c in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table != VERSION_TABLE
        }


def _check_pre_alembic(conn: sa.Connection, url: sa.URL) -> None:
    inspector = sa.inspect(conn)
    baseline = _baseline_columns()
    problems = []
    for table in sorted(set(inspector.get_table_names()) & set(baseline)):
        present = {c["name"] for c in inspector.get_columns(table)}
        missing = sorted(baseline[table] - present)
        if missing:
            problems.append(f"{table} lacks {missing}")
    if problems:
        raise SchemaMismatchOnUpgradeError(
            f"The database {url.render_as_string(hide_password=True)} has platform tables "
            f"but no migration version, and they do not match the baseline schema "
            f"({'; '.join(problems)}); it was not changed. Restore it from a backup taken "
            f"with the matching release, or migrate it by hand and stamp it."
        )


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to `revision` (see the module docstring). Returns (from, to)."""
    with _exclusive(engine) as conn:
        before = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        conn.commit()
        config = _config(conn)
        if before is None:
            metadata = target_metadata()
            ours = set(metadata.tables) & set(sa.inspect(conn).get_table_names())
            if not ours and revision == "head":
                metadata.create_all(conn)
                command.stamp(config, "head")
                conn.commit()
                return None, head()
            if ours:
                _check_pre_alembic(conn, engine.url)
        command.upgrade(config, revision)
        conn.commit()
        after = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        return before, str(after)


def ensure_schema(engine: sa.Engine) -> None:
    """Upgrade-or-create once per database and process (the stores call this)."""
    key = engine.url.render_as_string(hide_password=False)
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and Path(database).exists():
        key += f"#{Path(database).stat().st_ino}"  # a deleted and re-made file is new
    if key in _done:
        return
    with _lock:
        if key in _done:
            return
        if (
            engine.url.database in (None, "", ":memory:")
            and engine.url.get_backend_name() == "sqlite"
        ):
            target_metadata().create_all(engine)  # a private in-memory DB: nothing to migrate
        else:
            upgrade(engine)
        _done.add(key)
