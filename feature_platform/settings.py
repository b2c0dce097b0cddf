"""Where everything is stored: one URL or path each, from the environment, or embedded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from feature_platform.names import check_name, path_under


@dataclass(frozen=True)
class Settings:
    """Locations of the stores. `home` holds every embedded default (SQLite files, Parquet)."""

    home: Path
    database_url: str
    offline_dir: Path | str  # a directory, or an object store URL such as s3://bucket/prefix
    mlflow_tracking_uri: str
    mlflow_artifact_dir: Path

    @classmethod
    def from_env(cls, home: str | Path | None = None, *, scoped: bool = True) -> Settings:
        """Read FP_HOME, FP_DATABASE_URL, FP_OFFLINE_DIR and MLFLOW_TRACKING_URI (and
        FP_PROGRAM: that program's own stores under them, unless `scoped` is False).

        Anything unset falls back to a file under `home` (default `./.fp_data`), so a laptop
        needs no server; production points the URLs at Postgres and a tracking server, and
        FP_OFFLINE_DIR at shared storage (`s3://bucket/prefix`: endpoint and credentials from
        the standard AWS variables, see `store.offline_fs`).
        """
        root = Path(home or os.environ.get("FP_HOME") or Path.cwd() / ".fp_data").resolve()
        platform = cls(
            home=root,
            database_url=os.environ.get("FP_DATABASE_URL") or f"sqlite:///{root / 'platform.db'}",
            offline_dir=offline_location(os.environ.get("FP_OFFLINE_DIR") or root / "offline"),
            mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{root / 'mlflow.db'}",
            mlflow_artifact_dir=Path(os.environ.get("FP_MLFLOW_ARTIFACTS") or root / "mlartifacts"),
        )
        program = os.environ.get("FP_PROGRAM") if scoped else None
        if not program:
            return platform
        # One program's stores (`feature-platform --program NAME ...`): see programs/project.py.
        from feature_platform.programs.project import ensure_program_database, program_settings

        ensure_program_database(platform, program)
        return program_settings(platform, program)

    @classmethod
    def under(cls, home: str | Path) -> Settings:
        """Every store embedded under `home`, ignoring the environment (tests, demo, benchmarks)."""
        root = Path(home).resolve()
        return cls(
            home=root,
            database_url=f"sqlite:///{root / 'platform.db'}",
            offline_dir=root / "offline",
            mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            mlflow_artifact_dir=root / "mlartifacts",
        )


def offline_location(value: str | Path) -> Path | str:
    """An offline store root as given: URLs stay text (a Path would fold `s3://` to `s3:/`)."""
    return value if isinstance(value, str) and "://" in value else Path(value)


def offline_under(root: str | Path, *names: str, what: str = "name") -> Path | str:
    """A folder below an offline store root (a path or an object store URL), each name checked
    by the one name rule so the result stays under `root`."""
    if isinstance(root, str) and "://" in root:
        return "/".join([root.rstrip("/"), *(check_name(n, what) for n in names)])
    return path_under(root, *names, what=what)
