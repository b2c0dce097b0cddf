"""`feature-platform init DIR`: scaffold a project a team owns, in the shape of a Dagster code
location: `definitions.py` + `workspace.yaml`, `programs/` (templates), `features/` (Python
feature sets) and `data/` (a CSV to start from). It loads and runs a first round on embedded
defaults with no edit; then point the template's source at your own data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFINITIONS = '''"""This project's code location: every program of programs/, side by side."""

from pathlib import Path

from feature_platform.definitions import project_definitions

defs = project_definitions(Path(__file__).parent)
'''

WORKSPACE = """load_from:
  - python_file:
      relative_path: definitions.py
      working_directory: .
      location_name: {name}
"""

PYPROJECT = """[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["feature_platform"]

[tool.dagster]
python_file = "definitions.py"
code_location_name = "{name}"
"""

FEATURES_INIT = (
    '"""Feature set definitions (FeatureSetSpec) the templates name by import path."""\n'
)

FEATURES = '''"""Feature sets over the `{program}` source: Python transforms, versioned.

A transform gets the raw rows (one per sample, as declared in programs/{program}.yaml) and its
params, and returns the entity column, `event_timestamp` and exactly the declared features.
Change a transform or its params? Publish it as a new version (v2) rather than editing v1:
a published version's fingerprint is checked and an in-place change is refused.
"""

import numpy as np
import pandas as pd

from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec

MEASUREMENTS = {columns!r}


def scaled(raw: pd.DataFrame, params: dict) -> pd.DataFrame:
    out = pd.DataFrame({{"sample_id": raw["sample_id"], EVENT_TIMESTAMP: raw["arrived_at"]}})
    for column in MEASUREMENTS:
        out[column] = raw[column].astype("float64") / float(params["scale"][column])
    return out


def scaled_log(raw: pd.DataFrame, params: dict) -> pd.DataFrame:
    out = scaled(raw, params)
    for column in MEASUREMENTS:
        out[f"log_{{column}}"] = np.log1p(raw[column].astype("float64").clip(lower=0))
    return out


_SCALE = {{"scale": {scale!r}}}

V1 = FeatureSetSpec(
    name="{program}",
    version="v1",
    entity="sample_id",
    features=dict.fromkeys(MEASUREMENTS, "float64"),
    transform=scaled,
    sources=("{program}_raw",),
    params=_SCALE,
    description="Each measurement divided by its typical maximum.",
)

V2 = FeatureSetSpec(
    name="{program}",
    version="v2",
    entity="sample_id",
    features=dict.fromkeys([*MEASUREMENTS, *[f"log_{{c}}" for c in MEASUREMENTS]], "float64"),
    transform=scaled_log,
    sources=("{program}_raw",),
    params=_SCALE,
    description="v1 plus the log of each measurement.",
)
'''

TEMPLATE = """# A labeling program: what to label, from which data, with which model and rules.
# Check it with `feature-platform programs validate`, publish it with
# `feature-platform programs publish` (immutable, versioned).
name: {program}
description: Which cultivar is each wine? (scikit-learn's wine data as a starting CSV)
source:
  kind: csv                     # csv | parquet | sql | python
  path: data/{program}.csv      # a file, a folder or a glob such as data/*.csv
  entity: sample_id             # one id per sample
  event_time: arrived_at        # when it arrived: rows are loaded by day
  ground_truth: label           # true labels: held-out evaluation, simulated annotators
  holdout_fraction: 0.25        # held out for evaluation, never offered for labeling
  start_date: {start}
features:
  - features.{program}:V1
  - features.{program}:V2
aliases: {{training: v1, labeling: v1, serving: v1}}
training_features: {program}@training
labeling_features: {program}@labeling
labels:
  classes: [class_0, class_1, class_2]
  instructions: Which of the three cultivars does this wine come from?
model:
  estimator: sklearn.linear_model:LogisticRegression
  params: {{C: 1.0, max_iter: 2000}}
strategy: {{name: margin, params: {{cold_start: random}}}}
batch_size: 10
overlap: 1
label_budget: 60
stopping: {{target_accuracy: 0.97, kappa_threshold: 0.99, kappa_window: 3}}
promotion: {{tolerance: 0.01}}
annotators: {{pool: [], roles: {{}}}}
"""

GITIGNORE = ".fp_data/\n.dagster_home/\n__pycache__/\n"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "init", help="scaffold a project (a code location with programs/, features/, data/)"
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--program", default="wine", help="the first program's name")
    parser.set_defaults(handler=run)


def scaffold(directory: Path, program: str = "wine") -> list[Path]:
    """Write the project; refuses a folder that already has files. Returns what was written."""
    from sklearn.datasets import load_wine

    from feature_platform.errors import FeaturePlatformError
    from feature_platform.names import check_name

    check_name(program, "program name")
    if not program.isidentifier():
        raise FeaturePlatformError(
            f"Program name {program!r} must also be a Python identifier (it names the "
            f"features.{program} module)."
        )
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise FeaturePlatformError(f"{directory} is not empty: init writes only a new project.")
    import numpy as np
    import pandas as pd

    wine = load_wine(as_frame=True)
    frame = wine.frame.drop(columns=["target"])
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    columns = list(frame.columns)
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    arrived = start + pd.to_timedelta(np.sort(rng.uniform(0, 20 * 86400, len(frame))), unit="s")
    frame.insert(0, "arrived_at", arrived[rng.permutation(len(frame))])
    frame.insert(0, "sample_id", np.arange(len(frame)))
    frame["label"] = [f"class_{t}" for t in wine.target]
    scale = {c: float(np.ceil(frame[c].max())) for c in columns}
    files = {
        "definitions.py": DEFINITIONS,
        "workspace.yaml": WORKSPACE.format(name=program),
        "pyproject.toml": PYPROJECT.format(name=program),
        ".gitignore": GITIGNORE,
        "features/__init__.py": FEATURES_INIT,
        f"features/{program}.py": FEATURES.format(program=program, columns=columns, scale=scale),
        f"programs/{program}.yaml": TEMPLATE.format(program=program, start="2026-01-01"),
    }
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    data = directory / "data" / f"{program}.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(data, index=False)
    return [*written, data]


def run(args: argparse.Namespace) -> int:
    written = scaffold(args.directory, args.program)
    for path in written:
        print(f"wrote {path}")
    print(
        f"\nnext: cd {args.directory} && feature-platform programs validate && "
        # Publishing needs a lead or admin; on a new platform the first admin registers
        # themselves.
        f"feature-platform annotators add $USER --role admin && "
        f"feature-platform programs publish && "
        f"feature-platform demo --project . --program {args.program} --rounds 2 "
        f"--home .fp_demo",
        file=sys.stdout,
    )
    return 0
