"""`feature-platform features ...`: list versions, publish, deprecate, move aliases, history."""

from __future__ import annotations

import argparse

from feature_platform.store.refs import parse_feature_set


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="feature set versions, lifecycle, aliases")
    commands = parser.add_subparsers(dest="features_command", required=True)
    listing = commands.add_parser("list", help="registered versions with status and aliases")
    listing.add_argument("name", nargs="?", help="only this feature set")
    listing.set_defaults(handler=run_list)
    show = commands.add_parser("show", help="one version: definition, dependents, history")
    show.add_argument("feature_set", help="name@version or name@alias")
    show.set_defaults(handler=run_show)
    for action, help_text in (
        ("publish", "draft -> active"),
        ("deprecate", "retire a version (refused while a model or an alias uses it)"),
    ):
        sub = commands.add_parser(action, help=help_text)
        sub.add_argument("feature_set", help="name@version")
        sub.add_argument("--reason", default="", help="recorded in the status history")
        sub.set_defaults(handler=run_status, action=action)
    alias = commands.add_parser("alias", help="point name@alias at a version (recorded)")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version")
    alias.set_defaults(handler=run_alias)
    history = commands.add_parser("history", help="status changes and alias moves of a set")
    history.add_argument("name")
    history.set_defaults(handler=run_history)


def printable(text: object) -> str:
    from feature_platform.names import printable as escape

    return escape(text)


def _store():  # noqa: ANN202 - imported lazily so `--help` stays fast
    from feature_platform import FeatureStore, Settings

    return FeatureStore(Settings.from_env())


def _require(registry, name: str) -> None:  # noqa: ANN001
    from feature_platform.errors import UnknownFeatureSetError, closest

    if not registry.versions(name):
        names = registry.names()
        raise UnknownFeatureSetError(
            f"Unknown feature set {name!r}.{closest(name, names)} Registered: {names}."
        )


def run_list(args: argparse.Namespace) -> int:
    registry = _store().registry
    if args.name:
        _require(registry, args.name)
    versions = registry.list_versions(args.name)
    if not versions:
        print("no feature sets registered yet")
    for fsv in versions:
        aliases = sorted(a for a, v in registry.aliases(fsv.name).items() if v == fsv.version)
        print(
            printable(
                f"{fsv.id:<24} {fsv.status:<10} {len(fsv.features):>4} features  "
                f"aliases: {', '.join(aliases) or '-'}  fingerprint {fsv.fingerprint}"
            )
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    registry = _store().registry
    name, selector = parse_feature_set(args.feature_set)
    fsv = registry.resolve(name, selector, warn=False)
    dependents = registry.dependents(fsv.name, fsv.version)
    print(f"{fsv.id} ({fsv.status}), entity {fsv.entity}, created {fsv.created_at:%Y-%m-%d %H:%M}")
    print(f"  sources: {', '.join(fsv.sources)}")
    print(f"  fingerprint {fsv.fingerprint}, transform {fsv.transform_fingerprint}")
    print(f"  params: {fsv.params}")
    print(f"  features ({len(fsv.features)}): {', '.join(fsv.feature_names)}")
    print(f"  depending on it: {dependents.describe()}")
    for change in registry.status_history(fsv.name, fsv.version):
        reason = f" ({change['reason']})" if change["reason"] else ""
        print(
            f"  {change['changed_at']:%Y-%m-%d %H:%M:%S} "
            f"{change['from_status'] or 'new'} -> {change['to_status']}{printable(reason)}"
        )
    return 0


def run_status(args: argparse.Namespace) -> int:
    store = _store()
    name, version = parse_feature_set(args.feature_set)
    if args.action == "publish":
        fsv = store.publish(name, version, args.reason)
    else:
        fsv = store.deprecate(name, version, args.reason)
    print(f"{fsv.id}: {fsv.status}")
    return 0


def run_alias(args: argparse.Namespace) -> int:
    move = _store().set_alias(args.name, args.alias, args.version)
    if move is None:
        print(f"{args.name}@{args.alias} already points at {args.version}")
    else:
        print(f"{args.name}@{args.alias}: {move['from_version'] or '-'} -> {move['to_version']}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    registry = _store().registry
    _require(registry, args.name)
    events = [
        (
            c["changed_at"],
            f"{args.name}@{c['version']}: {c['from_status'] or 'new'} -> "
            f"{c['to_status']}" + (f" ({c['reason']})" if c["reason"] else ""),
        )
        for c in registry.status_history(args.name)
    ]
    events += [
        (
            m["moved_at"],
            f"{args.name}@{m['alias']}: {m['from_version'] or '-'} -> {m['to_version']}",
        )
        for m in registry.alias_history(args.name)
    ]
    for at, text in sorted(events, key=lambda e: e[0]):
        print(f"{at:%Y-%m-%d %H:%M:%S}  {printable(text)}")
    return 0
