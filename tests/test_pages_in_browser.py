"""Every page a person reads, opened in headless Chromium at 1280 px: no console errors, no missing image,
nothing wider than the window; a screenshot of each is kept (``GRADEBENCH_SCREENSHOTS=DIR`` keeps them there).

In CI Chromium must be installed (``.ci/run`` installs it): the test fails there without it, never skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.models import CellError, CheckResult, ExecutionResult, GradeReport, SandboxResult, TaskScore
from harness.reporting import render_index, render_overview, render_student

WIDTH = 1280
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: the pages cannot be checked (apt-get install chromium)")
        pytest.skip("Chromium is not installed here")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _figure(folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (folder / "figures").mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([3, 2, 1.5, 1.2], label="training loss")
    ax.legend()
    fig.savefig(folder / "figures" / "1.png")
    plt.close(fig)
    return folder


def _class(tmp_path: Path) -> Path:
    """An output folder as a real class leaves it: many tasks, long names and messages, every kind of result."""
    artifacts = _figure(tmp_path / "artifacts" / "ann")
    long_path = "submissions/" + "very_long_folder_name_" * 8 + "CNNMNIST.ipynb"
    diff = CheckResult("cnn", "architecture_matches", "failed",
                       "your network differs from the assignment's:\n  missing: MaxPool2d(2) (after ReLU())", 1, 0,
                       {"diff": ["missing: MaxPool2d(2)"], "student_layers": ["Conv2d(1->16, k3)"] * 6,
                        "reference_layers": ["Conv2d(1->16, k3)", "MaxPool2d(2)"] * 3})
    checks = (
        diff,
        CheckResult("cnn", "test_accuracy", "passed", "", 3, 3, {"measured": 0.979, "threshold": 0.96}),
        CheckResult("cnn", "loss_choice", "failed", f"{long_path} was read, and " + "x" * 300, 1, 0),
    )
    tasks = [TaskScore("cnn", "1.3 A convolutional network on MNIST with two convolutions and the 800-feature flatten",
                       3, 5, checks=checks, source="CNNMNIST.ipynb", source_note="named as the rubric asks")]
    tasks += [TaskScore(f"task-{i}", f"Task number {i} with a long descriptive title", 1.5, 2,
                        checks=(CheckResult(f"task-{i}", "runs_without_error", "passed", "", 2, 1.5),))
              for i in range(12)]
    tasks.append(TaskScore("why", "Why 800 features? (written)", 0, 2, manual=True, note="not graded yet",
                           pending=True))
    ok = SandboxResult("ok", "exit code 0", 0, 12.5, 11.0, 0, "", "", True)
    run = ExecutionResult("CNNMNIST.ipynb", ok, 5, 6, (CellError(4, "NameError", "name 'lightnin' is not defined"),),
                          artifacts)
    student = "Ann Marie Longname-Studentsdottir_12345678"
    reports = [
        GradeReport(student=student, assignment="dl2025-a2", content_hash="a", rubric_hash="r", profile="fast",
                    tasks=tuple(tasks), executions=(run,), late=True, late_penalty=1.2,
                    load_warnings=("handed in late (the LMS marked the upload LATE)", f"skipped {long_path}")),
        GradeReport(student="bob", assignment="dl2025-a2", content_hash="b", rubric_hash="r", profile="fast",
                    tasks=tuple(tasks), load_failure="CNNMNIST.ipynb is not a notebook: invalid JSON at line 1"),
    ]
    out = tmp_path / "out"
    folder = out / "dl2025-a2"
    for report in reports:
        render_student(report, folder, "Deep Learning 2025, Assignment 2")
    render_index(reports, folder, "Deep Learning 2025, Assignment 2", [(t.task, t.title) for t in tasks])
    render_overview(out)
    return out


def _bench_page(tmp_path: Path) -> Path:
    from tests.test_bench_history import page_with_a_regression

    return page_with_a_regression(tmp_path, tmp_path / "bench" / "index.html", calibration="x.json")


def test_every_page_renders_cleanly_at_1280_px(tmp_path: Path) -> None:
    out = _class(tmp_path)
    pages = {
        "overview": out / "index.html",
        "class index": out / "dl2025-a2" / "index.html",
        **{f"student {p.parent.name}": p for p in sorted((out / "dl2025-a2" / "students").glob("*/index.html"))},
        "benchmark history": _bench_page(tmp_path),
    }
    shots = Path(os.environ.get("GRADEBENCH_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name, path in pages.items():
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                seen: list[str] = []
                page.on("console", lambda m, seen=seen: seen.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e, seen=seen: seen.append(f"script error: {e}"))
                page.on("requestfailed", lambda r, seen=seen: seen.append(f"could not load {r.url}"))
                page.goto(path.as_uri())
                page.wait_for_load_state("load")
                broken = page.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")
                seen += [f"image not shown: {src}" for src in broken]
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > WIDTH:
                    seen.append(f"{width} px wide: wider than the {WIDTH} px window")
                shot = shots / f"{name.replace(' ', '-')}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000, f"{name}: the screenshot is empty"
                problems += [f"{name}: {problem}" for problem in seen]
                page.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
