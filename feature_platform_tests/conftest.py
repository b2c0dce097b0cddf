"""Shared fixtures: real stores in temporary directories, and a throwaway Postgres database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits
from feature_platform.governance.identity import acting_as, system_actor

POSTGRES_ADMIN_URL = os.environ.get(
    "FP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _postgres_reachable() -> bool:
    try:
        engine = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            return True
    except Exception:  # noqa: BLE001 - any failure means "no server here"
        return False


@pytest.fixture(autouse=True, scope="session")
def act_as_platform() -> Iterator[None]:
    """Core calls that name nobody act as the platform's system identity (as Dagster's do);
    identity tests act as specific people with `acting_as` or `actor=`, and the command line
    always acts as FP_USER / the OS user."""
    with acting_as(system_actor()):
        yield


def register_people(engine: sa.Engine, role: str = "annotator", *names: str) -> None:
    """Register `names` with `role` (as the platform), for tests whose people label."""
    from feature_platform.governance.roles import AnnotatorRegistry

    registry = AnnotatorRegistry(engine)
    for name in names:
        registry.add(name, role, actor=system_actor())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty Postgres database for one test, dropped afterwards.

    Skipped when no server is reachable, unless FP_REQUIRE_POSTGRES=1 (CI), where it fails.
    """
    if not _postgres_reachable():
        if os.environ.get("FP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"FP_REQUIRE_POSTGRES=1 but no Postgres answers at {POSTGRES_ADMIN_URL}")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"fp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrizes a test over the embedded SQLite default and production Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """An empty store with every part embedded under a temporary directory."""
    return FeatureStore(Settings.under(tmp_path / "fp"))


@pytest.fixture
def digits_store(store: FeatureStore) -> FeatureStore:
    """A store with the digits source loaded and digits@v1, digits@v2 published."""
    digits.bootstrap(store)
    return store
