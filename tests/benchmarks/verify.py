"""What a timed run must have done for its time to count: shared by the benchmarks and their own test.

A benchmark that passes when nothing ran measures nothing: every timed round of the grading overhead
benchmark is followed by these checks on what the round left on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

SUMMARY_LINES = pytest.StashKey[list]()
"""Lines a benchmark adds to the end of the run's report (figures computed from several benchmarks)."""


def assert_notebook_executed(executed: Path) -> int:
    """Check that every code cell of an nbconvert-executed notebook ran without an error; the cells run."""
    notebook = nbformat.read(executed, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    ran = [cell for cell in code if cell.get("execution_count") is not None]
    errors = [out for cell in code for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert code and len(ran) == len(code), f"{executed.name}: {len(ran)} of {len(code)} code cells ran"
    assert not errors, f"{executed.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    return len(ran)


def assert_graded(out: Path, student: str, task: str, *, expected_score: float) -> dict:
    """Check that ``student``'s report under ``out`` comes from a real run: every cell ran, a model was
    probed, and ``task`` scored ``expected_score``; the report (as stored in report.json)."""
    path = out / "students" / student / "report.json"
    assert path.is_file(), f"no report for {student} under {out}"
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["executions"], f"{student}: nothing was run"
    for execution in report["executions"]:
        ran, total = execution["cells_run"], execution["cells_total"]
        assert total > 0 and ran == total, f"{student}: {ran} of {total} cells of {execution['source']} ran"
        assert execution["sandbox"]["verdict"] == "ok", f"{student}: {execution['sandbox']['message']}"
    scored = next(t for t in report["tasks"] if t["task"] == task)
    failed = [f"{c['check']}: {c['message']}" for c in scored["checks"] if c["status"] != "passed"]
    assert scored["score"] == expected_score, (
        f"{student}: task {task} scored {scored['score']} instead of {expected_score} ({'; '.join(failed)})"
    )
    return report


def peak_concurrency(entries: list[dict]) -> int:
    """How many of the gradings in ``entries`` (grading-log lines: end ``time``, ``seconds`` taken) ran at once at most."""
    from datetime import datetime, timedelta

    edges = []
    for entry in entries:
        assert entry.get("seconds") is not None, f"{entry['student']}: the grading log has no duration (reused?)"
        end = datetime.fromisoformat(entry["time"])
        edges += [(end - timedelta(seconds=entry["seconds"]), 1), (end, -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # an end before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def assert_ran_in_parallel(entries: list[dict], workers: int) -> int:
    """Check that a round's gradings (its grading-log lines) kept ``workers`` busy at once at some point; the peak."""
    peak = peak_concurrency(entries)
    assert peak >= workers, (
        f"at most {peak} of {len(entries)} gradings ran at once: the round did not use its {workers} workers"
    )
    return peak


def machine_cpu_seconds() -> tuple[float, float] | None:
    """The whole machine's busy and idle CPU seconds (all cores, since boot) from ``/proc/stat``; None elsewhere.

    Machine-wide: whatever else runs on the machine is counted too."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, (idle + iowait) / tick


def sandboxed_runs(out: Path, data: Path) -> tuple[int, float]:
    """How many sandboxed runs a batch (or a demo) left records of under ``out`` (every ``report.json``'s runs,
    nested folders included) and ``data`` (the calibrations' runs of the references), and the CPU seconds their
    sandboxes used together. A run recorded twice (the reference submission's report holds its calibration's runs)
    counts once: runs are told apart by their artifacts folder."""
    seen: set[str] = set()
    runs, seconds = 0, 0.0
    found = [(path, "executions") for path in Path(out).rglob("report.json")]
    found += [(path, "runs") for path in (Path(data) / "calibration").glob("*.json")]
    for path, key in found:
        for execution in json.loads(path.read_text(encoding="utf-8")).get(key, []):
            folder = execution.get("artifacts_dir")
            if folder:
                if folder in seen:
                    continue
                seen.add(folder)
            runs += 1
            seconds += float(execution["sandbox"]["cpu_s"])
    return runs, seconds
