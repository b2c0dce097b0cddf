"""What a label set change costs: a label snapshot after a rename (every answer mapped
forward) against the same snapshot with no change (the reference), and the change itself
(every task's classes moved in one transaction), on the embedded SQLite store.

    PYTHONPATH=. python benchmarks/label_sets.py [--tasks 5000] [--repeats 3]

Prints the figures side by side and the ratio; nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from feature_platform import FeatureStore, Settings
from feature_platform.governance.identity import acting_as, system_actor
from feature_platform.governance.roles import AnnotatorRegistry
from feature_platform.labeling.label_sets import LabelChange
from feature_platform.labeling.queue import Submission, TaskSpec

CLASSES = [str(c) for c in range(10)]


def answered_store(home: Path, n_tasks: int) -> FeatureStore:
    """A store with `n_tasks` tasks, each answered once (labels cycle through the classes)."""
    store = FeatureStore(Settings.under(home))
    people = AnnotatorRegistry(store.engine)
    people.add("lena", "lead", actor="platform")
    people.add("w0", "annotator", actor="platform")
    specs = [TaskSpec(str(i), "margin", 0.5, "benchmark sample", "d@v1") for i in range(n_tasks)]
    tasks = store.queue.create_batch("round-001", specs, CLASSES)
    store.queue.submit_many([Submission(t.id, "w0", CLASSES[i % 10]) for i, t in enumerate(tasks)])
    return store


def timed(work) -> float:  # noqa: ANN001
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain, mapped, changes = [], [], []
    with acting_as(system_actor()):
        for _ in range(args.repeats):
            root = Path(tempfile.mkdtemp(prefix="fp_label_sets_"))
            try:
                reference = answered_store(root / "reference", args.tasks)
                plain.append(timed(reference.labels.create_snapshot))
                changed = answered_store(root / "changed", args.tasks)
                rename = LabelChange.rename("7", "seven")
                changes.append(
                    timed(
                        lambda s=changed, c=rename: s.label_sets.evolve(
                            "bench", c, initial_classes=CLASSES, actor="lena"
                        )
                    )
                )
                mapped.append(timed(changed.labels.create_snapshot))
                assert "seven" in set(changed.labels.latest().labels["label"])
                reference.engine.dispose()
                changed.engine.dispose()
            finally:
                shutil.rmtree(root, ignore_errors=True)
    snapshot, after = statistics.median(plain), statistics.median(mapped)
    print(f"{args.tasks} answered tasks, median of {args.repeats} runs (SQLite, one process)")
    print(f"{'':44}{'seconds':>10}")
    print(f"{'label snapshot, label set never changed (ref)':44}{snapshot:>10.3f}")
    print(f"{'label snapshot after a rename (mapped)':44}{after:>10.3f}")
    print(f"{'ratio mapped / reference':44}{after / snapshot:>10.2f}")
    print(f"{'the rename itself (every task moved)':44}{statistics.median(changes):>10.3f}")


if __name__ == "__main__":
    main()
