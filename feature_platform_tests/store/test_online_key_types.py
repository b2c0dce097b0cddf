"""Online lookups take a list of keys: a bare string or None is refused with a clear message,
not looked up character by character or failing with a raw TypeError (issue 12 item 9)."""

from __future__ import annotations

import pytest
from store_test_support import make_store, rows, spec

from feature_platform.errors import InvalidArgumentError


def test_online_keys_of_the_wrong_type_are_refused(tmp_path) -> None:
    fs = make_store(tmp_path)
    fs.apply(spec())
    fs.ingest("items@v1", rows([1, 2, 3], 1.0))
    assert fs.get_online_features(["items@v1:x"], ["1", 2])["x"].tolist() == [1.0, 1.0]
    with pytest.raises(InvalidArgumentError, match="a list of keys"):
        fs.get_online_features(["items@v1:x"], "123")
    with pytest.raises(InvalidArgumentError, match="a list of keys"):
        fs.get_online_features(["items@v1:x"], None)
    with pytest.raises(InvalidArgumentError, match="a list of keys"):
        fs.get_online_features(["items@v1:x"], 123)
    with pytest.raises(InvalidArgumentError, match="position 1"):
        fs.get_online_features(["items@v1:x"], [1, None])
