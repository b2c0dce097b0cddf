"""The shipped examples are programs like any user's: the weather table (another modality)
loads from its declared source, passes its derived schema, has two feature set versions, runs
the real loop and renders as a table in Label Studio, as digits renders as an image."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from feature_platform import FeatureStore, Settings
from feature_platform.catalog import digits, weather
from feature_platform.labeling.connectors.label_studio import export_tasks
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.learning import rounds
from feature_platform.learning.loop import run_loop
from feature_platform.programs.project import ProgramDefinition, bootstrap_program
from feature_platform.quality import schemas
from feature_platform.quality.validation import validate
from feature_platform.store.sources import SourceSpec


def test_weather_runs_the_real_loop_and_exports_as_a_table(tmp_path) -> None:
    definition = ProgramDefinition(weather.template())
    store = FeatureStore(Settings.under(tmp_path / "fp"))
    bootstrap_program(store, definition)
    raw = store.sources.read(weather.SOURCE)
    assert raw["date"].min() == pd.Timestamp("2012-01-01", tz="UTC") and len(raw) == 1461
    report = validate(raw, schemas.source_schema(definition.source, weather.CLASSES))
    assert report.passed, report.summary()
    assert store.registry.versions("weather") == ["v1", "v2"]
    assert "month_07" in store.registry.get("weather", "v2").features
    program = weather.program(batch_size=20, label_budget=60, seed=1)
    oracle = definition.source.ground_truth_oracle()
    annotators = SimulatedAnnotators(oracle, weather.CLASSES, count=2, seed=1)
    results = run_loop(store, program, annotators, rounds=3)
    assert [r.labels for r in results] == [20, 40, 60]
    assert results[-1].accuracy > 0.5
    (task, *_) = store.queue.tasks(round_key="round-003")
    (exported, *_) = export_tasks([task])
    assert "image" not in exported["data"]
    assert set(exported["data"]["table"]) == set(store.registry.get("weather", "v1").features)


def test_digits_still_renders_as_an_image(digits_store) -> None:
    program = digits.program(batch_size=3)
    pool = rounds.candidate_pool(digits_store, program, model=None)
    tasks = rounds.open_batch(digits_store, program, "round-001", pool, model_version=None)
    (exported, *_) = export_tasks(tasks)
    assert exported["data"]["image"].startswith("data:image/png;base64,")


@pytest.mark.postgres
def test_declared_csv_glob_and_sql_sources(tmp_path, postgres_url) -> None:
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "seen": ["2026-01-01", "2026-01-02", "2026-01-02", "2026-01-03"],
            "x": [0.1, 0.2, 0.3, 0.4],
            "y": ["a", "b", "a", "b"],
        }
    )
    (tmp_path / "in").mkdir()
    frame.iloc[:2].to_csv(tmp_path / "in" / "one.csv", index=False)
    frame.iloc[2:].to_csv(tmp_path / "in" / "two.csv", index=False)
    common = dict(name="s", entity="id", event_time="seen", ground_truth="y", holdout_fraction=0.5)
    from_csv = SourceSpec(kind="csv", path="in/*.csv", base_dir=tmp_path, **common).read()
    engine = sa.create_engine(postgres_url)
    frame.to_sql("samples", engine, index=False)
    engine.dispose()
    from_table = SourceSpec(kind="sql", url=postgres_url, table="samples", **common).read()
    from_query = SourceSpec(
        kind="sql", url=postgres_url, query="SELECT * FROM samples WHERE x > 0.15", **common
    ).read()
    assert from_csv["id"].tolist() == from_table["id"].tolist() == [1, 2, 3, 4]
    assert from_query["id"].tolist() == [2, 3, 4]
    assert str(from_csv["seen"].dtype) == "datetime64[ns, UTC]"
    # The held-out split depends on the id only: the same rows whatever the source.
    assert from_csv["split"].tolist() == from_table["split"].tolist()
    assert set(from_csv["split"]) <= {"pool", "holdout"}
