"""Reading the graded sample reports in the tests of tests/test_samples_*.py."""

from __future__ import annotations


def automatic_scores(report, tasks=None) -> dict[str, float]:
    """Points per automatic task (only ``tasks``, when given)."""
    return {t.task: t.score for t in report.tasks if not t.manual and (tasks is None or t.task in tasks)}


def failed_checks(report, tasks=None) -> dict[tuple[str, str], list[str]]:
    """The messages of every check that did not pass, by (task, check) (only ``tasks``, when given)."""
    found: dict[tuple[str, str], list[str]] = {}
    for task in report.tasks:
        for result in task.checks:
            if result.status != "passed" and (tasks is None or task.task in tasks):
                found.setdefault((task.task, result.check), []).append(result.message)
    return found


def check_result(report, task_id: str, check: str):
    """The result of one check of one task."""
    task = next(t for t in report.tasks if t.task == task_id)
    return next(c for c in task.checks if c.check == check)
