"""The command-line front door: `feature-platform <command> ...`.

Each command lives in its own module under `feature_platform/commands/` and exposes
`register(subparsers)`; this file only discovers and dispatches them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from feature_platform import commands
from feature_platform.errors import FeaturePlatformError
from feature_platform.governance.identity import acting_as, configured_actor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feature-platform",
        description="A feature store for active learning, run as a Dagster code location.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # The command line acts as FP_USER (default: the OS user), never as a flag's value.
        with acting_as(configured_actor()):
            return int(args.handler(args) or 0)
    except FeaturePlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
