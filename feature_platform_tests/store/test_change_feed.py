"""The store-wide change counter that every cache checks before it answers: a commit made by
another process or thread is seen by the very next read (on SQLite the read is usually a
check of the wal-index header, so these tests drive commits between cached reads)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from store_test_support import T0, doubled, make_store, minutes, rows, spec

SUPPORT = Path(__file__).parent


def _warm(store) -> None:
    """Serve enough reads that every cache (and the counter's fast check) is in use."""
    for _ in range(20):
        store.get_online_features(["items@serving:x"], [1])


def _in_another_process(tmp_path: Path, database_url: str, statement: str) -> None:
    """Run `statement` with `store` bound to a store on the same database, in a new process."""
    code = (
        f"import sys; sys.path.insert(0, {str(SUPPORT)!r})\n"
        "from pathlib import Path\n"
        "from store_test_support import T0, make_store, minutes, rows\n"
        f"store = make_store(Path({str(tmp_path)!r}), {database_url!r})\n"
        f"{statement}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_commit_by_another_process_is_seen_by_the_next_read(tmp_path, database_url) -> None:
    store = make_store(tmp_path, database_url)
    store.apply(spec())
    store.apply(spec("v2", transform=doubled))
    store.ingest("items@v1", rows([1], 1.0))
    store.ingest("items@v2", rows([1], 2.0))
    store.set_alias("items", "serving", "v1")
    _warm(store)
    before = store.registry.token()
    _in_another_process(
        tmp_path, database_url, "store.ingest('items@v1', rows([1], 5.0, at=T0 + minutes(1)))"
    )
    assert store.registry.token() > before
    assert store.get_online_features(["items@serving:x"], [1])["x"].tolist() == [5.0]
    _warm(store)
    _in_another_process(
        tmp_path, database_url, "store.set_alias('items', 'serving', 'v2', actor='platform')"
    )
    assert store.get_online_features(["items@serving:x"], [1])["x"].tolist() == [2.0]


def test_reads_keep_up_with_a_busy_writer_thread(tmp_path, database_url) -> None:
    writer, reader = make_store(tmp_path, database_url), make_store(tmp_path, database_url)
    writer.apply(spec())
    writer.apply(spec("v2", transform=doubled))
    writer.ingest("items@v1", rows([1], 1.0))
    writer.ingest("items@v2", rows([1], 2.0))
    writer.set_alias("items", "serving", "v1")
    moves, done = 60, threading.Event()
    tokens: list[int] = []
    answers: set[float] = set()

    def move_back_and_forth() -> None:
        try:
            for i in range(moves):
                writer.set_alias("items", "serving", "v2" if i % 2 == 0 else "v1", actor="platform")
        finally:
            done.set()

    thread = threading.Thread(target=move_back_and_forth)
    thread.start()
    while not done.is_set():
        tokens.append(reader.registry.token())
        answers.update(reader.get_online_features(["items@serving:x"], [1])["x"].tolist())
    thread.join()
    assert tokens == sorted(tokens)  # the counter never appears to go backwards
    assert answers <= {1.0, 2.0}
    final = "v2" if (moves - 1) % 2 == 0 else "v1"
    assert reader.registry.resolve("items", "serving").version == final
    expected = 2.0 if final == "v2" else 1.0
    assert reader.get_online_features(["items@serving:x"], [1])["x"].tolist() == [expected]
    assert reader.registry.token() == writer.registry.token()
    writer.ingest("items@v1", rows([1], 3.0, at=T0 + minutes(1)))
    reader.set_alias("items", "serving", "v1")
    assert writer.get_online_features(["items@serving:x"], [1])["x"].tolist() == [3.0]
