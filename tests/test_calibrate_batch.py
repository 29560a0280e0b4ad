"""Calibration of only the tasks a batch hands in, cached per task (``harness.calibration.calibrate_rubric`` from
``grade_batch``): counted in the reference's sandboxed runs."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from harness.calibration import calibration_path
from harness.errors import HarnessError
from harness.events import Calibrated, Calibrating, Fault
from harness.pipeline import grade_batch, prepare_setup
from harness.store import ResultStore
from tests.script_rubric import SCRIPT, CountingSandbox

TWO_SCRIPTS = """\
assignment: calibrate-per-task
title: "Two scripts"
datasets: [mnist]
tasks:
  - id: cnn
    title: "CNN"
    source: cnn.py
    model: {prefer: [model], dataset: mnist}
    budget: {wall_s: 120}
    checks:
      - {check: runs_without_error, points: 1}
      - {check: test_accuracy, relative_to_reference: CNN_BAR, points: 1}
  - id: ff
    title: "Feed-forward"
    source: ff.py
    model: {prefer: [model], dataset: mnist}
    budget: {wall_s: 120}
    checks:
      - {check: runs_without_error, points: 1}
      - {check: test_accuracy, relative_to_reference: 0.5, points: 1}
"""


@pytest.fixture
def course(tmp_path: Path, small_data: Path):
    """``grade(students, cnn_bar)``: grade a batch of those students (name: file handed in) with the reference;
    the sandbox's runs and the calibration events of every batch are recorded."""
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("cnn.py", "ff.py"):
        shutil.copy(SCRIPT, reference / name)
    rubric = tmp_path / "rubric.yaml"
    sandbox = CountingSandbox()
    events: list[Calibrating] = []
    data = tmp_path / "data"  # the session's small data, with a calibration folder of this test's own
    shutil.copytree(small_data, data, ignore=shutil.ignore_patterns("calibration"))

    def calibrating(event) -> None:
        if isinstance(event, Calibrating):
            events.append(event)

    def grade(students: dict[str, str], cnn_bar: float = 0.5):
        batch = tmp_path / "batch"
        shutil.rmtree(batch, ignore_errors=True)
        for student, name in students.items():
            (batch / student).mkdir(parents=True)
            (batch / student / name).write_text(SCRIPT.read_text() + f"# {student}\n", encoding="utf-8")
        rubric.write_text(TWO_SCRIPTS.replace("CNN_BAR", str(cnn_bar)), encoding="utf-8")
        setup = prepare_setup(rubric, data, tmp_path / "out", sandbox=sandbox, profile="fast")
        return setup, grade_batch(batch, setup, reference_dir=reference, on_event=calibrating)

    return grade, sandbox, events


def test_a_batch_calibrates_only_the_tasks_it_hands_in_and_caches_each(course) -> None:
    grade, sandbox, events = course
    setup, summary = grade({"ann": "cnn.py"})  # only the CNN script: the reference's ff.py does not run
    assert sorted(sandbox.runs) == ["ann", "reference"]
    assert [e.tasks for e in events] == [("cnn",)]
    assert set(setup.calibration) == {"cnn"} and {"hidden_accuracy", "seconds"} <= set(setup.calibration["cnn"])
    cached = json.loads(calibration_path(setup).read_text(encoding="utf-8"))
    assert set(cached["tasks"]) == {"cnn"}
    [ann] = summary.reports
    assert [c.status for t in ann.tasks if t.task == "cnn" for c in t.checks] == ["passed", "passed"]

    sandbox.runs.clear()
    setup, summary = grade({"bob": "ff.py"})  # ff is new: only it calibrates
    assert sorted(sandbox.runs) == ["bob", "reference"]
    assert [e.tasks for e in events] == [("cnn",), ("ff",)]
    assert set(json.loads(calibration_path(setup).read_text(encoding="utf-8"))["tasks"]) == {"cnn", "ff"}

    sandbox.runs.clear()
    setup, summary = grade({"ann": "cnn.py"}, cnn_bar=0.4)  # a bar of cnn changed: cnn recalibrates, nothing runs
    assert sandbox.runs == []
    assert [e.tasks for e in events] == [("cnn",), ("ff",), ("cnn",)]
    assert summary.graded == 1  # a new rubric: ann is checked again on her stored run


def test_a_batch_whose_tasks_are_cached_runs_no_reference(course) -> None:
    grade, sandbox, events = course
    grade({"ann": "cnn.py", "bob": "ff.py"})
    assert sorted(sandbox.runs) == ["ann", "bob", "reference", "reference"]
    assert [e.tasks for e in events] == [("cnn", "ff")]
    sandbox.runs.clear()
    setup, _ = grade({"cy": "cnn.py"})
    assert sandbox.runs == ["cy"] and len(events) == 1
    assert set(setup.calibration) == {"cnn"}  # only what this batch needs is read


