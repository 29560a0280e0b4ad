"""The pages and files a batch writes: student pages, the index and gradebook, and the overview over assignments."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from markupsafe import escape
from typer.testing import CliRunner

from harness.cli import app
from harness.models import CheckResult, GradeReport, TaskScore
from harness.reporting import render_index, render_overview, render_student


def _report(student: str, assignment: str, score: float, profile: str = "fast") -> GradeReport:
    check = CheckResult(task="t1", check="runs_without_error", status="passed" if score else "failed",
                        message="" if score else "cell 2 raised NameError", points=2.0, score=score)
    return GradeReport(
        student=student, assignment=assignment, content_hash=f"{student}-hash", rubric_hash="r", profile=profile,
        tasks=(TaskScore(task="t1", title="Task 1", score=score, points=2.0, checks=(check,)),
               TaskScore(task="w1", title="Written", score=0.0, points=3.0, manual=True, note="not graded yet")),
    )


def _grade_folder(out: Path, assignment: str, title: str, reports: list[GradeReport]) -> None:
    for report in reports:
        render_student(report, out / assignment, title)
    render_index(reports, out / assignment, title, [("t1", "Task 1"), ("w1", "Written")])


def test_the_index_of_one_submission_draws_no_distribution_and_says_when_nothing_failed(tmp_path) -> None:
    (tmp_path / "distribution.png").write_bytes(b"an earlier class's plot")
    render_index([_report("alice", "a1", 2.0)], tmp_path, "Assignment One", [("t1", "Task 1"), ("w1", "Written")])
    page = " ".join((tmp_path / "index.html").read_text().split())
    assert "<p>1 submission &middot; median 2.0" in page
    assert "score distribution" not in page and not (tmp_path / "distribution.png").exists()
    assert "<h2>Failures by reason</h2> <p>No check failed or ended in an error, and every submission loaded.</p>" in page


def test_the_index_of_a_class_draws_its_distribution_and_lists_failures_by_reason(tmp_path) -> None:
    render_index([_report("alice", "a1", 2.0), _report("bob", "a1", 0.0)], tmp_path, "Assignment One",
                 [("t1", "Task 1"), ("w1", "Written")])
    page = " ".join((tmp_path / "index.html").read_text().split())
    assert "<p>2 submissions &middot; median 1.0" in page
    assert '<img src="distribution.png" alt="score distribution"' in page
    assert (tmp_path / "distribution.png").stat().st_size > 1000
    assert '<td>t1</td><td>runs_without_error</td><td class="reason">cell N raised NameError</td><td class="num">1</td>' in page
    assert "No check failed" not in page  # a reason counts once whatever the cell (cell N)


def test_overview_links_every_report_of_every_assignment(tmp_path) -> None:
    _grade_folder(tmp_path, "a1", "Assignment One", [_report("alice", "a1", 2.0), _report("bob", "a1", 0.0)])
    _grade_folder(tmp_path, "a2", "Assignment Two", [_report("carol", "a2", 1.0)])
    (tmp_path / "stray").mkdir()  # a folder that is not an assignment's output is ignored
    page, total = render_overview(tmp_path)
    html = page.read_text()
    assert total == 3
    for link in ("a1/index.html", "a2/index.html", "a1/students/alice/index.html", "a1/students/bob/index.html",
                 "a2/students/carol/index.html"):
        assert f'href="{link}"' in html
        assert (tmp_path / link).is_file()
    assert "Assignment One" in html and "Assignment Two" in html
    assert "fast profile" in html


def test_overview_reports_a_damaged_report_and_keeps_the_rest(tmp_path) -> None:
    _grade_folder(tmp_path, "a1", "Assignment One", [_report("alice", "a1", 2.0), _report("bob", "a1", 2.0)])
    (tmp_path / "a1" / "students" / "bob" / "report.json").write_text("{not json")
    page, total = render_overview(tmp_path)
    html = page.read_text()
    assert total == 1
    assert "a1/bob: unreadable report.json (JSONDecodeError)" in html
    assert 'href="a1/students/alice/index.html"' in html


def test_overview_command_fails_clearly_without_graded_folders(tmp_path) -> None:
    result = CliRunner().invoke(app, ["overview", str(tmp_path)])
    assert result.exit_code == 2
    assert "no graded assignment folders found" in " ".join(result.output.split())


def test_overview_command_writes_the_page(tmp_path) -> None:
    _grade_folder(tmp_path, "a1", "Assignment One", [_report("alice", "a1", 2.0)])
    result = CliRunner().invoke(app, ["overview", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "overview of 1 reports" in result.output
    assert (tmp_path / "index.html").is_file()


def test_loading_warnings_reach_the_student_page_json_index_and_gradebook(tmp_path) -> None:
    warnings = (
        "handed in late (the LMS marked the upload LATE)",
        "skipped 'notes-caf\\xe9.py': its name is not valid UTF-8 (byte 0xe9; was it zipped or saved with a "
        "Windows code page?): rename it with UTF-8 characters only",
    )
    alice = replace(_report("alice", "a1", 2.0), load_warnings=warnings)
    _grade_folder(tmp_path, "a1", "Assignment One", [alice, _report("bob", "a1", 2.0)])
    folder = tmp_path / "a1" / "students" / "alice"
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert all(f"<li>{escape(w)}</li>" in page for w in warnings)
    assert "Notes from loading" not in (tmp_path / "a1" / "students" / "bob" / "index.html").read_text()
    assert json.loads((folder / "report.json").read_text(encoding="utf-8"))["load_warnings"] == list(warnings)
    index = (tmp_path / "a1" / "index.html").read_text(encoding="utf-8")
    assert all(f'<div class="error">{escape(w)}</div>' in index for w in warnings)
    with open(tmp_path / "a1" / "gradebook.csv", newline="", encoding="utf-8") as stream:
        rows = {row["student"]: row for row in csv.DictReader(stream)}
    assert rows["alice"]["warnings"] == " | ".join(warnings)
    assert rows["bob"]["warnings"] == ""


def test_the_student_page_says_when_predictions_were_not_verified(tmp_path) -> None:
    from harness.checks.verify import UNVERIFIED_NOTE

    check = CheckResult(task="t1", check="test_accuracy", status="passed", message="", points=3.0, score=3.0,
                        details={"measured": 0.97, "verified": False, "note": UNVERIFIED_NOTE})
    report = GradeReport(student="ada", assignment="a", content_hash="h", rubric_hash="r", profile="fast",
                         tasks=(TaskScore(task="t1", title="Task 1", score=3.0, points=3.0, checks=(check,)),))
    page = render_student(report, tmp_path, "A").read_text()
    assert "outputs not verified: your model&#39;s class cannot be rebuilt on the grader" in page


def test_pending_written_answers_and_a_late_penalty_are_shown_as_such(tmp_path) -> None:
    auto = TaskScore(task="t1", title="Task 1", score=6.0, points=6.0)
    written = TaskScore(task="w1", title="Why?", score=0.0, points=4.0, manual=True, note="not graded yet", pending=True)
    late = GradeReport(student="ada", assignment="a1", content_hash="h", rubric_hash="r", profile="fast",
                       tasks=(auto, written), late=True, late_penalty=0.6)
    on_time = replace(late, student="bo", late=False, late_penalty=0.0)
    _grade_folder(tmp_path, "a1", "Assignment One", [late, on_time])
    page = " ".join((tmp_path / "a1" / "students" / "ada" / "index.html").read_text().split())
    assert "<strong>5.4 / 10.0</strong> points (54%)" in page
    assert "4.0 of these points (40%) are written answers a TA has not graded yet" in page
    assert "handed in late: 0.6 points taken off the 6 earned" in page
    assert '<span class="pending">pending</span>' in page
    index = " ".join((tmp_path / "a1" / "index.html").read_text().split())
    assert '<div class="pending">4 pending</div>' in index
    assert '<div class="error">late: &minus;0.6 points</div>' in index
    with open(tmp_path / "a1" / "gradebook.csv", newline="", encoding="utf-8") as stream:
        rows = {row["student"]: row for row in csv.DictReader(stream)}
    assert {k: rows["ada"][k] for k in ("t1", "w1", "total", "pending", "late", "late_penalty")} == {
        "t1": "6.0", "w1": "pending", "total": "5.4", "pending": "4.0", "late": "True", "late_penalty": "0.6"}
    assert (rows["bo"]["total"], rows["bo"]["late"]) == ("6.0", "False")


@pytest.mark.parametrize(
    ("check", "status", "details", "shown"),
    [
        ("test_accuracy", "passed", {"measured": 0.797, "threshold": 0.773}, "measured 79.7% against a bar of at least 77.3%"),
        ("reconstruction_error", "passed", {"measured": 0.0123, "threshold": 0.02},
         "measured 0.0123 against a bar of at most 0.02"),
        ("parameter_count", "passed", {"measured": 12810, "expected": 12810}, "measured 12,810, as required"),
        ("within_budget", "passed", {"measured": 3.2, "budget": 40.0}, ""),
        ("test_accuracy", "failed", {"measured": 0.5, "threshold": 0.773}, ""),
    ],
)
def test_a_passed_check_shows_what_it_measured_against_its_bar(check, status, details, shown) -> None:
    from harness.reporting import measured_note

    assert measured_note(CheckResult("t1", check, status, "", 1.0, 1.0 if status == "passed" else 0.0, details)) == shown


def test_the_student_page_shows_a_passed_checks_figures(tmp_path) -> None:
    check = CheckResult(task="t1", check="test_accuracy", status="passed", message="", points=3.0, score=3.0,
                        details={"measured": 0.797, "threshold": 0.773})
    report = GradeReport(student="ada", assignment="a", content_hash="h", rubric_hash="r", profile="fast",
                         tasks=(TaskScore(task="t1", title="Task 1", score=3.0, points=3.0, checks=(check,)),))
    page = render_student(report, tmp_path, "A").read_text()
    assert '<div class="muted">measured 79.7% against a bar of at least 77.3%</div>' in page


def test_one_missing_file_is_one_row_of_failures_by_reason_not_one_per_check() -> None:
    from harness.reporting import failures_by_reason

    missing = "autoencoders.ipynb was not found in your submission (found: CNNMNIST.ipynb)"

    def failed(task: str, check: str, message: str) -> CheckResult:
        return CheckResult(task, check, "failed", message, 1.0, 0.0)

    ae = TaskScore("ae", "AE", 0.0, 3.0, checks=tuple(failed("ae", c, missing) for c in ("a", "b", "c")))
    pca = TaskScore("pca", "PCA", 0.0, 2.0, checks=tuple(failed("pca", c, missing) for c in ("d", "e")))
    cnn = TaskScore("cnn", "CNN", 1.0, 2.0, checks=(failed("cnn", "test_accuracy", "accuracy is 50%"),
                                                      CheckResult("cnn", "parameter_count", "passed", "", 1.0, 1.0)))
    reports = [GradeReport(student=s, assignment="a", content_hash=s, rubric_hash="r", profile="fast",
                           tasks=(ae, pca, cnn)) for s in ("ann", "bob")]
    assert failures_by_reason(reports) == [
        {"task": "ae, pca", "check": "every check", "reason": missing, "count": 2},
        {"task": "cnn", "check": "test_accuracy", "reason": "accuracy is N", "count": 2},
    ]


def test_a_run_with_errors_never_shows_exit_code_0(tmp_path) -> None:
    from harness.models import CellError, ExecutionResult, SandboxResult
    from harness.reporting import run_outcome

    ok = SandboxResult("ok", "exit code 0", 0, 2.0, 1.5, 0, "", "", True)
    clean = ExecutionResult("CNNMNIST.ipynb", ok, cells_run=4, cells_total=4)
    broken = replace(clean, errors=(CellError(2, "NameError", "name 'x' is not defined"),))
    killed = replace(clean, sandbox=replace(ok, verdict="timeout", message="timed out after 40 s"))
    assert [run_outcome(e) for e in (clean, broken, killed)] == [
        "ran to the end", "ran to the end; 1 cell raised an error", "timed out after 40 s"]
    report = GradeReport(student="ada", assignment="a", content_hash="h", rubric_hash="r", profile="fast",
                         tasks=(TaskScore(task="t1", title="Task 1", score=0.0, points=1.0),), executions=(broken,))
    page = render_student(report, tmp_path, "A").read_text()
    assert "exit code 0" not in page and '<td class="failed">ran to the end; 1 cell raised an error</td>' in page


HELD_RUBRIC = """\
assignment: a1
title: Assignment One
tasks:
  - id: cnn
    title: CNN
    source: cnn.ipynb
    checks:
      - {check: runs_without_error, points: 1}
      - {check: test_accuracy, min: 0.9, points: 3}
