"""Online responses as DataFrames, built with pandas' public API only (issue 14: no pandas
internals): the same frames the plain DataFrame constructor builds, writable, sharing
nothing with the online cache."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from store_test_support import T0, make_store, rows, spec

import feature_platform
from feature_platform.store.feature_set import EVENT_TIMESTAMP


@pytest.fixture
def fs(tmp_path):
    store = make_store(tmp_path)
    store.apply(spec())
    store.apply(spec(name="users", entity="item_id", features={"score": "float64"}))
    store.ingest("items@v1", rows([1, 2, 3], [1.0, 2.0, 3.0]))
    users = pd.DataFrame({"item_id": [2, 3], EVENT_TIMESTAMP: T0, "score": [0.25, 0.5]})
    store.ingest("users@v1", users)
    return store


REQUESTS = [
    (["items@v1:x"], [2]),
    (["items@v1:*"], [3, 1, 99]),
    (["items@v1:y", "users@v1:score"], [1, 2, 3]),
    (["items@v1:*"], ["2", "1"]),  # text keys: an extension-array column
    (["items@v1:x"], []),
]


def _expected(fs, features, keys) -> pd.DataFrame:
    """The same response built cell by cell with the public DataFrame constructor."""
    columns: dict = {"item_id": list(keys)}
    for reference in features:
        name, _, feature = reference.partition(":")
        fsv = fs.resolve_feature_set(name)
        latest = fs.offline.latest(fsv).set_index("item_id")
        for column in fsv.feature_names if feature == "*" else [feature]:
            columns[column] = pd.Series(
                [float(latest[column].get(int(k), np.nan)) for k in keys], dtype="float64"
            )
    return pd.DataFrame(columns)


def test_responses_are_the_frames_the_public_constructor_builds(fs) -> None:
    for features, keys in REQUESTS:
        got = fs.get_online_features(features, keys)
        expected = _expected(fs, features, keys)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert list(got.dtypes[1:]) == list(expected.dtypes[1:])  # features: float64
        assert got.attrs["feature_sets"]
        reference = got.copy()
        got.iloc[:, -1] = 0.0  # an ordinary, writable frame that shares nothing with the cache
        again = fs.get_online_features(features, keys)
        pd.testing.assert_frame_equal(again, reference)


def test_the_package_uses_no_private_pandas_modules() -> None:
    """pandas' private modules change between releases without notice; the package keeps
    to the public API (`pandas.api.internals` is public)."""
    package = Path(feature_platform.__file__).parent
    private = re.compile(r"\bpandas\.(_libs|core)\b|\b_from_mgr\b")
    found = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if private.search(line)
    ]
    assert found == []
