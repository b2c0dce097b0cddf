"""`feature-platform db ...`: the platform database's schema version (Alembic migrations)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="the platform database: schema migrations")
    commands = parser.add_subparsers(dest="db_command", required=True)
    upgrade = commands.add_parser(
        "upgrade",
        help="bring the database (FP_DATABASE_URL) to the newest schema, keeping every row",
        description="A fresh database is created at the newest revision; one made before "
        "migrations existed is checked against the baseline and upgraded in place; one at an "
        "older revision is upgraded. The stores also do this on start-up.",
    )
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=run_upgrade)
    current = commands.add_parser("current", help="the revision the database is at")
    current.set_defaults(handler=run_current)


def _engine():  # noqa: ANN202 - deferred imports keep `--help` fast
    from feature_platform.settings import Settings
    from feature_platform.store.db import create_engine

    settings = Settings.from_env()
    return create_engine(settings.database_url)


def run_upgrade(args: argparse.Namespace) -> int:
    from feature_platform.store import migrations

    engine = _engine()
    before, after = migrations.upgrade(engine, args.revision)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"{where}: already at {after}")
    else:
        print(f"{where}: upgraded from {before or 'no version (new or pre-migration)'} to {after}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from feature_platform.store import migrations

    engine = _engine()
    revision = migrations.current(engine)
    head = migrations.head()
    if revision is None:
        print("no version: a new database, or one made before migrations (run `db upgrade`)")
        return 1
    print(f"{revision}" + (" (head)" if revision == head else f" (head is {head})"))
    return 0
