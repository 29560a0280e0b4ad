"""Exports for learning-management systems, checked against each format's published columns or schema.

The columns and the schema are written out here from the formats' documentation, not imported
from ``harness.export``: a change there that breaks an import into Canvas, Gradescope or Moodle
fails here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.export import ExportError, ExportOptions, export, gradescope_results, lms_id, read_graded
from harness.loading import load_batch
from harness.models import CheckResult, GradeReport, TaskScore
from harness.reporting import render_index, safe_name
from harness.store import ResultStore, report_to_dict
from tests.test_store import rich_report

TITLE = "Deep Learning 2025, Assignment 2"

CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
"""Canvas gradebook CSV: the identity columns, in this order, before the assignment columns (Canvas guides,
"How do I import grades in the Gradebook?"); the second row starts with "Points Possible"."""

MOODLE_WORKSHEET = [
    "Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
    "Last modified (submission)", "Last modified (grade)", "Feedback comments",
]
"""Moodle assignment "offline grading worksheet" columns (assignfeedback_offline); the import reads
``Identifier`` ("Participant <id>"), ``Grade``, ``Last modified (grade)`` and the feedback column."""

_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}

GRADESCOPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Gradescope autograder results.json",
    "type": "object",
    "required": ["score", "execution_time", "output", "visibility", "stdout_visibility", "tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_name_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "name_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "number": {"type": "string"},
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "output": {"type": "string"},
                    "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": _VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
    },
}
"""The autograder results format of Gradescope's documentation ("Autograder Specifications: Output format")."""


