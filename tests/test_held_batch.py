"""A worker starts the next student's sandbox while it grades the current one, held after its setup until the worker
is free (``pipeline.hold_first_run``): the setup is off the critical path, and nothing of the next student's runs
before the go. A stopped batch leaves no sandbox behind and no held student's code run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.engines import read_run_json
from harness.engines.runner import HELD_STOP
from harness.events import Done
from harness.pipeline import grade_batch, prepare_setup
from tests.script_rubric import cnn_script_rubric

STUDENTS = ("ann", "bob", "cho")

SCRIPT = """\
import os, time
print("started at", time.time())
print("saw", sorted(name for name in os.listdir(".") if name.startswith("mine-")), "leftover" in globals())
open("mine-{student}.txt", "w").write("only mine")
leftover = "{student}'s variable"
{padding}
"""


class EventSandbox:
    """The real sandbox, recording when each run of submitted code starts and ends, and how it ended, by student."""

    holds = True

    def __init__(self) -> None:
        from harness.sandbox import make_sandbox

        self.inner = make_sandbox("auto")
        self.isolated, self.warning = self.inner.isolated, self.inner.warning
        self.events: list[tuple[str, str, float]] = []
        self.results: dict[str, object] = {}
        self.running = 0
        self.lock = threading.Lock()

    def run(self, command, **options):
        if "harness.engines.runner" not in command:
            return self.inner.run(command, **options)
        student = Path(options["workspace"]).name
        with self.lock:
            self.running += 1
            self.events.append(("start", student, time.time()))
        try:
            result = self.inner.run(command, **options)
        finally:
            with self.lock:
                self.running -= 1
                self.events.append(("end", student, time.time()))
        self.results[student] = result
        return result

    def when(self, what: str, student: str) -> float:
        return next(t for event, who, t in self.events if (event, who) == (what, student))


def _batch(folder: Path) -> Path:
    """Three one-script submissions, longest first in the order of ``STUDENTS`` (the scheduler orders by size)."""
    for rank, student in enumerate(STUDENTS):
        (folder / student).mkdir(parents=True)
        padding = "#" * 100 * (len(STUDENTS) - rank)
        (folder / student / "cnn_script.py").write_text(SCRIPT.format(student=student, padding=padding))
    return folder


def _setup(tmp_path: Path, small_data: Path, sandbox: EventSandbox):
    rubric = tmp_path / "held.yaml"
    rubric.write_text(cnn_script_rubric("held-demo", budget="{wall_s: 60}"), encoding="utf-8")
    return prepare_setup(rubric, small_data, tmp_path / "out", sandbox=sandbox, profile="fast")


def _started_at(stdout: str) -> float:
    return float(next(line for line in stdout.splitlines() if line.startswith("started at")).split()[-1])


def test_the_next_students_sandbox_starts_before_the_current_run_ends_and_its_code_waits(tmp_path, small_data):
    sandbox = EventSandbox()
    summary = grade_batch(_batch(tmp_path / "batch"), _setup(tmp_path, small_data, sandbox), jobs=1)
    assert summary.graded == 3 and not summary.faults
    assert [r.score for r in summary.reports] == [1.0, 1.0, 1.0]
    for current, following in zip(STUDENTS, STUDENTS[1:]):
        # started while the current student's run was still going...
        assert sandbox.when("start", following) < sandbox.when("end", current)
        # ...but none of its code ran before the current student's grading was over
        assert _started_at(sandbox.results[following].stdout) > sandbox.when("end", current)
        run = read_run_json(tmp_path / "out" / "artifacts" / following / "0-cnn_script" / "artifacts")
        assert "held_s" in run.timings  # it was held (0 s when its setup outlasted the current student's grading)
    for student in STUDENTS:  # a fresh sandbox each: no file and no variable of another student's
        assert "saw ['mine-" not in sandbox.results[student].stdout
        assert "saw [] False" in sandbox.results[student].stdout
    assert sandbox.running == 0


def test_a_stopped_batch_leaves_no_sandbox_and_runs_no_held_students_code(tmp_path, small_data):
    sandbox = EventSandbox()
    setup = _setup(tmp_path, small_data, sandbox)

    def interrupt(event) -> None:
        if isinstance(event, Done):  # Ctrl-C once the first student is done: the second runs, the third is held
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grade_batch(_batch(tmp_path / "batch"), setup, jobs=1, on_event=interrupt)
    assert sandbox.running == 0
    assert sorted(who for event, who, _ in sandbox.events if event == "start") == list(STUDENTS)
    held = sandbox.results["cho"]
    assert "started at" not in held.stdout  # its sandbox was set up, then ended without a line of its code
    run = read_run_json(tmp_path / "out" / "artifacts" / "cho" / "0-cnn_script" / "artifacts")
    assert (run.cells_run, run.probe_skipped) == (0, HELD_STOP)
    assert not (tmp_path / "out" / "work" / "cho").exists()
    again = grade_batch(tmp_path / "batch", setup, jobs=1)  # nothing was stored for the held one: graded now
    assert (again.graded, again.reused) == (1, 2)
    assert "started at" in sandbox.results["cho"].stdout


def test_a_held_run_whose_grading_fails_leaves_no_sandbox_and_no_workspace(tmp_path, small_data, monkeypatch):
    import harness.pipeline as pipeline

    def broken(submission, setup, reuse=None, held=None):
        raise RuntimeError("injected")

    monkeypatch.setattr(pipeline, "grade_submission", broken)
    sandbox = EventSandbox()
    setup = _setup(tmp_path, small_data, sandbox)
    summary = grade_batch(_batch(tmp_path / "batch"), setup, jobs=1)
    assert summary.faults == tuple(f"{s}: grading failed, a grader fault (RuntimeError: injected)" for s in STUDENTS)
    assert sandbox.running == 0
    assert sorted(who for event, who, _ in sandbox.events if event == "start") == ["bob", "cho"]  # held, never went
    assert all("started at" not in result.stdout for result in sandbox.results.values())
    assert not any((tmp_path / "out" / "work").iterdir())
