"""A feature set version: what it computes (transform, params, schema) and where it comes from."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sysconfig
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

Transform = Callable[[pd.DataFrame, Mapping[str, Any]], pd.DataFrame]

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """Fingerprint of a function's code, so a changed transform is noticed.

    Covers the function's source and, recursively, the project code it reaches through
    global names: helper functions (not installed libraries, whose pinned versions are
    their fingerprint) and plain constants (numbers, strings, lists of them...). A
    `functools.partial` covers its function and bound arguments; code without source (a
    lambda typed into a REPL, a compiled function) falls back to its bytecode and constants."""
    return _digest(_code_parts(fn, set()))


_LIBRARY_ROOTS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def _code_parts(fn: Any, seen: set[int]) -> list[Any]:
    if isinstance(fn, functools.partial):
        return [_code_parts(fn.func, seen), repr(fn.args), repr(sorted(fn.keywords))]
    seen.add(id(fn))
    code = getattr(fn, "__code__", None)
    try:
        parts: list[Any] = [textwrap.dedent(inspect.getsource(fn))]
    except (OSError, TypeError):
        if code is None:
            return [f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)}"]
        parts = [code.co_code.hex(), repr(code.co_consts), list(code.co_names)]
    namespace = getattr(fn, "__globals__", {})
    for name in sorted(_global_names(code)) if code is not None else ():
        if name not in namespace:  # a builtin or an attribute name
            continue
        value = namespace[name]
        if inspect.isfunction(value) and id(value) not in seen and _is_project_code(value):
            parts.append([name, _code_parts(value, seen)])
        elif _is_plain(value):
            parts.append([name, repr(value)])
    return parts


def _global_names(code: Any) -> set[str]:
    """Names a code object (and the functions and comprehensions nested in it) may look up."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _is_project_code(fn: Any) -> bool:
    path = inspect.getsourcefile(fn) or ""
    return bool(path) and not path.startswith(_LIBRARY_ROOTS)


def _is_plain(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if depth < 3 and isinstance(value, (tuple, list, frozenset, set)) and len(value) <= 10_000:
        return all(_is_plain(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict) and len(value) <= 10_000:
        return all(_is_plain(k, depth + 1) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


@functools.lru_cache(maxsize=256)
def is_numeric_dtype(dtype: str) -> bool:
    """Numbers and booleans: stored online as float64, returned as float64 everywhere."""
    try:
        return np.dtype(pd.api.types.pandas_dtype(dtype)).kind in "iufb"
    except TypeError:  # extension dtypes with no numpy equivalent ("string", "category")
        return False


def output_dtype(dtype: str) -> str:
    """The dtype a feature has in retrieval results, offline and online alike: numeric
    features are float64 (so a missing value is NaN whatever the row count), others keep
    their declared dtype. One rule for both stores means no training/serving skew."""
    return "float64" if is_numeric_dtype(dtype) else dtype


@dataclass(frozen=True)
class FeatureSetSpec:
    """The definition a user writes in Python (like a Feast FeatureView, plus a version).

    `transform(source_frame, params)` returns one row per entity with the entity column,
    `event_timestamp` (when the value became true) and exactly the declared features.
    """

    name: str
    version: str
    entity: str
    features: Mapping[str, str]  # feature name -> pandas dtype
    transform: Transform
    sources: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # Privacy tags of feature columns ({"income": ("sensitive",)}, see governance/privacy.py).
    # Not part of `fingerprint`: a tag says who may see a value, not how it is computed, so
    # tagging a column later must not force a new version (and a recomputation) of the data;
    # tag changes are recorded and audited per version instead (`privacy.tags`).
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def transform_fingerprint(self) -> str:
        return code_fingerprint(self.transform)

    @property
    def fingerprint(self) -> str:
        return _digest(
            {
                "entity": self.entity,
                "features": dict(self.features),
                "transform": self.transform_fingerprint,
                "params": dict(self.params),
            }
        )

    def compute(self, source: pd.DataFrame) -> pd.DataFrame:
        return self.transform(source, self.params)

    def as_version(
        self, status: str = "draft", created_at: datetime | None = None
    ) -> FeatureSetVersion:
        """The version this spec would register as (to validate data before registering)."""
        return FeatureSetVersion(
            name=self.name,
            version=self.version,
            entity=self.entity,
            features=dict(self.features),
            fingerprint=self.fingerprint,
            transform_fingerprint=self.transform_fingerprint,
            params=dict(self.params),
            sources=tuple(self.sources),
            status=status,
            description=self.description,
            created_at=created_at or datetime.now().astimezone(),
        )


@dataclass(frozen=True)
class FeatureSetVersion:
    """A registered version as the registry stores it (no code, only its fingerprints)."""

    name: str
    version: str
    entity: str
    features: dict[str, str]
    fingerprint: str
    transform_fingerprint: str
    params: dict[str, Any]
    sources: tuple[str, ...]
    status: str
    description: str
    created_at: datetime

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def lineage(self) -> dict[str, Any]:
        return {
            "feature_set": self.id,
            "sources": list(self.sources),
            "transform_fingerprint": self.transform_fingerprint,
            "params": self.params,
            "fingerprint": self.fingerprint,
        }