"""


def _held_report(manual: dict) -> GradeReport:
    """Ada's CNN: it ran (1 point) and its accuracy (3 points) rests on predictions no rebuild confirmed."""
    from harness.rubric import parse_rubric
    from harness.scoring import score_submission

    held = ("the grader could not rebuild your model to confirm its predictions (no class Net is defined in your "
            "code outside the cells that ran it)")
    results = [CheckResult("cnn", "runs_without_error", "passed", "", 1.0, 1.0),
               CheckResult("cnn", "test_accuracy", "passed", "", 3.0, 3.0, {"measured": 0.97, "threshold": 0.9},
                           held=held)]
    rubric = parse_rubric(HELD_RUBRIC, "a1.yaml")
    return score_submission(rubric, "ada", "h", results, manual, sources={"cnn": ("cnn.ipynb", "cnn.ipynb", "")})


def test_held_points_are_shown_to_the_student_and_the_ta_and_left_out_of_the_score(tmp_path) -> None:
    report = _held_report({})
    render_student(report, tmp_path, "Assignment One")
    render_index([report], tmp_path, "Assignment One", [("cnn", "CNN")], manual_csv="manual-scores.csv")
    page = " ".join((tmp_path / "students" / "ada" / "index.html").read_text().split())
    assert "<strong>1.0 / 4.0</strong> points (25%)" in page
    assert "3.0 of these points (75%) are held for a TA's review (not in the score until then)" in page
    assert str(escape(
        "Measured 97.0% against a bar of at least 90.0%, but the grader could not rebuild your model to confirm its "
        "predictions (no class Net is defined in your code outside the cells that ran it): its 3 points are held "
        "until a TA has reviewed your model.")) in page
    assert str(escape(
        "For the TA: 3 points of this task rest on predictions the grader could not confirm by running the model "
        "again. Check that the model class in cnn.ipynb is the network the code trained and that nothing replaced "
        "the grader's probe or wrote its records by hand; then write release or reject in the 'cnn review' column of "
        "manual-scores.csv (a comment beside it reaches the student) and grade again with --manual: nothing runs "
        "again.")) in page
    index = " ".join((tmp_path / "index.html").read_text().split())
    assert '<div class="pending">+3 held for review</div>' in index
    assert "manual scores and reviews of held points to fill in" in index
    with open(tmp_path / "gradebook.csv", newline="", encoding="utf-8") as stream:
        [row] = list(csv.DictReader(stream))
    assert {k: row[k] for k in ("cnn", "total", "points", "pending")} == {
        "cnn": "1.0", "total": "1.0", "points": "4.0", "pending": "3.0"}


