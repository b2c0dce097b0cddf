"""Online responses as DataFrames: pandas' internal block API is a fast path used only when
it imports and builds the same frame as the public API; otherwise the public
`create_dataframe_from_blocks` builds every response (issue 14: no unguarded internals)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from store_test_support import T0, make_store, rows, spec

from feature_platform import feature_store
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


def test_both_frame_builders_give_the_same_frame(fs, monkeypatch) -> None:
    assert feature_store._FAST_FRAME is not None  # pandas as pinned: the fast path is on
    fast = [fs.get_online_features(features, keys) for features, keys in REQUESTS]
    monkeypatch.setattr(feature_store, "_FAST_FRAME", None)
    public = [fs.get_online_features(features, keys) for features, keys in REQUESTS]
    for (features, keys), got, reference in zip(REQUESTS, fast, public, strict=True):
        pd.testing.assert_frame_equal(got, reference)  # same values, dtypes, index, attrs
        expected = _expected(fs, features, keys)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        assert list(got.dtypes[1:]) == list(expected.dtypes[1:])  # features: float64
        got.iloc[:, -1] = 0.0  # an ordinary, writable frame that shares nothing with the cache
        again = fs.get_online_features(features, keys)
        pd.testing.assert_frame_equal(again, reference)


def test_the_fast_path_turns_itself_off_when_pandas_internals_change(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas.core.internals.blocks", None)  # import fails
    builder, placement = feature_store._internal_frame_builder()
    assert builder is None
    positions = np.arange(2)
    assert placement(positions) is positions  # plain positions for the public API
