"""The grading benchmark's checks on each timed round: a sandbox that runs nothing fails them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from harness.loading import load_submission
from harness.models import SandboxResult
from harness.pipeline import grade_submission, prepare_setup
from harness.reporting import render_student
from tests.benchmarks.test_grading_overhead import NOTEBOOK, _cnn_rubric
from tests.benchmarks.verify import assert_graded, assert_notebook_executed, assert_ran_in_parallel, peak_concurrency


class RunsNothing:
    """A sandbox that reports success without running anything: what the benchmark must not time."""

    isolated = True
    warning = ""

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        return SandboxResult("ok", "exit code 0", 0, 0.01, 0.0, 0, "", "", True)


def test_a_sandbox_that_runs_nothing_fails_the_benchmarks_check(tmp_path: Path, small_data: Path) -> None:
    setup = prepare_setup(_cnn_rubric(tmp_path / "cnn.yaml"), small_data, tmp_path / "out", sandbox=RunsNothing(),
                          profile="fast")
    submission = load_submission(NOTEBOOK, tmp_path / "staging", student="student0")
    render_student(grade_submission(submission, setup), setup.out_dir, setup.rubric.title)
    with pytest.raises(AssertionError, match=r"student0: 0 of 0 cells of CNNMNIST.ipynb ran"):
        assert_graded(setup.out_dir, "student0", "cnn", expected_score=13.0)


def test_a_notebook_nbconvert_did_not_run_fails_the_benchmarks_check(tmp_path: Path) -> None:
    shutil.copy(NOTEBOOK, tmp_path / "executed.ipynb")  # as stored: no cell has run
    with pytest.raises(AssertionError, match=r"executed.ipynb: 0 of 7 code cells ran"):
        assert_notebook_executed(tmp_path / "executed.ipynb")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for number, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = number + 1
    notebook.cells[-1].outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="name 'x' is not defined")]
    nbformat.write(notebook, tmp_path / "executed.ipynb")
    with pytest.raises(AssertionError, match="executed.ipynb: NameError: name 'x' is not defined"):
        assert_notebook_executed(tmp_path / "executed.ipynb")


def _log(*intervals: tuple[str, float]) -> list[dict]:
    """Grading-log lines ending at ``12:00:<second>`` after ``seconds`` of grading."""
    return [{"student": f"s{i}", "time": f"2026-01-01T12:00:{end}+00:00", "seconds": seconds}
            for i, (end, seconds) in enumerate(intervals)]


def test_gradings_one_after_another_fail_the_two_workers_check() -> None:
    one_after_another = _log(("10.000", 10.0), ("20.000", 10.0), ("30.000", 10.0))  # each starts as the last ends
    assert peak_concurrency(one_after_another) == 1
    with pytest.raises(AssertionError, match=r"at most 1 of 3 gradings ran at once: the round did not use its 2 workers"):
        assert_ran_in_parallel(one_after_another, 2)


def test_overlapping_gradings_pass_the_two_workers_check() -> None:
    assert assert_ran_in_parallel(_log(("10.000", 10.0), ("12.500", 11.0), ("22.000", 9.0)), 2) == 2


def _demo_out(out: Path, *, full: bool) -> None:
    """A demo's output folder: the overview and a gradebook per assignment with every sample, each scored full
    marks on every automatic task (``full``) or 0 (as a demo whose runs did nothing)."""
    from tests.benchmarks.test_make_targets import ASSIGNMENTS, ROOT, task_points

    out.mkdir(parents=True)
    (out / "index.html").write_text("<html></html>", encoding="utf-8")
    for assignment in ASSIGNMENTS:
        points = task_points(assignment)
        samples = sorted(p.name for p in (ROOT / "submissions" / assignment).iterdir() if p.is_dir())
        scores = ",".join(str(points[task] if full else 0.0) for task in points)
        lines = ["student," + ",".join(points)] + [f"{sample},{scores}" for sample in samples]
        (out / assignment).mkdir()
        (out / assignment / "gradebook.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_demo_that_graded_every_sample_passes_the_benchmarks_check(tmp_path: Path) -> None:
    from tests.benchmarks.test_make_targets import ASSIGNMENTS, ROOT, assert_demo_graded

    _demo_out(tmp_path / "out", full=True)
    samples = sum(1 for a in ASSIGNMENTS for p in (ROOT / "submissions" / a).iterdir() if p.is_dir())
    assert assert_demo_graded(tmp_path / "out") == samples


def test_a_demo_that_scored_nothing_fails_the_benchmarks_check(tmp_path: Path) -> None:
    from tests.benchmarks.test_make_targets import assert_demo_graded

    _demo_out(tmp_path / "out", full=False)
    with pytest.raises(AssertionError, match=r"dl2025-a2: the reference submission scored 0.0 of \d+.0 automatic points"):
        assert_demo_graded(tmp_path / "out")


def test_a_demo_that_left_no_overview_fails_the_benchmarks_check(tmp_path: Path) -> None:
    from tests.benchmarks.test_make_targets import assert_demo_graded

    (tmp_path / "out").mkdir()
    with pytest.raises(AssertionError, match="the demo wrote no overview page"):
        assert_demo_graded(tmp_path / "out")


def _report(path: Path, key: str, student: str, *cpu: float) -> None:
    """A report (``executions``) or a calibration (``runs``) of ``student``'s runs, whose sandboxes used ``cpu``
    seconds each."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [{"source": f"{i}.ipynb", "artifacts_dir": f"/out/artifacts/{student}/{i}/artifacts",
             "sandbox": {"verdict": "ok", "cpu_s": seconds}} for i, seconds in enumerate(cpu)]
    path.write_text(json.dumps({key: runs}), encoding="utf-8")


def test_the_demos_cpu_counts_every_students_and_every_calibrations_runs_once(tmp_path: Path) -> None:
    from tests.benchmarks.test_make_targets import demo_cpu

    demo = tmp_path / "demo"
    students = demo / "out" / "idl-ex2" / "students"
    _report(demo / "out" / "dl2025-a2" / "students" / "ann" / "report.json", "executions", "ann", 2.5, 3.5)
    _report(students / "bob" / "report.json", "executions", "bob", 4.0)
    _report(students / "cid" / "report.json", "executions", "cid")  # could not run anything
    _report(demo / "data" / "calibration" / "idl-ex2-fast.json", "runs", "reference", 1.25, 0.75)
    # the reference submission is checked on its calibration's runs: its report holds them again
    _report(students / "reference" / "report.json", "executions", "reference", 1.25, 0.75)
    spent = demo_cpu(demo, (100.0, 50.0), (160.5, 70.25))
    assert spent == {"busy_core_s": 60.5, "idle_core_s": 20.2, "runs": 5, "runs_core_s": 12.0}


def test_the_machines_cpu_counters_grow_while_it_works() -> None:
    import time

    from tests.benchmarks.verify import machine_cpu_seconds

    before = machine_cpu_seconds()
    if before is None:
        pytest.skip("no /proc/stat on this machine")
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # 0.3 s of this process's CPU: the busy counter grows by as much
        pass
    after = machine_cpu_seconds()
    assert after[0] - before[0] >= 0.25
    assert after[1] >= before[1] >= 0
