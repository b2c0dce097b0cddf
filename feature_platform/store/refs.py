"""Feature references: `name@version:feature`, `name@alias:feature`, `name@v2:*`."""

from __future__ import annotations

from dataclasses import dataclass

from feature_platform.errors import InvalidReferenceError

FORMAT = "'<feature set>@<version or alias>:<feature or *>', e.g. 'digits@v1:p0' or 'digits@v2:*'"


@dataclass(frozen=True)
class FeatureRef:
    name: str
    selector: str  # a version ("v2") or an alias ("serving")
    feature: str  # a feature name or "*"

    def __str__(self) -> str:
        return f"{self.name}@{self.selector}:{self.feature}"


def parse_reference(reference: str) -> FeatureRef:
    if not isinstance(reference, str):
        raise InvalidReferenceError(
            f"Feature reference {reference!r} is not a string; use {FORMAT}."
        )
    head, colon, feature = reference.partition(":")
    name, at, selector = head.partition("@")
    if not (colon and at and name and selector and feature):
        raise InvalidReferenceError(f"Cannot parse feature reference {reference!r}; use {FORMAT}.")
    return FeatureRef(name.strip(), selector.strip(), feature.strip())


def parse_feature_set(reference: str) -> tuple[str, str]:
    """`name@version` (no feature part) -> (name, version or alias)."""
    name, at, selector = reference.partition("@")
    if not (at and name and selector) or ":" in selector:
        raise InvalidReferenceError(
            f"Cannot parse feature set reference {reference!r}; use '<name>@<version or alias>'."
        )
    return name, selector
