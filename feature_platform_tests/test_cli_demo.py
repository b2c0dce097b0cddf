"""The front door: the demo command through Dagster, and the code location validating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FP_", "MLFLOW_"))}
    return env | {"FP_HOME": str(tmp_path / "fp"), "DAGSTER_HOME": str(tmp_path / "dagster")}


def test_demo_runs_two_rounds_through_dagster_and_prints_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "feature_platform.cli",
            "demo",
            "--rounds",
            "2",
            "--batch-size",
            "15",
            "--json",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [r["round"] for r in report["rounds"]] == ["round-001", "round-002"]
    assert [r["labels"] for r in report["rounds"]] == [15, 30]
    assert {r["strategy"] for r in report["rounds"]} == {"margin"}
    assert {r["feature_version"] for r in report["rounds"]} == {"digits@v1"}
    assert all(len(r["mlflow_run_id"]) == 32 for r in report["rounds"])
    assert all(0.0 < r["accuracy"] <= 1.0 for r in report["rounds"])
    assert [b["labels"] for b in report["baseline"]] == [15, 30]
    # Same seed: the cold-start round is identical for both; then they differ in selection.
    assert report["baseline"][0]["accuracy"] == report["rounds"][0]["accuracy"]
    # The runs landed in the project's Dagster instance.
    assert (tmp_path / "dagster" / "history" / "runs.db").exists()


def test_demo_rejects_an_unknown_strategy(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "feature_platform.cli", "demo", "--strategy", "margn"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown strategy 'margn'" in done.stderr


def test_code_location_validates(tmp_path: Path) -> None:
    (tmp_path / "dagster").mkdir()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stderr + done.stdout
