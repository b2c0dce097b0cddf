"""The demo only ever empties a directory it created and marked as its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_platform.cli import main
from feature_platform.defs.demo import (
    DEMO_MARKER,
    DemoOptions,
    NotADemoDirectoryError,
    claim_demo_home,
    run_demo,
)


def _precious(directory: Path) -> Path:
    directory.mkdir(parents=True)
    kept = directory / "thesis.tex"
    kept.write_text("years of work")
    return kept


def test_demo_refuses_to_empty_a_directory_it_did_not_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = _precious(tmp_path / "fp")
    monkeypatch.setenv("FP_HOME", str(tmp_path / "fp"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["demo", "--rounds", "1"]) == 2
    assert "Refusing to empty" in capsys.readouterr().err
    assert kept.read_text() == "years of work"
    with pytest.raises(NotADemoDirectoryError, match=DEMO_MARKER):
        run_demo(DemoOptions(rounds=1), tmp_path / "fp")
    assert kept.exists() and not (tmp_path / "fp" / DEMO_MARKER).exists()


def test_demo_refuses_a_dagster_instance_it_did_not_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_home = tmp_path / "dagster"
    history = _precious(dagster_home / "history")  # a production instance's run history
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with pytest.raises(NotADemoDirectoryError, match="DAGSTER_HOME"):
        run_demo(DemoOptions(rounds=1), tmp_path / "fp")
    assert history.exists()
    assert not (tmp_path / "fp").exists()  # refused before touching the store either


def test_demo_claims_new_or_empty_directories_and_empties_only_its_own(tmp_path: Path) -> None:
    fresh = claim_demo_home(tmp_path / "new")
    assert (fresh / DEMO_MARKER).is_file()
    (fresh / "platform.db").write_text("old demo")
    (fresh / "offline").mkdir()
    (fresh / "offline" / "x.parquet").write_text("old demo")
    again = claim_demo_home(fresh)
    assert sorted(p.name for p in again.iterdir()) == [DEMO_MARKER]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert (claim_demo_home(empty) / DEMO_MARKER).is_file()

    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    with pytest.raises(NotADemoDirectoryError, match="not a directory"):
        claim_demo_home(not_dir)
