"""Scoring: a rubric and the results of its checks make a grade report.

Pure functions: no I/O, no clock, no randomness. A result the rubric has no
place for (an unknown task or check, points that disagree with the rubric, a
score outside ``[0, points]``) is a programming error and raises ValueError;
a check the rubric has but no result came for scores 0 as ``skipped``, so a
gap shows in the report instead of vanishing.

A check whose score rests on predictions the grader could not verify (``CheckResult.held``)
keeps its points out of the total, held, until a TA releases or rejects them (a ``Review``
from the manual-scores CSV), unless the rubric says ``unverified: believe``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.models import CheckResult, ExecutionResult, GradeReport, TaskScore
from harness.rubric import Rubric, Task

NOT_GRADED = "not graded yet"
NO_RESULT = "no result was recorded for this check (it did not run)"


@dataclass(frozen=True)
class ManualScore:
    """A TA's score for one manual task of one student, read from the manual-scores CSV."""

    score: float | None
    """Points awarded; None while the cell is empty (not graded yet)."""
    comment: str = ""
    """The TA's comment, shown in the student's report."""


@dataclass(frozen=True)
class Review:
    """A TA's decision on the held points of one automatic task of one student, read from the manual-scores CSV."""

    release: bool | None
    """True: the held points count; False: they are lost; None while the cell is empty (not reviewed yet)."""
    comment: str = ""
    """The TA's comment, shown in the student's report (why they were rejected, what was looked at)."""


HELD = "held for a TA's review"
"""The note of a task whose held points no TA has reviewed yet."""


def _tidy(total: float) -> float:
    """A sum of float points without binary noise (2.9999999999999996 -> 3.0)."""
    return round(total, 9) + 0.0


def _check_range(what: str, score: float, points: float) -> None:
    """Refuse a score that is not a number in ``[0, points]``."""
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        raise ValueError(f"{what}: score {score!r} is not a finite number")
    if score < 0 or score > points + 1e-9:
        raise ValueError(f"{what}: score {score:g} is outside [0, {points:g}]")


def _automatic_task(task: Task, results: list[CheckResult], review: Review | None = None, hold: bool = True) -> TaskScore:
    """Match a task's results to its checks (the k-th result named X to the k-th check named X) and add them up.

    With ``hold``, the scores of held checks count only once ``review`` released them."""
    by_name: dict[str, list[CheckResult]] = defaultdict(list)
    for result in results:
        by_name[result.check].append(result)
    wanted = {spec.check for spec in task.checks}
    unknown = sorted(set(by_name) - wanted)
    if unknown:
        known = ", ".join(s.check for s in task.checks)
        raise ValueError(f"task {task.id!r} has no check {unknown[0]!r}; its checks: {known}")
    for name, got in by_name.items():
        expected = sum(1 for spec in task.checks if spec.check == name)
        if len(got) > expected:
            raise ValueError(f"task {task.id!r} has {expected} {name!r} check(s) but {len(got)} results came for them")

    used: dict[str, int] = defaultdict(int)
    checks: list[CheckResult] = []
    for spec in task.checks:
        k = used[spec.check]
        used[spec.check] += 1
        got = by_name.get(spec.check, [])
        if k >= len(got):
            checks.append(CheckResult(task.id, spec.check, "skipped", NO_RESULT, spec.points, 0.0))
            continue
        result = got[k]
        what = f"task {task.id!r}, check {spec.check!r}"
        if not math.isclose(result.points, spec.points, rel_tol=0, abs_tol=1e-9):
            raise ValueError(
                f"{what}: the result is worth {result.points:g} points but the rubric says {spec.points:g}"
            )
        _check_range(what, result.score, spec.points)
        checks.append(result)

    note = ""
    skipped = {c.message for c in checks if c.status == "skipped"}
    if len(skipped) == 1 and all(c.status == "skipped" for c in checks):
        note = skipped.pop()
    held = _tidy(sum(c.score for c in checks if c.held)) if hold else 0.0
    state = ""
    if held:
        state = {None: "pending", True: "released", False: "rejected"}[review.release if review else None]
        decided = {"pending": HELD, "released": "held points released by a TA", "rejected": "held points rejected by a TA"}
        note = decided[state] + (f": {review.comment}" if review and review.comment else "")
    counted = sum(c.score for c in checks) - (held if state in ("pending", "rejected") else 0.0)
    return TaskScore(
        task=task.id,
        title=task.title,
        score=_tidy(max(0.0, counted)),
        points=task.points,
        checks=tuple(checks),
        note=note,
        held=held,
        review=state,
    )


def _with_source(score: TaskScore, sources: Mapping[str, tuple[str, str, str]] | None) -> TaskScore:
    """The task's score with the file graded for it, the file run and why."""
    if not sources or score.task not in sources:
        return score
    file, run, why = sources[score.task]
    return replace(score, source=file, source_run=run, source_note=why)


