"""`feature-platform labels ...`: import answers, review quarantined rows and conflicts,
adjudicate, measure agreement, freeze a label snapshot."""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("label-studio", "jsonl", "csv")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("labels", help="answers and labels: import, review, snapshot")
    commands = parser.add_subparsers(dest="labels_command", required=True)

    imp = commands.add_parser(
        "import",
        help="take answers from a Label Studio export (JSON, JSON-MIN or CSV), JSONL or CSV file",
        description="Valid rows become answers; every rejected row is printed with where it "
        "is (line, or Label Studio task and annotation) and its reason, and kept in quarantine "
        "(once). All in one transaction. A file that is truncated or not in the format asked "
        "for is refused whole. Exit status: 0 something taken, 1 nothing could be taken, "
        "2 refused (bad file or arguments), 3 the database was unavailable (rolled back).",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--format", choices=FORMATS, required=True)
    imp.add_argument(
        "--from-name",
        default="label",
        help="Label Studio <Choices> name: the answer's column in JSON-MIN and CSV exports",
    )
    imp.set_defaults(handler=run_import)

    quarantine = commands.add_parser("quarantine", help="rejected import rows kept for review")
    quarantine.add_argument("--import", dest="import_id", default=None)
    quarantine.set_defaults(handler=run_quarantine)

    conflicts = commands.add_parser("conflicts", help="complete tasks whose answers disagree")
    conflicts.add_argument("--round", dest="round_key", default=None)
    conflicts.set_defaults(handler=run_conflicts)

    adjudicate = commands.add_parser(
        "adjudicate", help="a reviewer's decision on a task, overriding aggregation"
    )
    adjudicate.add_argument("task_id")
    adjudicate.add_argument("label")
    adjudicate.add_argument("--reason", default="")
    adjudicate.set_defaults(handler=run_adjudicate)

    agreement = commands.add_parser("agreement", help="inter-annotator agreement")
    agreement.add_argument("--round", dest="round_key", default=None)
    agreement.set_defaults(handler=run_agreement)

    snapshot = commands.add_parser("snapshot", help="freeze the current labels under a new id")
    snapshot.add_argument("--method", default="majority", help="majority or dawid_skene")
    snapshot.add_argument("--note", default="")
    snapshot.add_argument(
        "--source",
        dest="sources",
        action="append",
        default=None,
        metavar="KIND=WEIGHT",
        help="use a label source with a weight (repeat): human, model, rule, feedback or an "
        "exact source such as rule:dark_center@<fingerprint>; default human=1 (people only)",
    )
    snapshot.set_defaults(handler=run_snapshot)

    rules = commands.add_parser(
        "rules",
        help="a program's weak labeling rules: votes, coverage, estimated accuracy",
        description="Per declared rule (current version): its weight, votes, coverage (votes "
        "/ samples rules run on), Dawid-Skene's estimated accuracy (people's answers and "
        "every machine source the program's snapshots use) and agreement with people's "
        "majority. With --run, the rules vote first (idempotent per rule version and sample).",
    )
    rules.add_argument("--program", default=None, help="default: --program before, $FP_PROGRAM")
    rules.add_argument("--run", action="store_true", help="run the rules and record their votes")
    rules.set_defaults(handler=run_rules_report)

    feedback = commands.add_parser(
        "feedback",
        help="take corrections from a downstream system (JSONL or CSV) as feedback labels",
        description="Each event {event_id, sample_key, label, predicted, at, note} becomes a "
        "label of source feedback:SYSTEM (not a person's answer). Rejected events (unknown or "
        "held-out sample, label outside the label set, NaN, a re-sent event id with another "
        "label) are printed with their reason and kept in quarantine. Re-sending an event is "
        "recorded once. Exit status: 0 something taken, 1 nothing could be taken, 2 refused.",
    )
    feedback.add_argument("file", type=Path)
    feedback.add_argument("--program", default=None, help="default: --program before, $FP_PROGRAM")
    feedback.add_argument("--system", required=True, help="the system sending the feedback")
    feedback.add_argument(
        "--trust",
        type=float,
        default=None,
        help="the system's weight in label snapshots, in (0, 1] (default: the program's "
        "feedback_trust)",
    )
    feedback.add_argument(
        "--review", action="store_true", help="also queue a review task per corrected sample"
    )
    feedback.set_defaults(handler=run_feedback)


def _published_program(name: str | None):  # noqa: ANN202
    """The program `name` (default $FP_PROGRAM) at its current published version, and its
    stores."""
    import os

    from feature_platform.errors import FeaturePlatformError
    from feature_platform.names import check_name
    from feature_platform.programs.project import open_program_store, template_registry
    from feature_platform.settings import Settings

    name = name or os.environ.get("FP_PROGRAM")
    if not name:
        raise FeaturePlatformError("Which program? Give --program NAME (or set FP_PROGRAM).")
    check_name(name, "program name")
    platform = Settings.from_env(scoped=False)
    registry = template_registry(platform)
    try:
        current = registry.current(name)
        if current is None:
            raise FeaturePlatformError(
                f"Program {name!r} is not published; known: {registry.names()}."
            )
        published = registry.get(name, current)
    finally:
        registry.engine.dispose()
    program = published.template().program(published.id)
    return program, open_program_store(platform, name)


def _store():  # noqa: ANN202 - deferred import keeps `--help` fast
    from feature_platform import FeatureStore, Settings

    return FeatureStore(Settings.from_env())


def read_rows(path: Path, format: str, from_name: str = "label") -> list:
    """The file's rows as IncomingAnswer (errors per row); unreadable files raise."""
    from functools import partial

    from feature_platform.errors import FeaturePlatformError, UnreadableFileError
    from feature_platform.labeling.connectors import files, label_studio

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FeaturePlatformError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise UnreadableFileError(
            f"{path} is a directory; give one export file. Nothing was imported."
        ) from None
    except PermissionError:
        raise UnreadableFileError(f"{path} cannot be read (permission denied).") from None
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); nothing was imported."
        ) from None
    reader = {
        "label-studio": partial(label_studio.read_export, from_name=from_name),
        "jsonl": files.read_jsonl,
        "csv": files.read_csv,
    }[format]
    try:
        return reader(text)
    except UnreadableFileError as exc:
        raise UnreadableFileError(f"{path}: {exc}") from None


