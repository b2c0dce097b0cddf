"""Each program has its own stores: its own SQLite file, or its own schema on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.labeling.queue import TaskSpec
from feature_platform.names import InvalidNameError
from feature_platform.programs.project import (
    ensure_program_database,
    program_schema,
    program_settings,
    quoted_schema,
)


def _store(base: Settings, name: str) -> FeatureStore:
    ensure_program_database(base, name)
    return FeatureStore(program_settings(base, name))


def _queue_one(store: FeatureStore, key: str) -> None:
    spec = TaskSpec(
        sample_key=key,
        strategy="random",
        score=0.5,
        reason="random: a test task",
        feature_version="x@v1",
        model_version=None,
        features_shown={},
        top_classes=[],
    )
    store.queue.create_batch("round-001", [spec], ("a", "b"))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_programs_never_share_a_queue(backend: str, tmp_path: Path, request) -> None:
    base = Settings.under(tmp_path / "fp")
    if backend == "postgres":
        base = Settings(
            **{**base.__dict__, "database_url": request.getfixturevalue("postgres_url")}
        )
    first, second = _store(base, "first"), _store(base, "second")
    _queue_one(first, "7")
    _queue_one(second, "7")  # the same sample key and round in another program
    assert first.queue.sample_keys() == second.queue.sample_keys() == {"7"}
    assert len(first.queue.tasks()) == len(second.queue.tasks()) == 1
    assert first.settings.home == base.home / "programs" / "first"
    if backend == "postgres":
        assert "search_path%3Dfp_first" in first.settings.database_url
    for store in (first, second):
        store.engine.dispose()


def test_a_program_name_cannot_leave_the_home(tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError):
        program_settings(Settings.under(tmp_path), "../elsewhere")


def test_program_schema_names_are_checked_distinct_and_fit_postgres() -> None:
    names = ["wine", "wine-2", "wine.2", "wine_2", "Wine_2", "w" * 128, "w" * 127 + "x"]
    schemas = [program_schema(n) for n in names]
    assert len(set(schemas)) == len(names)  # '-', '.', case and long names never collide
    assert all(len(s.encode()) <= 63 for s in schemas)
    assert quoted_schema("wine") == "fp_wine"
    assert quoted_schema("wine-2") == '"fp_wine-2"'
    for hostile in ('x"; DROP SCHEMA public; --', "../x", "a b", ""):
        with pytest.raises(InvalidNameError):
            program_schema(hostile)
