"""What the benchmarks print at the end of the run."""

from __future__ import annotations

from tests.benchmarks.verify import SUMMARY_LINES


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Figures computed from several benchmarks (the parallel efficiency), after pytest-benchmark's tables."""
    lines = config.stash.get(SUMMARY_LINES, [])
    if lines:
        terminalreporter.section("benchmark figures")
        for line in lines:
            terminalreporter.write_line(line)
