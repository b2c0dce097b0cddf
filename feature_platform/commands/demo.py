"""`feature-platform demo [--program NAME ...]`: active-learning rounds through Dagster with
simulated annotators, for any program (several side by side)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run N active-learning rounds through Dagster on embedded defaults",
        description="Runs N rounds through Dagster (project DAGSTER_HOME) with simulated "
        "annotators and prints them beside random selection on the same seed.",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cold-start",
        choices=["random", "kmeans"],
        default="random",
        help="how the first round picks before any model exists",
    )
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--annotator-accuracy", type=float, default=0.95)
    parser.add_argument("--answers-per-task", type=int, default=1)
    parser.add_argument(
        "--feature-set",
        default=None,
        help="the training feature set reference (default: the template's, e.g. digits@training)",
    )
    parser.add_argument(
        "--program",
        action="append",
        default=None,
        help="the program(s) to run, side by side (repeatable; default: digits)",
    )
    parser.add_argument(
        "--project",
        action="append",
        type=Path,
        default=[],
        help="a project folder (programs/*.yaml) whose programs join the shipped examples",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the embedded stores, emptied first (default: $FP_HOME, else ./.fp_data)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document only")
    parser.set_defaults(handler=run)


def _check_counts(args: argparse.Namespace) -> None:
    """Refuse counts the simulated team cannot work with before anything is touched."""
    from feature_platform.errors import InvalidArgumentError

    if args.annotators < 1:
        raise InvalidArgumentError(f"--annotators must be at least 1, got {args.annotators}.")
    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if not 1 <= args.answers_per_task <= args.annotators:
        raise InvalidArgumentError(
            f"--answers-per-task must lie in 1..--annotators ({args.annotators}), got "
            f"{args.answers_per_task}: each answer to a task comes from another annotator."
        )
    if not 0.0 <= args.annotator_accuracy <= 1.0:
        raise InvalidArgumentError(
            f"--annotator-accuracy must lie in [0, 1], got {args.annotator_accuracy}."
        )


def run(args: argparse.Namespace) -> int:
    _check_counts(args)
    from feature_platform.defs.demo import DemoOptions, format_table, run_demo
    from feature_platform.learning.strategies import STRATEGIES
    from feature_platform.settings import Settings

    if args.rounds < 1:
        print("error: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.strategy not in STRATEGIES:
        print(
            f"error: unknown strategy {args.strategy!r}; known: {list(STRATEGIES)}", file=sys.stderr
        )
        return 2
    options = DemoOptions(
        rounds=args.rounds,
        strategy=args.strategy,
        batch_size=args.batch_size,
        seed=args.seed,
        cold_start=args.cold_start,
        annotators=args.annotators,
        annotator_accuracy=args.annotator_accuracy,
        answers_per_task=args.answers_per_task,
        feature_set=args.feature_set,
        programs=tuple(args.program or ["digits"]),
        project_dirs=tuple(p.resolve() for p in args.project),
    )
    home = args.home or Settings.from_env(scoped=False).home

    def log(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout, flush=True)

    report = run_demo(options, home.resolve(), log=log)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(format_table(report))
        print(
            f"\nstores: {report.home}  |  web UI: make ui  |  MLflow: "
            f"mlflow ui --backend-store-uri sqlite:///{report.home}/mlflow.db"
        )
    return 0
