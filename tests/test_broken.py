"""Broken submissions graded end to end in one batch with a good one: what a TA sees, and that the rest is unaffected.

The batch holds the dl2025-a2 reference and the cases of ``submissions/broken/`` (see
``submissions/make_broken_samples.py``), plus inputs made here because they must not be
committed: a 200 MB notebook (sparse), a zip bomb and a file name that is not UTF-8. It is
graded with the dl2025-a2 CNN task (its checks, with absolute bars instead of calibrated ones
so that no reference run is needed) on small synthetic MNIST.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markupsafe import escape

from harness.data import prepare
from harness.events import LoadWarning, ProgressEvent
from harness.pipeline import GRADING_LOG, grade_batch, prepare_setup, read_grading_log
from harness.reporting import safe_name
from harness.sandbox import BubblewrapSandbox, make_sandbox

ROOT = Path(__file__).resolve().parents[1]
BROKEN = ROOT / "submissions" / "broken"
REFERENCE = ROOT / "submissions" / "dl2025-a2" / "reference"
CNN_POINTS = 13.0
NON_UTF8 = b"m\xfcller.ipynb"

sys.path.insert(0, str(ROOT / "submissions"))
from make_broken_samples import huge_notebook, non_utf8_name, zip_bomb  # noqa: E402

REFUSED = {
    "invalid_json": "CNNMNIST.ipynb is not a notebook: invalid JSON (line 71, column 4): Unterminated string starting at",
    "nbformat3": "CNNMNIST.ipynb is saved as nbformat 3, an old notebook format: open it in a current Jupyter and save "
    "it again (or run `jupyter nbconvert --to notebook --nbformat 4`) so that it is nbformat 4",
    "empty": "CNNMNIST.ipynb is empty (0 bytes)",
    "huge": "CNNMNIST.ipynb is 200.0 MiB, over the 100.0 MiB limit for one file",
    "bomb": "bomb.zip: CNNMNIST.ipynb is 512.0 MiB, over the 100.0 MiB limit for one file",
    "dense_bomb": re.compile(  # the compressed size depends on the zlib build
        r"dense_bomb\.zip: CNNMNIST\.ipynb expands from \d+\.\d KiB to 90\.0 MiB \(1,\d{3} times\), over the 200x "
        r"compression limit: refused as a zip bomb"
    ),
    "m\\xfcller": "no notebook (.ipynb) or Python file (.py) could be staged: skipped 'm\\xfcller.ipynb': its name is "
    "not valid UTF-8 (byte 0xfc; was it zipped or saved with a Windows code page?): rename it with UTF-8 characters only",
}
"""Submissions refused at loading, and the reason their report gives (exactly, or a pattern)."""

SOURCE_NAME = {"bomb": "bomb.zip", "dense_bomb": "dense_bomb.zip", "m\\xfcller": "m\\xfcller.ipynb"}
"""What the task notes call a refused submission that is a file, not a folder."""

CRASHED = {"kernel_abort": "import os\nos.abort()", "segfault": "import ctypes\nctypes.string_at(0)"}
"""Notebooks whose kernel dies in cell 5, and the code that kills it."""
CRASH_MESSAGES = {"kernel_abort": "the kernel was killed by SIGABRT (an abort)",
                  "segfault": "the kernel was killed by SIGSEGV (a segmentation fault)"}
"""How each crash is named to the student."""


def _sandbox():
    return BubblewrapSandbox() if os.environ.get("CI") else make_sandbox()


def _cnn_only_rubric(path: Path) -> Path:
    """The dl2025-a2 CNN task alone, accepting CNNMNIST.py too, with absolute bars (no calibration run)."""
    document = yaml.safe_load((ROOT / "rubrics" / "dl2025-a2.yaml").read_text(encoding="utf-8"))
    cnn = next(task for task in document["tasks"] if task["id"] == "cnn")
    cnn["source"] = ["CNNMNIST.ipynb", "CNNMNIST.py"]
    cnn["budget"] = {"wall_s": 900}
    for check in cnn["checks"]:
        if check.get("relative_to_reference") is not None:
            del check["relative_to_reference"]
            check["min"] = 0.6 if check["check"] == "per_class_accuracy" else 0.8
    document.update(assignment="dl2025-a2-broken", title="Broken inputs (dl2025-a2 CNN task)", tasks=[cnn])
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The reference and every broken case, graded in one batch with two workers."""
    root = tmp_path_factory.mktemp("broken")
    data = root / "data"
    prepare(data, datasets=("mnist",), source="synthetic", small=True, hidden_seed=1234)
    batch = root / "batch"
    batch.mkdir()
    (batch / "reference").mkdir()
    (batch / "reference" / "CNNMNIST.ipynb").write_bytes((REFERENCE / "CNNMNIST.ipynb").read_bytes())
    for case in ("invalid_json", "nbformat3", "empty", *CRASHED, "no_model"):
        (batch / case).mkdir()
        for file in (BROKEN / case).iterdir():
            (batch / case / file.name).write_bytes(file.read_bytes())
    (batch / "zip_slip.zip").write_bytes((BROKEN / "zip_slip" / "zip_slip.zip").read_bytes())
    (batch / "huge").mkdir()
    huge_notebook(batch / "huge" / "CNNMNIST.ipynb")
    zip_bomb(batch / "bomb.zip")  # over the size limit for one file
    zip_bomb(batch / "dense_bomb.zip", expanded_mib=90, level=9)  # under it, but inflating 1,000 times
    non_utf8_name(batch, NON_UTF8, (REFERENCE / "CNNMNIST.ipynb").read_bytes())
    rubric = _cnn_only_rubric(root / "dl2025-a2-broken.yaml")
    out = root / "out"
    setup = prepare_setup(rubric, data, out, sandbox=_sandbox())
    events: list[ProgressEvent] = []
    summary = grade_batch(batch, setup, jobs=2, on_event=events.append)
    return {"root": root, "batch": batch, "rubric": rubric, "data": data, "setup": setup, "summary": summary,
            "events": events, "reports": {r.student: r for r in summary.reports}}


