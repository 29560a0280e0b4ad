"""What a TA pays for grading, side by side with a bare ``jupyter nbconvert --execute`` of the same notebook.

Both sides are fresh processes started the way their users start them: ``gradebench grade`` as the
README runs it (its own interpreter start, imports, rubric, hidden data, sandbox, kernel, probe, host
checks, store and report pages) against ``python -m nbconvert --to notebook --execute``. Same notebook
(dl2025-a2 reference CNNMNIST.ipynb), same small synthetic MNIST, one torch thread on both sides.
The rubric is dl2025-a2's CNN task alone; its calibration on the reference submission is cached by
the warm-up round, as it is for a TA after the first batch.

Every timed round is checked afterwards (``verify.py``): the notebook's cells all ran and, for
gradebench, the model was probed and scored full marks. A round that ran nothing fails the benchmark.

Groups (compare medians within a group; ``extra_info`` says how many cores the machine had and this process
may use, and how many workers graded):

- ``one notebook``: one student.
- ``six students``: six copies of the notebook, nbconvert one after the other (as nbgrader's autograde
  runs them) against ``gradebench grade --jobs 1`` and ``--jobs 2``. Per student share of the harness:
  (gradebench --jobs 1 - nbconvert x 6) / 6; parallel efficiency: t(jobs 1) / (2 x t(jobs 2)) of the medians
  (``extra_info["efficiency"]``, with ``efficiency_min`` / ``efficiency_max`` from the extremes), printed at the
  end of the run when both were timed. A ``--jobs 2`` round whose gradings never overlapped fails.

In CPU terms a worker is not one process at a time: while it grades a student (their run, then the host's checks),
it starts the next student's sandbox and runs its kernel start and hidden setup, then holds it until it is free
(``harness.pipeline.hold_first_run``). ``--jobs 1`` therefore uses up to two cores for a few seconds per student
(the setup overlapping the previous student), where nbconvert one after the other uses one; ``--jobs 2`` up to four.

Run with ``make bench``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.pipeline import GRADING_LOG, read_grading_log
from tests.benchmarks.verify import SUMMARY_LINES, assert_graded, assert_notebook_executed, assert_ran_in_parallel

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "submissions" / "dl2025-a2" / "reference" / "CNNMNIST.ipynb"
RUBRIC = ROOT / "rubrics" / "dl2025-a2.yaml"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
GRADEBENCH = Path(sys.executable).with_name("gradebench")
STUDENTS = 6


def _cnn_rubric(path: Path) -> Path:
    """dl2025-a2's CNN task alone, as a TA grading only CNNMNIST.ipynb would cut it."""
    document = yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))
    document["tasks"] = [task for task in document["tasks"] if task["id"] == "cnn"]
    document["assignment"] = "dl2025-a2-cnn"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_data):
    """The rubric, batches of one and six students, and a folder where a bare nbconvert finds the data."""
    root = tmp_path_factory.mktemp("overhead")
    rubric = _cnn_rubric(root / "dl2025-a2-cnn.yaml")
    batches = {}
    for size in (1, STUDENTS):
        batch = root / f"batch-{size}"
        for i in range(size):
            (batch / f"student{i}").mkdir(parents=True)
            shutil.copy(NOTEBOOK, batch / f"student{i}" / "CNNMNIST.ipynb")
        batches[size] = batch
    bare = root / "bare"
    shutil.copytree(small_data / "public" / "MNIST", bare / "data" / "MNIST")
    points = next(t for t in yaml.safe_load(rubric.read_text())["tasks"] if t["id"] == "cnn")
    full = float(sum(check["points"] for check in points["checks"]))
    return {"rubric": rubric, "data": small_data, "batches": batches, "bare": bare, "root": root, "full": full}


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def _nbconvert(folder: Path, notebooks: list[Path]) -> None:
    """Execute each notebook in its own fresh nbconvert process, one after the other, and check it all ran."""
    for notebook in notebooks:
        shutil.copy(notebook, folder / "CNNMNIST.ipynb")
        executed = folder / "executed.ipynb"
        executed.unlink(missing_ok=True)
        _run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", executed.name,
              "CNNMNIST.ipynb"], folder)
        assert_notebook_executed(executed)


