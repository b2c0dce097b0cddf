"""The README's "Label your own data" tutorial, step by step, in a fresh directory: init,
declare a CSV, publish the template and its feature sets, two rounds with simulated
annotators, and the project loading as a Dagster code location."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _run(*argv: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_label_your_own_data(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FP_", "MLFLOW_", "DAGSTER"))}
    fp = str(BIN / "feature-platform")
    # 1. feature-platform init my-project && cd my-project
    _run(fp, "init", "my-project", cwd=tmp_path, env=env)
    project = tmp_path / "my-project"
    env["DAGSTER_HOME"] = str(project / ".dagster_home")

    # 2. Your CSV(s) in data/incoming/, declared in programs/wine.yaml (a glob reads them all).
    samples = pd.read_csv(project / "data" / "wine.csv")
    (project / "data" / "wine.csv").unlink()
    (project / "data" / "incoming").mkdir()
    half = len(samples) // 2
    samples.iloc[:half].to_csv(project / "data" / "incoming" / "part-1.csv", index=False)
    samples.iloc[half:].to_csv(project / "data" / "incoming" / "part-2.csv", index=False)
    template = project / "programs" / "wine.yaml"
    document = yaml.safe_load(template.read_text())
    document["source"]["path"] = "data/incoming/*.csv"
    template.write_text(yaml.safe_dump(document, sort_keys=False))

    # 3. Validate, register yourself as the first admin, publish the template and its
    # feature sets.
    assert "wine: valid" in _run(fp, "programs", "validate", cwd=project, env=env)
    env.setdefault("USER", getpass.getuser())  # what `$USER` expands to in a login shell
    _run(fp, "annotators", "add", env["USER"], "--role", "admin", cwd=project, env=env)
    published = _run(fp, "programs", "publish", cwd=project, env=env)
    assert "wine@v1: published" in published and "feature set wine@v1: active" in published
    listed = _run(fp, "--program", "wine", "features", "list", cwd=project, env=env)
    assert "wine@v1" in listed and "training" in listed

    # 4. Two rounds through Dagster, answered by simulated annotators.
    output = _run(
        fp, "demo", "--project", ".", "--program", "wine", "--rounds", "2",
        "--home", ".fp_demo", "--batch-size", "10", "--json", cwd=project, env=env,
    )  # fmt: skip
    report = json.loads(next(x for x in output.splitlines() if x.startswith('{"rounds"')))
    rounds = [r for r in report["rounds"] if r["program"] == "wine"]
    assert [(r["round"], r["labels"]) for r in rounds] == [("round-001", 10), ("round-002", 20)]
    assert {r["model_version"] for r in rounds} == {"wine-classifier/1", "wine-classifier/2"}

    # 5. The project is a code location (what `dagster dev` loads).
    validated = _run(
        str(BIN / "dagster"),
        "definitions",
        "validate",
        "-w",
        "workspace.yaml",
        cwd=project,
        env=env,
        timeout=300,
    )
    assert "Validation successful" in validated
