"""`feature-platform programs validate | publish | list | show | diff`: labeling program
templates, validated with every error and its path, published as immutable versions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "programs", help="labeling program templates: validate, publish, list, show, diff"
    )
    sub = parser.add_subparsers(dest="programs_command", required=True)
    validate = sub.add_parser(
        "validate", help="check templates (files or project folders); every error with its path"
    )
    validate.add_argument("paths", nargs="*", type=Path, default=[Path(".")])
    validate.add_argument(
        "--no-data", action="store_true", help="do not read the sources (structure only)"
    )
    validate.set_defaults(handler=run_validate)
    publish = sub.add_parser(
        "publish", help="validate, then publish every template as an immutable version"
    )
    publish.add_argument("paths", nargs="*", type=Path, default=[Path(".")])
    publish.add_argument("--note", default="")
    publish.set_defaults(handler=run_publish)
    listing = sub.add_parser("list", help="published templates and their versions")
    listing.set_defaults(handler=run_list)
    show = sub.add_parser("show", help="a published template: NAME or NAME@vN")
    show.add_argument("reference")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)
    diff = sub.add_parser("diff", help="what changed between two versions: A@v1 A@v2")
    diff.add_argument("left")
    diff.add_argument("right")
    diff.set_defaults(handler=run_diff)


def _templates(paths: list[Path]):  # noqa: ANN202
    """(file, template or the parse error) for every template under `paths`, duplicates
    across files reported on the later file."""
    from feature_platform.programs.project import load_templates, template_files
    from feature_platform.programs.template import ProgramTemplate, TemplateValidationError

    found = []
    for path in paths:
        if path.is_dir():
            load_templates(path)  # puts the project folder on sys.path for its feature modules
            files = template_files(path)
            base = path.resolve()
        else:
            files = [path]
            base = None
        for file in files:
            try:
                found.append((file, ProgramTemplate.from_file(file, base)))
            except TemplateValidationError as exc:
                found.append((file, exc))
    return found


def _errors(paths: list[Path], check_data: bool) -> tuple[list, list[str]]:
    from feature_platform.programs.template import TemplateError, TemplateValidationError

    templates, lines, seen = [], [], {}
    for file, template in _templates(paths):
        if isinstance(template, TemplateValidationError):
            lines += [f"{file}: {e}" for e in template.errors]
            continue
        errors = template.validate(check_data)
        if template.name in seen:
            errors.append(
                TemplateError(
                    "name", f"duplicate program name {template.name!r} ({seen[template.name]})"
                )
            )
        seen.setdefault(template.name, str(file))
        lines += [f"{file}: {e}" for e in errors]
        templates.append(template)
    return templates, lines


def run_validate(args: argparse.Namespace) -> int:
    templates, lines = _errors(args.paths, not args.no_data)
    if not templates and not lines:
        print(f"error: no program template (programs/*.yaml) under {args.paths}", file=sys.stderr)
        return 2
    if lines:
        print(f"{len(lines)} error(s):", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    for template in templates:
        print(f"{template.name}: valid (fingerprint {template.fingerprint()})")
    return 0


def _registry():  # noqa: ANN202
    from feature_platform.programs.project import template_registry
    from feature_platform.settings import Settings

    return template_registry(Settings.from_env(scoped=False))


def run_publish(args: argparse.Namespace) -> int:
    templates, lines = _errors(args.paths, check_data=True)
    if lines:
        print(f"publish refused, nothing was published; {len(lines)} error(s):", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        return 2
    if not templates:
        print(f"error: no program template (programs/*.yaml) under {args.paths}", file=sys.stderr)
        return 2
    from feature_platform import FeatureStore, Settings
    from feature_platform.governance.identity import current_actor, system_actor
    from feature_platform.governance.roles import AnnotatorRegistry
    from feature_platform.programs.project import (
        apply_privacy,
        ensure_default_aliases,
        ensure_program_database,
        program_settings,
    )

    platform = Settings.from_env(scoped=False)
    registry = _registry()
    acting = current_actor()
    # The core refuses anyone without `manage_programs` on the platform database.
    publisher = AnnotatorRegistry(registry.engine).require(acting, "manage_programs")
    results = registry.publish_many(templates, note=args.note, actor=acting)
    for (published, new), template in zip(results, templates, strict=True):
        state = "published" if new else "unchanged, already"
        print(f"{published.id}: {state} (fingerprint {published.fingerprint})")
        # Like `feast apply`: the program's feature set versions are registered and active in
        # its own store, with the template's default aliases. The program's store is set up
        # by the platform on behalf of the publisher, who was authorized above; the publisher
        # gets their platform role in the program so they can manage it afterwards.
        ensure_program_database(platform, template.name)
        store = FeatureStore(program_settings(platform, template.name), actor=system_actor())
        apply_privacy(store, template)  # its column tags and policy, for exports and pages
        for spec in template.feature_sets():
            fsv = store.apply(spec)
            ensure_default_aliases(store, spec.name, dict(template.resolved["aliases"]))
            print(f"  feature set {fsv.id}: {fsv.status} (fingerprint {fsv.fingerprint})")
        people = template.resolved["annotators"]
        roles = people.get("roles") or {}
        members = AnnotatorRegistry(store.engine)
        if publisher.name != system_actor().name and members.find(publisher.name) is None:
            members.add(publisher.name, publisher.role, actor=system_actor())
        for person in [*people.get("pool", []), *[p for p in roles if p not in people["pool"]]]:
            added = members.add(person, roles.get(person, "annotator"), actor=system_actor())
            print(f"  {added.name}: {added.role}")
        store.engine.dispose()
    return 0


def run_list(args: argparse.Namespace) -> int:
    registry = _registry()
    for name in registry.names():
        versions = registry.versions(name)
        running = registry.get(name, registry.current(name))
        print(
            f"{name}: {', '.join(v.version for v in versions)} (current {running.version}, "
            f"{running.created_at:%Y-%m-%d %H:%M} UTC, strategy "
            f"{running.document['strategy']['name']}, model "
            f"{running.document['model']['estimator']})"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    import yaml

    published = _registry().resolve(args.reference)
    if args.json:
        print(json.dumps({"id": published.id, **published.document}, indent=2, sort_keys=True))
    else:
        print(f"# {published.id}  fingerprint {published.fingerprint}  {published.note}")
        print(yaml.safe_dump(published.document, sort_keys=False), end="")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    lines = _registry().diff(args.left, args.right)
    for line in lines:
        print(line)
    if not lines:
        print(f"{args.left} and {args.right} are the same")
    return 0
