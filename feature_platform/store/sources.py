"""Raw sources as Parquet, one file per partition (e.g. a day of arrivals), and the sources a
program declares (CSV / Parquet files or globs, SQL tables or queries, a Python loader).

Refreshing a partition replaces its file atomically; readers get every partition together.
"""

from __future__ import annotations

import glob as globmod
import hashlib
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feature_platform.errors import FeaturePlatformError

WHOLE = "all"  # the partition name of a source loaded in one piece


class SourceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, name: str, frame: pd.DataFrame, partition: str = WHOLE) -> Path:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{partition}.parquet"
        tmp = directory / f".{partition}.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        return path

    def partitions(self, name: str) -> list[str]:
        directory = self.root / name
        return sorted(p.stem for p in directory.glob("*.parquet")) if directory.exists() else []

    def signature(self, name: str) -> tuple:
        """The source's partitions as (partition, size, mtime) entries: equal while none is
        written (a write replaces its file) or removed."""
        out = []
        for partition in self.partitions(name):
            try:
                stat = (self.root / name / f"{partition}.parquet").stat()
            except FileNotFoundError:  # removed since listed
                continue
            out.append((partition, stat.st_size, stat.st_mtime_ns))
        return tuple(out)

    def read(self, name: str) -> pd.DataFrame:
        """Every partition of the source, in partition order."""
        files = [self.root / name / f"{p}.parquet" for p in self.partitions(name)]
        if not files:
            raise FeaturePlatformError(
                f"Raw source {name!r} has no data yet under {self.root}; materialize it first."
            )
        frames = [pd.read_parquet(f) for f in files]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# -- declared sources ----------------------------------------------------------------------

SOURCE_KINDS = ("csv", "parquet", "sql", "python")
HOLDOUT = "holdout"
POOL = "pool"
SPLIT = "split"  # the column a declared source gains: 'pool' or 'holdout'


