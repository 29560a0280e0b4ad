"""A real `gradebench grade` process killed with SIGKILL mid-batch and started again grades everything exactly once.

Twenty small notebooks (same network, distinct content, so distinct content hashes) are graded
by ``python -m harness grade`` in its own process group. The whole group is killed at several
points, as a crash would leave it, and the command is run again until the batch completes.
The host-side record is the grading log (``<out>/grading-log.jsonl``): every content hash must
appear in it exactly once over all runs, the store must hold 20 reports, and the index and the
gradebook must list all 20. Gradings that were in flight at a kill are identified by their
workspace folder and must be graded once on restart, unconfused by what the killed run left.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from harness.data import prepare
from harness.loading import load_submission
from harness.pipeline import GRADING_LOG, RESUMED_NOTE, grade_batch, log_grading, prepare_setup, read_grading_log
from harness.scoring import score_load_failure
from harness.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = 20
KILL_AFTER = (2, 7, 14)
"""Gradings logged (over all runs) after which the running process is killed."""
POINTS = 4.0

RUBRIC = """\
assignment: crash-safety
title: "Crash-safety batch: a small feed-forward network"
datasets: [mnist]
tasks:
  - id: ff
    title: "A feed-forward network on MNIST"
    source: tiny.ipynb
    model: {prefer: [Net], spec: "reference.classifiers:FeedForward", dataset: mnist}
    budget: {wall_s: 300}
    checks:
      - {check: runs_without_error, points: 1}
      - {check: architecture_matches, points: 1}
      - {check: parameter_count, equals: 109386, points: 1}
      - {check: output_kind, equals: log_probabilities, points: 1}
"""

NET = """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(784, 128), nn.ReLU(),
            nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, 10), nn.LogSoftmax(dim=1),
        )

    def forward(self, x):
        return self.main(x.view(-1, 784))  # (B, 10)"""

TRAIN = """\
model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
images, labels = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
for step in range(5):
    optimizer.zero_grad()
    loss = nn.functional.nll_loss(model(images), labels)
    loss.backward()
    optimizer.step()
print('loss', float(loss))"""


