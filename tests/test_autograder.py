"""The Gradescope autograder entry (`harness/gradescope/run_autograder`, `gradebench autograde`) on a temporary folder.

It grades the one submission found where Gradescope puts it and writes ``results.json`` where Gradescope
reads it; the test passes those paths, the rubric through a config file, and checks the JSON against the
autograder specification (``tests/test_export.py``, ``GRADESCOPE_SCHEMA``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.test_broken import _cnn_only_rubric
from tests.test_export import GRADESCOPE_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "harness" / "gradescope" / "run_autograder"
REFERENCE = ROOT / "submissions" / "dl2025-a2" / "reference"
CNN_POINTS = 13.0


def _autograder_folder(root: Path, notebook: bytes) -> Path:
    """A folder laid out like Gradescope's /autograder: source (config and rubric), submission, results."""
    (root / "source" / "rubrics").mkdir(parents=True)
    _cnn_only_rubric(root / "source" / "rubrics" / "cnn.yaml")
    (root / "source" / "gradebench.yaml").write_text("rubric: rubrics/cnn.yaml\nprofile: fast\n", encoding="utf-8")
    (root / "submission").mkdir()
    (root / "submission" / "CNNMNIST.ipynb").write_bytes(notebook)
    (root / "submission_metadata.json").write_text(
        json.dumps({"users": [{"name": "Ann Gradescope", "email": "ann@example.org", "id": "7"}]}), encoding="utf-8"
    )
    return root


@pytest.mark.e2e
def test_run_autograder_grades_the_submission_and_writes_results_json(tmp_path: Path, small_data: Path) -> None:
    folder = _autograder_folder(tmp_path / "autograder", (REFERENCE / "CNNMNIST.ipynb").read_bytes())
    results = folder / "results" / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "GRADEBENCH_RUBRIC"}
    env.update(GRADEBENCH=str(Path(sys.executable).with_name("gradebench")),
               GRADEBENCH_AUTOGRADER_CONFIG=str(folder / "source" / "gradebench.yaml"))
    sandbox = "bubblewrap" if os.environ.get("CI") else "auto"
    done = subprocess.run(
        ["bash", str(SCRIPT), "--submission", str(folder / "submission"), "--results", str(results),
         "--data", str(small_data), "--metadata", str(folder / "submission_metadata.json"), "--sandbox", sandbox],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Ann Gradescope: {CNN_POINTS:g} / {CNN_POINTS:g} points; results: {results}" in done.stdout

    document = json.loads(results.read_text(encoding="utf-8"))
    jsonschema.validate(document, GRADESCOPE_SCHEMA)
    assert document["score"] == CNN_POINTS
    assert document["output"] == f"{CNN_POINTS:g} / {CNN_POINTS:g} points (fast profile)."
    assert document["execution_time"] >= 1
    assert {t["status"] for t in document["tests"]} == {"passed"}
    assert sum(t["max_score"] for t in document["tests"]) == CNN_POINTS
    assert document["tests"][0]["name"] == "1.3 CNN on MNIST: runs_without_error"
    assert document["tests"][0]["number"] == "1.1"


def test_autograde_without_a_rubric_still_writes_results_json_saying_why(tmp_path: Path, small_data: Path) -> None:
    folder = _autograder_folder(tmp_path / "autograder", b"{}")
    (folder / "source" / "gradebench.yaml").unlink()
    results = folder / "results" / "results.json"
    result = CliRunner().invoke(
        app, ["autograde", "--submission", str(folder / "submission"), "--results", str(results),
              "--config", str(folder / "source" / "gradebench.yaml"), "--data", str(small_data)],
        env={"GRADEBENCH_RUBRIC": None},
    )
    assert result.exit_code == 2, result.output
    document = json.loads(results.read_text(encoding="utf-8"))
    jsonschema.validate(document, GRADESCOPE_SCHEMA)
    assert document["score"] == 0
    assert document["output"] == (
        "The autograder could not grade this submission (a grader fault, not yours; a TA will look): no rubric: "
        f"pass --rubric, set GRADEBENCH_RUBRIC, or name it in {folder / 'source' / 'gradebench.yaml'} "
        "(rubric: rubrics/<assignment>.yaml)"
    )


def test_autograde_scores_an_unloadable_submission_zero_with_the_reason(tmp_path: Path, small_data: Path) -> None:
    folder = _autograder_folder(tmp_path / "autograder", b"")  # an empty notebook: refused at loading, nothing runs
    results = folder / "results" / "results.json"
    result = CliRunner().invoke(
        app, ["autograde", "--submission", str(folder / "submission"), "--results", str(results),
              "--config", str(folder / "source" / "gradebench.yaml"), "--data", str(small_data),
              "--metadata", str(folder / "submission_metadata.json"), "--sandbox", "plain"],
        env={"GRADEBENCH_RUBRIC": None},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(results.read_text(encoding="utf-8"))
    jsonschema.validate(document, GRADESCOPE_SCHEMA)
    assert document["score"] == 0
    assert document["output"] == (
        f"0 / {CNN_POINTS:g} points (fast profile). "
        "Your submission could not be graded: CNNMNIST.ipynb is empty (0 bytes)"
    )
    assert [t["output"] for t in document["tests"]] == ["not graded: submission could not be loaded"]


def test_calibrate_only_without_a_reference_says_how_to_name_one(tmp_path: Path, small_data: Path) -> None:
    folder = _autograder_folder(tmp_path / "autograder", b"{}")
    config = folder / "source" / "gradebench.yaml"
    results = folder / "results" / "results.json"
    result = CliRunner().invoke(
        app, ["autograde", "--config", str(config), "--data", str(small_data), "--results", str(results),
              "--calibrate-only"],
        env={"GRADEBENCH_RUBRIC": None},
    )
    assert result.exit_code == 2, result.output
    said = "".join(result.output.split())  # rich wraps long lines, even inside a path
    assert "".join(f"no reference submission to calibrate with: name it in {config} (reference: DIR)".split()) in said
    assert not results.exists()  # set-up time: there is no submission to report on
