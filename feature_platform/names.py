"""The one rule for names that become paths, keys or table rows, and the one safe path join.

Program, feature set, version, alias, partition (round) and person names all pass through
`check_name`; every file path built from such a name goes through `path_under`, which
resolves the final path and refuses anything that leaves its root (symlinks included).
The rule is the same on SQLite and Postgres because it is checked here, before any database.
"""

from __future__ import annotations

import re
from pathlib import Path

from feature_platform.errors import FeaturePlatformError

MAX_NAME_LENGTH = 128
# `\Z`, not `$`: `$` also matches before a trailing newline.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class InvalidNameError(FeaturePlatformError, ValueError):
    """A name that could escape a directory, fake an output line or overflow a column."""


class UnsafePathError(FeaturePlatformError, ValueError):
    """A path built from names that would land outside its root."""


def check_name(value: object, what: str = "name") -> str:
    """Return `value` if it is a valid name, else raise `InvalidNameError` saying why.

    Letters, digits, '_', '.' and '-', starting with a letter or digit, at most
    `MAX_NAME_LENGTH` characters; '..' is refused so a name never reads as a parent folder.
    """
    if not isinstance(value, str):
        raise InvalidNameError(f"Invalid {what}: expected text, got {type(value).__name__}.")
    shown = printable(value if len(value) <= 60 else value[:60] + "...")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"Invalid {what} {shown!r}: {len(value)} characters, at most {MAX_NAME_LENGTH}."
        )
    if not NAME_PATTERN.match(value) or ".." in value:
        raise InvalidNameError(
            f"Invalid {what} {shown!r}: use letters, digits, '_', '.' or '-' (no spaces, "
            f"'/', '@', ':', '..' or control characters), starting with a letter or digit."
        )
    return value


def path_under(root: str | Path, *names: str, what: str = "name") -> Path:
    """`root / name1 / name2 ...` after checking each name, guaranteed to stay under `root`."""
    for name in names:
        check_name(name, what)
    base = Path(root).resolve()
    target = base.joinpath(*names).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"Refusing path {target}: it is outside {base}.")
    return target


def printable(text: object) -> str:
    """`text` with control characters escaped, for terminals, logs and listings."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))
