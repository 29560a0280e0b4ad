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