def run_import(args: argparse.Namespace) -> int:
    from feature_platform.labeling.imports import import_answers

    store = _store()
    rows = read_rows(args.file, args.format, args.from_name)
    report = import_answers(
        store.engine,
        store.queue,
        rows,
        source=str(args.file),
        format=args.format,
    )
    print(
        f"{args.file} ({args.format}), import {report.import_id}: accepted {report.accepted}"
        + (f" ({report.revised} as revisions)" if report.revised else "")
        + f", already recorded {report.already_recorded}, rejected {len(report.rejected)}"
    )
    from feature_platform.names import printable

    for row in report.rejected:
        print(
            f"  {printable(row.describe())}"
            + (" (already in quarantine)" if row.already_quarantined else "")
        )
    if len(report.rejected) > report.requarantined:
        print(
            f"rejected rows are kept for review: feature-platform labels quarantine "
            f"--import {report.import_id}"
        )
    if report.taken == 0:
        print("nothing could be taken from this file")
        return 1
    return 0


def run_quarantine(args: argparse.Namespace) -> int:
    from feature_platform.labeling.imports import quarantined
    from feature_platform.names import printable

    frame = quarantined(_store().engine, args.import_id)
    if frame.empty:
        print("no quarantined rows")
        return 0
    # Rejected rows are untrusted text: control characters are shown escaped, never sent raw.
    for row in frame.itertuples(index=False):
        print(printable(f"{row.import_id} {row.source} line {row.line}: {row.reason}"))
        print(f"    {printable(row.raw[:300])}")
    return 0


def run_conflicts(args: argparse.Namespace) -> int:
    conflicts = _store().labels.adjudications.conflicts(args.round_key)
    if conflicts.empty:
        print("no undecided conflicts")
        return 0
    from feature_platform.names import printable

    for row in conflicts.itertuples(index=False):
        print(printable(f"{row.task_id} {row.round} sample {row.sample_key}: votes {row.votes}"))
    return 0