def _tiny_notebook(number: int) -> nbformat.NotebookNode:
    """A fast notebook: the assignment's feed-forward network, a few steps on random data; ``number`` makes it unique."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Submission {number:02d}"),
        nbformat.v4.new_code_cell(f"import torch\nimport torch.nn as nn\ntorch.manual_seed({number})"),
        nbformat.v4.new_code_cell(NET),
        nbformat.v4.new_code_cell(TRAIN),
    ]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    return nb


def _students() -> list[str]:
    return [f"student{number:02d}" for number in range(STUDENTS)]


def _grade_command(batch: Path, rubric: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "grade", str(batch), "--rubric", str(rubric), "--out", str(out),
            "--data", str(data), "--jobs", "2", "--profile", "fast"]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    """Start the grader in a process group of its own, output to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    with open(log, "ab") as stream:
        return subprocess.Popen(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _logged(out: Path) -> list[dict]:
    return read_grading_log(out / GRADING_LOG)


def _processes_under(out: Path) -> list[int]:
    """Pids of processes whose command line names the output folder (the grader, its sandboxes, their kernels)."""
    pids = []
    needle = os.fsencode(out)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _kill_group_when(process: subprocess.Popen, out: Path, logged_at_least: int, deadline_s: float) -> list[str]:
    """SIGKILL the grader's whole process group once the log holds ``logged_at_least`` lines; the workspaces in flight."""
    started = time.monotonic()
    while len(_logged(out)) < logged_at_least:
        assert process.poll() is None, f"the grader ended (exit {process.returncode}) before it was killed"
        assert time.monotonic() - started < deadline_s, f"fewer than {logged_at_least} gradings after {deadline_s} s"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done = {entry["student"] for entry in _logged(out)}
    work = out / "work"
    started_here = {p.name for p in work.iterdir()} if work.is_dir() else set()
    return sorted(started_here - done)


def _wait_until_gone(out: Path, timeout_s: float = 20.0) -> list[int]:
    """Pids still running under ``out`` after ``timeout_s`` (the sandboxes must die with the grader)."""
    end = time.monotonic() + timeout_s
    while (left := _processes_under(out)) and time.monotonic() < end:
        time.sleep(0.2)
    for pid in left:  # leave nothing behind for the other tests, whatever the assertion says
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _assert_nothing_half_written(out: Path) -> None:
    """Every student page and JSON present is complete and belongs to a stored report."""
    with sqlite3.connect(out / "results.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT content_hash FROM reports")}
    students = out / "students"
    for folder in students.iterdir() if students.is_dir() else ():
        report = folder / "report.json"
        page = folder / "index.html"
        if report.exists():
            data = json.loads(report.read_text(encoding="utf-8"))  # a torn file would not parse
            assert data["content_hash"] in stored, f"{report} was written but its grading is not in the store"
        if page.exists():
            assert page.read_text(encoding="utf-8").rstrip().endswith("</html>"), f"{page} is cut short"


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The batch graded by a CLI process killed at each of KILL_AFTER, then run to completion."""
    root = tmp_path_factory.mktemp("crash")
    data = root / "data"
    prepare(data, datasets=("mnist",), source="synthetic", small=True, hidden_seed=99)
    rubric = root / "crash-safety.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    batch = root / "batch"
    for number, student in enumerate(_students()):
        (batch / student).mkdir(parents=True)
        nbformat.write(_tiny_notebook(number), batch / student / "tiny.ipynb")
    out = root / "out"
    command = _grade_command(batch, rubric, data, out)
    console = root / "console.log"
    kills = []
    started = time.monotonic()
    for kill_after in KILL_AFTER:
        before = len(_logged(out))
        in_flight = _kill_group_when(_start(command, console), out, kill_after, deadline_s=300)
        survivors = _wait_until_gone(out)
        _assert_nothing_half_written(out)
        with sqlite3.connect(out / "results.sqlite") as db:
            stored = db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
        kills.append({"logged_before": before, "logged_at_kill": len(_logged(out)), "stored_at_kill": stored,
                      "in_flight": in_flight, "survivors": survivors, "at_s": round(time.monotonic() - started, 1)})
        # What a killed run leaves in an in-flight grading's folders must not confuse its regrade.
        for student in in_flight:
            stale = out / "artifacts" / student / "0-tiny" / "artifacts"
            stale.mkdir(parents=True, exist_ok=True)
            (stale / "run.json").write_text('{"format": 1, "cells_run": 99, "errors": [', encoding="utf-8")
            # (as root its tmpfs may already be swept by another grading on this machine, a parallel test worker's)
            (out / "work" / student).mkdir(parents=True, exist_ok=True)
            (out / "work" / student / "tiny.ipynb").write_text("not a notebook", encoding="utf-8")
    (root / "kills.json").write_text(json.dumps(kills, indent=1), encoding="utf-8")  # for a person reading the run
    final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    seconds = round(time.monotonic() - started, 1)
    return {"out": out, "batch": batch, "kills": kills, "final": final, "seconds": seconds, "console": console}


def test_each_kill_stopped_the_batch_midway_and_killed_every_sandbox(killed_and_resumed) -> None:
    kills = killed_and_resumed["kills"]
    for kill, wanted in zip(kills, KILL_AFTER):
        assert wanted <= kill["logged_at_kill"] < STUDENTS, kill
        assert kill["survivors"] == [], f"processes outlived the killed grader: {kill}"
    assert sum(len(kill["in_flight"]) for kill in kills) >= 1, kills


def test_the_final_run_finishes_the_batch(killed_and_resumed) -> None:
    final = killed_and_resumed["final"]
    assert final.returncode == 0, final.stdout + final.stderr
    graded_before = killed_and_resumed["kills"][-1]["stored_at_kill"]
    assert f"graded {STUDENTS - graded_before}, unchanged {graded_before}, could not load 0" in final.stdout


def test_every_submission_is_graded_exactly_once(killed_and_resumed) -> None:
    out, batch = killed_and_resumed["out"], killed_and_resumed["batch"]
    entries = _logged(out)
    hashes = [entry["content_hash"] for entry in entries]
    assert len(hashes) == STUDENTS and len(set(hashes)) == STUDENTS, entries
    assert sorted(entry["student"] for entry in entries) == _students()
    assert {entry["score"] for entry in entries} == {POINTS}
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT content_hash, student, score FROM reports").fetchall()
    assert len(rows) == STUDENTS
    assert {row[0] for row in rows} == set(hashes)
    assert {row[2] for row in rows} == {POINTS}
    assert len(list(batch.iterdir())) == STUDENTS


def test_in_flight_gradings_are_graded_again_once_and_cleanly(killed_and_resumed) -> None:
    out, kills = killed_and_resumed["out"], killed_and_resumed["kills"]
    entries = {entry["student"]: entry for entry in _logged(out)}
    for kill in kills:
        for student in kill["in_flight"]:
            entry = entries[student]  # logged once (previous test), after the kill that interrupted it
            assert entry["score"] == POINTS, entry
            report = json.loads((out / "students" / student / "report.json").read_text())
            (execution,) = report["executions"]
            assert (execution["cells_run"], execution["cells_total"], execution["errors"]) == (3, 3, [])
            run = json.loads((out / "artifacts" / student / "0-tiny" / "artifacts" / "run.json").read_text())
            assert run["cells_run"] == 3
            assert not (out / "work" / student).exists()  # the killed grading's workspace went with its regrade


def test_index_and_gradebook_list_everyone(killed_and_resumed) -> None:
    out = killed_and_resumed["out"]
    _assert_nothing_half_written(out)
    with open(out / "gradebook.csv", newline="") as stream:
        rows = {row["student"]: row for row in csv.DictReader(stream)}
    assert sorted(rows) == _students()
    assert {float(row["total"]) for row in rows.values()} == {POINTS}
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f"students/{student}/index.html" in index for student in _students())
    assert all((out / "students" / student / "index.html").is_file() for student in _students())


# -- the grading log on its own (no grading runs) ---------------------------------------------------------------


def _stored_batch(tmp_path: Path):
    """A one-student batch whose report is in the store but not in the log, as a kill right after the commit leaves it."""
    data = tmp_path / "data"
    prepare(data, datasets=("mnist",), source="synthetic", small=True, hidden_seed=99)
    rubric = tmp_path / "crash-safety.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    batch = tmp_path / "batch"
    (batch / "student00").mkdir(parents=True)
    nbformat.write(_tiny_notebook(0), batch / "student00" / "tiny.ipynb")
    setup = prepare_setup(rubric, data, tmp_path / "out", profile="fast")
    submission = load_submission(batch / "student00", tmp_path / "staging")
    report = score_load_failure(setup.rubric, "student00", batch, "", content_hash=submission.content_hash, profile="fast")
    with ResultStore(setup.store_path) as store:
        store.put(report)
    return batch, setup, report


def test_a_stored_grading_missing_from_the_log_is_logged_once_on_resume(tmp_path: Path) -> None:
    batch, setup, report = _stored_batch(tmp_path)
    first = grade_batch(batch, setup)
    again = grade_batch(batch, setup)
    assert (first.graded, first.reused, again.graded, again.reused) == (0, 1, 0, 1)
    (entry,) = read_grading_log(setup.grading_log_path)
    assert (entry["student"], entry["content_hash"], entry["note"]) == ("student00", report.content_hash, RESUMED_NOTE)
    assert entry["seconds"] is None


def test_a_torn_last_line_is_skipped_and_the_next_entry_starts_afresh(tmp_path: Path) -> None:
    _, setup, report = _stored_batch(tmp_path)
    log = setup.grading_log_path
    whole = log_grading(log, report, seconds=1.5)
    with open(log, "ab") as stream:
        stream.write(b'{"time": "2026-01-01T00:00:00", "student": "stud')  # a line cut off by a crash
    log_grading(log, report, seconds=2.0)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and lines[1].endswith('"student": "stud')
    assert [e["seconds"] for e in read_grading_log(log)] == [1.5, 2.0]
    assert read_grading_log(log)[0] == whole
    assert read_grading_log(tmp_path / "no-log-yet.jsonl") == []


def test_identical_hand_ins_of_two_students_each_keep_their_name_when_reused(tmp_path: Path) -> None:
    batch, setup, _ = _stored_batch(tmp_path)
    (batch / "twin").mkdir()
    (batch / "twin" / "tiny.ipynb").write_bytes((batch / "student00" / "tiny.ipynb").read_bytes())
    summary = grade_batch(batch, setup)
    assert (summary.graded, summary.reused) == (0, 2)
    assert [r.student for r in summary.reports] == ["student00", "twin"]
    with open(setup.out_dir / "gradebook.csv", newline="") as stream:
        assert [row["student"] for row in csv.DictReader(stream)] == ["student00", "twin"]
    assert json.loads((setup.out_dir / "students" / "twin" / "report.json").read_text())["student"] == "twin"
