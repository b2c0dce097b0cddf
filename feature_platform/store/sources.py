"""Raw sources: each refresh is kept as its own Parquet snapshot; readers get the newest."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

from feature_platform.errors import FeaturePlatformError
from feature_platform.store.db import utcnow


class SourceStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, name: str, frame: pd.DataFrame) -> Path:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        path = directory / f"{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = directory / f".{path.name}.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.rename(path)
        return path

    def read(self, name: str) -> pd.DataFrame:
        files = sorted((self.root / name).glob("*.parquet")) if (self.root / name).exists() else []
        if not files:
            raise FeaturePlatformError(
                f"Raw source {name!r} has no data yet under {self.root}; materialize it first."
            )
        return pd.read_parquet(files[-1])
