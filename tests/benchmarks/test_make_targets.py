"""What the README's two commands cost: ``make demo`` from a fresh state, and the fast test tier.

Both are timed as a person pays them: ``make`` as a fresh process from the repository root, the way the
README starts it.

- ``make demo`` starts from a fresh clone's state: no prepared data, no calibration, no reports
  (``DATA`` and ``OUT`` point at empty folders; calibration is cached under the data folder, so it is
  measured too). The virtual environment is the one running this benchmark, already installed: the
  first ``pip install`` of torch depends on the package mirror, not on gradebench. Each round checks
  that the demo did its work: the overview page, one gradebook row per sample folder of every
  assignment, and full marks for every assignment's reference submission. Each round also notes where the
  machine's CPU went meanwhile (busy and idle core-seconds from ``/proc/stat``, machine-wide) and how much of it
  the sandboxed runs used (their ``cpu_s``).
- ``make test-fast``: the fast unit tier, checked to have passed tests and failed none.

Each round is a fresh state, so there is no warm-up round. ``GRADEBENCH_BENCH_ROUNDS`` sets the rounds
(default 3: the median, min and max are then real figures). Run with ``make bench``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.benchmarks.verify import SUMMARY_LINES, machine_cpu_seconds, sandboxed_runs

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
ROUNDS = int(os.environ.get("GRADEBENCH_BENCH_ROUNDS", "3"))
ASSIGNMENTS = ("dl2025-a2", "adl2024-a2", "idl-ex2", "mle-sheet06")
"""The Makefile's ASSIGNMENTS: every assignment the demo grades."""

_SUMMARY = re.compile(r"=+ (?P<summary>.*\bpassed\b.*) in [\d.]+s")


def _make(target: str, *variables: str) -> str:
    """Run ``make <target>`` from the repository root as a fresh process; its output (the run fails on an error)."""
    done = subprocess.run(["make", target, f"VENV={VENV}", *variables], cwd=ROOT, capture_output=True, text=True,
                          timeout=3600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"make {target} exited {done.returncode}:\n{output[-4000:]}"
    return output


def task_points(assignment: str) -> dict[str, float]:
    """The points of each automatic task of ``assignment``'s rubric (manual tasks are graded by TAs, not run)."""
    rubric = yaml.safe_load((ROOT / "rubrics" / f"{assignment}.yaml").read_text(encoding="utf-8"))
    return {task["id"]: float(sum(check["points"] for check in task.get("checks", [])))
            for task in rubric["tasks"] if not task.get("manual")}


def assert_demo_graded(out: Path) -> int:
    """Check what a demo left under ``out``: the overview, and per assignment a gradebook with one row per sample
    folder and the reference submission's automatic tasks at full marks. Returns the students graded."""
    assert (out / "index.html").is_file(), "the demo wrote no overview page"
    graded = 0
    for assignment in ASSIGNMENTS:
        samples = sorted(p.name for p in (ROOT / "submissions" / assignment).iterdir() if p.is_dir())
        gradebook = out / assignment / "gradebook.csv"
        assert gradebook.is_file(), f"{assignment}: no gradebook"
        with gradebook.open(encoding="utf-8", newline="") as handle:
            rows = {row["student"]: row for row in csv.DictReader(handle)}
        assert sorted(rows) == samples, f"{assignment}: graded {sorted(rows)}, the samples are {samples}"
        points = task_points(assignment)
        scored = sum(float(rows["reference"][task]) for task in points)
        assert scored == pytest.approx(sum(points.values())), (
            f"{assignment}: the reference submission scored {scored} of {sum(points.values())} automatic points"
        )
        graded += len(rows)
    return graded


def _demo(folder: Path, spent: list[dict[str, float]]) -> None:
    """One ``make demo`` from a fresh state in ``folder`` (emptied first), checked; appends to ``spent`` where the
    machine's CPU went meanwhile (:func:`demo_cpu`)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    before = machine_cpu_seconds()
    _make("demo", f"DATA={folder / 'data'}", f"OUT={folder / 'out'}")
    after = machine_cpu_seconds()
    assert assert_demo_graded(folder / "out") > 0
    if before is not None and after is not None:
        spent.append(demo_cpu(folder, before, after))


def demo_cpu(folder: Path, before: tuple[float, float], after: tuple[float, float]) -> dict[str, float]:
    """Where a demo's CPU went: the machine's busy and idle core-seconds between ``before`` and ``after``
    (:func:`machine_cpu_seconds`), and the sandboxed runs it made (students' and the references' calibration runs)
    with the core-seconds they used; the rest of the busy time is the host's (and the rebuilds' sandboxes)."""
    runs, seconds = sandboxed_runs(folder / "out", folder / "data")
    return {"busy_core_s": round(after[0] - before[0], 1), "idle_core_s": round(after[1] - before[1], 1),
            "runs": runs, "runs_core_s": round(seconds, 1)}


@pytest.mark.benchmark(group="the README's commands")
def test_make_demo_from_a_fresh_state(benchmark, tmp_path, request) -> None:
    """Also where the CPU went, per round (``extra_info["cpu"]``) and, for the median round, at the end of the run."""
    benchmark.extra_info.update(cores=os.cpu_count(), cores_available=len(os.sched_getaffinity(0)),
                                note="environment installed; data, calibration and reports made from nothing")
    spent: list[dict[str, float]] = []
    benchmark.pedantic(_demo, args=(tmp_path / "demo", spent), rounds=ROUNDS, iterations=1, warmup_rounds=0)
    if not spent:  # no /proc/stat here
        return
    benchmark.extra_info["cpu"] = spent
    middle = sorted(spent, key=lambda round_: round_["busy_core_s"])[len(spent) // 2]
    request.config.stash.setdefault(SUMMARY_LINES, []).append(
        f"make demo (the round of median busy time): the machine was busy {middle['busy_core_s']:.0f} and idle "
        f"{middle['idle_core_s']:.0f} core-seconds on {os.cpu_count()} cores; {middle['runs']} sandboxed runs used "
        f"{middle['runs_core_s']:.0f} of them"
    )


def _fast_tier() -> None:
    """``make test-fast``, checked: it ran tests, and none failed."""
    output = _make("test-fast")
    summary = _SUMMARY.findall(output)
    assert summary, f"make test-fast printed no summary:\n{output[-2000:]}"
    passed = int(re.search(r"(\d+) passed", summary[-1]).group(1))
    assert passed > 0 and "failed" not in summary[-1] and "error" not in summary[-1], summary[-1]


@pytest.mark.benchmark(group="the README's commands")
def test_make_test_fast(benchmark) -> None:
    benchmark.extra_info.update(cores=os.cpu_count(), cores_available=len(os.sched_getaffinity(0)))
    benchmark.pedantic(_fast_tier, rounds=ROUNDS, iterations=1, warmup_rounds=0)
