"""`program_samples`: the one place "arrived samples minus the held-out split" is computed,
taken by the candidate pool, the rules' samples and feedback; kept while nothing changes."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from feature_platform import FeatureStore
from feature_platform.catalog import digits
from feature_platform.labeling.rules import rule_samples
from feature_platform.learning import rounds
from feature_platform.learning.training import program_samples
from feature_platform.store.db import utcnow
from feature_platform_tests.conftest import count_sample_reads

NEW = 90_000  # a sample id the digits source does not have


def _arrive(store: FeatureStore, key: int, at: pd.Timestamp) -> None:
    fsv = store.registry.get("digits", "v1")
    row = pd.DataFrame({"sample_id": [key], "event_timestamp": [at]})
    row[fsv.feature_names] = 0.5
    store.ingest("digits@v1", row)


def test_the_pool_is_what_arrived_by_then_minus_the_held_out_split(
    digits_store: FeatureStore,
) -> None:
    program = digits.program()
    now = utcnow()
    _arrive(digits_store, NEW, pd.Timestamp(now + timedelta(days=1)))  # not arrived yet
    holdout = set(digits_store.sources.read(digits.HOLDOUT_SOURCE)["sample_id"].astype(str))
    samples = program_samples(digits_store, program, now)
    assert samples.held_out == holdout
    assert str(NEW) not in samples.arrived and holdout <= samples.arrived
    assert samples.pool == sorted(samples.arrived - holdout, key=lambda k: (len(k), k))
    assert str(NEW) in program_samples(digits_store, program).arrived  # without as_of: all
    # The three users take the same set.
    assert rule_samples(digits_store, program, now) == samples.pool
    pool = rounds.candidate_pool(digits_store, program, model=None, as_of=now)
    assert pool["sample_key"].tolist() == samples.pool


def test_every_sample_is_read_once_and_again_only_after_a_change(
    digits_store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = digits.program()
    read = digits_store.sources.read  # uncounted, for the test's own reading
    reads = count_sample_reads(digits_store, monkeypatch)
    first = program_samples(digits_store, program)
    assert program_samples(digits_store, program) == first
    assert reads == {"offline": 1, "sources": 1}  # the second call read nothing

    _arrive(digits_store, NEW, pd.Timestamp(utcnow()))  # a new snapshot: read again
    arrived = program_samples(digits_store, program)
    assert arrived.arrived == first.arrived | {str(NEW)} and str(NEW) in arrived.pool
    # The held-out source rewritten (the new sample held out): read again too.
    labels = read(digits.HOLDOUT_SOURCE)
    extra = pd.DataFrame({"sample_id": [NEW], "label": ["3"]}).astype(labels.dtypes.to_dict())
    digits_store.sources.write(digits.HOLDOUT_SOURCE, pd.concat([labels, extra]))
    held = program_samples(digits_store, program)
    assert str(NEW) in held.held_out and str(NEW) not in held.pool
    assert reads == {"offline": 3, "sources": 3}
