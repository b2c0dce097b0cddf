"""Seattle daily weather 2012-2015 (the CSV shipped inside the `vega_datasets` package, read
from disk: nothing is downloaded) as a mixed-type tabular program: one row per day, arriving on
its real date, labeled with the day's weather (sun, fog, rain, drizzle, snow).

Two feature set versions: v1 the four measurements (precipitation on a log scale), v2 the same
plus the temperature range and the month one-hot encoded (a categorical feature).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feature_platform.programs.model import Program
from feature_platform.programs.template import ProgramTemplate
from feature_platform.store.feature_set import EVENT_TIMESTAMP, FeatureSetSpec

SOURCE = "weather_raw"
ENTITY = "day_id"
EVENT_TIME = "date"
CLASSES = ["drizzle", "fog", "rain", "snow", "sun"]
MEASUREMENTS = ["precipitation", "temp_max", "temp_min", "wind"]
MONTHS = [f"month_{m:02d}" for m in range(1, 13)]
TEMPLATE = Path(__file__).parent / "programs" / "weather.yaml"


def load_raw() -> pd.DataFrame:
    """Every day: an integer id, the date (its arrival), the four measurements and the
    recorded weather (declared as the ground truth)."""
    path = importlib.resources.files("vega_datasets").joinpath("_data/seattle-weather.csv")
    frame = pd.read_csv(str(path))
    frame[EVENT_TIME] = pd.to_datetime(frame[EVENT_TIME], format="%Y/%m/%d", utc=True)
    frame.insert(0, ENTITY, np.arange(len(frame), dtype="int64"))
    return frame


def _base(raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({ENTITY: raw[ENTITY], EVENT_TIMESTAMP: raw[EVENT_TIME]})


def measurements(raw: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    out = _base(raw)
    out["log_precipitation"] = np.log1p(raw["precipitation"].astype("float64"))
    for column in ("temp_max", "temp_min", "wind"):
        out[column] = raw[column].astype("float64") / float(params["scale"][column])
    return out


def with_month(raw: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    out = measurements(raw, params)
    out["temp_range"] = (raw["temp_max"] - raw["temp_min"]).astype("float64") / float(
        params["scale"]["temp_max"]
    )
    month = pd.to_datetime(raw[EVENT_TIME]).dt.month.to_numpy()
    for m, column in enumerate(MONTHS, start=1):
        out[column] = (month == m).astype("float64")
    return out


_SCALE = {"scale": {"temp_max": 40.0, "temp_min": 40.0, "wind": 10.0}}
_V1 = ["log_precipitation", "temp_max", "temp_min", "wind"]

WEATHER_V1 = FeatureSetSpec(
    name="weather",
    version="v1",
    entity=ENTITY,
    features=dict.fromkeys(_V1, "float64"),
    transform=measurements,
    sources=(SOURCE,),
    params=_SCALE,
    description="Daily measurements: log precipitation, scaled temperatures and wind.",
)

WEATHER_V2 = FeatureSetSpec(
    name="weather",
    version="v2",
    entity=ENTITY,
    features=dict.fromkeys([*_V1, "temp_range", *MONTHS], "float64"),
    transform=with_month,
    sources=(SOURCE,),
    params=_SCALE,
    description="v1 plus the temperature range and the month, one-hot encoded.",
)


def template() -> ProgramTemplate:
    return ProgramTemplate.from_file(TEMPLATE)


def program(**overrides: Any) -> Program:
    return template().program(**overrides)
