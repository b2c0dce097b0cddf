"""Simulated annotators as their own process: poll the labeling queue and answer every open
task through `TaskQueue.lease` / `TaskQueue.submit`, the way people working from a labeling
tool would, until stopped (SIGTERM / SIGINT) or `--max-seconds` pass.

The stores come from the environment (FP_HOME, FP_DATABASE_URL, ...; see
feature_platform/settings.py), so the process answers whatever rounds the Dagster daemon opens
on the same stores. Usable beside `make up` to watch rounds go by unattended:

    .venv/bin/python scripts/simulated_annotators.py --annotators 3 --accuracy 0.95
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from feature_platform.catalog import PROJECT_DIR
from feature_platform.feature_store import FeatureStore
from feature_platform.labeling.simulated import SimulatedAnnotators
from feature_platform.programs.project import find_program, load_project
from feature_platform.settings import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=3, help="simulated people (default 3)")
    parser.add_argument("--accuracy", type=float, default=1.0, help="chance an answer is right")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--program",
        default=os.environ.get("FP_PROGRAM") or "digits",
        help="the program whose queue to answer (default: $FP_PROGRAM, else digits)",
    )
    parser.add_argument(
        "--project",
        type=Path,
        action="append",
        default=[],
        help="a project folder (`feature-platform init`) whose programs join the shipped ones",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=0.5, help="pause when no task is open (default 0.5)"
    )
    parser.add_argument(
        "--answer-seconds",
        type=float,
        default=0.0,
        help="pause after each answer, so a round spends time being labeled (default 0)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this long (default: never)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    os.environ["FP_PROGRAM"] = args.program  # the program's own stores
    queue = FeatureStore(Settings.from_env()).queue
    programs = load_project(PROJECT_DIR)
    for project in args.project:
        programs += load_project(project)
    definition = find_program(programs, args.program)
    annotators = SimulatedAnnotators(
        truth=definition.source.ground_truth_oracle(),
        classes=list(definition.program.classes),
        count=args.annotators,
        accuracy=args.accuracy,
        seed=args.seed,
    )
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    total = 0
    print(json.dumps({"event": "ready", "annotators": annotators.names}), flush=True)
    while not stopping and (deadline is None or time.monotonic() < deadline):
        # One answer at a time, so a stop request is honoured between any two answers.
        answered = annotators.answer(queue, limit=1)
        total += answered
        if answered:
            print(json.dumps({"event": "answered", "total": total}), flush=True)
        time.sleep(args.answer_seconds if answered else args.poll_seconds)
    print(json.dumps({"event": "stopped", "total": total}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
