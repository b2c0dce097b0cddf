"""Security through Dagster: hostile partition keys never become paths outside FP_HOME, and
a database password never lands in the run storage."""

from __future__ import annotations

import dataclasses
import sqlite3
import zlib
from pathlib import Path

import dagster as dg
import pytest

from feature_platform.catalog import digits
from feature_platform.defs.factory import build_program_defs
from feature_platform.defs.resources import StoreResource, build_resources
from feature_platform.programs.project import ProgramDefinition
from feature_platform.settings import Settings

DIGITS = build_program_defs(ProgramDefinition(digits.template()).with_overrides(batch_size=5))
CANDIDATE_POOL = next(
    a for a in DIGITS.round_assets if a.key == DIGITS.context.key("candidate_pool")
)
SOURCE = DIGITS.assets[0]


@pytest.mark.slow
def test_hostile_round_partition_key_writes_nothing_outside_fp_home(tmp_path: Path) -> None:
    settings = Settings.under(tmp_path / "home" / "fp")
    digits.bootstrap(StoreResource.from_settings(settings).for_program("digits"))
    instance = dg.DagsterInstance.ephemeral()
    hostile = "../../../escaped"
    instance.add_dynamic_partitions(DIGITS.context.rounds.name, [hostile])
    result = dg.materialize(
        [CANDIDATE_POOL],
        instance=instance,
        resources=build_resources(settings),
        partition_key=hostile,
        raise_on_error=False,
    )
    assert not result.success
    written = [p for p in tmp_path.rglob("*") if p.is_file() and settings.home not in p.parents]
    assert written == []
    assert not list(tmp_path.rglob("escaped*"))
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "Invalid partition key" in failure.event_specific_data.error.to_string()


@pytest.mark.slow
def test_round_partition_key_still_lands_under_fp_home(tmp_path: Path) -> None:
    settings = Settings.under(tmp_path / "fp")
    digits.bootstrap(StoreResource.from_settings(settings).for_program("digits"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DIGITS.context.rounds.name, ["round-001"])
    result = dg.materialize(
        [CANDIDATE_POOL],
        instance=instance,
        resources=build_resources(settings),
        partition_key="round-001",
    )
    assert result.success
    pool = settings.home / "assets" / "digits" / "candidate_pool" / "round-001.parquet"
    assert pool.exists()


@pytest.mark.postgres
def test_database_password_never_lands_in_run_storage(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-PW-4242"
    # The test server trusts local connections, so any password connects.
    url = postgres_url.replace("postgres@", f"postgres:{secret}@")
    assert secret in url
    monkeypatch.setenv("FP_DATABASE_URL", url)
    settings = dataclasses.replace(Settings.under(tmp_path / "fp"), database_url=url)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        result = dg.materialize(
            [SOURCE],
            instance=instance,
            resources=build_resources(settings),
            partition_key=DIGITS.context.arrival_days.get_partition_keys()[0],
        )
        assert result.success
        runs = instance.get_runs()
        assert runs
    assert secret not in _run_storage_text(dagster_home)
    # The variable's name is what Dagster keeps.
    assert "FP_DATABASE_URL" in _run_storage_text(dagster_home)


def _run_storage_text(root: Path) -> str:
    """Everything the instance under `root` stored: raw file bytes, and every cell of every
    SQLite table, zlib-decompressed where Dagster compressed it (job snapshots are)."""
    parts: list[str] = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        parts.append(path.read_bytes().decode("latin-1"))
        if path.suffix != ".db":
            continue
        with sqlite3.connect(path) as conn:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            for (table,) in names:
                for row in conn.execute(f'SELECT * FROM "{table}"'):
                    for cell in row:
                        if isinstance(cell, bytes):
                            try:
                                cell = zlib.decompress(cell)
                            except zlib.error:
                                pass
                            cell = cell.decode("latin-1")
                        parts.append(str(cell))
    return "\n".join(parts)


def test_quarantine_refuses_a_partition_key_that_leaves_its_root(tmp_path: Path) -> None:
    import pandas as pd

    from feature_platform.names import InvalidNameError
    from feature_platform.quality.validation import Quarantine

    quarantine = Quarantine(tmp_path / "fp" / "quarantine")
    rows = pd.DataFrame({"x": [1]})
    with pytest.raises(InvalidNameError, match="partition key"):
        quarantine.put("training_set", "../../../escaped", rows)
    with pytest.raises(InvalidNameError, match="asset name"):
        quarantine.put("../x@v1", None, rows)
    kept = quarantine.put("digits@v1", "round-001", rows)
    assert kept is not None and kept.parent == tmp_path / "fp/quarantine/digits/v1/round-001"
    assert quarantine.list("digits@v1") == [kept]
    assert not list(tmp_path.rglob("escaped*"))
