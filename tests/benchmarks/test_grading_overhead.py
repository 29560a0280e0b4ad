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
  (gradebench --jobs 1 - nbconvert x 6) / 6. Parallel efficiency, printed at the end of the run when both sides
  were timed: t(jobs 1 on one core) / (2 x t(jobs 2 on two cores)) of the medians (``extra_info
  ["efficiency_one_core"]``, with ``_min`` / ``_max`` from the extremes), the speed-up of a second core and a second
  worker over one of each; and t(jobs 1 on every core) / (2 x t(jobs 2 on two cores)) (``extra_info["efficiency"]``). A
  ``--jobs 2`` round whose gradings never overlapped fails.

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


def _run(command: list[str], cwd: Path, cores: set[int] | None = None) -> None:
    """Run ``command`` with one torch thread; ``cores``: on those CPU cores only (its children too, sandboxes
    included)."""
    pin = None if cores is None else (lambda: os.sched_setaffinity(0, cores))
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD}, timeout=900,
                          preexec_fn=pin)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def first_cores(count: int) -> set[int]:
    """The first ``count`` CPU cores this process may use (fewer if it may use fewer)."""
    return set(sorted(os.sched_getaffinity(0))[:count])


def _nbconvert(folder: Path, notebooks: list[Path]) -> None:
    """Execute each notebook in its own fresh nbconvert process, one after the other, and check it all ran."""
    for notebook in notebooks:
        shutil.copy(notebook, folder / "CNNMNIST.ipynb")
        executed = folder / "executed.ipynb"
        executed.unlink(missing_ok=True)
        _run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", executed.name,
              "CNNMNIST.ipynb"], folder)
        assert_notebook_executed(executed)


def _grade(world, size: int, jobs: int, cores: set[int] | None = None) -> None:
    """``gradebench grade`` of a batch as a fresh process (on ``cores`` only, if given), then check every student was
    really graded and, with ``jobs`` > 1, that the gradings overlapped."""
    out = world["root"] / f"out-{size}-{jobs}-{len(cores) if cores else 'any'}"
    logged = len(read_grading_log(out / GRADING_LOG))
    _run([str(GRADEBENCH), "grade", str(world["batches"][size]), "--rubric", str(world["rubric"]), "--out", str(out),
          "--data", str(world["data"]), "--profile", "fast", "--jobs", str(jobs), "--threads", "1", "--force",
          "--reference", str(NOTEBOOK.parent)], ROOT, cores)
    for i in range(size):
        assert_graded(out, f"student{i}", "cnn", expected_score=world["full"])
    entries = read_grading_log(out / GRADING_LOG)[logged:]
    assert sorted(e["student"] for e in entries) == [f"student{i}" for i in range(size)], "not every student was graded"
    if jobs > 1:
        assert_ran_in_parallel(entries, jobs)


SIX_STUDENTS: dict[tuple[int, int | None], object] = {}
"""The six-students gradebench timings by (workers, cores it was kept to or None) (pytest-benchmark stats: median,
min, max)."""


def _grade_six(benchmark, world, jobs: int, cores: set[int] | None = None) -> None:
    """Time ``gradebench grade --jobs <jobs>`` of the six students (on ``cores`` only, if given); extra_info gets the
    cores used and the workers."""
    used = cores or os.sched_getaffinity(0)
    benchmark.extra_info.update(cores=os.cpu_count(), cores_available=len(os.sched_getaffinity(0)),
                                cores_used=len(used), workers=jobs)
    benchmark.pedantic(_grade, args=(world, STUDENTS, jobs, cores), rounds=3, iterations=1, warmup_rounds=1)
    if not benchmark.disabled:  # --benchmark-disable: one untimed run, checked like the timed ones
        SIX_STUDENTS[jobs, len(cores) if cores else None] = benchmark.stats.stats


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
def test_gradebench_grade_six_jobs_1_on_one_core(benchmark, world) -> None:
    """The serial baseline of the parallel efficiency: one worker on one core (``--jobs 1`` alone uses a second core
    for the next student's setup, so its time on all cores is not a one-core time)."""
    _grade_six(benchmark, world, 1, first_cores(1))


@pytest.mark.benchmark(group="six students")
def test_gradebench_grade_six_jobs_2(benchmark, world, request) -> None:
    """On two cores. Also the parallel efficiency of the medians, with the range the extremes allow: against one
    worker on one core (t(jobs 1, one core) / (2 x t(jobs 2))), and against ``--jobs 1`` on every core."""
    pair = first_cores(2)
    if len(pair) < 2:
        pytest.skip("this process may use one core only: two workers on two cores cannot be timed")
    _grade_six(benchmark, world, 2, pair)
    two = SIX_STUDENTS.get((2, 2))
    if two is None:  # --benchmark-disable: nothing was timed
        return
    cores = len(pair)
    for name, key, baseline in (("efficiency_one_core", (1, 1), "--jobs 1 on one core"),
                                ("efficiency", (1, None), "--jobs 1 on every core")):
        if key not in SIX_STUDENTS:  # run alone (-k): there is no such timing to compare with
            benchmark.extra_info[name] = "run the six-students benchmarks in the same session"
            continue
        one = SIX_STUDENTS[key]
        figure = (round(one.median / (cores * two.median), 3), round(one.min / (cores * two.max), 3),
                  round(one.max / (cores * two.min), 3))
        benchmark.extra_info.update({name: figure[0], f"{name}_min": figure[1], f"{name}_max": figure[2]})
        request.config.stash.setdefault(SUMMARY_LINES, []).append(
            f"six students, {baseline} vs --jobs 2 on {cores} of {benchmark.extra_info['cores']} cores: parallel "
            f"efficiency {figure[0]:.2f} ({figure[1]:.2f}-{figure[2]:.2f})"
        )
