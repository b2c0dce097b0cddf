"""Historical retrieval states the snapshot set it read: a retrieval token that another
process replays for identical results after newer snapshots and alias moves; a malformed,
altered or unknown token is refused with a clear error."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pandas as pd
import pytest
from store_test_support import T0, doubled, make_store, minutes, rows, spec

from feature_platform.errors import InvalidRetrievalTokenError
from feature_platform.store.feature_set import EVENT_TIMESTAMP
from feature_platform.store.retrieval_token import RetrievalToken

SUPPORT = Path(__file__).parent
FEATURES = ["items@serving:x", "items@v1:y", "users@v1:score"]


def _stores(tmp_path: Path, database_url: str | None = None):
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.apply(spec("v2", transform=doubled))
    store.apply(spec(name="users", entity="item_id", features={"score": "float64"}, sources=("u",)))
    store.ingest("items@v1", rows([1, 2, 3], 1.0))
    store.ingest("items@v1", rows([1, 2], 2.0, at=T0 + minutes(10)))
    store.ingest("items@v2", rows([1, 2, 3], 50.0))
    scores = rows([1, 2, 3], 0.5).drop(columns=["x", "y"]).assign(score=[0.1, 0.2, 0.3])
    store.ingest("users@v1", scores)
    store.set_alias("items", "serving", "v1")
    return store


def _entities() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [3, 1, 2, 1, 9],
            EVENT_TIMESTAMP: [T0 + minutes(m) for m in (20, 5, 30, 60, 60)],
            "label": ["a", "b", "c", "d", "e"],
        },
        index=[10, 11, 12, 13, 10],
    )


def _later_writes(store) -> None:
    """Everything that would change a fresh retrieval: new snapshots, a moved alias."""
    store.ingest("items@v1", rows([1, 3], 9.0, at=T0 + minutes(15)))
    store.ingest("items@v1", rows([2], 8.0, at=T0 + minutes(10)))  # a backfill (same time)
    store.ingest("items@v2", rows([1], 70.0, at=T0 + minutes(1)))
    store.ingest("users@v1", rows([1], 0.0).drop(columns=["x", "y"]).assign(score=0.9))
    store.set_alias("items", "serving", "v2")


def test_a_token_replays_the_same_snapshots_in_another_process(tmp_path, database_url) -> None:
    store = _stores(tmp_path, database_url)
    first = store.get_historical_features(_entities(), FEATURES)
    token = first.attrs["retrieval_token"]
    assert first.attrs["feature_sets"] == ["items@v1", "users@v1"]
    assert {k: len(v) for k, v in first.attrs["snapshots"].items()} == {
        "items@v1": 2,
        "users@v1": 1,
    }
    _later_writes(store)
    fresh = store.get_historical_features(_entities(), FEATURES)
    assert fresh.attrs["feature_sets"] == ["items@v2", "items@v1", "users@v1"]
    assert not fresh[["x", "y", "score"]].equals(first[["x", "y", "score"]])
    assert fresh.attrs["retrieval_token"] != token

    out = tmp_path / "replayed.parquet"
    code = (
        f"import sys; sys.path.insert(0, {str(SUPPORT)!r})\n"
        "from pathlib import Path\n"
        "from store_test_support import make_store\n"
        "from test_retrieval_token import FEATURES, _entities\n"
        f"store = make_store(Path({str(tmp_path)!r}), {database_url!r})\n"
        f"got = store.get_historical_features(_entities(), FEATURES, token={token!r})\n"
        "assert got.attrs['retrieval_token'] == " + repr(token) + ", 'another token'\n"
        f"got.to_parquet({str(out)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=SUPPORT)
    replayed = pd.read_parquet(out)
    replayed.attrs = {}
    expected = first.copy()
    expected.attrs = {}
    pd.testing.assert_frame_equal(replayed, expected)
    # The same in this process, and a replay of a subset of the references.
    again = store.get_historical_features(_entities(), FEATURES, token=token)
    pd.testing.assert_frame_equal(again, first)
    assert again.attrs == first.attrs
    part = store.get_historical_features(_entities(), ["items@serving:x"], token=token)
    pd.testing.assert_series_equal(part["x"], first["x"])


def _tampered(token: str, change) -> str:
    """`token` with its content changed by `change` and a correct checksum."""
    _, body, _ = token.split(".")
    content = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    change(content)
    snapshots = content["snapshots"]
    return RetrievalToken(content["references"], content["fingerprints"], snapshots).encode()


def test_bad_tokens_are_refused_with_the_reason(tmp_path) -> None:
    store = _stores(tmp_path)
    token = store.get_historical_features(_entities(), FEATURES).attrs["retrieval_token"]
    prefix, body, digest = token.split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    cases = {
        "": "Malformed retrieval token",
        "not a token": "Malformed retrieval token",
        f"fprt9.{body}.{digest}": "Unknown retrieval token format 'fprt9'",
        f"{prefix}.{body}.{'0' * 16}": "checksum mismatch",
        f"{prefix}.{flipped}.{digest}": "altered or truncated|does not decode",
        f"{prefix}.{body[:-8]}.{digest}": "altered or truncated|does not decode",
        f"{prefix}.!!!!.{digest}": "does not decode",
        _tampered(token, lambda c: c["snapshots"]["items@v1"].append("../../etc/passwd")): (
            "snapshot names of the form"
        ),
        _tampered(token, lambda c: c["references"].update({"items@serving": "items@v9"})): (
            "items@v9 has no recorded fingerprint"
        ),
    }
    # A few kilobytes that would inflate to 80 MB: refused before inflating all of it.
    bomb = base64.urlsafe_b64encode(zlib.compress(b" " * (80 << 20), 9)).decode().rstrip("=")
    cases[f"{prefix}.{bomb}.{digest}"] = "too large"
    for bad, message in cases.items():
        with pytest.raises(InvalidRetrievalTokenError, match=message):
            store.get_historical_features(_entities(), FEATURES, token=bad)
    with pytest.raises(InvalidRetrievalTokenError, match="is a string"):
        store.get_historical_features(_entities(), FEATURES, token=b"fprt1")

    def unknown_version(content) -> None:
        content["references"]["items@serving"] = "items@v7"
        content["fingerprints"]["items@v7"] = content["fingerprints"].pop("items@v1")
        content["snapshots"]["items@v7"] = content["snapshots"].pop("items@v1")
        content["references"]["items@v1"] = "items@v7"

    def unknown_snapshot(content) -> None:
        missing = "snapshot-20260101T000000000000-0123456789abcdef.parquet"
        content["snapshots"]["users@v1"] = [missing]

    def other_definition(content) -> None:
        content["fingerprints"]["users@v1"] = "f" * 64

    refused = {
        _tampered(token, unknown_version): "does not hold: .*items@v7",
        _tampered(token, unknown_snapshot): "snapshot\\(s\\) of users@v1 this store does not hold",
        _tampered(token, other_definition): "users@v1 in this store is not the definition",
    }
    for bad, message in refused.items():
        with pytest.raises(InvalidRetrievalTokenError, match=message):
            store.get_historical_features(_entities(), FEATURES, token=bad)
    with pytest.raises(InvalidRetrievalTokenError, match="did not read 'items@v2'"):
        store.get_historical_features(_entities(), ["items@v2:x"], token=token)
    # A token of another store: its snapshots are not here.
    other = _stores(tmp_path / "other")
    other.ingest("users@v1", rows([1], 0.0).drop(columns=["x", "y"]).assign(score=0.7))
    foreign = other.get_historical_features(_entities(), FEATURES).attrs["retrieval_token"]
    with pytest.raises(InvalidRetrievalTokenError, match="another store"):
        store.get_historical_features(_entities(), FEATURES, token=foreign)
