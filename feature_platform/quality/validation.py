"""Run a schema over a frame, split failing rows out, and keep them reviewable in quarantine."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from feature_platform.names import path_under
from feature_platform.store.db import utcnow


@dataclass(frozen=True)
class ValidationReport:
    schema: str
    rows: int
    failure_cases: pd.DataFrame  # one row per failed check: column, check, failure_case, index
    failed_rows: pd.DataFrame  # the offending input rows, with the reasons they failed

    @property
    def passed(self) -> bool:
        return self.failure_cases.empty

    @property
    def failed_row_count(self) -> int:
        return len(self.failed_rows)

    def summary(self) -> str:
        if self.passed:
            return f"{self.schema}: all {self.rows} rows pass"
        checks = self.failure_cases.groupby(["column", "check"], dropna=False).size()
        listed = "; ".join(f"{col}: {chk} ({n})" for (col, chk), n in checks.head(10).items())
        return f"{self.schema}: {self.failed_row_count} of {self.rows} rows fail — {listed}"


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> ValidationReport:
    """Validate lazily (every failure, not just the first) and never raise on bad data."""
    try:
        schema.validate(frame, lazy=True)
        cases = pd.DataFrame(columns=["column", "check", "failure_case", "index"])
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases[["column", "check", "failure_case", "index"]].copy()
        cases["failure_case"] = cases["failure_case"].astype(str)
    row_index = pd.to_numeric(cases["index"], errors="coerce").dropna().astype(int)
    row_index = [i for i in row_index.unique() if i in frame.index]
    failed = frame.loc[row_index].copy()
    if len(failed):
        reasons = (
            cases.dropna(subset=["index"])
            .assign(index=lambda c: pd.to_numeric(c["index"], errors="coerce"))
            .groupby("index")
            .apply(
                lambda g: "; ".join(
                    f"{c}: {k}" for c, k in zip(g["column"], g["check"], strict=True)
                ),
                include_groups=False,
            )
        )
        failed["failure_reasons"] = [reasons.get(i, "") for i in failed.index]
    return ValidationReport(schema.name or "schema", len(frame), cases, failed)


class Quarantine:
    """Rows that failed row-level checks, kept as Parquet for review instead of dropped.

    Layout: `<root>/<asset>/<partition or _>/<time>-<id>.parquet`, where a feature set version
    `name@version` is the folder `name/version`. Asset names and partition keys are checked
    names (`feature_platform.names`): a partition key such as `../../x` is refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, asset: str, partition: str | None = None) -> Path:
        """Where `asset`'s quarantined rows (of one partition) go, always under the root."""
        folder = path_under(self.root, *asset.split("@", 1), what="asset name")
        if partition is None:
            return folder / "_"
        return path_under(folder, partition, what="partition key")

    def put(self, asset: str, partition: str | None, rows: pd.DataFrame) -> Path | None:
        directory = self.folder(asset, partition)  # checked even when nothing fails
        if rows.empty:
            return None
        directory.mkdir(parents=True, exist_ok=True)
        stamped = rows.assign(quarantined_at=utcnow())
        path = directory / f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.parquet"
        stamped.to_parquet(path, index=False)
        return path

    def list(self, asset: str | None = None) -> list[Path]:
        base = path_under(self.root, *asset.split("@", 1)) if asset else self.root
        return sorted(base.rglob("*.parquet")) if base.exists() else []
