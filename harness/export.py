"""Exports of graded results for learning-management systems: Canvas, Gradescope, Moodle, and the plain gradebook.

Reads what ``gradebench grade --out OUT`` left behind: each student's ``students/*/report.json``
(the reports of the latest run, under the names of that run, with the TA's manual scores merged),
else the results store ``results.sqlite``; the assignment's title comes from ``assignment.json``.
One function renders each format; :data:`FORMATS` names them, and :func:`export` writes one.

- ``canvas``: a Canvas gradebook import CSV (``Student, ID, SIS User ID, SIS Login ID, Section``, then the
  assignment's column, with the ``Points Possible`` row second, as Canvas exports it).
- ``gradescope``: one ``results.json`` per student, per the Gradescope autograder specification (one test
  per check; written answers a TA has not graded yet are hidden tests with a note).
- ``moodle``: a Moodle "offline grading worksheet" CSV, matched on ``Participant <id>``.
- ``csv``: the gradebook, with the columns of ``OUT/gradebook.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.models import GradeReport, TaskScore
from harness.outdir import STORE_NAME
from harness.reporting import ASSIGNMENT_FILE, gradebook, held_note, safe_name
from harness.scoring import NOT_GRADED


class ExportError(HarnessError):
    """Results cannot be exported: nothing graded in the folder, an unknown format, an unwritable destination."""


CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
"""The identity columns of a Canvas gradebook CSV, before the assignment columns."""

CANVAS_POINTS_ROW = "    Points Possible"
"""The first cell of the second row of a Canvas gradebook CSV (Canvas writes it with the leading spaces)."""

MOODLE_COLUMNS = (
    "Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
    "Last modified (submission)", "Last modified (grade)", "Feedback comments",
)
"""The columns of a Moodle assignment's offline grading worksheet, in Moodle's order."""

GRADESCOPE_VISIBILITY = ("visible", "hidden", "after_due_date", "after_published")
"""When Gradescope shows students a result or a test."""

_CANVAS_STUDENT = re.compile(r"^[^_]+_(?P<user>\d+)$")
"""How loading names a Canvas bulk-download student: ``<name>_<user id>`` (``smithjohn_12345``)."""


@dataclass(frozen=True)
class GradedAssignment:
    """What one ``gradebench grade --out`` folder holds, as the exporters read it."""

    assignment: str
    """Rubric assignment id (``dl2025-a2``)."""
    title: str
    """The rubric's title (``Deep Learning 2025, Assignment 2``); the assignment id when none was written."""
    reports: tuple[GradeReport, ...]
    """One report per student, by student."""
    source: Path
    """Where the reports were read from: the ``students`` folder or the results store."""
    skipped: tuple[str, ...] = ()
    """Reports that could not be read, each with the reason (the others are exported)."""

    @property
    def points(self) -> float:
        """Points available in the assignment (the most any report offers)."""
        return max((r.points for r in self.reports), default=0.0)


@dataclass(frozen=True)
class ExportOptions:
    """What a TA may set for an export; each format reads the options that concern it."""

    canvas_assignment_id: str | None = None
    """Canvas's id of the assignment: the column is then ``<title> (<id>)``, which Canvas matches exactly."""
    visibility: str = "visible"
    """Gradescope: when students see the results (``visible``, ``hidden``, ``after_due_date``, ``after_published``)."""

    def __post_init__(self) -> None:
        """Refuse a visibility Gradescope does not know."""
        if self.visibility not in GRADESCOPE_VISIBILITY:
            raise ExportError(
                f"no Gradescope visibility {self.visibility!r}; known: {', '.join(GRADESCOPE_VISIBILITY)}"
            )


# -- reading a grading output folder --------------------------------------------------------------------------


