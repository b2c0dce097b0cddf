"""`feature-platform annotators ...`: register the people who label and review."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("annotators", help="people who label or review, with roles")
    commands = parser.add_subparsers(dest="annotators_command", required=True)
    add = commands.add_parser("add", help="register a person (or change their role)")
    add.add_argument("name")
    add.add_argument("--role", default="annotator", help="annotator, reviewer, engineer or admin")
    add.add_argument(
        "--label-studio-id", default=None, help="their Label Studio user id (completed_by)"
    )
    add.add_argument("--actor", default=None, help="who registers them (audit log)")
    add.set_defaults(handler=run_add)
    listing = commands.add_parser("list", help="everyone registered")
    listing.set_defaults(handler=run_list)
    password = commands.add_parser(
        "set-password",
        help="set a person's web sign-in password (asked at a prompt, or one line on stdin)",
    )
    password.add_argument("name")
    password.add_argument("--actor", default=None, help="who sets it (audit log)")
    password.set_defaults(handler=run_set_password)


def _registry():  # noqa: ANN202
    from feature_platform import FeatureStore, Settings
    from feature_platform.governance.roles import AnnotatorRegistry

    return AnnotatorRegistry(FeatureStore(Settings.from_env()).engine)


def run_add(args: argparse.Namespace) -> int:
    from feature_platform.labeling.connectors.label_studio import SYSTEM

    ids = {SYSTEM: args.label_studio_id} if args.label_studio_id else {}
    actor = args.actor or os.environ.get("FP_ACTOR") or os.environ.get("USER") or "cli"
    person = _registry().add(args.name, args.role, ids, actor=actor)
    print(f"{person.name}: {person.role}" + (f", ids {person.identities}" if ids else ""))
    return 0


def run_list(args: argparse.Namespace) -> int:
    people = _registry().list()
    if not people:
        print("nobody registered yet")
    for person in people:
        state = "" if person.active else " (deactivated)"
        print(f"{person.name}: {person.role}{state} {person.identities or ''}".rstrip())
    return 0


def run_set_password(args: argparse.Namespace) -> int:
    """The password never comes from argv (it would show in `ps` and shell history)."""
    import getpass
    import sys

    from feature_platform.governance.credentials import Credentials

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ; nothing changed", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    actor = args.actor or os.environ.get("FP_ACTOR") or os.environ.get("USER") or "cli"
    Credentials(_registry().engine).set_password(args.name, password, actor=actor)
    print(f"password set for {args.name}")
    return 0
