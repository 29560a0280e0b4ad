"""The same batch graded in threads, in worker processes and on a two-node Ray cluster gives the same reports; a Ray
driver killed mid-batch loses nothing: the rerun reuses what was stored and grades the rest, each student once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.pipeline import grade_batch, prepare_setup
from harness.sandbox import make_sandbox
from tests.script_rubric import SCRIPT, SCRIPTS, cnn_script_rubric

FAILING = SCRIPTS / "raises_after_model.py"

RUBRIC = cnn_script_rubric(
    "backends-demo",
    "      - {check: runs_without_error, points: 1}\n"
    "      - {check: architecture_matches, points: 1}\n"
    "      - {check: parameter_count, equals: 12810, points: 1}\n",
    sources="[cnn_script.py, raises_after_model.py]",
    spec=True,
)


def _what_was_graded(summary) -> dict[str, list[tuple[str, str, str, float, str]]]:
    """Per student, every check's outcome (timings left out: they differ from run to run)."""
    return {
        report.student: [(t.task, c.check, c.status, c.score, c.message) for t in report.tasks for c in t.checks]
        for report in summary.reports
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    for student, script in (("ann", SCRIPT), ("cho", FAILING)):
        (folder / student).mkdir()
        shutil.copy(script, folder / student / script.name)
    return folder


def _grade(batch: Path, small_data: Path, out: Path, **options):
    rubric = out.parent / f"{out.name}.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    setup = prepare_setup(rubric, small_data, out, sandbox=make_sandbox("auto"), profile="fast")
    return grade_batch(batch, setup, jobs=2, **options)


@pytest.fixture(scope="module")
def by_threads(batch: Path, small_data: Path, tmp_path_factory):
    return _grade(batch, small_data, tmp_path_factory.mktemp("threads") / "out")


def test_threads_grade_the_batch(by_threads) -> None:
    graded = _what_was_graded(by_threads)
    assert by_threads.graded == 2 and not by_threads.faults
    assert [status for *_, status, _, _ in graded["ann"]] == ["passed", "passed", "passed"]
    assert graded["cho"][0][2] == "failed"  # the script raises after building its model


def test_worker_processes_give_the_same_reports(batch: Path, small_data: Path, tmp_path, by_threads) -> None:
    summary = _grade(batch, small_data, tmp_path / "out", backend="processes")
    assert summary.graded == 2 and not summary.faults
    assert _what_was_graded(summary) == _what_was_graded(by_threads)


def test_a_two_node_ray_cluster_gives_the_same_reports(batch: Path, small_data: Path, tmp_path, by_threads) -> None:
    import ray  # a dev dependency: CI must have it, so no skip
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        summary = _grade(batch, small_data, tmp_path / "out", backend="ray", ray_address=cluster.address)
        assert summary.graded == 2 and not summary.faults
        assert _what_was_graded(summary) == _what_was_graded(by_threads)
        assert not ray.is_initialized()  # the backend disconnected when the batch was done
    finally:
        cluster.shutdown()


# -- the Ray driver killed mid-batch ------------------------------------------------------------------------------

RAY_STUDENTS = 8
RAY_KILL_AFTER = 3
"""Gradings logged after which the driver is killed: some stored, some in flight on the cluster, some not started."""


@pytest.fixture(scope="module")
def ray_driver_killed_and_resumed(tmp_path_factory, small_data: Path):
    """``gradebench grade --backend ray`` on a two-node cluster, its driver SIGKILLed once RAY_KILL_AFTER gradings are
    logged (the cluster lives on, as it would on the TA's machines), then the same command run to completion."""
    import sqlite3
    import subprocess
    import sys

    import nbformat
    from ray.cluster_utils import Cluster

    from tests.test_crash_safety import RUBRIC as TINY_RUBRIC
    from tests.test_crash_safety import _kill_group_when, _logged, _start, _tiny_notebook, _wait_until_gone

    root = tmp_path_factory.mktemp("ray-kill")
    rubric = root / "crash-safety.yaml"
    rubric.write_text(TINY_RUBRIC, encoding="utf-8")
    batch = root / "batch"
    for number in range(RAY_STUDENTS):
        (batch / f"student{number:02d}").mkdir(parents=True)
        nbformat.write(_tiny_notebook(number), batch / f"student{number:02d}" / "tiny.ipynb")
    out = root / "out"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        command = [sys.executable, "-m", "harness", "grade", str(batch), "--rubric", str(rubric), "--out", str(out),
                   "--data", str(small_data), "--jobs", "2", "--profile", "fast", "--backend", "ray",
                   "--ray-address", cluster.address]
        console = root / "console.log"
        in_flight = _kill_group_when(_start(command, console), out, RAY_KILL_AFTER, deadline_s=300)
        survivors = _wait_until_gone(out)
        with sqlite3.connect(out / "results.sqlite") as db:
            stored = {row[0] for row in db.execute("SELECT student FROM reports")}
        logged_at_kill = len(_logged(out))
        final = subprocess.run(command, capture_output=True, text=True, timeout=600,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}, cwd=Path(__file__).parents[1])
    finally:
        cluster.shutdown()
    return {"out": out, "in_flight": in_flight, "survivors": survivors, "stored_at_kill": stored,
            "logged_at_kill": logged_at_kill, "final": final, "console": console}


def test_a_killed_ray_driver_stopped_the_batch_midway_and_left_no_sandbox(ray_driver_killed_and_resumed) -> None:
    killed = ray_driver_killed_and_resumed
    assert RAY_KILL_AFTER <= killed["logged_at_kill"] < RAY_STUDENTS, killed["console"].read_text()
    assert killed["survivors"] == [], "sandboxes outlived the killed driver"


def test_the_rerun_after_a_killed_ray_driver_reuses_what_was_stored_and_grades_the_rest(
    ray_driver_killed_and_resumed,
) -> None:
    import csv
    import sqlite3

    from tests.test_crash_safety import POINTS, _logged

    killed = ray_driver_killed_and_resumed
    out, final, stored = killed["out"], killed["final"], killed["stored_at_kill"]
    assert final.returncode == 0, final.stdout + final.stderr
    assert f"graded {RAY_STUDENTS - len(stored)}, unchanged {len(stored)}, could not load 0" in final.stdout
    students = [f"student{number:02d}" for number in range(RAY_STUDENTS)]
    entries = _logged(out)
    # every student graded once over both runs: one log line and one stored row each, full marks
    assert sorted(entry["student"] for entry in entries) == students, entries
    assert len({entry["content_hash"] for entry in entries}) == RAY_STUDENTS
    assert {entry["score"] for entry in entries} == {POINTS}
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT student, score FROM reports").fetchall()
    assert sorted(student for student, _ in rows) == students and {score for _, score in rows} == {POINTS}
    with open(out / "gradebook.csv", newline="") as stream:
        assert sorted(row["student"] for row in csv.DictReader(stream)) == students
    # a grading in flight on the cluster when the driver died is graded again, completely
    for student in killed["in_flight"]:
        assert student not in stored
        report = json.loads((out / "students" / student / "report.json").read_text(encoding="utf-8"))
        (execution,) = report["executions"]
        assert (execution["cells_run"], execution["cells_total"], execution["errors"]) == (3, 3, [])
