"""Grading overhead per notebook, and batch throughput, side by side with a bare nbconvert run.

Group "notebook": the same CNN notebook (dl2025-a2 reference CNNMNIST.ipynb on small synthetic
MNIST) run by ``jupyter nbconvert --to notebook --execute --allow-errors`` and graded by
gradebench (sandbox + kernel + probes + checks + report). The difference of the medians is the
harness's overhead per notebook.

Group "batch": four copies of it, nbconvert one after the other (as nbgrader's autograde runs
them) against ``grade_batch`` with two workers.

Both sides use one torch thread (OMP_NUM_THREADS=1). Run with ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.loading import load_submission
from harness.pipeline import calibrate_rubric, grade_batch, grade_submission, prepare_setup
from harness.reporting import render_student
from harness.sandbox import make_sandbox

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"
RUBRIC = ROOT / "rubrics" / "dl2025-a2.yaml"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_data):
    """Small data, a calibrated setup, and a folder where a bare nbconvert finds the data under data/."""
    patch = pytest.MonkeyPatch()
    for name, value in ONE_THREAD.items():
        patch.setenv(name, value)
    data = small_data
    out = tmp_path_factory.mktemp("out")
    setup = prepare_setup(RUBRIC, data, out, sandbox=make_sandbox(), threads=1)
    calibrate_rubric(setup, ROOT / "submissions" / "dl2025-a2" / "reference")
    bare = tmp_path_factory.mktemp("bare")
    shutil.copytree(data / "public" / "MNIST", bare / "data" / "MNIST")
    batch = tmp_path_factory.mktemp("batch")
    for i in range(4):
        (batch / f"student{i}").mkdir()
        shutil.copy(NOTEBOOK, batch / f"student{i}" / "CNNMNIST.ipynb")
    yield setup, bare, batch
    patch.undo()


def _nbconvert(folder: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
         "--output", "executed.ipynb", "CNNMNIST.ipynb"],
        cwd=folder, capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.benchmark(group="notebook")
def test_bare_nbconvert(benchmark, world) -> None:
    _, bare, _ = world
    shutil.copy(NOTEBOOK, bare / "CNNMNIST.ipynb")
    benchmark.pedantic(_nbconvert, args=(bare,), rounds=5, iterations=1, warmup_rounds=1)
    assert (bare / "executed.ipynb").stat().st_size > 0


@pytest.mark.benchmark(group="notebook")
def test_gradebench_one_notebook(benchmark, world, tmp_path) -> None:
    setup, _, _ = world
    submission = load_submission(NOTEBOOK, tmp_path / "staging", student="one")

    def grade():
        report = grade_submission(submission, setup)
        render_student(report, setup.out_dir, setup.rubric.title)
        return report

    report = benchmark.pedantic(grade, rounds=5, iterations=1, warmup_rounds=1)
    cnn = next(t for t in report.tasks if t.task == "cnn")
    assert cnn.score == cnn.points


@pytest.mark.benchmark(group="batch")
def test_nbconvert_four_sequentially(benchmark, world, tmp_path) -> None:
    _, bare, batch = world

    def run_all():
        for student in sorted(batch.iterdir()):
            shutil.copy(student / "CNNMNIST.ipynb", bare / "CNNMNIST.ipynb")
            _nbconvert(bare)

    benchmark.pedantic(run_all, rounds=3, iterations=1)


@pytest.mark.benchmark(group="batch")
def test_gradebench_four_with_two_workers(benchmark, world) -> None:
    setup, _, batch = world
    summary = benchmark.pedantic(lambda: grade_batch(batch, setup, jobs=2, force=True), rounds=3, iterations=1)
    assert summary.graded == 4