def test_grading_one_submission_calibrates_only_its_tasks(tmp_path: Path, small_data: Path) -> None:
    from harness.pipeline import grade_single

    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("cnn.py", "ff.py"):
        shutil.copy(SCRIPT, reference / name)
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(TWO_SCRIPTS.replace("CNN_BAR", "0.5"), encoding="utf-8")
    data = tmp_path / "data"
    shutil.copytree(small_data, data, ignore=shutil.ignore_patterns("calibration"))
    sandbox = CountingSandbox()
    setup = prepare_setup(rubric, data, tmp_path / "out", sandbox=sandbox, profile="fast")
    handed_in = tmp_path / "ff.py"
    shutil.copy(SCRIPT, handed_in)
    events: list[Calibrating] = []
    report = grade_single(handed_in, setup, student="dee", reference_dir=reference, on_event=events.append)
    assert sorted(sandbox.runs) == ["dee", "reference"]  # the reference's cnn.py does not run
    assert [e.tasks for e in events if isinstance(e, Calibrating)] == [("ff",)]
    assert [c.status for t in report.tasks if t.task == "ff" for c in t.checks] == ["passed", "passed"]


class TimingSandbox(CountingSandbox):
    """A :class:`CountingSandbox` that also records when each run of submitted code started and ended."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[str, float, float]] = []
        """(workspace folder name, start, end) of each runner run, in ``time.monotonic`` seconds."""

    def run(self, command, **options):
        began = time.monotonic()
        try:
            return super().run(command, **options)
        finally:
            if "harness.engines.runner" in command:
                self.spans.append((Path(options["workspace"]).name, began, time.monotonic()))


def _batch_with_a_copy_of_the_reference(tmp_path: Path, small_data: Path):
    """The two-script rubric's reference, a batch of ann (cnn.py) and ref_copy (the reference's very files), and a
    setup on data of the test's own (nothing calibrated yet)."""
    reference = tmp_path / "reference"
    reference.mkdir()
    for name in ("cnn.py", "ff.py"):
        shutil.copy(SCRIPT, reference / name)
    batch = tmp_path / "batch"
    (batch / "ann").mkdir(parents=True)
    (batch / "ann" / "cnn.py").write_text(SCRIPT.read_text() + "# ann\n", encoding="utf-8")
    shutil.copytree(reference, batch / "ref_copy")
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(TWO_SCRIPTS.replace("CNN_BAR", "0.5"), encoding="utf-8")
    data = tmp_path / "data"
    shutil.copytree(small_data, data, ignore=shutil.ignore_patterns("calibration"))
    return reference, batch, rubric, data


def test_the_first_students_run_beside_the_calibration_and_are_checked_on_its_bars(tmp_path: Path, small_data: Path):
    reference, batch, rubric, data = _batch_with_a_copy_of_the_reference(tmp_path, small_data)
    sandbox = TimingSandbox()
    setup = prepare_setup(rubric, data, tmp_path / "out", sandbox=sandbox, profile="fast")
    events: list = []
    summary = grade_batch(batch, setup, jobs=1, reference_dir=reference, on_event=events.append)

    # ann's script ran while the reference's two ran one after the other; the copy of the reference ran nothing
    assert sorted(sandbox.runs) == ["ann", "reference", "reference"]
    [ann_start] = [start for name, start, _ in sandbox.spans if name == "ann"]
    assert ann_start < max(end for name, _, end in sandbox.spans if name == "reference")
    assert [type(e).__name__ for e in events if isinstance(e, (Calibrating, Calibrated))] == ["Calibrating", "Calibrated"]
    reports = {r.student: r for r in summary.reports}
    assert [c.status for t in reports["ann"].tasks if t.task == "cnn" for c in t.checks] == ["passed", "passed"]
    assert [c.status for t in reports["ref_copy"].tasks for c in t.checks] == ["passed"] * 4
    bar = next(c for t in reports["ann"].tasks for c in t.checks if c.check == "test_accuracy")
    # judged on the calibrated bar (half the reference's accuracy), not a provisional one
    assert bar.details["threshold"] == pytest.approx(0.5 * setup.calibration["cnn"]["hidden_accuracy"])


def test_a_calibration_that_fails_beside_the_students_ends_the_batch_with_its_error(
    tmp_path: Path, small_data: Path, monkeypatch
) -> None:
    import harness.calibration

    def fails(*args, **kwargs):
        raise HarnessError("the reference's cnn.py could not be read")

    monkeypatch.setattr(harness.calibration, "calibrate_rubric", fails)
    reference, batch, rubric, data = _batch_with_a_copy_of_the_reference(tmp_path, small_data)
    setup = prepare_setup(rubric, data, tmp_path / "out", sandbox=CountingSandbox(), profile="fast")
    events: list = []
    with pytest.raises(HarnessError, match="the reference's cnn.py could not be read"):
        grade_batch(batch, setup, jobs=1, reference_dir=reference, on_event=events.append)
    assert [e for e in events if isinstance(e, Fault)] == []  # no student is blamed for it
    with ResultStore(setup.store_path) as store:
        assert len(store) == 0
