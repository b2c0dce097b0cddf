"""Pandera schemas for the raw source, each feature set version, training sets and batches."""

from __future__ import annotations

from collections.abc import Sequence

import pandera.pandas as pa

from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetVersion
from feature_platform.store.sources import HOLDOUT, POOL, SPLIT, SourceSpec


def source_schema(source: SourceSpec, classes: Sequence[str] | None = None) -> pa.DataFrameSchema:
    """Derived from a declared source: the entity present and unique, arrival (and created)
    times present, each declared column of its dtype and present, true labels (if any) in the
    program's label set. Other columns pass through (a source may carry more than it declares).
    """
    columns: dict[str, pa.Column] = {
        source.entity: pa.Column(nullable=False, unique=True),
        source.event_time: pa.Column("datetime64[ns, UTC]", nullable=False),
        SPLIT: pa.Column(str, pa.Check.isin([POOL, HOLDOUT]), nullable=False),
    }
    if source.created_time:
        columns[source.created_time] = pa.Column("datetime64[ns, UTC]", nullable=True)
    for name, dtype in source.columns.items():
        columns[name] = pa.Column(dtype, nullable=False, coerce=False)
    if source.ground_truth:
        checks = [pa.Check.isin(list(classes))] if classes else []
        columns[source.ground_truth] = pa.Column(str, checks, nullable=False)
    return pa.DataFrameSchema(columns, strict=False, name=source.name)


def feature_set_schema(fsv: FeatureSetVersion) -> pa.DataFrameSchema:
    """Every declared feature present, numeric, finite and not missing; one row per entity and
    event time."""
    finite = pa.Check(lambda s: s.abs() < float("inf"), element_wise=False, name="finite")
    columns = {
        fsv.entity: pa.Column(nullable=False),
        EVENT_TIMESTAMP: pa.Column("datetime64[ns, UTC]", nullable=False),
    }
    columns |= {f: pa.Column(dtype, finite, nullable=False) for f, dtype in fsv.features.items()}
    return pa.DataFrameSchema(
        columns,
        unique=[fsv.entity, EVENT_TIMESTAMP],
        name=fsv.id,
    )


def training_set_schema(features: Sequence[str], classes: Sequence[str]) -> pa.DataFrameSchema:
    columns = {
        "label": pa.Column(str, pa.Check.isin(list(classes)), nullable=False),
        EVENT_TIMESTAMP: pa.Column(nullable=False),
    }
    columns |= {f: pa.Column(float, nullable=False) for f in features}
    return pa.DataFrameSchema(columns, name="training_set")


def labeling_batch_schema(classes: Sequence[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "task_id": pa.Column(str, unique=True, nullable=False),
            "sample_key": pa.Column(str, unique=True, nullable=False),
            "reason": pa.Column(str, pa.Check.str_length(min_value=10), nullable=False),
            "score": pa.Column(float, pa.Check(lambda s: s.notna()), nullable=False),
            "feature_version": pa.Column(str, pa.Check.str_contains("@"), nullable=False),
        },
        name="labeling_batch",
    )
