"""Auto-labels: human labels needed to reach 95 % of full-pool accuracy with and without the
model's auto-labels, and the precision of the auto-labels the platform accepted.

    .venv/bin/python benchmarks/auto_labels.py [--datasets digits,weather] [--seeds 10]
        [--workers 2] [--levels 0.95,0.5] [--target 0.99] [--max-share 0.2]
        [--review-fraction 0.1] [--strategy margin] [--batch N] [--truth-ceiling]
        [--scorer champion|label_spreading] [--scorer-params '{"n_neighbors": 7}']
                                                              (or: make bench-auto-labels)

Each run is the real platform path (`learning.loop.run_loop`: FeatureStore, queue, label
snapshots, the same round steps the Dagster assets run), answered by a simulated, always
correct annotator through the queue. Arms, on the same seeds and splits:
- `off`: the program without auto-labels (the reference);
- `on@<level>`: auto-labels on, the threshold calibrated on the held-out split so that the
  one-sided Clopper-Pearson lower bound of precision at confidence `<level>` is at least
  `--target`; at most `--max-share` of the round's unlabeled pool per round; a seeded
  `--review-fraction` of each round's auto-labels reviewed by the annotator in the next batch.
  `--scorer` (with `--scorer-params`) is what proposes the auto-labels: the champion model
  (default) or `label_spreading` (`learning/auto_label_scorers.py`), calibrated alike.

Human labels are every answer a person gave, review answers included (they take places in the
batch and count against the label budget). Per seed: the first human-label count at which
held-out accuracy reaches 95 % of that seed's full-pool accuracy (the same classifier trained
on the whole pool, as in `label_efficiency.py`); `never` if not within the budget. Printed per
data set and arm: median and IQR over seeds, the reduction of the median against `off`, the
median of the per-seed reductions, and the precision of accepted auto-labels against the
ground truth (every label recorded, before reviews withdrew any), the share withdrawn by
reviews and the rounds where auto-labeling was on. The last line is one JSON document.

`--truth-ceiling` gives the samples the platform chose to auto-label their ground-truth label
instead of the model's: not a mode of the platform, the most that certifying more samples at
higher precision could gain with the same choice of samples.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from label_efficiency import full_pool_accuracy  # noqa: E402

# Batch and budget per data set: the budget lets the reference reach 95 % on every seed.
SETUPS = {"digits": (20, 200), "weather": (10, 120)}
FRACTION = 0.95
OFF = "off"


def setup(dataset: str, args: argparse.Namespace) -> tuple[int, int]:
    """(batch size, label budget) of `dataset`; `--batch` overrides the batch size (a finer
    batch measures the labels needed in finer steps; the budget stays)."""
    batch, budget = SETUPS[dataset]
    return (args.batch or batch), budget


def arm_name(level: float | None) -> str:
    return OFF if level is None else f"on@{level:g}"


def run_one(dataset: str, seed: int, level: float | None, args: argparse.Namespace) -> dict:
    """One loop run: its curve (human labels, accuracy) and its auto-label figures."""
    from feature_platform import FeatureStore, Settings
    from feature_platform.catalog import digits, weather
    from feature_platform.governance import system_actor
    from feature_platform.labeling.machine_labels import MODEL
    from feature_platform.labeling.simulated import SimulatedAnnotators
    from feature_platform.learning import auto_labels
    from feature_platform.learning.auto_labels import AutoLabelRounds
    from feature_platform.learning.loop import run_loop
    from feature_platform.programs.model import AutoLabelSettings
    from feature_platform.programs.project import ProgramDefinition, bootstrap_program

    started = time.perf_counter()
    batch, budget = setup(dataset, args)
    settings = AutoLabelSettings(
        enabled=level is not None,
        target_precision=args.target,
        confidence=level if level is not None else 0.95,
        max_share=args.max_share,
        review_fraction=args.review_fraction,
        scorer=args.scorer,
        scorer_params=json.loads(args.scorer_params),
    )
    home = Path(tempfile.mkdtemp(prefix="fp-auto-labels-"))
    try:
        store = FeatureStore(Settings.under(home), actor=system_actor())
        if dataset == "digits":
            digits.bootstrap(store, split_seed=seed)
            base, truth, classes = digits.program(), digits.ground_truth_oracle(), digits.CLASSES
            feature_set = "digits@v1"
        else:
            definition = ProgramDefinition(weather.template())
            bootstrap_program(store, definition)
            base, classes = definition.program, weather.CLASSES
            truth = definition.source.ground_truth_oracle()
            feature_set = "weather@v1"
        program = base.replace(
            feature_set=feature_set,
            strategy=args.strategy,
            batch_size=batch,
            label_budget=budget,
            seed=seed,
            auto_labels=settings,
        )
        annotators = SimulatedAnnotators(truth, classes, count=1, seed=seed)
        select = auto_labels.select_auto_labels
        if args.truth_ceiling:
            # An upper bound for any certification: the same samples, labeled with the truth.
            auto_labels.select_auto_labels = lambda *a, **k: (chosen := select(*a, **k)).assign(
                predicted=chosen["sample_key"].map(truth).astype(str)
            )
        try:
            results = run_loop(store, program, annotators, rounds=budget // batch + 5)
        finally:
            auto_labels.select_auto_labels = select
        made = store.machine_labels.labels([MODEL], include_withdrawn=True)
        right = made["label"].astype(str) == made["sample_key"].map(truth).astype(str)
        rounds = AutoLabelRounds(store.engine).all()
        store.engine.dispose()
        return {
            "dataset": dataset,
            "seed": seed,
            "arm": arm_name(level),
            "curve": [(r.labels, r.accuracy) for r in results],
            "auto_labels": len(made),
            "auto_correct": int(right.sum()),
            "withdrawn": int(made["withdrawn"].sum()),
            "withdrawn_correct": int((made["withdrawn"] & right).sum()),
            "rounds_on": sum(r.status == "on" for r in rounds),
            "rounds": len(rounds),
            "reviewed": rounds[-1].reviewed if rounds else 0,
            "confirmed": rounds[-1].confirmed if rounds else 0,
            "thresholds": [r.threshold for r in rounds if r.threshold is not None],
            "best_bound": max((r.holdout_precision_bound or 0.0 for r in rounds), default=None),
            "seconds": time.perf_counter() - started,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def labels_to_reach(curve: list, full: float) -> int | None:
    for labels, accuracy in curve:
        if accuracy >= FRACTION * full - 1e-12:
            return int(labels)
    return None


def spread(values: list[int | None], budget: int) -> dict:
    """Median and IQR over seeds; a seed that never reached counts as past the budget."""
    filled = np.array([v if v is not None else budget + 1 for v in values], dtype=float)
    q1, median, q3 = np.percentile(filled, [25, 50, 75])
    return {
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "never": sum(v is None for v in values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,weather")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--levels",
        default="0.95,0.5",
        help="confidence levels of the held-out precision bound, one arm each (0.95: default)",
    )
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--max-share", type=float, default=0.2)
    parser.add_argument("--review-fraction", type=float, default=0.1)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument(
        "--batch", type=int, default=0, help="batch size for every data set (default: per set)"
    )
    parser.add_argument(
        "--scorer",
        default="champion",
        help="what proposes the auto-labels: champion (default) or label_spreading",
    )
    parser.add_argument(
        "--scorer-params",
        default="{}",
        help="the scorer's parameters as JSON, e.g. '{\"n_neighbors\": 10}'",
    )
    parser.add_argument(
        "--truth-ceiling",
        action="store_true",
        help="label the auto-labeled samples with the ground truth (an upper bound, not a mode)",
    )
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    for dataset in datasets:
        if dataset not in SETUPS:
            parser.error(f"unknown dataset {dataset!r}; known: {sorted(SETUPS)}")
    levels: list[float | None] = [None] + [float(x) for x in args.levels.split(",") if x]
    seeds = list(range(args.seeds))
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    jobs = [(d, s, level) for d in datasets for s in seeds for level in levels]
    log(f"{len(jobs)} runs: {datasets} x {len(seeds)} seeds x {[arm_name(x) for x in levels]}")
    started = time.perf_counter()
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as executor:
        fulls = {(d, s): executor.submit(full_pool_accuracy, d, s) for d in datasets for s in seeds}
        futures = [executor.submit(run_one, d, s, level, args) for d, s, level in jobs]
        for done, future in enumerate(as_completed(futures), start=1):
            run = future.result()
            runs.setdefault((run["dataset"], run["arm"]), {})[run["seed"]] = run
            elapsed = time.perf_counter() - started
            log(
                f"[{done}/{len(jobs)}] {run['dataset']:<8} {run['arm']:<8} seed {run['seed']}: "
                f"{run['curve'][-1][0]} human labels -> {run['curve'][-1][1]:.3f}, "
                f"{run['auto_labels']} auto-labels ({run['seconds']:.0f}s; elapsed {elapsed:.0f}s)"
            )
        full = {key: future.result() for key, future in fulls.items()}

    report: dict[str, dict] = {}
    print(
        f"auto-labels: {len(seeds)} seeds, {time.perf_counter() - started:.0f}s; target "
        f"precision {args.target}, max share {args.max_share} of the pool per round, review "
        f"fraction {args.review_fraction}, strategy {args.strategy}, scorer {args.scorer} "
        f"{args.scorer_params}, simulated annotator always right"
        + ("; auto-labels replaced by the truth (ceiling)" if args.truth_ceiling else "")
    )
    for dataset in datasets:
        batch, budget = setup(dataset, args)
        mean_full = float(np.mean([full[(dataset, s)] for s in seeds]))
        print(
            f"\n{dataset}: full-pool accuracy {mean_full:.3f}, batch {batch}, budget {budget}; "
            f"human labels to reach {FRACTION:.0%} of it (median [IQR] over seeds)"
        )
        print(
            f"  {'arm':<9} {'labels':>7} {'IQR':>11} {'never':>5} {'reduction':>9} "
            f"{'paired':>7} | {'auto-labels':>11} {'precision':>9} {'withdrawn':>9} "
            f"{'rounds on':>9} {'threshold':>9}"
        )
        report[dataset] = {"full_pool_accuracy": round(mean_full, 4)}
        reference = [
            labels_to_reach(runs[(dataset, OFF)][s]["curve"], full[(dataset, s)]) for s in seeds
        ]
        for level in levels:
            arm = arm_name(level)
            reached = [
                labels_to_reach(runs[(dataset, arm)][s]["curve"], full[(dataset, s)]) for s in seeds
            ]
            figures = spread(reached, budget)
            base = spread(reference, budget)["median"]
            figures["reduction"] = round(1 - figures["median"] / base, 4) if base else None
            paired = [
                1 - (m if m is not None else budget + 1) / (r if r is not None else budget + 1)
                for m, r in zip(reached, reference, strict=True)
            ]
            figures["paired_reduction"] = round(float(np.median(paired)), 4)
            made = sum(runs[(dataset, arm)][s]["auto_labels"] for s in seeds)
            correct = sum(runs[(dataset, arm)][s]["auto_correct"] for s in seeds)
            withdrawn = sum(runs[(dataset, arm)][s]["withdrawn"] for s in seeds)
            on = sum(runs[(dataset, arm)][s]["rounds_on"] for s in seeds)
            total = sum(runs[(dataset, arm)][s]["rounds"] for s in seeds)
            thresholds = [t for s in seeds for t in runs[(dataset, arm)][s]["thresholds"]]
            bounds = [runs[(dataset, arm)][s]["best_bound"] for s in seeds]
            figures |= {
                "auto_labels_per_seed": round(made / len(seeds), 1),
                "precision": round(correct / made, 4) if made else None,
                "withdrawn": withdrawn,
                "rounds_on": on,
                "rounds": total,
                "median_threshold": round(float(np.median(thresholds)), 4) if thresholds else None,
                "best_holdout_bound": round(float(np.median([b for b in bounds if b])), 4)
                if any(bounds)
                else None,
            }
            report[dataset][arm] = figures
            iqr = f"[{figures['q1']:g}, {figures['q3']:g}]"
            reduction = figures["reduction"]
            shown_reduction = "-" if level is None or reduction is None else f"{reduction:.0%}"
            shown_paired = "-" if level is None else f"{figures['paired_reduction']:.0%}"
            precision = "-" if figures["precision"] is None else f"{figures['precision']:.4f}"
            rounds_on = "-" if level is None else f"{on}/{total}"
            threshold = (
                "-" if figures["median_threshold"] is None else f"{figures['median_threshold']:.4f}"
            )
            print(
                f"  {arm:<9} {figures['median']:>7g} {iqr:>11} {figures['never']:>5} "
                f"{shown_reduction:>9} {shown_paired:>7} | "
                f"{figures['auto_labels_per_seed']:>11} {precision:>9} {withdrawn:>9} "
                f"{rounds_on:>9} {threshold:>9}"
            )
        for level in levels[1:]:
            figures = report[dataset][arm_name(level)]
            met = (
                figures["reduction"] is not None
                and figures["reduction"] >= 0.30
                and figures["precision"] is not None
                and figures["precision"] >= 0.99
            )
            print(
                f"  goal (>= 30 % fewer human labels at >= 99 % auto-label precision), "
                f"{arm_name(level)}: {'met' if met else 'NOT met'}"
                f"{' (truth ceiling: precision not measured)' if args.truth_ceiling else ''}; "
                f"best held-out bound "
                f"(median over seeds) {figures['best_holdout_bound']}"
            )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