def _grade(world, size: int, jobs: int) -> None:
    """``gradebench grade`` of a batch as a fresh process, then check every student was really graded and, with
    ``jobs`` > 1, that the gradings overlapped."""
    out = world["root"] / f"out-{size}-{jobs}"
    logged = len(read_grading_log(out / GRADING_LOG))
    _run([str(GRADEBENCH), "grade", str(world["batches"][size]), "--rubric", str(world["rubric"]), "--out", str(out),
          "--data", str(world["data"]), "--profile", "fast", "--jobs", str(jobs), "--threads", "1", "--force",
          "--reference", str(NOTEBOOK.parent)], ROOT)
    for i in range(size):
        assert_graded(out, f"student{i}", "cnn", expected_score=world["full"])
    entries = read_grading_log(out / GRADING_LOG)[logged:]
    assert sorted(e["student"] for e in entries) == [f"student{i}" for i in range(size)], "not every student was graded"
    if jobs > 1:
        assert_ran_in_parallel(entries, jobs)


SIX_STUDENTS: dict[int, object] = {}
"""The six-students gradebench timings by workers (pytest-benchmark stats: median, min, max)."""


def _grade_six(benchmark, world, jobs: int) -> None:
    """Time ``gradebench grade --jobs <jobs>`` of the six students; extra_info gets the cores and the workers."""
    benchmark.extra_info.update(cores=os.cpu_count(), cores_available=len(os.sched_getaffinity(0)), workers=jobs)
    benchmark.pedantic(_grade, args=(world, STUDENTS, jobs), rounds=3, iterations=1, warmup_rounds=1)
    if not benchmark.disabled:  # --benchmark-disable: one untimed run, checked like the timed ones
        SIX_STUDENTS[jobs] = benchmark.stats.stats


def _notebooks(world, size: int) -> list[Path]:
    return [world["batches"][size] / f"student{i}" / "CNNMNIST.ipynb" for i in range(size)]


@pytest.mark.benchmark(group="one notebook")
def test_bare_nbconvert_one(benchmark, world) -> None:
    benchmark.extra_info["cores"] = os.cpu_count()
    benchmark.pedantic(_nbconvert, args=(world["bare"], _notebooks(world, 1)), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="one notebook")
def test_gradebench_grade_one(benchmark, world) -> None:
    benchmark.extra_info["cores"] = os.cpu_count()
    benchmark.pedantic(_grade, args=(world, 1, 1), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="six students")
def test_bare_nbconvert_six_one_after_another(benchmark, world) -> None:
    benchmark.extra_info.update(cores=os.cpu_count(), workers=1)
    benchmark.pedantic(_nbconvert, args=(world["bare"], _notebooks(world, STUDENTS)), rounds=3, iterations=1)


@pytest.mark.benchmark(group="six students")
def test_gradebench_grade_six_jobs_1(benchmark, world) -> None:
    _grade_six(benchmark, world, 1)


@pytest.mark.benchmark(group="six students")
def test_gradebench_grade_six_jobs_2(benchmark, world, request) -> None:
    """Also the parallel efficiency t(jobs 1) / (2 x t(jobs 2)) of the medians, with the range the extremes allow."""
    _grade_six(benchmark, world, 2)
    if 1 not in SIX_STUDENTS:  # run alone (-k): there is no --jobs 1 timing to compare with
        benchmark.extra_info["efficiency"] = "run test_gradebench_grade_six_jobs_1 in the same session"
        return
    one, two = SIX_STUDENTS[1], SIX_STUDENTS[2]
    efficiency = {"efficiency": round(one.median / (2 * two.median), 3),
                  "efficiency_min": round(one.min / (2 * two.max), 3), "efficiency_max": round(one.max / (2 * two.min), 3)}
    benchmark.extra_info.update(efficiency)
    request.config.stash.setdefault(SUMMARY_LINES, []).append(
        f"six students, --jobs 1 vs --jobs 2: parallel efficiency {efficiency['efficiency']:.2f} "
        f"({efficiency['efficiency_min']:.2f}-{efficiency['efficiency_max']:.2f}) on {benchmark.extra_info['cores_available']} "
        f"of {benchmark.extra_info['cores']} cores"
    )
