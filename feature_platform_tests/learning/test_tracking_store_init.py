"""A fresh SQLite MLflow tracking database opened by several processes at once (the daemon's
sensor threads, run workers) is created once, not half-migrated by two of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

OPEN_AND_USE = """
import sys
from pathlib import Path
from feature_platform.learning.tracking import ModelTracker
tracker = ModelTracker(sys.argv[1], Path(sys.argv[2]), "race-classifier")
tracker.client.search_experiments(max_results=1)
print("ok")
"""


@pytest.mark.slow
def test_processes_opening_a_fresh_tracking_database_at_once_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_USE, uri, str(tmp_path / "artifacts")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [child.communicate(timeout=300) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0 and out.strip() == "ok", err[-2000:]
