"""A rubric edit that changes only points, bars or messages re-checks the stored runs; one that changes what
runs (limits, what the probe records) runs again."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.pipeline import grade_batch, prepare_setup
from harness.runcache import RUN_MARKER
from harness.sandbox import make_sandbox
from tests.script_rubric import SCRIPT, cnn_script_rubric


RUBRIC = cnn_script_rubric(
    "rescoring-demo",
    "      - {check: runs_without_error, points: 1}\n      - {check: parameter_count, equals: 12810, points: POINTS}\n",
)


class Counting:
    """The real sandbox, counting the runs of the student's code it makes (the runner's; not the clean rebuilds of
    the student's class, harness.checks.rebuild, which a rescoring makes again)."""

    def __init__(self) -> None:
        self.inner = make_sandbox("auto")
        self.isolated, self.warning = self.inner.isolated, self.inner.warning
        self.runs = 0

    def run(self, command, **options):
        self.runs += "harness.engines.runner" in command
        return self.inner.run(command, **options)


@pytest.fixture
def world(tmp_path: Path, small_data: Path):
    batch = tmp_path / "batch" / "ann"
    batch.mkdir(parents=True)
    shutil.copy(SCRIPT, batch / SCRIPT.name)
    rubric = tmp_path / "rubric.yaml"
    sandbox = Counting()

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
    assert (sandbox.runs, first.graded, _score(first)) == (1, 1, 2.0)

    again, seconds = grade(points=3)  # points only: rescored from the stored run
    assert (sandbox.runs, again.graded, _score(again)) == (1, 1, 4.0)
    assert seconds < 30

    [marker] = (out / "artifacts").rglob(RUN_MARKER)
    marker.write_text("another run", encoding="utf-8")  # the folder now holds some other run's records
    replaced, _ = grade(points=2)
    assert (sandbox.runs, _score(replaced)) == (2, 3.0)

    grade(points=2, extra="limits: {memory: 3GiB}\n")  # what runs changed
    assert sandbox.runs == 3

    grade(points=1, extra="limits: {memory: 3GiB}\n", force=True)  # --force runs again
    assert sandbox.runs == 4


def test_recalibrating_after_a_points_edit_reuses_the_references_runs(world) -> None:
    grade, sandbox, _ = world
    grade(points=1, calibrate=True)  # the reference calibrates; ann hands in the same script, so its run is reused
    assert sandbox.runs == 1
    again, _ = grade(points=2, calibrate=True)  # a new rubric: calibrate again, from the runs the calibration kept
    assert (sandbox.runs, _score(again)) == (1, 3.0)
