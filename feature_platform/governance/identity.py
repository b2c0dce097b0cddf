"""Who is acting: the one place every write path asks.

- The web app signs a person in and runs each request inside `acting_as(name, via="session")`.
- The command line acts as its configured identity: `FP_USER`, defaulting to the OS user
  (`configured_actor()`), recorded with how it was known (`via`: "FP_USER" or "os-user").
- Dagster assets, sensors and the demo act as the system identity `platform`
  (`system_actor()`), registered as an admin the first time it acts and audited as such. It
  cannot be claimed through `FP_USER`.
- Anything else (library use) acts as `current_actor()`: the innermost `acting_as`, else the
  configured identity.

The acting identity only names someone: whether they may do something is decided by the
people registry (`governance.require`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from feature_platform.errors import FeaturePlatformError

SYSTEM = "platform"  # the platform's own identity (Dagster assets, sensors, demo)
FP_USER = "FP_USER"


class ReservedIdentityError(FeaturePlatformError):
    """Someone tried to act as the platform's system identity from outside the platform."""


@dataclass(frozen=True)
class Actor:
    """An acting identity and how it was established (session, FP_USER, os-user, system)."""

    name: str
    via: str = "code"

    def __str__(self) -> str:
        return self.name

    @property
    def is_system(self) -> bool:
        return self.name == SYSTEM and self.via == "system"


_current: ContextVar[Actor | None] = ContextVar("feature_platform_actor", default=None)


def system_actor() -> Actor:
    return Actor(SYSTEM, "system")


def configured_actor() -> Actor:
    """The command line's identity: `FP_USER`, else the OS user."""
    configured = os.environ.get(FP_USER)
    if configured:
        if configured == SYSTEM:
            raise ReservedIdentityError(
                f"{FP_USER}={SYSTEM!r} is the platform's own identity and cannot be used from "
                f"the command line; set {FP_USER} to your registered name."
            )
        return Actor(configured, FP_USER)
    return Actor(getpass.getuser(), "os-user")


def current_actor() -> Actor:
    """The innermost `acting_as` identity, else the configured one."""
    return _current.get() or configured_actor()


def as_actor(actor: Actor | str | None) -> Actor:
    """An explicit actor, a name given by code, or (None) the current actor."""
    if actor is None:
        return current_actor()
    if isinstance(actor, Actor):
        return actor
    return system_actor() if actor == SYSTEM else Actor(str(actor), "code")


@contextmanager
def acting_as(actor: Actor | str, via: str = "session") -> Iterator[Actor]:
    """Run the block as `actor` (a name is taken as established by `via`)."""
    resolved = actor if isinstance(actor, Actor) else Actor(str(actor), via)
    token = _current.set(resolved)
    try:
        yield resolved
    finally:
        _current.reset(token)
