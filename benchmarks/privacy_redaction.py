"""What redaction costs: reading tasks from the queue alone (the reference) beside reading them
and redacting them for a person (governance/privacy.py), on SQLite, in one run.

    python benchmarks/privacy_redaction.py [--tasks 2000] [--repeats 5]

Three cases: the annotate page's one task (`queue.get` vs `get` + `redact_task`), an export of
a whole round by someone who may see no tagged column (markers only, no audit entry), and by a
lead who sees them all (one `privacy.view` audit entry per task, in one transaction). Each
figure is the median of `--repeats` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from feature_platform import FeatureStore, Settings
from feature_platform.governance.identity import SYSTEM, system_actor
from feature_platform.labeling.queue import TaskSpec
from feature_platform.store.feature_set import FeatureSetSpec

FEATURES = [f"f{i}" for i in range(64)]
TAGS = {"f0": ("pii",), "f1": ("sensitive",), "f2": ("location",)}


def _identity(frame: pd.DataFrame, params) -> pd.DataFrame:  # noqa: ANN001
    return frame


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        store = FeatureStore(Settings.under(Path(home)), actor=system_actor())
        spec = FeatureSetSpec(
            "bench", "v1", "k", dict.fromkeys(FEATURES, "float64"), _identity, ("raw",), tags=TAGS
        )
        store.apply(spec)
        store.registry.people.add("ann", "annotator", actor=SYSTEM)
        store.registry.people.add("lea", "lead", actor=SYSTEM)
        specs = [
            TaskSpec(
                f"s{i}",
                "margin",
                0.5,
                "bench",
                spec.id,
                None,
                {f: float(i) for f in FEATURES},
                [("a", 0.6), ("b", 0.4)],
                features_shown_version=spec.id,
                column_tags={c: list(t) for c, t in TAGS.items()},
            )
            for i in range(args.tasks)
        ]
        tasks = store.queue.create_batch("round-001", specs, ["a", "b"])
        one = tasks[0].id
        privacy, queue = store.privacy, store.queue
        rows = [
            (
                "annotate page: one task",
                _median_ms(lambda: queue.get(one), args.repeats),
                _median_ms(
                    lambda: privacy.redact_task(queue.get(one), "ann", purpose="bench"),
                    args.repeats,
                ),
            ),
            (
                f"export of {args.tasks} tasks, annotator (markers, no audit)",
                _median_ms(lambda: queue.tasks("round-001"), args.repeats),
                _median_ms(
                    lambda: privacy.redact_tasks(queue.tasks("round-001"), "ann", purpose="b"),
                    args.repeats,
                ),
            ),
            (
                f"export of {args.tasks} tasks, lead (all shown, {args.tasks} audit entries)",
                _median_ms(lambda: queue.tasks("round-001"), args.repeats),
                _median_ms(
                    lambda: privacy.redact_tasks(queue.tasks("round-001"), "lea", purpose="b"),
                    args.repeats,
                ),
            ),
        ]
    print(f"{'case':<62} {'queue only ms':>14} {'+ redaction ms':>15} {'ratio':>6}")
    for name, plain, redacted in rows:
        print(f"{name:<62} {plain:>14.2f} {redacted:>15.2f} {redacted / plain:>6.2f}")


if __name__ == "__main__":
    main()