def _failures(report) -> dict[str, str]:
    return {c.check: c.message for t in report.tasks for c in t.checks if c.status != "passed"}


def _gradebook(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as stream:
        return {row["student"]: row for row in csv.DictReader(stream)}


def test_the_whole_batch_is_graded(graded) -> None:
    summary, reports = graded["summary"], graded["reports"]
    assert sorted(reports) == sorted(
        ["reference", "zip_slip", "no_model", *CRASHED, "invalid_json", "nbformat3", "empty", "huge", "bomb", "dense_bomb",
         "m\\xfcller"]
    )
    assert (summary.graded, summary.reused, summary.failed_to_load) == (5, 0, 7)


@pytest.mark.parametrize("student", ["reference", "zip_slip"])
def test_good_submissions_are_unaffected(graded, student) -> None:
    report = graded["reports"][student]
    assert _failures(report) == {}
    assert report.score == report.points == CNN_POINTS


@pytest.mark.parametrize("student", sorted(REFUSED))
def test_refused_submissions_say_why_everywhere(graded, student) -> None:
    out = graded["setup"].out_dir
    report = graded["reports"][student]
    expected = REFUSED[student]
    reason = report.load_failure
    assert expected.fullmatch(reason) if isinstance(expected, re.Pattern) else reason == expected, reason
    assert report.score == 0.0 and report.points == CNN_POINTS
    name = SOURCE_NAME.get(student, student)
    assert [t.note for t in report.tasks] == [f"not graded: {name} could not be loaded"]
    folder = out / "students" / safe_name(student)
    assert json.loads((folder / "report.json").read_text(encoding="utf-8"))["load_failure"] == reason
    assert f"Could not be graded:</strong> {escape(reason)}" in (folder / "index.html").read_text(encoding="utf-8")
    row = _gradebook(out)[student]
    assert (row["problem"], float(row["total"])) == (reason, 0.0)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f"students/{safe_name(student)}/index.html" in index and escape(reason) in index


@pytest.mark.parametrize("student", sorted(CRASHED))
def test_a_dying_kernel_fails_its_checks_with_the_reason(graded, student) -> None:
    report = graded["reports"][student]
    (execution,) = report.executions
    assert (execution.cells_run, execution.cells_total) == (5, 8)
    assert [(e.cell, e.ename, e.source_excerpt) for e in execution.errors] == [(4, "DeadKernelError", CRASHED[student])]
    failures = _failures(report)
    crash = CRASH_MESSAGES[student]
    assert failures.pop("runs_without_error") == f"{crash} in cell 5; 3 of 8 cells did not run"
    assert set(failures.values()) == {f"your code did not finish: {crash} in cell 5, so no model could be inspected"}
    earned = {c.check: c.score / c.points for t in report.tasks for c in t.checks if c.score > 0}
    # credit for the 4 cells that ran cleanly before the crash, none for the crashing cell or the 3 after it
    assert earned == {"runs_without_error": 4 / 8, "within_budget": 1.0}
    assert report.score < 2.0


def test_a_module_without_a_model(graded) -> None:
    report = graded["reports"]["no_model"]
    (execution,) = report.executions
    assert execution.source == "CNNMNIST.py" and execution.errors == ()
    failures = _failures(report)
    assert "runs_without_error" not in failures
    assert set(failures) == {"architecture_matches", "parameter_count", "feature_width", "output_kind", "loss_choice",
                             "test_accuracy", "per_class_accuracy", "forward_consistent"}
    assert set(failures.values()) == {"no PyTorch model (nn.Module) was found after running your code"}
    page = (graded["setup"].out_dir / "students" / "no_model" / "index.html").read_text(encoding="utf-8")
    assert "no PyTorch model (nn.Module) was found after running your code" in page


def test_a_zip_entry_climbing_out_writes_nothing_outside_staging(graded) -> None:
    root, out = graded["root"], graded["setup"].out_dir
    assert sorted(p for p in root.rglob("x") if p.is_file()) == []
    assert not (root.parent / "x").exists() and not (out.parent / "x").exists()
    assert sorted(p.name for p in (out / "staging" / "zip_slip").iterdir()) == ["CNNMNIST.ipynb"]
    warning = "skipped zip entry '../../x' in zip_slip.zip: its path leaves the submission folder"
    assert LoadWarning("zip_slip", warning) in graded["events"]
    assert graded["reports"]["zip_slip"].load_warnings == (warning,)
    assert _gradebook(out)["zip_slip"]["warnings"] == warning
    assert {e["student"]: e.get("warnings") for e in read_grading_log(out / GRADING_LOG)}["zip_slip"] == [warning]


def test_refused_inputs_leave_nothing_staged(graded) -> None:
    staged = sorted(p.name for p in (graded["setup"].out_dir / "staging").iterdir())
    assert staged == sorted(["reference", "zip_slip", "no_model", *CRASHED])
    total = sum(p.stat().st_size for p in (graded["setup"].out_dir / "staging").rglob("*") if p.is_file())
    assert total < 1024 * 1024  # neither the bomb nor the 200 MB notebook was copied


def test_index_gradebook_and_log_list_everyone(graded) -> None:
    out, reports = graded["setup"].out_dir, graded["reports"]
    assert set(_gradebook(out)) == set(reports)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f"students/{safe_name(s)}/index.html" in index for s in reports)
    logged = read_grading_log(out / GRADING_LOG)  # gradings only: refused submissions have no content to log
    assert sorted(e["student"] for e in logged) == sorted(["reference", "zip_slip", "no_model", *CRASHED])
    assert {e["student"]: e["score"] for e in logged}["reference"] == CNN_POINTS


def test_the_cli_reports_the_same_batch(graded) -> None:
    out = graded["setup"].out_dir
    command = [sys.executable, "-m", "harness", "grade", str(graded["batch"]), "--rubric", str(graded["rubric"]),
               "--out", str(out), "--data", str(graded["data"]), "--jobs", "2"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "  reference: 13.0 / 13.0 (unchanged, not regraded)" in lines
    assert "  empty: 0.0 / 13.0" in lines and "  m\\xfcller: 0.0 / 13.0" in lines
    assert "  zip_slip: warning: skipped zip entry '../../x' in zip_slip.zip: its path leaves the submission folder" in lines
    assert "graded 0, unchanged 5, could not load 7" in done.stdout
    assert len(read_grading_log(out / GRADING_LOG)) == 5  # nothing graded again, nothing logged twice
