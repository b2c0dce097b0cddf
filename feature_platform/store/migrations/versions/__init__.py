"""Alembic revisions of the platform schema (a package so installs ship them)."""
