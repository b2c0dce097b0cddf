"""Raw sources as Parquet, one file per partition (e.g. a day of arrivals).

Refreshing a partition replaces its file atomically; readers get every partition together.
"""

from __future__ import annotations

from pathlib import Path

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

    def read(self, name: str) -> pd.DataFrame:
        """Every partition of the source, in partition order."""
        files = [self.root / name / f"{p}.parquet" for p in self.partitions(name)]
        if not files:
            raise FeaturePlatformError(
                f"Raw source {name!r} has no data yet under {self.root}; materialize it first."
            )
        frames = [pd.read_parquet(f) for f in files]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