def _manual_task(task: Task, given: ManualScore | None) -> TaskScore:
    """A TA-graded task's score, or 0 with a note while it is not graded."""
    points = task.points
    if given is None or given.score is None:
        note = NOT_GRADED if given is None or not given.comment else f"{NOT_GRADED} ({given.comment})"
        return TaskScore(task.id, task.title, 0.0, points, manual=True, note=note, pending=True)
    _check_range(f"manual task {task.id!r}", given.score, points)
    return TaskScore(task.id, task.title, float(given.score), points, manual=True, note=given.comment)


def _check_manual_keys(rubric: Rubric, manual: Mapping[str, ManualScore | Review]) -> None:
    """Refuse manual scores for tasks that are not manual tasks of the rubric, and reviews for non-automatic ones."""
    manual_ids = {t.id for t in rubric.manual_tasks}
    automatic_ids = {t.id for t in rubric.automatic_tasks}
    for task_id, given in manual.items():
        if isinstance(given, Review):
            if task_id not in automatic_ids:
                raise ValueError(f"review of held points for {task_id!r}, which is not an automatic task of {rubric.assignment!r}")
        elif task_id not in manual_ids:
            raise ValueError(
                f"manual score for {task_id!r}, which is not a manual task of {rubric.assignment!r}; "
                f"manual tasks: {', '.join(sorted(manual_ids)) or 'none'}"
            )


def score_submission(
    rubric: Rubric,
    student: str,
    content_hash: str,
    check_results: Sequence[CheckResult],
    manual: Mapping[str, ManualScore | Review],
    executions: Sequence[ExecutionResult] = (),
    profile: str = "full",
    late: bool = False,
    sources: Mapping[str, tuple[str, str, str]] | None = None,
) -> GradeReport:
    """Score one submission: per task in rubric order, checks summed, manual items merged (by task id).

    ``late``: the LMS marked the hand-in late; the rubric's ``late_penalty`` (if any) takes its share of the
    points earned (recomputed whenever manual scores are merged in, so it always applies to the whole grade).
    ``sources`` gives, per automatic task id, the file graded, the file run for it and why (``harness.matching``).
    ``manual`` also holds, per automatic task id, the TA's ``Review`` of its held points (if any).
    """
    automatic = {t.id: t for t in rubric.automatic_tasks}
    by_task: dict[str, list[CheckResult]] = defaultdict(list)
    for result in check_results:
        if result.task not in automatic:
            kind = "a manual task" if result.task in {t.id for t in rubric.manual_tasks} else "not a task"
            raise ValueError(f"check result for {result.task!r}, which is {kind} of rubric {rubric.assignment!r}")
        by_task[result.task].append(result)
    _check_manual_keys(rubric, manual)

    tasks = tuple(
        _manual_task(t, manual.get(t.id))  # type: ignore[arg-type]  # keys checked above: a manual task's is a ManualScore
        if t.is_manual
        else _with_source(_automatic_task(t, by_task.get(t.id, []), _review(manual.get(t.id)), (t.unverified or rubric.unverified) == "hold"), sources)
        for t in rubric.tasks
    )
    return GradeReport(
        student=student,
        assignment=rubric.assignment,
        content_hash=content_hash,
        rubric_hash=rubric.hash,
        profile=profile,
        tasks=tasks,
        executions=tuple(executions),
        late=late,
        late_penalty=late_penalty(rubric, tasks, late),
    )


def _review(given: ManualScore | Review | None) -> Review | None:
    """The TA's review of an automatic task's held points, if the CSV gave one."""
    return given if isinstance(given, Review) else None


def late_penalty(rubric: Rubric, tasks: Sequence[TaskScore], late: bool) -> float:
    """Points a hand-in loses for lateness: the rubric's percentage of what its tasks earned (0 when on time)."""
    if not late or rubric.late_penalty is None:
        return 0.0
    return _tidy(sum(t.score for t in tasks) * rubric.late_penalty.percent / 100)


def score_load_failure(
    rubric: Rubric,
    student: str,
    source: str | Path,
    reason: str,
    content_hash: str = "",
    manual: Mapping[str, ManualScore | Review] | None = None,
    profile: str = "full",
) -> GradeReport:
    """Score a submission that could not be loaded: every automatic task 0, the reason recorded.

    Manual tasks score 0 too unless ``manual`` is given (a TA may grade written
    answers handed in some other way); without it they read "not graded yet".
    """
    manual = manual or {}
    _check_manual_keys(rubric, manual)
    name = Path(source).name or str(source)
    note = f"not graded: {name} could not be loaded"
    tasks = tuple(
        _manual_task(t, manual.get(t.id)) if t.is_manual else TaskScore(t.id, t.title, 0.0, t.points, note=note)
        for t in rubric.tasks
    )
    return GradeReport(
        student=student,
        assignment=rubric.assignment,
        content_hash=content_hash,
        rubric_hash=rubric.hash,
        profile=profile,
        tasks=tasks,
        load_failure=reason,
    )
