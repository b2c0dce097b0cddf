"""The scale_pool job: partitions fanned out by Dagster, merged into the single-process batch."""

from __future__ import annotations

from dataclasses import asdict

import dagster as dg
import pytest

from feature_platform.defs.location import build_definitions
from feature_platform.defs.scale_pool import scale_pool_job
from feature_platform.learning import scale_pool as sp
from feature_platform.settings import Settings

POOL = {"size": 5_000, "n_features": 8, "n_classes": 3, "seed": 4, "block_rows": 600}


def _run(strategy: str, partitions: int, **extra):
    config = {
        **POOL,
        "labeled": 150,
        "strategy": strategy,
        "batch_size": 12,
        "partitions": partitions,
    }
    config.update(extra)
    result = scale_pool_job.execute_in_process(
        run_config={"ops": {"plan_scale_pool": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return result


def _single_process(strategy: str, **extra) -> list[dict]:
    spec = sp.PoolSpec(**POOL)
    plan = sp.SelectionPlan(strategy, 12, POOL["seed"], **extra)
    champion = sp.train_champion(spec, 150)
    labeled = sp.labeled_set(spec, 150)[0] if strategy == "kcenter" else None
    selection = sp.select_from_pool(spec, plan, champion, labeled, partitions=1)
    return [asdict(p) for p in selection.picks]


@pytest.mark.parametrize("strategy", ["margin", "entropy", "cluster_margin", "kcenter"])
def test_the_job_merges_the_partitions_into_the_single_process_batch(strategy):
    result = _run(strategy, partitions=3)
    batch = result.output_for_node("merge_pool_selection")
    assert batch == _single_process(strategy)
    scans = [
        e for e in result.get_step_success_events() if e.step_key.startswith("scan_pool_partition")
    ]
    assert len(scans) == 3  # one step per partition, each its own fan-out branch
    rows = 0
    for event in result.all_events:
        if event.is_successful_output and event.step_key.startswith("scan_pool_partition"):
            metadata = event.event_specific_data.metadata
            rows += metadata["rows_scanned"].value
            assert metadata["peak_mib"].value > 0
    assert rows == POOL["size"]


def test_kcenter_whole_pool_fallback_runs_in_the_merge_step():
    result = _run("kcenter", partitions=2, candidate_factor=1, batch_size=12)
    merged = [
        e
        for e in result.all_events
        if e.is_successful_output and e.step_key == "merge_pool_selection"
    ][0]
    assert merged.event_specific_data.metadata["exact_by"].value.startswith("greedy over")
    assert result.output_for_node("merge_pool_selection") == _single_process(
        "kcenter", candidate_factor=1
    )


def test_the_code_location_has_the_job(tmp_path):
    settings = Settings.under(tmp_path)
    assert build_definitions(settings).get_job_def("scale_pool").name == "scale_pool"


def test_the_code_locations_job_pickles_its_outputs_under_fp_home(tmp_path):
    """Steps on other processes or Celery workers load their inputs from files every worker
    reads: the location's job keeps its own pickling IO manager (on FP_HOME), not the Parquet
    IO manager of the assets, which cannot store an op's outputs."""
    settings = Settings.under(tmp_path)
    job = build_definitions(settings, programs=[]).get_job_def("scale_pool")
    config = {**POOL, "labeled": 150, "strategy": "margin", "batch_size": 12, "partitions": 3}
    result = job.execute_in_process(
        run_config={"ops": {"plan_scale_pool": {"config": config}}},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    assert result.output_for_node("merge_pool_selection") == _single_process("margin")
    stored = tmp_path / "scale_pool" / result.run_id
    assert (stored / "merge_pool_selection" / "result").is_file()
    assert len(list(stored.glob("scan_pool_partition*"))) == 3
