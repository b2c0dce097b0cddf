"""The command-line front door: `feature-platform <command> ...`.

Each command lives in its own module under `feature_platform/commands/` and exposes
`register(subparsers)`; this file only discovers and dispatches them.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
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


# Exit statuses: 0 done; 1 an import took nothing; 2 refused (bad arguments or input, the
# message says what and where); 3 the database was unavailable (locked, connection lost) and
# the operation was rolled back; 130 interrupted; 141 the reader of our output went away.
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.global_program:
        return _main(args)
    from feature_platform.names import check_name

    try:
        program = check_name(args.global_program, "program name")
    except FeaturePlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # `--program` scopes this one command (Settings.from_env reads FP_PROGRAM); restored after,
    # so a caller running several commands in one process (tests, scripts) is not left in it.
    previous = os.environ.get("FP_PROGRAM")
    os.environ["FP_PROGRAM"] = program
    try:
        return _main(args)
    finally:
        if previous is None:
            os.environ.pop("FP_PROGRAM", None)
        else:
            os.environ["FP_PROGRAM"] = previous


def _main(args: argparse.Namespace) -> int:
    try:
        # The command line acts as FP_USER (default: the OS user), never as a flag's value.
        with acting_as(configured_actor()):
            code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except FeaturePlatformError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `feature-platform ... | head`: the reader is gone; stop quietly, and keep Python
        # from failing again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRNOS:
            raise
        # A full disk (or quota, a read-only or failing disk) while writing a store.
        print(f"error: could not write to storage: {_one_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from feature_platform.store.db import unavailable

        problem = unavailable(exc)  # database errors outside a write transaction (reads)
        if problem is None:
            raise
        print(f"error: {_one_line(problem)}", file=sys.stderr)
        return problem.exit_code


if __name__ == "__main__":
    sys.exit(main())