def run_adjudicate(args: argparse.Namespace) -> int:
    from feature_platform.governance.identity import current_actor

    # The reviewer is whoever runs the command (FP_USER / the OS user), never a flag.
    decision = _store().labels.adjudications.decide(
        args.task_id, args.label, current_actor().name, args.reason
    )
    print(
        f"decision {decision.id}: sample {decision.sample_key} is {decision.label!r} "
        f"(by {decision.reviewer}); it overrides aggregation in the next label snapshot"
    )
    return 0


def run_agreement(args: argparse.Namespace) -> int:
    from feature_platform.labeling.agreement import agreement_summary, annotator_agreement

    answers = _store().queue.answers(args.round_key)
    if answers.empty:
        print("no answers yet")
        return 0
    summary = agreement_summary(answers)
    print(
        f"samples {int(summary['samples'])} ({int(summary['overlapping_samples'])} with 2+ "
        f"answers): percent agreement {summary['percent_agreement']:.3f}, Fleiss' kappa "
        f"{summary['fleiss_kappa']:.3f}, Krippendorff's alpha {summary['krippendorff_alpha']:.3f}"
    )
    print(annotator_agreement(answers).to_string(index=False, float_format="%.3f"))
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    from feature_platform.errors import InvalidArgumentError

    sources = None
    if args.sources:
        sources = {}
        for item in args.sources:
            key, sep, weight = item.rpartition("=")
            if not sep or not key:
                raise InvalidArgumentError(f"--source {item!r}: expected KIND=WEIGHT.")
            sources[key] = weight
    snapshot = _store().labels.create_snapshot(method=args.method, note=args.note, sources=sources)
    # Dawid-Skene falls back to majority vote when no sample has two answers: say so.
    fallback = (
        f" (ran {snapshot.method_used}: {snapshot.method_note})"
        if snapshot.method_used != snapshot.method
        else ""
    )
    machine = {k: n for k, n in snapshot.label_kind_counts.items() if k != "human"}
    beyond = "".join(f", plus {n} from {kind} labels" for kind, n in machine.items())
    print(
        f"label snapshot {snapshot.id} ({snapshot.method}): {len(snapshot.human_labels)} "
        f"labels from {snapshot.answer_count} answers{beyond}{fallback}"
    )
    return 0


def run_rules_report(args: argparse.Namespace) -> int:
    from feature_platform.governance.identity import current_actor
    from feature_platform.labeling.rules import rule_report, run_rules
    from feature_platform.names import printable

    program, store = _published_program(args.program)
    if not program.rules:
        print(f"program {program.name} declares no rules (template key `rules:`)")
        return 0
    if args.run:
        run = run_rules(store, program, actor=current_actor())
        print(
            f"rules ran on {run.samples} samples: {run.outcome.recorded} new votes, "
            f"{run.outcome.duplicates} already recorded"
        )
    report = rule_report(store, program)
    for line in report.to_string(index=False, float_format="%.3f").splitlines():
        print(printable(line))
    return 0


def run_feedback(args: argparse.Namespace) -> int:
    from feature_platform.governance.identity import current_actor
    from feature_platform.labeling.feedback import import_feedback, read_feedback_file
    from feature_platform.names import printable

    events = read_feedback_file(args.file)
    program, store = _published_program(args.program)
    report = import_feedback(
        store,
        program,
        events,
        system=args.system,
        trust=args.trust,
        review=args.review,
        source=str(args.file),
        actor=current_actor(),
    )
    print(
        printable(
            f"feedback {report.import_id} from {report.system}: {len(report.accepted)} "
            f"accepted, {len(report.duplicates)} already recorded, {len(report.quarantined)} "
            f"quarantined, {report.review_tasks} review task(s) created"
        )
    )
    for row in report.quarantined:
        print(printable(f"  line {row.line}: {row.reason}"))
    return 0 if report.accepted or report.duplicates or not events else 1
