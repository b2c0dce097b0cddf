"""Helpers shared by the feature store tests: small specs, stores on a given database URL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_platform import FeatureStore, Settings
from feature_platform.settings import offline_location
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BUCKET = "fp-offline-tests"  # made on the test S3 server (conftest.s3_endpoint)


def make_store(
    tmp_path: Path,
    database_url: str | None = None,
    name: str = "fp",
    offline_dir: str | None = None,
) -> FeatureStore:
    """A store under `tmp_path/name`, on `database_url` (SQLite file by default), its offline
    store at `offline_dir` (a directory or s3:// URL) if given."""
    settings = Settings.under(tmp_path / name)
    if database_url is not None:
        settings = replace(settings, database_url=database_url)
    if offline_dir is not None:
        settings = replace(settings, offline_dir=offline_location(offline_dir))
    return FeatureStore(settings)


def passthrough(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    return frame


def doubled(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    out = frame.copy()
    out["x"] = out["x"] * 2
    return out


def spec(
    version: str = "v1",
    *,
    name: str = "items",
    features: Mapping[str, str] | None = None,
    transform=passthrough,
    params: Mapping[str, Any] | None = None,
    sources: tuple[str, ...] = ("items_raw",),
    entity: str = "item_id",
) -> FeatureSetSpec:
    return FeatureSetSpec(
        name=name,
        version=version,
        entity=entity,
        features=dict(features or {"x": "float64", "y": "float64"}),
        transform=transform,
        sources=sources,
        params=dict(params or {}),
    )


def rows(keys, x, *, at: datetime = T0, entity: str = "item_id", y=None) -> pd.DataFrame:
    """Feature rows for `keys` stamped `at` with x values `x` (and y = -x unless given)."""
    x = np.asarray(x, dtype=float) * np.ones(len(keys))
    return pd.DataFrame(
        {
            entity: list(keys),
            EVENT_TIMESTAMP: at,
            "x": x,
            "y": -x if y is None else y,
        }
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
