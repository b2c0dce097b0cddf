"""Shared by the fault-injection tests: run an operation in a forked child and SIGKILL it
at a chosen moment, and keep each scenario's counts for the summary."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any

RESULTS: dict[str, tuple[int, int]] = {}
FORK = multiprocessing.get_context("fork")  # the child inherits the imported modules: fast


def record(name: str, trials: int, violations: list[str]) -> None:
    """Keep a scenario's counts for the summary; the test then asserts no violation."""
    RESULTS[name] = (trials, len(violations))


def run_child(target: Callable[..., Any], *args: Any, kill_after: float | None = None) -> str:
    """Run `target(*args)` in a forked child. With `kill_after`, SIGKILL it after that many
    seconds if it is still running. Returns "killed", "finished" or "failed (exit N)"."""
    child = FORK.Process(target=target, args=args)
    child.start()
    child.join(kill_after)
    if child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        return "killed"
    return "finished" if child.exitcode == 0 else f"failed (exit {child.exitcode})"


def timed_child(target: Callable[..., Any], *args: Any) -> float:
    """Seconds one uninterrupted run of `target(*args)` takes in a forked child."""
    start = time.perf_counter()
    outcome = run_child(target, *args)
    assert outcome == "finished", outcome
    return time.perf_counter() - start
