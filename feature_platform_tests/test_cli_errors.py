"""The command line turns every error a user can hit into one line and an exit code:
0 done, 1 an import took nothing, 2 refused (bad input), 3 the database was unavailable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from feature_platform import FeatureStore, Settings
from feature_platform.cli import main
from feature_platform.errors import FeaturePlatformError, InvalidArgumentError
from feature_platform.labeling.agreement import cohen_kappa
from feature_platform.labeling.queue import TaskSpec
from feature_platform_tests.conftest import register_people


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("FP_DATABASE_URL", "FP_OFFLINE_DIR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("FP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FP_USER", "tester")  # the command line acts as FP_USER
    store = FeatureStore(Settings.from_env())
    register_people(store.engine, "admin", "tester")
    specs = [TaskSpec(f"s{i}", "margin", 0.5, "pick", "pets@v1", "m1") for i in range(200)]
    store.queue.create_batch("round-001", specs, ["cat", "dog"])
    return tmp_path


def test_a_directory_passed_as_a_file_is_refused_in_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("label-studio", "jsonl", "csv"):
        assert main(["labels", "import", str(home), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a directory" in err


def test_raw_value_errors_of_the_core_are_feature_platform_errors(home: Path) -> None:
    store = FeatureStore(Settings.from_env())
    with pytest.raises(InvalidArgumentError, match="answers_needed"):
        store.queue.create_batch(
            "r9", [TaskSpec("x", "m", 0.5, "r", "f@v1")], ["a"], answers_needed=0
        )
    with pytest.raises(FeaturePlatformError, match="same items"):
        cohen_kappa(["a"], ["a", "b"])


def test_demo_with_no_annotators_is_refused_in_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--annotators", "0", "--home", str(home / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--annotators" in err
    assert not (home / "demo").exists()  # refused before anything was touched


def test_output_piped_into_a_closed_reader_ends_quietly(home: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feature_platform.cli",
            "tasks",
            "export",
            "--round",
            "round-001",
            "--format",
            "jsonl",
            "-o",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()  # like `| head -0`: the reader is gone before anything is written
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert process.returncode == 141
