"""Write grade reports: per student an HTML page and a JSON file; per batch an index page and a gradebook CSV.

Formatting lives in ``reports/templates/*.j2``; this module only gathers what the templates
show, copies the students' figures next to their pages and draws the score distribution.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import jinja2

from harness import __version__
from harness.models import CheckResult, ExecutionResult, GradeReport, TaskScore

if TYPE_CHECKING:  # pandas is imported when a gradebook is made: a second of start-up otherwise
    import pandas as pd

MAX_FIGURES = 24
"""Figures copied into one student's report; more are listed as left out."""


WARNING_SEPARATOR = " | "
"""Joins a submission's loading warnings in the gradebook's ``warnings`` column (they may hold ``;`` and ``,``)."""

ASSIGNMENT_FILE = "assignment.json"
"""Written beside each assignment's index: its id and title, for the overview page."""


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["measured"] = measured_note
    environment.globals.update(held_note=held_note, review_note=review_note)
    return environment


def _number(value: Any, percent: bool) -> str | None:
    """A measured figure as a person reads it (97.9%, 0.0123, 12,810); None for what is not one number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if percent:
        return f"{value:.1%}"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def measured_note(check: CheckResult) -> str:
    """What a passed check measured against what it asked for ("accuracy 97.9% against a bar of 96.0%").

    Failed checks say it in their message already; a passed one shows its figures so a student sees how
    close they were. Empty when the check recorded no single measured figure.
    """
    if check.status != "passed":
        return ""
    details = check.details
    percent = "accuracy" in check.check
    measured = _number(details.get("measured"), percent)
    if measured is None:
        return ""
    bar = _number(details.get("threshold"), percent)
    if bar is not None:
        above = details["measured"] >= details["threshold"]
        return f"measured {measured} against a bar of {'at least' if above else 'at most'} {bar}"
    if _number(details.get("expected"), percent) == measured:
        return f"measured {measured}, as required"
    return ""


def held_note(check: CheckResult, task: TaskScore) -> str:
    """For the student: what a held check measured, why its points are held (the rebuild's reason) and what a TA
    did or will do about them; empty when the check holds nothing (``TaskScore.review``)."""
    if not check.held or not task.review:
        return ""
    measured = measured_note(check) or ("it passed" if check.status == "passed" else "it earned partial credit")
    points = f"{check.score:g} point{'' if check.score == 1 else 's'}"
    outcome = {
        "pending": f"its {points} are held until a TA has reviewed your model",
        "released": f"a TA reviewed your model and released its {points}",
        "rejected": f"a TA reviewed your model and did not accept its {points}",
    }[task.review]
    return f"{measured[:1].upper()}{measured[1:]}, but {check.held}: {outcome}."


def review_note(task: TaskScore, manual_csv: str = "manual-scores.csv") -> str:
    """For the TA: what to look at for a task whose held points no TA has reviewed yet, and where to decide."""
    if task.review != "pending":
        return ""
    where = f" in {task.source}" if task.source else ""
    return (
        f"For the TA: {task.held:g} point{'' if task.held == 1 else 's'} of this task rest on predictions the grader "
        f"could not confirm by running the model again. Check that the model class{where} is the network the code "
        "trained and that nothing replaced the grader's probe or wrote its records by hand; then write release or "
        f"reject in the '{task.task} review' column of {manual_csv} (a comment beside it reaches the student) and "
        "grade again with --manual: nothing runs again."
    )


def problem_text(report: GradeReport) -> str:
    """The gradebook's problem column: why it could not be graded, and what the grading environment lacked."""
    return "; ".join(part for part in (report.load_failure, *report.environment_problems) if part)


def run_outcome(execution: ExecutionResult) -> str:
    """How a run ended, in words: the sandbox's verdict for a stopped run; for one that reached its end, whether
    its code raised errors (never a bare "exit code 0" beside them)."""
    if execution.sandbox.verdict != "ok":
        return execution.sandbox.message
    count = len(execution.errors)
    if not count:
        return "ran to the end"
    where = "cell" if any(e.cell >= 0 for e in execution.errors) else "part"
    return f"ran to the end; {count} {where}{'s' if count != 1 else ''} raised {'errors' if count != 1 else 'an error'}"


def shown_errors(execution: ExecutionResult) -> list[str]:
    """The run's errors as the student page lists them, with the NameError cascade of a missing package summed up.

    After ``import lightning`` fails, every later cell using it fails with a NameError; they follow
    from the missing package, so they are counted in one line rather than listed cell by cell.
    """
    from harness.environment import missing_module

    lines, cascade = [], []
    missing = set(execution.missing_packages)
    after_missing = False
    for error in execution.errors:
        where = f"cell {error.cell + 1}" if error.cell >= 0 else "script"
        if missing_module(error.ename, error.evalue) in missing:
            after_missing = True
            lines.append(f"{where}: {error.ename}: {error.evalue} (the grading environment lacks this package: "
                         "not your error)")
        elif after_missing and error.ename == "NameError":
            cascade.append(where.removeprefix("cell "))
        else:
            lines.append(f"{where}: {error.ename}: {error.evalue}")
    if cascade:
        cells = ", ".join(cascade[:10]) + (f" and {len(cascade) - 10} more" if len(cascade) > 10 else "")
        lines.append(f"{len(cascade)} later NameError{'s' if len(cascade) != 1 else ''} (cell{'s' if len(cascade) != 1 else ''}"
                     f" {cells}) most likely follow from the missing package")
    return lines


def safe_name(student: str) -> str:
    """A folder name for a student that cannot escape the output folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._") or "student"
    return name[:120]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; reports are for TAs to share
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _common(profile: str) -> dict[str, str]:
    return {
        "version": __version__,
        "profile": profile,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_live_check(check: Any) -> str:
    """The HTML fragment of an in-notebook check (``gradebench.SelfCheck``): its table, in Jupyter."""
    return _environment().get_template("selfcheck.html.j2").render(check=check)


def render_student(report: GradeReport, out_dir: Path, rubric_title: str, seed: int | None = 0) -> Path:
    """Write ``<out>/students/<student>/index.html`` and ``report.json``; returns the HTML path. ``seed``: the
    rubric's seed the runs started from (None: unseeded), told to the student beside how their code ran."""
    from harness.store import report_to_dict

    folder = out_dir / "students" / safe_name(report.student)
    figures_dir = folder / "figures"
    if figures_dir.exists():
        shutil.rmtree(figures_dir)
    figures: list[dict[str, str]] = []
    for execution in report.executions:
        if execution.artifacts_dir is None:
            continue
        cells = _figure_cells(Path(execution.artifacts_dir))
        pngs = [p for p in Path(execution.artifacts_dir).glob("figures/*.png") if p.stem.isdigit()]
        for png in sorted(pngs, key=lambda p: int(p.stem)):  # 2.png before 10.png
            if len(figures) >= MAX_FIGURES or png.is_symlink():
                continue
            figures_dir.mkdir(parents=True, exist_ok=True)
            target = figures_dir / f"{len(figures):02d}-{safe_name(Path(execution.source).stem)}.png"
            shutil.copyfile(png, target)
            figures.append({"src": f"figures/{target.name}", "caption": figure_caption(execution.source, int(png.stem),
                                                                                       cells.get(png.name))})
    html = _environment().get_template("student.html.j2").render(
        report=report,
        rubric_title=rubric_title,
        executions=report.executions,
        isolated=all(e.sandbox.isolated for e in report.executions),
        figures=figures,
        seed=seed,
        shown_errors=shown_errors,
        run_outcome=run_outcome,
        **_common(report.profile),
    )
    _write_atomic(folder / "index.html", html)
    _write_atomic(folder / "report.json", json.dumps(report_to_dict(report), indent=2))
    return folder / "index.html"


def figure_caption(source: str, number: int, cell: int | None) -> str:
    """``CNN.ipynb, cell 4: figure 2``: where a figure came from, for the report's caption (``cell`` 0-based; -1 a script)."""
    where = f"{source}, cell {cell + 1}" if cell is not None and cell >= 0 else source
    return f"{where}: figure {number + 1}"


def _figure_cells(artifacts_dir: Path) -> dict[str, int]:
    """Figure file name -> the code cell that showed it, from run.json (empty when the run did not record it)."""
    from harness.artifacts import ArtifactError, load_artifacts

    try:
        artifacts = load_artifacts(artifacts_dir)
    except ArtifactError:
        return {}
    return {png.name: cell for png in artifacts.figures if (cell := artifacts.figure_cell(png)) is not None}


def _reason(message: str) -> str:
    """The first line of a failure message, with numbers blurred so that alike failures group together."""
    first = message.splitlines()[0] if message else "(no message)"
    return re.sub(r"\d[\d,.]*%?", "N", first)[:160]


def pass_rates(reports: Sequence[GradeReport]) -> list[dict]:
    """Per (task, check): how many submissions passed, failed or met a harness error."""
    counts: dict[tuple[str, str], Counter] = {}
    for report in reports:
        for task in report.tasks:
            for result in task.checks:
                counts.setdefault((task.task, result.check), Counter())[result.status] += 1
    rows = []
    for (task, name), counter in counts.items():
        total = sum(counter.values())
        rows.append(
            {"task": task, "check": name, "passed": counter["passed"], "failed": counter["failed"],
             "error": counter["error"] + counter["skipped"], "rate": counter["passed"] / total if total else 0.0}
        )
    return rows


EVERY_CHECK = "every check"
"""The check column of a failure row standing for all the checks of its tasks (one cause, such as a missing file)."""


def failures_by_reason(reports: Sequence[GradeReport]) -> list[dict]:
    """Failed and errored checks grouped by task, check and reason, most common first.

    A reason that failed every check of the tasks it touches in a submission (a missing notebook fails each of
    its tasks' checks with the same words) is one row for those tasks, check ``every check``, not one per check.
    """
    counter: Counter = Counter()
    for report in reports:
        if report.load_failure:
            counter[("(loading)", "", _reason(report.load_failure))] += 1
        by_reason: dict[str, list[tuple[str, str]]] = {}
        for task in report.tasks:
            for result in task.checks:
                if result.status in ("failed", "error"):
                    by_reason.setdefault(_reason(result.message), []).append((task.task, result.check))
        checks_of = {task.task: len(task.checks) for task in report.tasks}
        for reason, failed in by_reason.items():
            tasks = list(dict.fromkeys(task for task, _ in failed))
            whole = len(failed) > 1 and all(sum(1 for t, _ in failed if t == task) == checks_of[task] for task in tasks)
            if whole:
                counter[(", ".join(tasks), EVERY_CHECK, reason)] += 1
            else:
                for task, check in failed:
                    counter[(task, check, reason)] += 1
    return [
        {"task": task, "check": name, "reason": reason, "count": count}
        for (task, name, reason), count in counter.most_common()
    ]


def _distribution_plot(reports: Sequence[GradeReport], points: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist([r.score for r in reports], bins=min(20, max(5, len(reports))), range=(0, max(points, 1)), color="#4a7bd0")
    ax.set_xlabel("points")
    ax.set_ylabel("submissions")
    ax.set_title("score distribution")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gradebook(reports: Iterable[GradeReport]) -> pd.DataFrame:
    """One row per student: every task's score (``pending`` for a written answer no TA has graded yet; held points
    left out), the total (after any late penalty), the points available, the points still pending (written answers
    and points held for a TA's review), lateness and its penalty,
    any load failure and the loading warnings (joined by ``WARNING_SEPARATOR``)."""
    import pandas as pd

    rows = []
    for report in reports:
        row: dict[str, object] = {"student": report.student}
        row.update({task.task: "pending" if task.pending else round(task.score, 4) for task in report.tasks})
        row.update(
            total=round(report.score, 4), points=report.points, pending=round(report.pending_points, 4),
            late=report.late, late_penalty=round(report.late_penalty, 4), profile=report.profile,
            problem=problem_text(report), warnings=WARNING_SEPARATOR.join(report.load_warnings),
        )
        rows.append(row)
    return pd.DataFrame(rows)


DISTRIBUTION_MIN = 2
"""Scores the index needs before it draws their distribution: one score's histogram says nothing its row does not."""


def render_index(
    reports: Sequence[GradeReport],
    out_dir: Path,
    rubric_title: str,
    tasks: Sequence[tuple[str, str]],
    manual_csv: str | None = None,
) -> Path:
    """Write ``<out>/index.html``, the score distribution and ``<out>/gradebook.csv``; returns the index path."""
    ordered = sorted(reports, key=lambda r: r.student)
    points = max((r.points for r in ordered), default=0.0)
    distribution = None
    if len(ordered) >= DISTRIBUTION_MIN:
        _distribution_plot(ordered, points, out_dir / "distribution.png")
        distribution = "distribution.png"
    else:  # nor is an earlier class's plot shown as this one's
        (out_dir / "distribution.png").unlink(missing_ok=True)
    book = gradebook(ordered)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(out_dir / "gradebook.csv", book.to_csv(index=False))
    html = _environment().get_template("index.html.j2").render(
        reports=ordered,
        rubric_title=rubric_title,
        tasks=[{"id": task_id, "title": title} for task_id, title in tasks],
        links={r.student: f"students/{safe_name(r.student)}/index.html" for r in ordered},
        median=statistics.median([r.score for r in ordered]) if ordered else 0.0,
        points=points,
        distribution=distribution,
        pass_rates=pass_rates(ordered),
        failures=failures_by_reason(ordered),
        manual_csv=manual_csv,
        **_common(ordered[0].profile if ordered else "full"),
    )
    _write_atomic(out_dir / "index.html", html)
    assignment = ordered[0].assignment if ordered else ""
    _write_atomic(out_dir / ASSIGNMENT_FILE, json.dumps({"assignment": assignment, "title": rubric_title}, indent=2))
    return out_dir / "index.html"


def render_overview(out_dir: Path) -> tuple[Path, int]:
    """Write ``<out>/index.html`` linking every report of every assignment graded under ``<out>/*/``.

    An assignment folder is one ``gradebench grade --out`` wrote: its ``assignment.json``, its
    index and ``students/*/report.json``. Returns the page and the number of reports it links.
    """
    from harness.store import report_from_dict

    assignments, skipped, profiles, total = [], [], set(), 0
    for folder in sorted(p for p in Path(out_dir).iterdir() if p.is_dir()):
        meta_path = folder / ASSIGNMENT_FILE
        if not meta_path.is_file():
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            skipped.append(f"{folder.name}: unreadable {ASSIGNMENT_FILE} ({error})")
            continue
        rows = []
        for path in sorted(folder.glob("students/*/report.json")):
            try:
                report = report_from_dict(json.loads(path.read_text(encoding="utf-8")))
            except Exception as error:  # one damaged report must not hide the others
                skipped.append(f"{folder.name}/{path.parent.name}: unreadable report.json ({type(error).__name__})")
                continue
            automatic = [t for t in report.tasks if not t.manual]
            profiles.add(report.profile)
            rows.append({
                "student": report.student,
                "link": f"{folder.name}/students/{path.parent.name}/index.html",
                "score": report.score,
                "points": report.points,
                "automatic": sum(t.score for t in automatic),
                "automatic_points": sum(t.points for t in automatic),
                "profile": report.profile,
                "problem": problem_text(report),
            })
        if not rows:
            skipped.append(f"{folder.name}: no reports")
            continue
        total += len(rows)
        assignments.append({
            "folder": folder.name,
            "title": meta.get("title") or meta.get("assignment") or folder.name,
            "index": f"{folder.name}/index.html",
            "reports": rows,
            "median": statistics.median(r["score"] for r in rows),
            "points": max(r["points"] for r in rows),
        })
    html = _environment().get_template("overview.html.j2").render(
        assignments=assignments,
        total=total,
        skipped=skipped,
        profiles=sorted(profiles) or ["full"],
        **_common(", ".join(sorted(profiles)) or "full"),
    )
    _write_atomic(Path(out_dir) / "index.html", html)
    return Path(out_dir) / "index.html", total
