"""A held run (``Engine.run(gate=...)``): the sandbox is started and set up ahead, the student's code waits for the go.

Real sandboxes and real runners: the go is one byte on the runner's stdin (``harness.sandbox.Gate``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import nbformat

from harness.engines import Engine, RunSettings, read_run_json
from harness.engines.runner import HELD_STOP
from harness.models import Limits, Submission
from harness.sandbox import Gate, make_sandbox

HOLD_S = 4.0
"""How long each test keeps a run waiting after its start."""


def stage(tmp_path: Path, name: str, text: str) -> Submission:
    """A one-file submission holding ``text`` as ``name``."""
    root = tmp_path / "submission"
    root.mkdir()
    (root / name).write_text(text, encoding="utf-8")
    kind = "notebook" if name.endswith(".ipynb") else "module"
    return Submission(student="held_1", source=root / name, root=root, files=(name,), kind=kind,
                      content_hash="0" * 64)


def notebook(*cells: str) -> str:
    """A notebook of code cells."""
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]))


def run_held(
    submission: Submission, source: str, out: Path, settings: RunSettings, *, go: bool, hold_s: float = HOLD_S
) -> tuple:
    """Start the run held, wait ``hold_s`` once it is set up, then open the gate (``go``) or close it; (result, epoch
    of the go)."""
    gate = Gate()
    kind = "notebook" if source.endswith(".ipynb") else "script"
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(
        Engine(make_sandbox(), kind).run(submission, source, out, settings, gate=gate)))
    thread.start()
    records = out / "records" / "run.json"
    deadline = time.monotonic() + 120
    while "setup_s" not in _timings(records):  # the runner wrote its record after the setup: it waits now
        assert thread.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.1)
    time.sleep(hold_s)
    went_at = time.time()
    gate.open() if go else gate.close()
    thread.join(timeout=300)
    assert not thread.is_alive()
    return outcome[0], went_at


def _timings(path: Path) -> dict:
    """The ``timings`` of the run.json the runner is writing; empty while there is none (or it is being written)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["timings"]
    except (OSError, ValueError, KeyError):
        return {}


def test_a_held_notebook_runs_its_first_cell_only_after_the_go(tmp_path):
    submission = stage(tmp_path, "nb.ipynb", notebook("import time\nprint(time.time())", "x = 1"))
    settings = RunSettings(limits=Limits(wall_s=240))
    result, went_at = run_held(submission, "nb.ipynb", tmp_path / "out", settings, go=True)
    assert result.sandbox.verdict == "ok", result.sandbox.stderr[-3000:]
    assert (result.cells_run, result.cells_total, result.errors) == (2, 2, ())
    executed = json.loads((result.artifacts_dir / "executed.ipynb").read_text(encoding="utf-8"))
    first_cell_ran_at = float("".join(executed["cells"][0]["outputs"][0]["text"]))
    assert first_cell_ran_at >= went_at
    run = read_run_json(result.artifacts_dir)
    assert run.timings["setup_s"] > 0 and run.timings["held_s"] >= HOLD_S
    # the student's time counts from the go: the wait and the setup before it are not theirs
    assert result.sandbox.wall_s < run.timings["total_s"] - run.timings["held_s"] + 1


def test_a_held_script_closed_without_a_go_runs_none_of_the_students_code(tmp_path):
    submission = stage(tmp_path, "train.py", "open('ran.txt', 'w').write('ran')\nprint('the script ran')\n")
    result, _ = run_held(submission, "train.py", tmp_path / "out", RunSettings(limits=Limits(wall_s=240)), go=False)
    assert not (tmp_path / "out" / "workspace" / "ran.txt").exists()
    assert "the script ran" not in result.sandbox.stdout
    run = read_run_json(result.artifacts_dir)
    assert (run.cells_run, run.probe_skipped) == (0, HELD_STOP)
    assert HELD_STOP == "the grader stopped before the submission's code was started"


def test_a_held_notebook_closed_without_a_go_runs_no_cell(tmp_path):
    submission = stage(tmp_path, "nb.ipynb", notebook("open('ran.txt', 'w').write('ran')"))
    result, _ = run_held(submission, "nb.ipynb", tmp_path / "out", RunSettings(limits=Limits(wall_s=240)), go=False)
    assert not (tmp_path / "out" / "workspace" / "ran.txt").exists()
    run = read_run_json(result.artifacts_dir)
    assert (run.cells_run, run.probe_skipped) == (0, HELD_STOP)


def test_the_wall_limit_counts_from_the_go(tmp_path):
    # held longer than its wall limit, then a short script: not a timeout, the wait was the grader's
    submission = stage(tmp_path, "train.py", "import time\ntime.sleep(0.5)\nprint('trained')\n")
    # a limit the short script meets even on a loaded machine (its probe included), held for longer than it
    settings = RunSettings(limits=Limits(wall_s=8))
    result, _ = run_held(submission, "train.py", tmp_path / "out", settings, go=True, hold_s=9)
    assert result.sandbox.verdict == "ok", result.sandbox.message
    assert "trained" in result.sandbox.stdout
    assert result.sandbox.wall_s < 8  # the 9 s it was held are not in it
