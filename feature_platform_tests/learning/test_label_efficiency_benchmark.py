"""The label-efficiency benchmark runs end to end on a tiny setting and ends with its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "label_efficiency.py"


@pytest.mark.slow  # a subprocess with a worker process and 8 small runs
def test_benchmark_prints_the_figures_as_one_json_document_last() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--datasets",
            "wine",
            "--strategies",
            "margin,cluster_margin,sklearn_margin",
            "--seeds",
            "2",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    last = done.stdout.strip().splitlines()[-1]
    report = json.loads(last)
    assert set(report) == {"wine"}
    assert set(report["wine"]) == {"random", "margin", "cluster_margin", "sklearn_margin"}
    for figures in report["wine"].values():
        assert set(figures) == {
            "labels_to_95",
            "labels_to_99",
            "aulc",
            "labels_ratio_to_random",
            "labels_to_accuracy_95",
        }
        assert 0.0 < figures["aulc"] <= 1.1
    assert report["wine"]["random"]["labels_ratio_to_random"] == 1.0
    assert "wine: full-pool accuracy" in done.stdout and "ours via arrays" in done.stdout
    assert "[8/8] wine" in done.stderr  # progress goes to stderr
    # Where each stopping rule fires against the plateau, for our strategies' runs.
    assert "stopping rules vs the actual plateau" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("  wine ")]
    assert {row[1] for row in rows if "|" in row} == {"random", "margin", "cluster_margin"}