@dataclass(frozen=True)
class SourceSpec:
    """A raw source declared in a program template, not coded.

    `kind` csv / parquet: `path` is a file, a folder (every file of that kind in it) or a glob,
    relative to the project directory; `package://pkg/rel/path` names a file shipped inside an
    installed package. `kind` sql: `url` (SQLAlchemy) with `table` or `query`. `kind` python:
    `loader` ('module:function') returns the frame (for data sets a package builds in memory).

    `entity` names each sample, `event_time` is when it arrived (rows are loaded by day of
    arrival), `created_time` optionally when the value was created. `ground_truth`, if given,
    holds true labels: never shown to the model; the held-out split's labels evaluate models and
    simulated annotators may read them. The held-out split is `holdout_fraction` of the rows,
    picked by a hash of the entity (stable as rows arrive), or the rows whose `split_column`
    equals 'holdout'.
    """

    name: str
    kind: str
    entity: str
    event_time: str
    path: str | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    loader: str | None = None
    created_time: str | None = None
    ground_truth: str | None = None
    holdout_fraction: float = 0.2
    split_column: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # declared column -> dtype
    # Privacy tags of the source's columns (governance/privacy.py), e.g. {"email": ("pii",)}.
    columns_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    base_dir: Path | None = None

    @property
    def holdout_name(self) -> str:
        return f"{self.name}_holdout_labels"

    def files(self) -> list[Path]:
        """The files a csv / parquet source reads, sorted (an error names the pattern)."""
        assert self.path is not None
        if self.path.startswith(PACKAGE_SCHEME):
            package, _, relative = self.path[len(PACKAGE_SCHEME) :].partition("/")
            try:
                found = Path(str(importlib.resources.files(package).joinpath(relative)))
            except ModuleNotFoundError as exc:
                raise FeaturePlatformError(
                    f"Source {self.name!r}: package {package!r} of {self.path!r} is not "
                    f"installed ({exc})."
                ) from exc
            candidates = [found] if found.is_file() else []
        else:
            root = Path(self.base_dir or Path.cwd())
            target = Path(self.path) if Path(self.path).is_absolute() else root / self.path
            if target.is_dir():
                candidates = sorted(target.glob(f"*.{self.kind}"))
            elif any(ch in self.path for ch in "*?["):
                candidates = sorted(
                    Path(p) for p in globmod.glob(str(target), recursive=True) if Path(p).is_file()
                )
            else:
                candidates = [target] if target.is_file() else []
        if not candidates:
            raise FeaturePlatformError(
                f"Source {self.name!r}: no {self.kind} file matches {self.path!r}"
                f"{'' if self.path.startswith(PACKAGE_SCHEME) else f' under {self.base_dir}'}."
            )
        return candidates

    def read(self) -> pd.DataFrame:
        """Every row of the source, with `event_time` (and `created_time`) as UTC timestamps,
        the entity as declared and a `split` column ('pool' / 'holdout')."""
        return self.prepare(self.read_raw())

    def read_raw(self) -> pd.DataFrame:
        """Every row as stored, before any declared column is interpreted."""
        if self.kind == "csv":
            frame = pd.concat([pd.read_csv(f) for f in self.files()], ignore_index=True)
        elif self.kind == "parquet":
            frame = pd.concat([pd.read_parquet(f) for f in self.files()], ignore_index=True)
        elif self.kind == "sql":
            frame = self._read_sql()
        elif self.kind == "python":
            from feature_platform.programs.model import import_object

            frame = import_object(str(self.loader))()
        else:
            raise FeaturePlatformError(
                f"Source {self.name!r}: unknown kind {self.kind!r}; known: {list(SOURCE_KINDS)}."
            )
        return frame

    def _read_sql(self) -> pd.DataFrame:
        from sqlalchemy import create_engine, text

        engine = create_engine(str(self.url))
        try:
            with engine.connect() as conn:
                if self.query:
                    return pd.read_sql_query(text(self.query), conn)
                schema, _, table = str(self.table).rpartition(".")
                return pd.read_sql_table(table, conn, schema=schema or None)
        finally:
            engine.dispose()

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.required_columns() if c not in frame.columns]
        if missing:
            raise FeaturePlatformError(
                f"Source {self.name!r} lacks the declared column(s) {missing}; it has "
                f"{list(frame.columns)[:20]}."
            )
        frame = frame.copy()
        for column in (self.event_time, self.created_time):
            if column:
                # One resolution for every source (CSV parsing may pick microseconds).
                frame[column] = pd.to_datetime(frame[column], utc=True).astype(
                    "datetime64[ns, UTC]"
                )
        if self.ground_truth:
            frame[self.ground_truth] = frame[self.ground_truth].astype(str)
        if self.split_column:
            holdout = frame[self.split_column].astype(str) == HOLDOUT
        else:
            holdout = frame[self.entity].map(lambda k: _fraction(str(k)) < self.holdout_fraction)
        if SPLIT != self.split_column:
            frame[SPLIT] = np.where(holdout, HOLDOUT, POOL)
        return frame.sort_values([self.event_time, self.entity], kind="stable").reset_index(
            drop=True
        )

    def required_columns(self) -> list[str]:
        named = [self.entity, self.event_time, self.created_time, self.ground_truth]
        named += [self.split_column, *self.columns]
        return list(dict.fromkeys(c for c in named if c))

    def holdout_labels(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Entity and true label of the held-out rows of `frame` (empty without ground truth)."""
        if not self.ground_truth:
            return pd.DataFrame({self.entity: [], "label": []})
        rows = frame[frame[SPLIT] == HOLDOUT]
        labels = rows[self.ground_truth].astype(str).to_numpy()
        return pd.DataFrame({self.entity: rows[self.entity].to_numpy(), "label": labels})

    def ground_truth_oracle(self, frame: pd.DataFrame | None = None) -> dict[str, str]:
        """Every sample's true label, for simulated annotators only."""
        if not self.ground_truth:
            raise FeaturePlatformError(
                f"Source {self.name!r} declares no ground_truth column: simulated annotators "
                f"need one."
            )
        frame = self.read() if frame is None else frame
        return dict(
            zip(frame[self.entity].astype(str), frame[self.ground_truth].astype(str), strict=True)
        )


PACKAGE_SCHEME = "package://"


def _fraction(key: str) -> float:
    """A stable number in [0, 1) for a key (the same split whatever order rows arrive in)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)
