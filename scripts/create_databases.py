"""Create the PostgreSQL databases named by the given SQLAlchemy URLs when they do not exist
yet (`make up` runs it for the Dagster instance and the platform stores).

    .venv/bin/python scripts/create_databases.py postgresql+psycopg2://postgres@127.0.0.1:5432/dagster
"""

from __future__ import annotations

import sys

import sqlalchemy as sa


def ensure_database(url: str) -> bool:
    """Create the URL's database on its server if missing; True when it was created."""
    target = sa.engine.make_url(url)
    if not target.drivername.startswith("postgresql"):
        return False  # SQLite and others create their file on first use
    if not target.database:
        raise SystemExit(f"{url!r} names no database (expected .../<database>).")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).scalar()
            if not exists:
                quoted = conn.dialect.identifier_preparer.quote(target.database)
                conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except sa.exc.OperationalError as exc:
        raise SystemExit(
            f"Cannot reach PostgreSQL for {target.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    finally:
        admin.dispose()
    return not exists


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for url in argv:
        created = ensure_database(url)
        name = sa.engine.make_url(url).render_as_string(hide_password=True)
        print(f"{'created' if created else 'exists '} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
