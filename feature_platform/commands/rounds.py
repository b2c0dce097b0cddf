"""`feature-platform rounds retry ROUND`: try a round again once the cause of its failure is
fixed (its sensors re-request its work under a new run key; see learning/round_attempts.py)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rounds", help="rounds: retry a round whose run failed")
    commands = parser.add_subparsers(dest="rounds_command", required=True)
    retry = commands.add_parser(
        "retry", help="start the next attempt of a round whose open or retrain run failed"
    )
    retry.add_argument("round_key", metavar="ROUND", help="e.g. round-003")
    retry.add_argument("--reason", default="", help="what was fixed (kept in the audit log)")
    retry.set_defaults(handler=run_retry)


def run_retry(args: argparse.Namespace) -> int:
    from feature_platform import FeatureStore, Settings
    from feature_platform.names import printable

    attempt = FeatureStore(Settings.from_env()).round_attempts.retry(args.round_key, args.reason)
    print(
        f"{printable(args.round_key)}: attempt {attempt}; the program's sensors request it again "
        f"on their next tick."
    )
    return 0
