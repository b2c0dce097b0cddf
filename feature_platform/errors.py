"""Errors a user can act on. Each message says what was wrong and where."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeaturePlatformError(Exception):
    """Base class for every error this package raises on bad input.

    The command line prints the message on one line and exits with `exit_code`."""

    exit_code = 2


class UnreadableFileError(FeaturePlatformError, ValueError):
    """A file refused whole (truncated, damaged, not the format asked for, a directory):
    nothing in it was imported."""


class StoreUnavailableError(FeaturePlatformError):
    """The database could not be reached, lost its connection, or stayed locked by another
    writer: the operation was rolled back and can be re-run as it is."""

    exit_code = 3


class ConcurrentChangeError(FeaturePlatformError, RuntimeError):
    """Data kept changing under a read (e.g. an alias moved repeatedly); trying again works."""

    exit_code = 3


class InvalidArgumentError(FeaturePlatformError, ValueError):
    """An argument outside what an operation accepts (a count, a key of the wrong type...)."""


class InvalidRetrievalTokenError(FeaturePlatformError, ValueError):
    """A retrieval token that does not parse, was altered, or names versions or snapshots
    this store does not hold: nothing was read."""


class UnknownFeatureSetError(FeaturePlatformError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownFeatureError(FeaturePlatformError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class FeatureVersionConflictError(FeaturePlatformError):
    """A published version's definition changed without a new version."""


class SchemaMismatchError(FeaturePlatformError, ValueError):
    """Data written to a store does not match the registered schema."""


class InvalidReferenceError(FeaturePlatformError, ValueError):
    """A feature reference that does not parse."""


class UnknownTaskError(FeaturePlatformError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class InvalidAnswerError(FeaturePlatformError, ValueError):
    """An answer that cannot be taken (label outside the class set, task already closed...)."""


def closest(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for typos, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