def test_released_and_rejected_held_points_are_shown_as_the_ta_decided(tmp_path) -> None:
    from harness.scoring import Review

    released = _held_report({"cnn": Review(True)})
    page = " ".join(render_student(released, tmp_path / "r", "A").read_text().split())
    assert "<strong>4.0 / 4.0</strong> points" in page
    assert "a TA reviewed your model and released its 3 points." in page and "For the TA" not in page
    rejected = _held_report({"cnn": Review(False, "Net is not the network your notebook trained")})
    page = " ".join(render_student(rejected, tmp_path / "x", "A").read_text().split())
    assert "<strong>1.0 / 4.0</strong> points" in page
    assert "a TA reviewed your model and did not accept its 3 points." in page
    assert "held points rejected by a TA: Net is not the network your notebook trained" in page


@pytest.mark.parametrize(
    ("seed", "said"),
    [
        (0, "Each run started with Python's <code>random</code>, NumPy and torch seeded with 0, so grading your code "
            "again trains it the same way"),
        (1234, "seeded with 1234,"),
        (None, "The runs were not seeded: training that draws random numbers can end differently each time your code "
               "is graded."),
    ],
)
def test_the_student_page_tells_which_seed_the_runs_started_from(tmp_path, seed, said) -> None:
    from harness.models import ExecutionResult, SandboxResult

    sandbox = SandboxResult(verdict="ok", message="exit code 0", returncode=0, wall_s=3.0, cpu_s=2.0,
                            peak_memory_bytes=0, stdout="", stderr="", isolated=True)
    report = replace(_report("ada", "a1", 2.0), executions=(ExecutionResult("CNN.ipynb", sandbox, 4, 4),))
    page = " ".join(render_student(report, tmp_path, "A", seed=seed).read_text().split())
    assert said in page
    assert ("not seeded" in page) is (seed is None)


def test_a_report_without_runs_says_nothing_of_a_seed(tmp_path) -> None:
    page = render_student(_report("ada", "a1", 2.0), tmp_path, "A").read_text()
    assert "seeded" not in page