def read_graded(out_dir: Path) -> GradedAssignment:
    """The reports and title of a ``gradebench grade --out`` folder; ExportError when it holds none."""
    from harness.store import ResultStore, report_from_dict

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: no such folder (grade first: gradebench grade SUBMISSIONS --out {out_dir})")
    meta: dict[str, Any] = {}
    try:
        meta = json.loads((out_dir / ASSIGNMENT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        raise ExportError(f"{out_dir / ASSIGNMENT_FILE}: unreadable ({error})") from None
    reports: dict[str, GradeReport] = {}
    skipped: list[str] = []
    source = out_dir / "students"
    for path in sorted(source.glob("*/report.json")):
        try:
            report = report_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except Exception as error:  # one damaged report must not keep the others out of the gradebook
            skipped.append(f"{path.parent.name}/report.json: unreadable ({type(error).__name__}: {error})")
            continue
        reports[report.student] = report
    if not reports and (out_dir / STORE_NAME).is_file():
        # No pages were written (or they were deleted): the store has every graded submission. It keeps each
        # content it graded, so a student who handed in twice has two rows: the later one counts.
        source = out_dir / STORE_NAME
        with ResultStore(source) as store:
            for report in store.all():
                reports[report.student] = report
    if not reports:
        raise ExportError(
            f"{out_dir}: no graded submissions found (neither students/*/report.json nor {STORE_NAME}); "
            f"grade first: gradebench grade SUBMISSIONS --out {out_dir}"
        )
    ordered = tuple(sorted(reports.values(), key=lambda r: r.student))
    assignment = str(meta.get("assignment") or ordered[0].assignment)
    return GradedAssignment(
        assignment=assignment, title=str(meta.get("title") or assignment), reports=ordered, source=source,
        skipped=tuple(skipped),
    )


def lms_id(report: GradeReport) -> str:
    """The student's id in the LMS: the one loading found (Moodle), else the user id of a Canvas name, else ''."""
    if report.lms_id:
        return report.lms_id
    match = _CANVAS_STUDENT.match(report.student)
    return match["user"] if match else ""


def not_graded_yet(task: TaskScore) -> bool:
    """True for a written answer (a manual task) that a TA has not graded yet: it scores 0 for now."""
    return task.manual and task.note.startswith(NOT_GRADED)


def _number(value: float) -> str:
    """A score as LMS imports read it: at most two decimals, no trailing zeros (``7.5``, ``12``)."""
    text = f"{round(value, 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _csv(rows: Sequence[Sequence[str]]) -> str:
    stream = io.StringIO()
    csv.writer(stream).writerows(rows)
    return stream.getvalue()


# -- the formats ----------------------------------------------------------------------------------------------


def canvas_csv(graded: GradedAssignment, options: ExportOptions = ExportOptions()) -> str:
    """A Canvas gradebook import CSV: identity columns, the assignment's column, and the Points Possible row.

    Canvas matches rows on ``ID`` (its user id, from the bulk download's ``<name>_<user id>`` names), else
    on the SIS ids or the name; it matches the column on the assignment's name, or exactly on
    ``<name> (<assignment id>)`` when the id is given.
    """
    column = graded.title
    if options.canvas_assignment_id is not None:
        column = f"{graded.title} ({options.canvas_assignment_id})"
    rows = [
        [*CANVAS_COLUMNS, column],
        [CANVAS_POINTS_ROW, "", "", "", "", _number(graded.points)],
    ]
    rows += [[r.student, lms_id(r), "", "", "", _number(r.score)] for r in graded.reports]
    return _csv(rows)


def moodle_csv(graded: GradedAssignment, options: ExportOptions = ExportOptions()) -> str:
    """A Moodle offline grading worksheet: one row per participant, the grade and the feedback as comments.

    Moodle matches rows on ``Identifier`` (``Participant <id>``: the id in the bulk download's folder
    names) and refuses to overwrite a grade changed in Moodle after ``Last modified (grade)``: that is
    set to the time of this export, in UTC.
    """
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    rows: list[list[str]] = [list(MOODLE_COLUMNS)]
    for report in graded.reports:
        identifier = lms_id(report)
        rows.append([
            f"Participant {identifier}" if identifier else "",
            report.student,
            "",
            "Submitted for grading - Graded",
            _number(report.score),
            _number(report.points),
            "Yes",
            "-",
            now,
            feedback_text(report),
        ])
    return _csv(rows)


def gradebook_csv(graded: GradedAssignment, options: ExportOptions = ExportOptions()) -> str:
    """The gradebook of ``OUT/gradebook.csv``: per student every task's score, the total, points, profile, problem."""
    return gradebook(graded.reports).to_csv(index=False)


def feedback_text(report: GradeReport) -> str:
    """A plain-text summary for the student: the total, each task's points, and what to fix."""
    lines = [f"{_number(report.score)} / {_number(report.points)} points (gradebench, {report.profile} profile)"]
    if report.load_failure:
        lines.append(f"Your submission could not be graded: {report.load_failure}")
    for problem in report.environment_problems:
        lines.append(f"Not your fault (the grading environment lacks a package; a TA will look): {problem}")
    for task in report.tasks:
        line = f"{task.title}: {_number(task.score)} / {_number(task.points)}"
        if task.note:
            line += f" ({task.note})"
        lines.append(line)
        for check in task.checks:
            if check.status != "passed" and check.message:
                lines.append(f"  - {check.check}: {_check_output(check.status, check.message)}")
            elif held_note(check, task):
                lines.append(f"  - {check.check}: {held_note(check, task)}")
    return "\n".join(lines)


def _check_output(status: str, message: str) -> str:
    """A check's message as the student reads it; a harness fault says it is not theirs."""
    if status == "error":
        return f"a grader fault, not yours (a TA will look): {message}"
    return message


def gradescope_results(report: GradeReport, options: ExportOptions = ExportOptions()) -> dict[str, Any]:
    """One submission's ``results.json`` per the Gradescope autograder specification.

    One test per check (``<task title>: <check>``, numbered ``<task>.<check>``; the message as output);
    a graded written answer is one test with the TA's comment; one not graded yet is a hidden test with
    a note (it counts 0 until a TA grades it). The top-level ``score`` is the report's total.
    """
    tests: list[dict[str, Any]] = []
    for t_index, task in enumerate(report.tasks, start=1):
        if task.manual:
            test: dict[str, Any] = {
                "name": f"{task.title} (graded by a TA)",
                "number": f"{t_index}",
                "score": task.score,
                "max_score": task.points,
                "visibility": options.visibility,
            }
            if not_graded_yet(task):
                test.update(
                    visibility="hidden", output=f"{task.note}: a TA grades this written answer; it counts 0 until then"
                )
            else:
                test.update(output=task.note, status="passed" if task.score >= task.points else "failed")
            tests.append(test)
            continue
        if not task.checks:  # a task that could not be graded at all (its submission did not load)
            tests.append({
                "name": task.title, "number": f"{t_index}", "score": task.score, "max_score": task.points,
                "output": task.note, "visibility": options.visibility, "status": "failed",
            })
            continue
        for c_index, check in enumerate(task.checks, start=1):
            held = held_note(check, task)
            counted = check.score if not held or task.review == "released" else 0.0  # as the report's total counts it
            output = _check_output(check.status, check.message) if check.status != "passed" else held or "passed"
            tests.append({
                "name": f"{task.title}: {check.check}",
                "number": f"{t_index}.{c_index}",
                "score": counted,
                "max_score": check.points,
                "output": output,
                "visibility": options.visibility,
                "status": "passed" if check.status == "passed" else "failed",
            })
    summary = [f"{_number(report.score)} / {_number(report.points)} points ({report.profile} profile)."]
    if report.load_failure:
        summary.append(f"Your submission could not be graded: {report.load_failure}")
    pending = [t for t in report.tasks if not_graded_yet(t)]
    if pending:
        summary.append(
            f"{len(pending)} written answer(s) worth {_number(sum(t.points for t in pending))} points "
            "are graded by a TA later."
        )
    if report.held_points:
        summary.append(
            f"{_number(report.held_points)} points rest on predictions the grader could not confirm; "
            "they are held until a TA has reviewed your model."
        )
    return {
        "score": report.score,
        "execution_time": round(sum(e.sandbox.wall_s for e in report.executions)),
        "output": " ".join(summary),
        "visibility": options.visibility,
        "stdout_visibility": "hidden",  # the grader's log: for TAs
        "tests": tests,
    }


# -- writing --------------------------------------------------------------------------------------------------


def _write_text(text: str, dest: Path) -> list[Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8", newline="")  # keep the csv module's \r\n line ends
    return [dest]


def _write_gradescope(graded: GradedAssignment, dest: Path, options: ExportOptions) -> list[Path]:
    """One ``<dest>/<student>/results.json`` per student: Gradescope grades one submission at a time."""
    written = []
    for report in graded.reports:
        path = dest / safe_name(report.student) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(gradescope_results(report, options), indent=2, ensure_ascii=False), encoding="utf-8")
        written.append(path)
    return written


@dataclass(frozen=True)
class Format:
    """One export format: how it is written and where it goes by default."""

    write: Callable[[GradedAssignment, Path, ExportOptions], list[Path]]
    """Writes the export to a destination; returns the files written."""
    default_name: str
    """The destination under ``OUT/exports/`` when none is given (a folder for per-student formats)."""


def _text_format(render: Callable[[GradedAssignment, ExportOptions], str], name: str) -> Format:
    return Format(lambda graded, dest, options: _write_text(render(graded, options), dest), name)


FORMATS: dict[str, Format] = {
    "canvas": _text_format(canvas_csv, "canvas.csv"),
    "gradescope": Format(_write_gradescope, "gradescope"),
    "moodle": _text_format(moodle_csv, "moodle.csv"),
    "csv": _text_format(gradebook_csv, "gradebook.csv"),
}
"""The export formats by name."""


def export(
    out_dir: Path, fmt: str, dest: Path | None = None, options: ExportOptions = ExportOptions()
) -> tuple[GradedAssignment, list[Path]]:
    """Export the results of ``out_dir`` in format ``fmt`` to ``dest`` (default ``OUT/exports/<name>``).

    Returns what was read and the files written; ExportError for an unknown format, a folder with no
    results, or a destination that cannot be written.
    """
    if fmt not in FORMATS:
        raise ExportError(f"no export format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    graded = read_graded(out_dir)
    target = FORMATS[fmt]
    dest = dest if dest is not None else Path(out_dir) / "exports" / target.default_name
    try:
        return graded, target.write(graded, Path(dest), options)
    except OSError as error:
        where = error.filename or dest
        raise ExportError(f"could not write {where}: {error.strerror or error}") from None
