"""`feature-platform lineage <target>`: raw sources -> feature set versions -> training sets
-> models, around a feature set (`digits`), a version (`digits@v1`, `digits@serving`), a
model (`model:<id>` or its bare id), a training set or a source (`source:<name>`)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lineage",
        help="what a feature set, version, model or source comes from and feeds",
        description=__doc__,
    )
    parser.add_argument("target", help="e.g. digits, digits@v2, digits@serving, model:clf/3")
    parser.add_argument(
        "--format", choices=("markdown", "json"), default="markdown", help="output format"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from feature_platform import FeatureStore, Settings

    graph = FeatureStore(Settings.from_env()).lineage(args.target)
    if args.format == "json":
        print(json.dumps(graph.to_dict(), indent=2, default=str))
    else:
        print(graph.to_markdown(), end="")
    return 0
