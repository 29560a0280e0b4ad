"""When the grader cannot prepare a run (an environment that cannot import torch, a runner that will not start),
the student reads that it is not their code, and the checks are grader errors for a TA, not failures."""

from __future__ import annotations

import json
from pathlib import Path

from harness.engines.runner import error_entry, new_record
from harness.loading import load_submission
from harness.models import ExecutionResult, SandboxResult
from harness.pipeline import classify_run, grade_submission, prepare_setup

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"
SAMPLE = ROOT / "submissions" / "dl2025-a2" / "reference"


class SetupFails:
    """A sandbox whose runner records that its setup failed (the hidden first cell could not import torch)."""

    isolated, warning = True, ""

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        records = Path(command[command.index("--records") + 1])  # the runner's own folder
        records.mkdir(parents=True, exist_ok=True)
        record = new_record(command[command.index("--source") + 1], command[command.index("--kind") + 1])
        record["setup_error"] = "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'torch'\n"
        (records / "run.json").write_text(json.dumps(record), encoding="utf-8")
        return SandboxResult("ok", "exit code 0", 0, 0.5, 0.4, 0, "", "", True)


class RunnerWillNotStart:
    """A sandbox where the runner dies before writing anything (the interpreter cannot load the harness)."""

    isolated, warning = True, ""

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        stderr = "Traceback (most recent call last):\nImportError: libtorch_cpu.so: cannot open shared object file\n"
        return SandboxResult("error", "exit code 1", 1, 0.3, 0.2, 0, "", stderr, True)


def _grade(tmp_path: Path, small_data: Path, sandbox):
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=sandbox, profile="fast")
    submission = load_submission(SAMPLE / "CNNMNIST.ipynb", tmp_path / "staging", student="ann")
    report = grade_submission(submission, setup)
    return [c for t in report.tasks if t.task == "cnn" for c in t.checks]


def test_a_failed_setup_is_the_graders_error_not_the_students(tmp_path: Path, small_data: Path) -> None:
    checks = _grade(tmp_path, small_data, SetupFails())
    assert checks and {c.status for c in checks} == {"error"}
    assert checks[0].message == (
        "the grader could not prepare the run of CNNMNIST.ipynb (not a problem with your code: a TA will look): "
        "ModuleNotFoundError: No module named 'torch'"
    )
    assert not any("did not finish" in c.message for c in checks)


def test_a_runner_that_never_started_is_the_graders_error(tmp_path: Path, small_data: Path) -> None:
    checks = _grade(tmp_path, small_data, RunnerWillNotStart())
    assert {c.status for c in checks} == {"error"}
    assert checks[0].message == (
        "the grader could not prepare the run of CNNMNIST.ipynb (not a problem with your code: a TA will look): the "
        "runner stopped before your code started (exit code 1): ImportError: libtorch_cpu.so: cannot open shared "
        "object file"
    )


def _ran(tmp_path: Path, record: dict | None, probe: str | None = None) -> ExecutionResult:
    """An execution of q1.py whose artifacts folder holds ``record`` as run.json (and ``probe`` as probe.json)."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(parents=True)
    if record is not None:
        (artifacts / "run.json").write_text(json.dumps(record), encoding="utf-8")
    if probe is not None:
        (artifacts / "probe.json").write_text(probe, encoding="utf-8")
    return ExecutionResult("q1.py", SandboxResult("ok", "exit code 0", 0, 0.5, 0.4, 0, "", "", True), artifacts_dir=artifacts)


def test_one_classifier_reads_a_runs_records_once_and_says_what_they_show(tmp_path: Path) -> None:
    script = "import torch\nimport tqdm\nmodel = train()\n"
    died = {**new_record("q1.py", "script"), "cells_total": 1,
            "errors": [error_entry(-1, "ModuleNotFoundError", "No module named 'tqdm'", "line 2: import tqdm")]}
    outcome = classify_run(_ran(tmp_path / "died", died), script)
    assert outcome.records is not None and outcome.records.run.errors[0].ename == "ModuleNotFoundError"
    assert (outcome.unusable, outcome.setup_problem) == ("", "")
    assert outcome.died == "your script stopped at its start (ModuleNotFoundError: No module named 'tqdm') before doing any work"

    failed = {**new_record("q1.py", "script"), "setup_error": "Traceback ...\nModuleNotFoundError: No module named 'torch'"}
    assert classify_run(_ran(tmp_path / "setup", failed), script).setup_problem == (
        "the grader could not prepare the run of q1.py (not a problem with your code: a TA will look): "
        "ModuleNotFoundError: No module named 'torch'"
    )

    forged = classify_run(_ran(tmp_path / "forged", new_record("q1.py", "script"), '{"format": 1, "models": "all"}'))
    assert forged.records is None and forged.unusable == "probe.json: models is str, expected a list"
