"""A rubric edit that changes only points, bars or messages re-checks the stored runs; one that changes what
runs (limits, what the probe records) runs again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.pipeline import grade_batch, prepare_setup
from harness.runcache import RUN_MARKER
from tests.script_rubric import SCRIPT, CountingSandbox, cnn_script_rubric


RUBRIC = cnn_script_rubric(
    "rescoring-demo",
    "      - {check: runs_without_error, points: 1}\n      - {check: parameter_count, equals: 12810, points: POINTS}\n",
)


@pytest.fixture
def world(tmp_path: Path, small_data: Path):
    batch = tmp_path / "batch" / "ann"
    batch.mkdir(parents=True)
    shutil.copy(SCRIPT, batch / SCRIPT.name)
    rubric = tmp_path / "rubric.yaml"
    sandbox = CountingSandbox()

    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(SCRIPT, reference / SCRIPT.name)

    def grade(points: int = 1, extra: str = "", calibrate: bool = False, **options):
        rubric.write_text(RUBRIC.replace("POINTS", str(points)) + extra, encoding="utf-8")
        setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=sandbox, profile="fast")
        began = time.perf_counter()
        summary = grade_batch(batch.parent, setup, reference_dir=reference if calibrate else None, **options)
        return summary, time.perf_counter() - began

    return grade, sandbox, tmp_path / "out"


def _score(summary) -> float:
    return summary.reports[0].score


def test_only_changes_to_what_runs_run_again(world) -> None:
    grade, sandbox, out = world
    first, _ = grade(points=1)
    assert (len(sandbox.runs), first.graded, _score(first)) == (1, 1, 2.0)

    again, seconds = grade(points=3)  # points only: rescored from the stored run
    assert (len(sandbox.runs), again.graded, _score(again)) == (1, 1, 4.0)
    assert seconds < 30

    [marker] = (out / "artifacts").rglob(RUN_MARKER)
    marker.write_text("another run", encoding="utf-8")  # the folder now holds some other run's records
    replaced, _ = grade(points=2)
    assert (len(sandbox.runs), _score(replaced)) == (2, 3.0)

    grade(points=2, extra="limits: {memory: 3GiB}\n")  # what runs changed
    assert len(sandbox.runs) == 3

    grade(points=1, extra="limits: {memory: 3GiB}\n", force=True)  # --force runs again
    assert len(sandbox.runs) == 4


def test_a_points_edit_rebuilds_no_student_class_again(tmp_path: Path, small_data: Path) -> None:
    # no model spec: the host has no class for the student's Net, so its predictions are checked by rebuilding
    # it in a clean sandbox; the rebuild's outputs are kept by what decides them
    batch = tmp_path / "batch" / "ann"
    batch.mkdir(parents=True)
    shutil.copy(SCRIPT, batch / SCRIPT.name)
    rubric = tmp_path / "rubric.yaml"
    sandbox = CountingSandbox()

    def grade(points: int, extra: str = ""):
        checks = f"      - {{check: test_accuracy, min: 0.05, points: {points}}}\n"
        rubric.write_text(cnn_script_rubric("rebuild-cache", checks) + extra, encoding="utf-8")
        setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=sandbox, profile="fast")
        [check] = grade_batch(batch.parent, setup).reports[0].tasks[0].checks
        return check

    first = grade(points=1)
    assert (len(sandbox.runs), sandbox.rebuilds) == (1, 1)
    assert first.details["verified"] is True, first.message
    again = grade(points=3)  # points only: the stored run is re-checked, and the rebuild is not run again
    assert (len(sandbox.runs), sandbox.rebuilds) == (1, 1)
    assert (again.details["verified"], again.details["measured"], again.message) == (
        True, first.details["measured"], first.message)
    grade(points=3, extra="limits: {memory: 3GiB}\n")  # the limits changed: the student's run and the rebuild again
    assert (len(sandbox.runs), sandbox.rebuilds) == (2, 2)


def test_recalibrating_after_a_points_edit_reuses_the_references_runs(world) -> None:
    grade, sandbox, _ = world
    grade(points=1, calibrate=True)  # the reference calibrates; ann hands in the same script, so its run is reused
    assert len(sandbox.runs) == 1
    again, _ = grade(points=2, calibrate=True)  # a new rubric: calibrate again, from the runs the calibration kept
    assert (len(sandbox.runs), _score(again)) == (1, 3.0)


def test_a_tas_review_of_held_points_rescores_without_running_anything(tmp_path: Path, small_data: Path) -> None:
    """A class built from an argument no clean run can record (a ``torch.device``; a module passed in is rebuilt from
    its own record): its accuracy is held; the TA's release or rejection in the manual-scores file changes the score
    on the next grading, from the stored results alone."""
    script = SCRIPT.read_text(encoding="utf-8")
    script = script.replace("    def __init__(self):", "    def __init__(self, device):")
    script = script.replace("model = Net()", "model = Net(torch.device('cpu'))")
    batch = tmp_path / "batch" / "ann"
    batch.mkdir(parents=True)
    (batch / SCRIPT.name).write_text(script, encoding="utf-8")
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(cnn_script_rubric("review-demo", "      - {check: runs_without_error, points: 1}\n"
                                        "      - {check: test_accuracy, min: 0.01, points: 2}\n"), encoding="utf-8")
    sandbox = CountingSandbox()
    out = tmp_path / "out"

    def grade(manual: Path | None = None):
        setup = prepare_setup(rubric, small_data, out, sandbox=sandbox, profile="fast", manual_csv=manual)
        return grade_batch(batch.parent, setup).reports[0]

    first = grade()
    cnn = first.tasks[0]
    assert (first.score, first.held_points, cnn.review, len(sandbox.runs)) == (1.0, 2.0, "pending", 1)
    [accuracy] = [c for c in cnn.checks if c.check == "test_accuracy"]
    assert accuracy.held.startswith(
        "the grader could not rebuild your model to confirm its predictions (its constructor's arguments were not "
        "plain values"), accuracy.held
    sheet = out / "manual-scores.csv"
    lines = sheet.read_text(encoding="utf-8").splitlines()
    assert lines == ["student,cnn review,cnn review comment", "ann,,"]

    from typer.testing import CliRunner

    from harness.cli import app

    said = CliRunner().invoke(app, ["grade", str(batch.parent), "--rubric", str(rubric), "--out", str(out),
                                    "--data", str(small_data), "--profile", "fast"])
    assert said.exit_code == 0, said.output
    assert " ".join(said.output.split()).endswith(
        "note: 1 student(s) have 2 points held for a TA's review (predictions the grader could not confirm by running "
        f"the model again); they count 0 until a TA writes release or reject in the review columns of {sheet} and "
        f"grades again with --manual {sheet}"), said.output
    assert "graded 0, unchanged 1" in said.output  # the stored result, rescored: nothing ran

    sheet.write_text("student,cnn review,cnn review comment\nann,release,Net is the trained network\n", encoding="utf-8")
    released = grade(sheet)
    assert (released.score, released.held_points, released.tasks[0].note, len(sandbox.runs)) == (
        3.0, 0.0, "held points released by a TA: Net is the trained network", 1)

    sheet.write_text("student,cnn review,cnn review comment\nann,reject,the predictions are not Net's\n", encoding="utf-8")
    rejected = grade(sheet)
    assert (rejected.score, rejected.tasks[0].note, len(sandbox.runs)) == (
        1.0, "held points rejected by a TA: the predictions are not Net's", 1)
