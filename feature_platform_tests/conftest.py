"""Shared fixtures: real stores in temporary directories, and a throwaway Postgres database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def run_simulated_round(
    store: FeatureStore, program: Any, tracker: Any, number: int, annotators: Any
) -> tuple[list, Any, Any]:
    """One whole round through its steps (pool from the champion, batch, simulated answers,
    frozen training set, training); returns (its tasks, the training set, the outcome)."""
    from feature_platform.learning import rounds

    name = rounds.round_key(number)
    champion = tracker.by_alias("champion")
    model = tracker.load(champion) if champion else None
    pool = rounds.candidate_pool(store, program, model, model_feature_version=program.feature_set)
    tasks = rounds.open_batch(store, program, name, pool, champion.label if champion else None)
    annotators.answer(store.queue, name)
    _, training_set = rounds.freeze_training_set(store, program, name)
    outcome = rounds.run_training_round(store, program, tracker, training_set, name)
    return tasks, training_set, outcome


def count_sample_reads(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts, live, how often `store` reads every stored sample (offline `latest`) and a
    source (`sources.read`)."""
    reads = {"offline": 0, "sources": 0}
    latest, read = store.offline.latest, store.sources.read

    def counted_latest(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        reads["offline"] += 1
        return latest(*args, **kwargs)

    def counted_read(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        reads["sources"] += 1
        return read(*args, **kwargs)

    monkeypatch.setattr(store.offline, "latest", counted_latest)
    monkeypatch.setattr(store.sources, "read", counted_read)
    return reads


REPO_HOME = Path(__file__).resolve().parents[1] / ".fp_data"  # the default FP_HOME of a checkout


@pytest.fixture(autouse=True)
def _leave_the_checkouts_home_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that falls back on the default home writes `.fp_data` into the checkout, where
    `make demo` then refuses to run (it only empties a home it made): fail that test."""
    existed = REPO_HOME.exists()
    yield
    if not existed and REPO_HOME.exists():
        pytest.fail(
            f"{request.node.nodeid} wrote {REPO_HOME}: give it a home under tmp_path "
            f"(Settings.under(tmp_path) or FP_HOME)."
        )
