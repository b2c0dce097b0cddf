"""The command-line front door: `feature-platform <command> ...`.

Each command lives in its own module under `feature_platform/commands/` and exposes
`register(subparsers)`; this file only discovers and dispatches them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from feature_platform import commands
from feature_platform.errors import FeaturePlatformError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feature-platform",
        description="A feature store for active learning, run as a Dagster code location.",
    )
    parser.add_argument(
        "--program",
        dest="global_program",
        default=None,
        help="read and write this labeling program's stores (default: $FP_PROGRAM, else the "
        "platform's)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.global_program:
        from feature_platform.names import check_name

        try:
            os.environ["FP_PROGRAM"] = check_name(args.global_program, "program name")
        except FeaturePlatformError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        return int(args.handler(args) or 0)
    except FeaturePlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
