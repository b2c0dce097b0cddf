"""Calibrate the stopping rules' defaults on several data sets and batch sizes.

    .venv/bin/python benchmarks/stopping_calibration.py [--seeds 5] [--workers 1]
        [--datasets digits,breast_cancer,wine,iris,imbalanced,noisy] [--batches 5,10,20,40]
        [--strategy margin] [--cache histories.pkl]

For every data set x batch size x seed it runs the platform's strategy (default `margin`, the
platform default) on arrays (`label_efficiency.run_arrays`: same loader, splits, classifier)
to the data set's budget, recording per round the label count, held-out accuracy and the
predictions on the held-out split (the stop set, as the platform uses it).

Plateau (the reference every rule is judged against), per data set x batch size: on the
seed-averaged accuracy curve a(n), `final` = mean of a over the last 3 rounds (the accuracy
the budget buys) and the plateau is the first label count n with a(m) >= final - 0.01 for
every m >= n: from there on, more labels gain less than one accuracy point.

Cost of a rule in a cell (lower is better), from each seed's first firing (or the budget when
it never fires): labels spent past the plateau, relative to it, max(0, fire - plateau) /
plateau, plus 100 x the accuracy lost beyond one point, max(0, final - a_fire - 0.01), where
a_fire is the mean over seeds of each seed's accuracy where its rule fired. The defaults are
the grid point with the lowest mean cost over all cells; the output lists the grid's best
points, the old round-based default (kappa >= 0.99 over 3 rounds) for comparison, and every
cell's plateau against where the chosen rules fire.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import label_efficiency as bench  # noqa: E402

BUDGETS = {
    "digits": 500,
    "breast_cancer": 200,
    "wine": 100,
    "iris": 80,
    "imbalanced": 800,
    "noisy": 800,
}
PLATEAU_TOLERANCE = bench.PLATEAU_TOLERANCE  # the same plateau as label_efficiency reports
KAPPA_THRESHOLDS = (0.95, 0.97, 0.975, 0.98, 0.985, 0.99, 0.995)
KAPPA_WINDOWS = (10, 15, 20, 25, 30, 40, 60, 80, 100, 150)
PLATEAU_WINDOWS = (20, 30, 40, 60, 80, 100, 150, 200)
PLATEAU_DELTAS = (0.0, 0.0025, 0.005, 0.01)


def collect(dataset: str, batch: int, seed: int, strategy: str) -> tuple:
    predictions: list = []
    setup = bench.Setup(
        batch=batch, budget=BUDGETS[dataset], test_size=bench.SETUPS[dataset].test_size
    )
    options = {"cold_start": "kmeans", "candidate_factor": 10, "committee_size": 5}
    curve = bench.run_arrays(dataset, strategy, seed, setup, options, predictions)
    labels = np.array([n for n, _ in curve])
    accuracy = np.array([a for _, a in curve])
    return dataset, batch, seed, labels, accuracy, kappa_matrix(predictions)


def kappa_matrix(predictions: list) -> np.ndarray:
    """Cohen's kappa between every pair of rounds' stop-set predictions (as
    `stopping.agreement`: identical predictions count 1.0)."""
    codes = np.unique(np.concatenate(predictions), return_inverse=True)[1]
    codes = codes.reshape(len(predictions), -1)
    k = codes.max() + 1
    n, size = len(predictions), codes.shape[1]
    result = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = codes[i], codes[j]
            if (a == b).all():
                continue
            observed = float((a == b).mean())
            expected = float(
                (np.bincount(a, minlength=k) * np.bincount(b, minlength=k)).sum() / size**2
            )
            kappa = (observed - expected) / (1 - expected) if expected < 1 else 0.0
            result[i, j] = result[j, i] = kappa
    return result


# -- the rules on arrays: the logic of learning/stopping.py over a precomputed kappa matrix, so
# a grid of settings costs no model runs; label_efficiency.py reports the real rules' firing.


def fire_kappa(labels: np.ndarray, kappas: np.ndarray, threshold: float, window: int) -> int:
    """Index of the first round where stabilizing (label window) fires, or -1."""
    for k in range(1, len(labels)):
        anchors = np.flatnonzero(labels[:k] <= labels[k] - window)
        if len(anchors) and kappas[anchors[-1] : k, k].min() >= threshold:
            return k
    return -1


def fire_kappa_rounds(kappas: np.ndarray, threshold: float = 0.99, window: int = 3) -> int:
    """The old default: each of the last `window` successive pairs at kappa >= threshold."""
    for k in range(window, kappas.shape[0]):
        if all(kappas[i, i + 1] >= threshold for i in range(k - window, k)):
            return k
    return -1


def fire_plateau(labels: np.ndarray, accuracy: np.ndarray, window: int, delta: float) -> int:
    for k in range(len(labels)):
        start, middle = labels[k] - 2 * window, labels[k] - window
        recent = accuracy[: k + 1][labels[: k + 1] > middle]
        before = accuracy[: k + 1][(labels[: k + 1] > start) & (labels[: k + 1] <= middle)]
        if len(before) and labels[0] <= start and recent.mean() - before.mean() < delta:
            return k
    return -1


def cell_figures(runs: list, fires: list[int]) -> dict:
    """Median firing label count, accuracy where fired, how many seeds never fired."""
    labels = runs[0][0]
    at = [r[0][f] if f >= 0 else r[0][-1] for r, f in zip(runs, fires, strict=True)]
    acc = [r[1][f] if f >= 0 else r[1][-1] for r, f in zip(runs, fires, strict=True)]
    return {
        "fire": float(np.median(at)),
        "accuracy": float(np.mean(acc)),
        "never": sum(f < 0 for f in fires),
        "budget": int(labels[-1]),
    }


def cost(figures: dict, plateau: int, final: float) -> float:
    late = max(0.0, figures["fire"] - plateau) / plateau
    lost = max(0.0, final - figures["accuracy"] - PLATEAU_TOLERANCE)
    return late + 100 * lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(BUDGETS))
    parser.add_argument("--batches", default="5,10,20,40")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--cache", type=Path, default=None, help="reuse/keep the histories")
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    seeds = list(range(args.seeds))
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731

    started = time.perf_counter()
    histories: dict[tuple, tuple] = {}
    if args.cache and args.cache.exists():
        histories = pickle.loads(args.cache.read_bytes())
    jobs = [
        (d, b, s)
        for d in datasets
        for b in batches
        for s in seeds
        if (d, b, s, args.strategy) not in histories
    ]
    with ProcessPoolExecutor(max_workers=args.workers) as executor:
        futures = [executor.submit(collect, d, b, s, args.strategy) for d, b, s in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            d, b, s, labels, accuracy, kappas = future.result()
            histories[(d, b, s, args.strategy)] = (labels, accuracy, kappas)
            log(
                f"[{done}/{len(jobs)}] {d} batch {b} seed {s} "
                f"({time.perf_counter() - started:.0f}s)"
            )
    if args.cache:
        args.cache.write_bytes(pickle.dumps(histories))

    cells = {}
    for d, b in itertools.product(datasets, batches):
        runs = [histories[(d, b, s, args.strategy)] for s in seeds]
        labels = runs[0][0]
        mean_curve = np.mean([r[1] for r in runs], axis=0)
        cells[(d, b)] = (runs, *bench.plateau_point(mean_curve, labels))

    def score(fire_of) -> tuple[float, float, dict]:
        per_cell = {}
        for key, (runs, plateau, _, final) in cells.items():
            figures = cell_figures(runs, [fire_of(r) for r in runs])
            per_cell[key] = (figures, cost(figures, plateau, final))
        costs = [c for _, c in per_cell.values()]
        return float(np.mean(costs)), float(np.max(costs)), per_cell

    kappa_grid = {
        (t, w): score(lambda r, t=t, w=w: fire_kappa(r[0], r[2], t, w))
        for t in KAPPA_THRESHOLDS
        for w in KAPPA_WINDOWS
    }
    plateau_grid = {
        (w, delta): score(lambda r, w=w, delta=delta: fire_plateau(r[0], r[1], w, delta))
        for w in PLATEAU_WINDOWS
        for delta in PLATEAU_DELTAS
    }
    old = score(lambda r: fire_kappa_rounds(r[2]))
    best_kappa = min(kappa_grid, key=lambda k: kappa_grid[k][0])
    best_plateau = min(plateau_grid, key=lambda k: plateau_grid[k][0])

    def combined_fire(r, kappa=best_kappa, plateau=best_plateau) -> int:
        fires = [
            f
            for f in (fire_kappa(r[0], r[2], *kappa), fire_plateau(r[0], r[1], *plateau))
            if f >= 0
        ]
        return min(fires) if fires else -1

    both = score(combined_fire)
    print(
        f"stopping calibration: strategy {args.strategy}, {len(seeds)} seeds, "
        f"{len(cells)} cells ({', '.join(datasets)} x batch {batches}), "
        f"{time.perf_counter() - started:.0f}s"
    )
    print(
        "plateau: first label count from which the seed-mean accuracy stays within "
        f"{PLATEAU_TOLERANCE} of its final level (mean of the last 3 rounds)"
    )
    print(
        "cost per cell: max(0, fire - plateau) / plateau + 100 x max(0, final - acc_at_fire - 0.01)"
    )
    print("\nmean cost (worst cell) of each rule setting, best 5:")
    for name, grid in (
        ("stabilizing kappa (threshold, window labels)", kappa_grid),
        ("plateau (window labels, min_delta)", plateau_grid),
    ):
        print(f"  {name}:")
        for key in sorted(grid, key=lambda k: grid[k][0])[:5]:
            print(f"    {key}: {grid[key][0]:.3f} ({grid[key][1]:.3f})")
    print(f"  old default, kappa >= 0.99 over 3 rounds: {old[0]:.3f} ({old[1]:.3f})")
    print(f"  chosen, both rules (first to fire): {both[0]:.3f} ({both[1]:.3f})")
    print(
        f"\nchosen: kappa_threshold={best_kappa[0]}, kappa_window_labels={best_kappa[1]}, "
        f"plateau_labels={best_plateau[0]}, plateau_min_delta={best_plateau[1]}"
    )
    print(
        f"\n  {'data set':<13} {'batch':>5} {'budget':>6} {'plateau':>7} {'acc':>6} {'final':>6}"
        f" | {'old rule':>13} | {'kappa':>13} | {'plateau':>13} | {'both':>13}"
    )
    chosen = {
        "old": old[2],
        "kappa": kappa_grid[best_kappa][2],
        "plateau": plateau_grid[best_plateau][2],
        "both": both[2],
    }
    for key, (runs, plateau, at_plateau, final) in cells.items():
        shown = []
        for name in ("old", "kappa", "plateau", "both"):
            figures, _ = chosen[name][key]
            never = f"*{figures['never']}" if figures["never"] else ""
            shown.append(f"{figures['fire']:>5.0f}{never:<3} {figures['accuracy']:.3f}")
        print(
            f"  {key[0]:<13} {key[1]:>5} {runs[0][0][-1]:>6} {plateau:>7} {at_plateau:6.3f} "
            f"{final:6.3f} | " + " | ".join(f"{s:>13}" for s in shown)
        )
    print(
        "  (each rule: median label count where it fired, mean accuracy there; "
        "*k: k seeds never fired)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
