"""The auto-label benchmark runs end to end on a tiny setting and ends with its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "auto_labels.py"


@pytest.mark.slow  # a subprocess running the real loop twice
def test_auto_label_benchmark_prints_both_arms_and_their_figures() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--datasets",
            "digits",
            "--seeds",
            "1",
            "--workers",
            "1",
            "--levels",
            "0.5",
            "--max-share",
            "0.05",
            "--review-fraction",
            "0.05",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["digits"]) == {"full_pool_accuracy", "off", "on@0.5"}
    off, on = report["digits"]["off"], report["digits"]["on@0.5"]
    assert off["auto_labels_per_seed"] == 0 and off["precision"] is None
    assert on["rounds"] == 10 and on["rounds_on"] >= 1 and on["auto_labels_per_seed"] > 0
    assert 0.9 <= on["precision"] <= 1.0
    assert off["median"] <= 200 and on["median"] <= 200
    assert "goal (>= 30 % fewer human labels" in done.stdout
