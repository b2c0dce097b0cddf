"""`feature-platform tasks export`: a round's labeling batch as a file for annotators' tools."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FORMATS = ("label-studio", "jsonl")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="labeling tasks: export a round's batch")
    commands = parser.add_subparsers(dest="tasks_command", required=True)
    export = commands.add_parser(
        "export",
        help="write a round's tasks as Label Studio import JSON or JSONL",
        description="Writes every task of the round with its context (why it was picked, the "
        "model's guess, the features shown). Label Studio files import as they are; "
        "answers come back with `feature-platform labels import`.",
    )
    export.add_argument("--round", required=True, dest="round_key", help="e.g. round-001")
    export.add_argument("--format", choices=FORMATS, default="label-studio")
    export.add_argument("-o", "--output", required=True, help="file to write, '-' for stdout")
    export.add_argument(
        "--state", default=None, help="only tasks in this state (pending, leased, answered...)"
    )
    export.add_argument("--from-name", default="label", help="Label Studio <Choices> name")
    export.add_argument("--to-name", default="image", help="Label Studio object tag name")
    export.add_argument(
        "--no-image", action="store_true", help="no pixel-grid image in the tasks' data"
    )
    export.add_argument(
        "--config",
        default=None,
        help="where to write the matching Label Studio labeling config (XML); default: "
        "beside the output as <name>.config.xml",
    )
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from feature_platform import FeatureStore, Settings
    from feature_platform.errors import FeaturePlatformError, closest
    from feature_platform.labeling.connectors import files, label_studio
    from feature_platform.labeling.queue import STATES

    if args.state is not None and args.state not in STATES:
        raise FeaturePlatformError(
            f"Unknown task state {args.state!r}.{closest(args.state, STATES)} Known: {STATES}."
        )
    from feature_platform.governance import current_actor

    store = FeatureStore(Settings.from_env())
    tasks = store.queue.tasks(args.round_key, args.state)
    if not tasks:
        rounds = store.queue.rounds()
        raise FeaturePlatformError(
            f"No tasks in round {args.round_key!r}"
            + (f" in state {args.state!r}" if args.state else "")
            + f".{closest(args.round_key, rounds)} Rounds with tasks: {rounds}."
        )
    # Tagged values the exporting person (FP_USER) may not see become markers; what they may
    # see is audited (governance/privacy.py).
    tasks = store.privacy.redact_tasks(tasks, current_actor(), purpose=f"export:{args.format}")
    config = None
    if args.format == "label-studio":
        payload = label_studio.export_tasks(
            tasks, from_name=args.from_name, to_name=args.to_name, with_image=not args.no_image
        )
        text = json.dumps(payload, indent=1) + "\n"
        classes = list(dict.fromkeys(c for t in tasks for c in t.classes))
        config = label_studio.labeling_config(
            payload, classes, from_name=args.from_name, to_name=args.to_name
        )
    else:
        text = files.tasks_to_jsonl(tasks)
    config_path = None
    if config is not None and (args.config or args.output != "-"):
        output = Path(args.output)
        config_path = Path(args.config) if args.config else output.with_suffix(".config.xml")
        _write(config_path, config)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        _write(Path(args.output), text)
        print(f"wrote {len(tasks)} task(s) of {args.round_key} as {args.format} to {args.output}")
        if config_path is not None:
            print(f"wrote the matching Label Studio labeling config to {config_path}")
    return 0


def _write(path: Path, text: str) -> None:
    from feature_platform.errors import FeaturePlatformError

    try:
        path.write_text(text, encoding="utf-8")
    except IsADirectoryError:
        raise FeaturePlatformError(f"{path} is a directory; give a file to write.") from None
    except OSError as exc:
        raise FeaturePlatformError(f"Could not write {path}: {exc.strerror}.") from None
