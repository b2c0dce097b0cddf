"""Separate virtualenv holding a pinned Feast for the Feast-comparison benchmark.

Feast pins its own pandas/numpy/pyarrow ranges and pulls in dask, FastAPI and more, so it
lives in its own venv instead of the project's. Standard library only, so it imports from
any interpreter::

    from benchmarks.feast_env import RUNNER, ensure_feast_python
    py = ensure_feast_python(Path(".feast-venv"))
    subprocess.run([py, "-P", RUNNER, "--data", DIR, "--out", "feast.json"], check=True)

or from a shell: ``python benchmarks/feast_env.py [VENV_DIR]`` prints the venv's python.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

FEAST_VERSION = "0.67.0"

# Exact pins of the set verified together here (Python 3.11, Linux x86_64). feast[duckdb]
# adds the DuckDB offline store (runner option --offline-store duckdb); the other pins fix
# the libraries that do the timed work, so reruns compare like with like.
FEAST_REQUIREMENTS: tuple[str, ...] = (
    f"feast[duckdb]=={FEAST_VERSION}",
    "pandas==2.3.3",  # feast 0.67 requires pandas<3
    "numpy==2.4.6",
    "pyarrow==26.0.1",
    "dask==2026.8.0",  # the "file" offline store is dask-based
    "duckdb==2.0.1",
    "ibis-framework==12.0.0",
    "protobuf==7.36.2",
    "SQLAlchemy==2.1.9",
)

RUNNER = Path(__file__).with_name("feast_runner.py")

_MARKER = ".feast-bench-spec.json"


def _venv_python(venv_dir: Path) -> Path:
    # POSIX layout only: the benchmark (and fcntl below) targets Linux.
    return venv_dir / "bin" / "python"


def _spec() -> dict[str, object]:
    # The base interpreter's minor version is part of the spec: wheels differ per version.
    return {
        "requirements": list(FEAST_REQUIREMENTS),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _is_ready(venv_dir: Path, spec: dict[str, object]) -> bool:
    marker = venv_dir / _MARKER
    if not (marker.is_file() and _venv_python(venv_dir).exists()):
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == spec
    except (OSError, ValueError):
        return False


def ensure_feast_python(venv_dir: Path, base_python: str | None = None) -> Path:
    """Create (if needed) a venv at ``venv_dir`` with the pinned Feast; return its python.

    Idempotent: once the pinned set is installed a marker file records it, and later calls
    return at once. A changed pin list reinstalls into the existing venv. ``base_python``
    defaults to the running interpreter (``venv`` resolves it to the base installation).
    """
    venv_dir = Path(venv_dir).absolute()
    spec = _spec()
    python = _venv_python(venv_dir)
    if _is_ready(venv_dir, spec):
        return python

    # The lock lives inside the venv dir so nothing is left beside it in the checkout.
    venv_dir.mkdir(parents=True, exist_ok=True)
    with open(venv_dir / ".feast-bench.lock", "w", encoding="ascii") as lock:
        # Two benchmark processes may race to build the same venv; the loser waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(venv_dir, spec):
            return python
        t0 = time.perf_counter()
        if not python.exists():
            print(f"feast_env: creating venv {venv_dir}", file=sys.stderr, flush=True)
            _run([base_python or sys.executable, "-m", "venv", str(venv_dir)])
        print(f"feast_env: installing {', '.join(FEAST_REQUIREMENTS)}", file=sys.stderr, flush=True)
        _run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            + list(FEAST_REQUIREMENTS)
        )
        # Check the import works and the version is the pinned one before trusting the venv.
        probe = subprocess.run(
            [str(python), "-c", "import feast, duckdb; print(feast.__version__)"],
            capture_output=True,
            text=True,
            cwd=venv_dir,  # not the caller's cwd: a local module could shadow a stdlib one
        )
        found = probe.stdout.strip()
        if probe.returncode != 0 or found != FEAST_VERSION:
            raise RuntimeError(f"feast import check failed (got {found!r}): {probe.stderr[-2000:]}")
        tmp = venv_dir / (_MARKER + ".tmp")
        tmp.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        tmp.replace(venv_dir / _MARKER)
        print(f"feast_env: ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return python


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / ".feast-venv"
    print(ensure_feast_python(target))
