"""Read consistency the caller chooses: strong online reads see every write committed by any
process before the call; eventual reads are served from the cache, never staler than their
bound (time driven through the change feed's clock, not sleeps)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from store_test_support import T0, doubled, make_store, minutes, rows, spec

from feature_platform.errors import InvalidArgumentError

SUPPORT = Path(__file__).parent
SERVING = ["items@serving:x"]


def _writer(tmp_path: Path, database_url: str, body: str) -> subprocess.Popen:
    """A writer process on the same stores, running `body` with `store` bound; it talks
    over stdin/stdout (one line per step)."""
    code = (
        f"import sys; sys.path.insert(0, {str(SUPPORT)!r})\n"
        "from pathlib import Path\n"
        "from feature_platform.governance.identity import acting_as, system_actor\n"
        "from store_test_support import T0, make_store, minutes, rows\n"
        f"store = make_store(Path({str(tmp_path)!r}), {database_url!r})\n"
        "with acting_as(system_actor()):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _published(tmp_path: Path, database_url: str):
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.apply(spec("v2", transform=doubled))
    store.ingest("items@v1", rows([1, 2], 1.0))
    store.ingest("items@v2", rows([1, 2], 100.0))
    store.set_alias("items", "serving", "v1")
    return store


def _x(store, **consistency) -> list[float]:
    return store.get_online_features(SERVING, [1, 2], **consistency)["x"].tolist()


def test_strong_reads_see_each_write_another_process_commits(tmp_path, database_url) -> None:
    """The writer commits step i (a materialization, or an alias move), says so, and waits;
    the reader's strong read must then show step i, while an eventual read with a long
    bound may still serve the value its cache held."""
    reader = _published(tmp_path, database_url)
    lazy = {"consistency": "eventual", "max_staleness": timedelta(hours=1)}
    assert _x(reader) == [1.0, 1.0] and _x(reader, **lazy) == [1.0, 1.0]
    writer = _writer(
        tmp_path,
        database_url,
        """
        for i in range(2, 8):
            store.ingest("items@v1", rows([1, 2], float(i), at=T0 + minutes(i)))
            print(i, flush=True)
            sys.stdin.readline()
        store.set_alias("items", "serving", "v2", actor="platform")
        print("moved", flush=True)
        sys.stdin.readline()
        """,
    )
    try:
        for i in range(2, 8):
            assert writer.stdout.readline().strip() == str(i)
            assert _x(reader, **lazy) == [i - 1.0] * 2  # within its bound: the cached value
            assert _x(reader, consistency="strong") == [float(i)] * 2
            assert _x(reader, **lazy) == [float(i)] * 2  # the strong read refreshed the cache
            writer.stdin.write("next\n")
            writer.stdin.flush()
        assert writer.stdout.readline().strip() == "moved"
        served = reader.get_online_features(SERVING, [1, 2], consistency="strong")
        assert served["x"].tolist() == [100.0, 100.0]
        assert served.attrs["feature_sets"] == ["items@v2"]
        assert _x(reader) == [100.0, 100.0]  # the default is strong
        writer.stdin.write("done\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()


class _Clock:
    """Monotonic seconds that move only when the test says: `at(s)` is `s` seconds after
    the start (which is ahead of every real check the store already made)."""

    def __init__(self) -> None:
        self.start = time.monotonic() + 1.0
        self.now = self.start

    def at(self, seconds: float) -> None:
        self.now = self.start + seconds

    def __call__(self) -> float:
        return self.now


def test_eventual_reads_are_never_staler_than_their_bound(tmp_path, database_url) -> None:
    """Staleness is the time since the cache was last known current (the start of the last
    change-counter check): an eventual read may miss a write only while that is within its
    bound; past the bound it checks and sees every committed write."""
    reader = _published(tmp_path, database_url)
    writer = make_store(tmp_path, database_url)  # its own engine: another connection
    clock = _Clock()
    reader.registry.changes.clock = clock
    assert _x(reader) == [1.0, 1.0]  # known current at t=0

    writer.ingest("items@v1", rows([1, 2], 2.0, at=T0 + minutes(1)))
    clock.at(4.9)
    assert _x(reader, consistency="eventual", max_staleness=5) == [1.0, 1.0]
    clock.at(5.1)  # the last check is now 5.1 s old: past the bound
    assert _x(reader, consistency="eventual", max_staleness=5) == [2.0, 2.0]

    writer.set_alias("items", "serving", "v2", actor="platform")
    writer.ingest("items@v2", rows([1, 2], 200.0, at=T0 + minutes(1)))
    clock.at(6.0)  # 0.9 s after the last check
    assert _x(reader, consistency="eventual", max_staleness=timedelta(seconds=1)) == [2.0, 2.0]
    # A tighter bound on the same cache checks first; the response is one version whole.
    eventual = reader.get_online_features(
        SERVING, [1, 2], consistency="eventual", max_staleness=0.5
    )
    assert eventual["x"].tolist() == [200.0, 200.0]
    assert eventual.attrs["feature_sets"] == ["items@v2"]

    writer.set_alias("items", "serving", "v1", actor="platform")
    clock.at(6.2)
    assert _x(reader, consistency="eventual", max_staleness=0.5) == [200.0, 200.0]
    assert _x(reader, consistency="strong") == [2.0, 2.0]  # never stale, whatever the clock
    values = reader.get_online_values(SERVING, [1], consistency="eventual", max_staleness=60)
    assert values.matrix.tolist() == [[2.0]] and values.feature_sets == ["items@v1"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"consistency": "weak"}, "consistency must be 'strong'"),
        ({"consistency": None}, "consistency must be 'strong'"),
        ({"consistency": "eventual"}, "needs max_staleness"),
        ({"consistency": "strong", "max_staleness": 5}, "applies to consistency='eventual'"),
        ({"max_staleness": 5}, "applies to consistency='eventual'"),
        ({"consistency": "eventual", "max_staleness": 0}, "positive and finite"),
        ({"consistency": "eventual", "max_staleness": -1.5}, "positive and finite"),
        ({"consistency": "eventual", "max_staleness": float("inf")}, "positive and finite"),
        ({"consistency": "eventual", "max_staleness": float("nan")}, "positive and finite"),
        ({"consistency": "eventual", "max_staleness": timedelta(0)}, "positive and finite"),
        ({"consistency": "eventual", "max_staleness": "5s"}, "timedelta or a number"),
        ({"consistency": "eventual", "max_staleness": True}, "timedelta or a number"),
    ],
)
def test_consistency_arguments_are_checked(tmp_path, arguments, message) -> None:
    store = _published(tmp_path, None)
    with pytest.raises(InvalidArgumentError, match=message):
        store.get_online_features(SERVING, [1], **arguments)
    with pytest.raises(InvalidArgumentError, match=message):
        store.get_online_values(SERVING, [1], **arguments)


def test_an_eventual_read_after_this_stores_own_write_checks_again(tmp_path) -> None:
    store = _published(tmp_path, None)
    lazy = {"consistency": "eventual", "max_staleness": timedelta(hours=1)}
    assert _x(store, **lazy) == [1.0, 1.0]
    store.set_alias("items", "serving", "v2")
    assert _x(store, **lazy) == [100.0, 100.0]
    store.ingest("items@v2", rows([1, 2], 300.0, at=T0 + minutes(1)))
    assert _x(store, **lazy) == [300.0, 300.0]