def moodle_report() -> GradeReport:
    """A student from a Moodle bulk download: the name and the participant id apart; every check passed."""
    checks = (CheckResult("cnn", "parameter_count", "passed", "", 1.0, 1.0),
              CheckResult("cnn", "feature_width", "passed", "", 2.0, 2.0),
              CheckResult("cnn", "test_accuracy", "error", "the hidden labels file is damaged", 3.0, 0.0))
    tasks = (TaskScore("cnn", "1.3 CNN on MNIST", 3.0, 6.0, checks=checks),
             TaskScore("cnn-why-800", "Why 800 features? (æøå)", 0.0, 2.0, manual=True, note="not graded yet"))
    return replace(rich_report(student="Ann Moodle", content_hash="beef"), tasks=tasks, lms_id="424242")


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output folder as `gradebench grade` leaves it: per-student report.json, index, gradebook, assignment.json."""
    out = tmp_path / "out"
    reports = [rich_report(), moodle_report(), replace(rich_report(student="Bo Plain", content_hash="d00d"), tasks=(
        TaskScore("cnn", "1.3 CNN on MNIST", 0.0, 6.0, note="not graded: bo.zip could not be loaded"),
        TaskScore("cnn-why-800", "Why 800 features? (æøå)", 0.0, 2.0, manual=True, note="not graded yet"),
    ), executions=(), load_failure="bo.zip: not a valid zip archive")]
    for report in reports:  # what render_student writes beside the page
        folder = out / "students" / safe_name(report.student)
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps(report_to_dict(report), indent=2), encoding="utf-8")
    render_index(reports, out, TITLE, [("cnn", "1.3 CNN on MNIST"), ("cnn-why-800", "Why 800 features?")])
    return out


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_canvas_csv_has_the_published_columns_points_possible_and_lms_ids(out: Path) -> None:
    graded, written = export(out, "canvas")
    assert written == [out / "exports" / "canvas.csv"]
    rows = _rows(written[0].read_text(encoding="utf-8"))
    assert rows[0] == [*CANVAS_IDENTITY, TITLE]
    assert rows[1][0].strip() == "Points Possible" and rows[1][1:] == ["", "", "", "", "8"]
    assert rows[2:] == [
        ["Ann Moodle", "424242", "", "", "", "3"],  # the Moodle participant id loading found
        ["Bo Plain", "", "", "", "", "0"],  # no LMS name: Canvas matches the name
        ["smithjohn_12345", "12345", "", "", "", "3"],  # a Canvas bulk download's <name>_<user id>
    ]


def test_canvas_column_carries_the_assignment_id_when_given(out: Path, tmp_path: Path) -> None:
    _, written = export(out, "canvas", tmp_path / "grades.csv", ExportOptions(canvas_assignment_id="98765"))
    assert _rows(written[0].read_text(encoding="utf-8"))[0][-1] == f"{TITLE} (98765)"


def test_gradescope_results_follow_the_autograder_schema_one_folder_per_student(out: Path) -> None:
    _, written = export(out, "gradescope")
    assert sorted(p.relative_to(out / "exports" / "gradescope").as_posix() for p in written) == [
        "Ann_Moodle/results.json", "Bo_Plain/results.json", "smithjohn_12345/results.json",
    ]
    for path in written:
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), GRADESCOPE_SCHEMA)

    smith_json = out / "exports" / "gradescope" / "smithjohn_12345" / "results.json"
    smith = json.loads(smith_json.read_text(encoding="utf-8"))
    assert smith["score"] == 3.0 and smith["execution_time"] == 312  # 12.25 s + 300 s (the timeout)
    assert smith["output"] == "3 / 8 points (full profile)."
    assert [(t["number"], t["name"], t["score"], t["max_score"], t.get("status")) for t in smith["tests"]] == [
        ("1.1", "1.3 CNN on MNIST: parameter_count", 1.0, 1.0, "passed"),
        ("1.2", "1.3 CNN on MNIST: feature_width", 0.5, 2.0, "failed"),
        ("1.3", "1.3 CNN on MNIST: test_accuracy", 0.0, 3.0, "failed"),
        ("2", "Why 800 features? (æøå) (graded by a TA)", 1.5, 2.0, "failed"),
    ]
    assert smith["tests"][1]["output"] == (
        "Linear layer expects 800 input features but your Flatten produces 1568: did you drop the second MaxPool2d?"
    )
    assert smith["tests"][2]["output"] == "the model never came to exist"
    assert smith["tests"][3]["output"] == "almost: padding"


def test_gradescope_hides_written_answers_not_graded_yet_and_owns_grader_faults() -> None:
    document = gradescope_results(moodle_report())
    jsonschema.validate(document, GRADESCOPE_SCHEMA)
    fault, pending = document["tests"][2], document["tests"][3]
    assert fault["output"] == "a grader fault, not yours (a TA will look): the hidden labels file is damaged"
    assert pending["visibility"] == "hidden" and "status" not in pending
    assert pending["output"] == "not graded yet: a TA grades this written answer; it counts 0 until then"
    assert document["output"] == (
        "3 / 8 points (full profile). 1 written answer(s) worth 2 points are graded by a TA later."
    )


def test_gradescope_says_why_a_submission_could_not_be_loaded(out: Path) -> None:
    _, written = export(out, "gradescope", options=ExportOptions(visibility="after_published"))
    bo = json.loads(next(p for p in written if p.parent.name == "Bo_Plain").read_text(encoding="utf-8"))
    assert bo["output"] == (
        "0 / 8 points (full profile). Your submission could not be graded: bo.zip: not a valid zip archive "
        "1 written answer(s) worth 2 points are graded by a TA later."
    )
    assert bo["tests"][0] == {
        "name": "1.3 CNN on MNIST", "number": "1", "score": 0.0, "max_score": 6.0,
        "output": "not graded: bo.zip could not be loaded", "visibility": "after_published", "status": "failed",
    }
    assert bo["visibility"] == "after_published"


def test_moodle_worksheet_has_moodles_columns_and_participant_identifiers(out: Path) -> None:
    _, written = export(out, "moodle")
    rows = list(csv.DictReader(io.StringIO(written[0].read_text(encoding="utf-8"))))
    assert list(rows[0]) == MOODLE_WORKSHEET
    ann = next(r for r in rows if r["Full name"] == "Ann Moodle")
    assert (ann["Identifier"], ann["Grade"], ann["Maximum Grade"], ann["Grade can be changed"]) == (
        "Participant 424242", "3", "8", "Yes",
    )
    assert ann["Last modified (grade)"].endswith(" UTC")
    assert ann["Feedback comments"].splitlines() == [
        "3 / 8 points (gradebench, full profile)",
        "1.3 CNN on MNIST: 3 / 6",
        "  - test_accuracy: a grader fault, not yours (a TA will look): the hidden labels file is damaged",
        "Why 800 features? (æøå): 0 / 2 (not graded yet)",
    ]
    smith = next(r for r in rows if r["Full name"] == "smithjohn_12345")
    assert smith["Identifier"] == "Participant 12345"
    assert "  - feature_width: Linear layer expects 800 input features but your Flatten produces 1568: did you drop " \
           "the second MaxPool2d?" in smith["Feedback comments"].splitlines()


def test_plain_csv_is_the_gradebook_of_the_output_folder(out: Path) -> None:
    _, written = export(out, "csv")
    assert written[0].read_text(encoding="utf-8") == (out / "gradebook.csv").read_text(encoding="utf-8")
    header = _rows(written[0].read_text(encoding="utf-8"))[0]
    assert header == ["student", "cnn", "cnn-why-800", "total", "points", "pending", "late", "late_penalty", "profile",
                      "problem", "warnings"]


def test_the_results_store_is_read_when_no_report_pages_exist(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "results.sqlite") as store:
        store.put(rich_report(content_hash="old", score=0.0))  # handed in twice: the later one counts
        store.put(rich_report(content_hash="new", score=2.0))
    graded = read_graded(tmp_path)
    assert graded.source == tmp_path / "results.sqlite"
    assert [(r.student, r.score) for r in graded.reports] == [("smithjohn_12345", 4.5)]
    assert graded.title == "dl2025-a2"  # no assignment.json: the assignment id


def test_unknown_format_and_empty_folder_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"^no export format 'blackboard'; known: canvas, csv, gradescope, moodle$"):
        export(tmp_path, "blackboard")
    with pytest.raises(ExportError, match=r"no graded submissions found \(neither students/\*/report\.json nor "
                                          r"results\.sqlite\); grade first: gradebench grade SUBMISSIONS --out"):
        export(tmp_path, "canvas")
    with pytest.raises(ExportError, match=r"^no Gradescope visibility 'students'; known: visible, hidden"):
        ExportOptions(visibility="students")


def test_a_damaged_report_is_skipped_and_named(out: Path) -> None:
    (out / "students" / "Bo_Plain" / "report.json").write_text("{", encoding="utf-8")
    graded = read_graded(out)
    assert [r.student for r in graded.reports] == ["Ann Moodle", "smithjohn_12345"]
    assert graded.skipped[0].startswith("Bo_Plain/report.json: unreadable (JSONDecodeError")


def test_export_command_writes_the_file_and_warns_of_ungraded_written_answers(out: Path, tmp_path: Path) -> None:
    target = tmp_path / "canvas-import.csv"
    result = CliRunner().invoke(app, ["export", str(out), "--format", "canvas", "--to", str(target)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert f"exported 3 student(s) of {TITLE} (canvas): {target}" in said
    assert "note: 2 student(s) have written answers a TA has not graded yet; they count 0 in this export" in said
    assert _rows(target.read_text(encoding="utf-8"))[0] == [*CANVAS_IDENTITY, TITLE]

    wrong = CliRunner().invoke(app, ["export", str(out), "--format", "xlsx"])
    assert wrong.exit_code == 2
    assert "no export format 'xlsx'; known: canvas, csv, gradescope, moodle" in " ".join(wrong.output.split())


def test_moodle_folders_become_named_students_with_their_participant_id(tmp_path: Path) -> None:
    notebook = (Path(__file__).resolve().parents[1] / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb")
    batch = tmp_path / "batch"
    for folder in ("Ann Moodle_424242_assignsubmission_file_", "plain_student"):
        (batch / folder).mkdir(parents=True)
        (batch / folder / "CNNMNIST.ipynb").write_bytes(notebook.read_bytes())
    (batch / "Bo Broken_515151_assignsubmission_file_").mkdir()
    (batch / "Bo Broken_515151_assignsubmission_file_" / "CNNMNIST.ipynb").write_bytes(b"")
    loaded = {entry.student: entry for entry in load_batch(batch, tmp_path / "staging")}
    assert sorted(loaded) == ["Ann Moodle", "Bo Broken", "plain_student"]
    assert loaded["Ann Moodle"].lms_id == "424242" and loaded["Ann Moodle"].files == ("CNNMNIST.ipynb",)
    assert loaded["Bo Broken"].lms_id == "515151"  # a refused hand-in keeps its id: it still gets a grade
    assert loaded["Bo Broken"].reason == "CNNMNIST.ipynb is empty (0 bytes)"
    assert loaded["plain_student"].lms_id == ""


def test_moodle_folders_inside_a_bulk_zip_carry_the_participant_id(tmp_path: Path) -> None:
    import zipfile

    notebook = (Path(__file__).resolve().parents[1] / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb")
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as bulk:
        bulk.write(notebook, "Ann Moodle_424242_assignsubmission_file_/CNNMNIST.ipynb")
        bulk.write(notebook, "Bo Moodle_515151_assignsubmission_file_/CNNMNIST.ipynb")
    loaded = load_batch(archive, tmp_path / "staging")
    assert [(e.student, e.lms_id) for e in loaded] == [("Ann Moodle", "424242"), ("Bo Moodle", "515151")]


def test_lms_id_prefers_what_loading_found_then_a_canvas_name() -> None:
    assert lms_id(moodle_report()) == "424242"
    assert lms_id(rich_report(student="smithjohn_12345")) == "12345"
    assert lms_id(rich_report(student="Ann Moodle")) == ""


def test_a_graded_moodle_batch_exports_participant_ids_also_when_reused(tmp_path: Path, small_data: Path) -> None:
    from harness.pipeline import grade_batch, prepare_setup
    from harness.sandbox import make_sandbox
    from tests.test_broken import _cnn_only_rubric

    batch = tmp_path / "moodle"
    (batch / "Ann Moodle_424242_assignsubmission_file_").mkdir(parents=True)
    # no CNNMNIST notebook: graded (every check skipped) without running anything
    (batch / "Ann Moodle_424242_assignsubmission_file_" / "scratch.py").write_text("x = 1\n", encoding="utf-8")
    (batch / "Bo Broken_515151_assignsubmission_file_").mkdir()
    (batch / "Bo Broken_515151_assignsubmission_file_" / "CNNMNIST.ipynb").write_bytes(b"")
    out = tmp_path / "out"
    setup = prepare_setup(_cnn_only_rubric(tmp_path / "cnn.yaml"), small_data, out, sandbox=make_sandbox("plain"))
    first = grade_batch(batch, setup)
    again = grade_batch(batch, setup)  # Ann's report comes from the results store this time
    assert (first.graded, again.reused) == (1, 1)
    for summary in (first, again):
        assert [(r.student, r.lms_id) for r in summary.reports] == [("Ann Moodle", "424242"), ("Bo Broken", "515151")]

    _, written = export(out, "moodle")
    rows = list(csv.DictReader(io.StringIO(written[0].read_text(encoding="utf-8"))))
    assert [(r["Identifier"], r["Full name"], r["Grade"], r["Maximum Grade"]) for r in rows] == [
        ("Participant 424242", "Ann Moodle", "0", "13"), ("Participant 515151", "Bo Broken", "0", "13"),
    ]
    assert "Your submission could not be graded: CNNMNIST.ipynb is empty (0 bytes)" in rows[1]["Feedback comments"]
    missing = "CNNMNIST.ipynb or CNNMNIST.py was not found in your submission (found: scratch.py)"
    assert missing in rows[0]["Feedback comments"]


def test_held_points_count_0_in_exports_until_a_ta_releases_them() -> None:
    from harness.export import feedback_text
    from tests.test_reporting import _held_report
    from harness.scoring import Review

    held = _held_report({})
    document = gradescope_results(held)
    jsonschema.validate(document, GRADESCOPE_SCHEMA)
    assert document["score"] == 1.0 == sum(t["score"] for t in document["tests"])
    assert document["tests"][1]["output"].endswith("its 3 points are held until a TA has reviewed your model.")
    assert document["output"] == (
        "1 / 4 points (full profile). 3 points rest on predictions the grader could not confirm; they are held until "
        "a TA has reviewed your model."
    )
    assert "  - test_accuracy: Measured 97.0% against a bar of at least 90.0%, but the grader could not rebuild" in (
        feedback_text(held))
    released = gradescope_results(_held_report({"cnn": Review(True)}))
    assert released["score"] == 4.0 == sum(t["score"] for t in released["tests"])
