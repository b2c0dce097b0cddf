"""Pandera schemas for the raw source, each feature set version, training sets and batches."""

from __future__ import annotations

from collections.abc import Sequence

import pandera.pandas as pa

from feature_platform.catalog import digits
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetVersion


def raw_digits_schema() -> pa.DataFrameSchema:
    pixel = pa.Column(int, pa.Check.in_range(0, 16), nullable=False)
    return pa.DataFrameSchema(
        {
            digits.ENTITY: pa.Column(int, pa.Check.ge(0), unique=True, nullable=False),
            "arrived_at": pa.Column("datetime64[ns, UTC]", nullable=False),
            "split": pa.Column(str, pa.Check.isin(["pool", "holdout"]), nullable=False),
            **{p: pixel for p in digits.PIXELS},
        },
        strict=True,
        name="digits_raw",
    )


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
