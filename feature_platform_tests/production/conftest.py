"""Fixtures for the production-path tests: a Postgres-backed DAGSTER_HOME written from the
project's dagster.yaml, the platform stores on a second Postgres database, and long-running
processes (daemon, webserver, Celery workers, annotators) that are always torn down.

Every process starts in its own session (process group), so teardown can reach the children it
spawned (code servers, run workers, log tailers) even after their parent was SIGKILLed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from feature_platform.settings import Settings
from feature_platform_tests.conftest import POSTGRES_ADMIN_URL

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Everything the platform or Dagster reads from the environment; the tests set their own.
_OWN_PREFIXES = ("FP_", "DAGSTER_", "MLFLOW_")
# ... except how the test suite itself is run (CI's FP_REQUIRE_POSTGRES, FP_TEST_POSTGRES_URL).
_SUITE_PREFIXES = ("FP_REQUIRE_", "FP_TEST_")


def _deployment_owned(key: str) -> bool:
    return key.startswith(_OWN_PREFIXES) and not key.startswith(_SUITE_PREFIXES)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `condition` until it returns something truthy; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Processes:
    """Starts processes in their own groups and guarantees none outlives the test."""

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def crash(self, process: Process) -> None:
        """SIGKILL the process alone (not its group), the way a crash or OOM kill ends it."""
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(timeout=10)

    def stop(self, process: Process, timeout: float = 20) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after `timeout`."""
        self._signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        self._signal_group(process.pid, signal.SIGKILL)
        try:
            process.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self, timeout: float) -> None:
        """SIGTERM every group at once, SIGKILL what is left after `timeout`, reap."""
        for process in self.started:
            self._signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)
        for process in self.started:
            self._signal_group(process.pid, signal.SIGKILL)
        for process in self.started:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)

    def leftovers(self) -> dict[str, list[int]]:
        found = {f"{p.name}[{p.pid}]": _group_members(p.pid) for p in self.started}
        return {name: pids for name, pids in found.items() if pids}

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    running = Processes(log_dir)
    try:
        yield running
    finally:
        running.stop_all(timeout=10)
        left = running.leftovers()
        assert not left, f"processes outlived the test: {left}"


def _create_database(suffix: str) -> str:
    name = f"fp_test_{uuid.uuid4().hex[:12]}_{suffix}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def _drop_database(name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def instance_database(postgres_url: str) -> Iterator[str]:
    """A second fresh Postgres database, for the Dagster instance (`postgres_url`, which also
    decides skip-or-fail when no server answers, holds the platform stores)."""
    name = _create_database("dagster")
    try:
        yield name
    finally:
        _drop_database(name)


@dataclass(frozen=True)
class Deployment:
    """A production-style deployment in a temporary directory."""

    dagster_home: Path
    settings: Settings
    env: dict[str, str]  # the environment every process of the deployment runs with

    def with_env(self, **overrides: str) -> dict[str, str]:
        return {**self.env, **overrides}


def production_instance_config(dequeue_interval_seconds: int = 1) -> dict[str, Any]:
    """The project's dagster.yaml, with only the run queue's polling interval shortened so
    tests do not wait 5 s for each queued run (everything else as deployed)."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = dequeue_interval_seconds
    return config


@pytest.fixture
def deployment(
    tmp_path: Path,
    postgres_url: str,
    instance_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Deployment:
    """DAGSTER_HOME on Postgres (from the project's dagster.yaml) and the platform stores on a
    second Postgres database; this test process gets the same environment, so
    `DagsterInstance.get()` here is the instance the daemon and webserver use."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(production_instance_config()))
    admin = sa.engine.make_url(POSTGRES_ADMIN_URL)
    fp_home = tmp_path / "fp"
    env = {k: v for k, v in os.environ.items() if not _deployment_owned(k)}
    env.update(
        {
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_HOST": admin.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(admin.port or 5432),
            "DAGSTER_PG_USER": admin.username or "postgres",
            "DAGSTER_PG_PASSWORD": admin.password or "",
            "DAGSTER_PG_DB": instance_database,
            "FP_HOME": str(fp_home),
            "FP_DATABASE_URL": postgres_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key in [k for k in os.environ if _deployment_owned(k)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if _deployment_owned(key):
            monkeypatch.setenv(key, value)
    return Deployment(dagster_home, Settings.from_env(), env)


REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _redis_command(command: bytes) -> bytes:
    """Send inline command(s), one per line, and read until each has its one-line reply."""
    with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as conn:
        conn.sendall(command + b"\r\n")
        reply = b""
        while reply.count(b"\r\n") < command.count(b"\r\n") + 1:
            chunk = conn.recv(256)
            if not chunk:
                break
            reply += chunk
        return reply


def redis_flushdb(db: int) -> None:
    """Drop every key of one Redis database (a test's queues and task results)."""
    _redis_command(f"SELECT {db}\r\nFLUSHDB".encode())


def redis_reachable() -> bool:
    try:
        return _redis_command(b"PING").startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_broker(tmp_path: Path) -> Iterator[str]:
    """The Redis broker on 127.0.0.1:6379. When none answers, start one the way the machine's
    own service set-up does (loopback only, no persistence) and shut it down afterwards."""
    started_here = False
    if not redis_reachable():
        server = shutil.which("redis-server")
        if server is None:
            message = "Redis is not reachable on 127.0.0.1:6379 and redis-server is not installed"
            # CI (which requires its services, see .ci/run) fails; a laptop without Redis skips.
            if os.environ.get("FP_REQUIRE_POSTGRES") == "1":
                pytest.fail(message)
            pytest.skip(message)
        subprocess.run(
            [
                *(server, "--daemonize", "yes", "--bind", "127.0.0.1", "-::1"),
                *("--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"),
                *("--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")),
            ],
            check=True,
            timeout=30,
        )
        started_here = True
        wait_for(redis_reachable, 20, "redis-server to answer PING on 127.0.0.1:6379")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}"
    finally:
        if started_here:
            try:
                _redis_command(b"SHUTDOWN NOSAVE")
            except OSError:
                pass  # the connection drops as the server exits
