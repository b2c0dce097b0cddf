"""`feature-platform annotators ...`: register the people who label and review.

Acts as the configured identity (`FP_USER`, default: the OS user), which must be an admin to
register or deactivate people; on a platform without an admin yet, a person may register
themselves as its first admin.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("annotators", help="people who label or review, with roles")
    commands = parser.add_subparsers(dest="annotators_command", required=True)
    add = commands.add_parser("add", help="register a person (or change their role)")
    add.add_argument("name")
    add.add_argument(
        "--role", default="annotator", help="viewer, annotator, reviewer, lead (engineer) or admin"
    )
    add.add_argument(
        "--label-studio-id", default=None, help="their Label Studio user id (completed_by)"
    )
    add.set_defaults(handler=run_add)
    deactivate = commands.add_parser("deactivate", help="stop accepting a person's work")
    deactivate.add_argument("name")
    deactivate.set_defaults(handler=run_deactivate)
    listing = commands.add_parser("list", help="everyone registered")
    listing.set_defaults(handler=run_list)
    whoami = commands.add_parser("whoami", help="the identity commands act as, and its role")
    whoami.set_defaults(handler=run_whoami)
    password = commands.add_parser(
        "set-password",
        help="set a person's web sign-in password (asked at a prompt, or one line on stdin)",
    )
    password.add_argument("name")
    password.set_defaults(handler=run_set_password)
    token = commands.add_parser(
        "token",
        help="issue an API token acting as a person (for machine clients, e.g. feedback); "
        "printed once, stored hashed",
    )
    token.add_argument("name")
    token.add_argument("--label", default="", help="what the token is for")
    token.set_defaults(handler=run_token)
    revoke = commands.add_parser("revoke-tokens", help="revoke every API token of a person")
    revoke.add_argument("name")
    revoke.set_defaults(handler=run_revoke_tokens)


def _registry():  # noqa: ANN202
    from feature_platform import FeatureStore, Settings
    from feature_platform.governance.roles import AnnotatorRegistry

    return AnnotatorRegistry(FeatureStore(Settings.from_env()).engine)


def run_add(args: argparse.Namespace) -> int:
    from feature_platform.labeling.connectors.label_studio import SYSTEM

    ids = {SYSTEM: args.label_studio_id} if args.label_studio_id else {}
    person = _registry().add(args.name, args.role, ids)
    print(f"{person.name}: {person.role}" + (f", ids {person.identities}" if ids else ""))
    return 0


def run_deactivate(args: argparse.Namespace) -> int:
    person = _registry().deactivate(args.name)
    print(f"{person.name}: deactivated (their answers are kept)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from feature_platform.names import printable

    people = _registry().list()
    if not people:
        print("nobody registered yet")
    for person in people:
        state = "" if person.active else " (deactivated)"
        ids = printable(person.identities or "")
        print(printable(f"{person.name}: {person.role}{state} {ids}".rstrip()))
    return 0


def run_whoami(args: argparse.Namespace) -> int:
    from feature_platform.governance.identity import current_actor
    from feature_platform.names import printable

    actor = current_actor()
    person = _registry().find(actor.name)
    role = "not registered" if person is None else person.role
    print(f"{printable(actor.name)} (via {actor.via}): {role}")
    return 0


def run_set_password(args: argparse.Namespace) -> int:
    """The password never comes from argv (it would show in `ps` and shell history)."""
    import getpass
    import sys

    from feature_platform.governance.credentials import Credentials
    from feature_platform.web.sessions import end_sessions_of

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("error: the two passwords differ; nothing changed", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    # Acts as FP_USER (or the OS user): themselves, or an admin setting someone else's.
    engine = _registry().engine
    Credentials(engine).set_password(args.name, password)
    end_sessions_of(engine, args.name)
    print(f"password set for {args.name}; their web sessions are signed out")
    return 0


def run_token(args: argparse.Namespace) -> int:
    from feature_platform.governance.credentials import Credentials

    # Acts as FP_USER (or the OS user): themselves, or an admin issuing one for someone else.
    token = Credentials(_registry().engine).issue_token(args.name, args.label)
    print(token)
    return 0


def run_revoke_tokens(args: argparse.Namespace) -> int:
    from feature_platform.governance.credentials import Credentials

    revoked = Credentials(_registry().engine).revoke_tokens(args.name)
    print(f"{revoked} API token(s) of {args.name} revoked")
    return 0
