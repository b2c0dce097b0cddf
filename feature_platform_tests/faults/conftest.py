"""Fault-injection suite: counts of trials and invariant violations, printed at the end."""

from __future__ import annotations

import pytest
from fault_support import RESULTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    terminalreporter.section("fault injection: trials / invariant violations")
    for name, (trials, violations) in sorted(RESULTS.items()):
        terminalreporter.write_line(f"{name:<44} trials {trials:>4}   violations {violations}")
    trials = sum(t for t, _ in RESULTS.values())
    violations = sum(v for _, v in RESULTS.values())
    terminalreporter.write_line(f"{'total':<44} trials {trials:>4}   violations {violations}")
