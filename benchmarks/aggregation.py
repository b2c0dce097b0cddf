"""Label aggregation on simulated annotators: Dawid-Skene vs majority vote (and crowd-kit).

    .venv/bin/python benchmarks/aggregation.py [--seeds 10]

Scenarios (10 classes, wrong answers uniform, accuracy = share of samples labeled correctly):

- `one_answer_perfect`: the platform default (`answers_per_task=1`), 600 samples, each
  answered once by one of two perfect annotators. Dawid-Skene has nothing to estimate here.
- `one_answer_team`: 600 samples answered once each by a team of accuracies
  0.9/0.8/0.7/0.55/0.12.
- `partial`: 200 samples answered 3 times + 800 answered once, same team.
- `redundant`: 600 samples answered 3 times each by 3 of the same team.

The reference is crowd-kit 1.4.2's `DawidSkene` (n_iter 100) when it is importable; it is
not a dependency of the package (install it in a separate environment to compare). Each
line gives the mean accuracy over seeds, and the ratio ours / crowd-kit.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from feature_platform.labeling.aggregation import fit_dawid_skene, majority_vote

CLASSES = [str(c) for c in range(10)]
TEAM = (0.9, 0.8, 0.7, 0.55, 0.12)
START = pd.Timestamp("2026-03-01", tz="UTC")


def simulate(n: int, k: int, team: tuple[float, ...], rng: np.random.Generator, prefix: str):
    rows, truth = [], {}
    for i in range(n):
        key, true = f"{prefix}{i:05d}", CLASSES[rng.integers(len(CLASSES))]
        truth[key] = true
        for j, who in enumerate(rng.choice(len(team), size=k, replace=False)):
            wrong = [c for c in CLASSES if c != true]
            label = true if rng.random() < team[who] else str(rng.choice(wrong))
            rows.append((key, f"a{who}", label, START + pd.Timedelta(seconds=10 * i + j)))
    return rows, truth


def scenario(name: str, seed: int) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    if name == "one_answer_perfect":
        rows, truth = simulate(600, 1, (1.0, 1.0), rng, "s")
    elif name == "one_answer_team":
        rows, truth = simulate(600, 1, TEAM, rng, "s")
    elif name == "partial":
        rows, truth = simulate(200, 3, TEAM, rng, "r")
        more, more_truth = simulate(800, 1, TEAM, rng, "s")
        rows, truth = rows + more, truth | more_truth
    elif name == "redundant":
        rows, truth = simulate(600, 3, TEAM, rng, "s")
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    return pd.DataFrame(rows, columns=["sample_key", "annotator", "label", "answered_at"]), truth


def accuracy(labels: pd.Series, truth: dict[str, str]) -> float:
    return float((labels == labels.index.map(truth)).mean())


def crowdkit_labels(answers: pd.DataFrame) -> pd.Series | None:
    try:
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        return None
    frame = answers.rename(columns={"sample_key": "task", "annotator": "worker"})
    return DawidSkene(n_iter=100).fit_predict(frame[["task", "worker", "label"]]).astype(str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--scenarios", default="one_answer_perfect,one_answer_team,partial,redundant"
    )
    args = parser.parse_args(argv)
    print(f"aggregation accuracy, mean of {args.seeds} seeds (10 classes)")
    print(f"  {'scenario':<20} {'majority':>8} {'ours DS':>8} {'crowd-kit':>9} {'ratio':>6}  ran")
    for name in args.scenarios.split(","):
        figures: dict[str, list[float]] = {"mv": [], "ds": [], "ck": []}
        ran = set()
        for seed in range(args.seeds):
            answers, truth = scenario(name, seed)
            figures["mv"].append(
                accuracy(majority_vote(answers).set_index("sample_key")["label"], truth)
            )
            fit = fit_dawid_skene(answers)
            ran.add(fit.method)
            figures["ds"].append(accuracy(fit.labels.set_index("sample_key")["label"], truth))
            reference = crowdkit_labels(answers)
            if reference is not None:
                figures["ck"].append(accuracy(reference, truth))
        mv, ds = np.mean(figures["mv"]), np.mean(figures["ds"])
        ck = np.mean(figures["ck"]) if figures["ck"] else None
        ratio = f"{ds / ck:6.3f}" if ck else "     -"
        shown_ck = f"{ck:9.3f}" if ck is not None else "        -"
        print(f"  {name:<20} {mv:8.3f} {ds:8.3f} {shown_ck} {ratio}  {'/'.join(sorted(ran))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
