"""Names with lone surrogates made by a student's code are graded and stored like any other, and reruns work."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from typer.testing import CliRunner

from harness.cli import app

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = """\
assignment: surrogate-names
title: "A CNN task with absolute bars only (no calibration)"
datasets: [mnist]
tasks:
  - id: cnn
    title: "1.3 CNN on MNIST"
    source: CNNMNIST.ipynb
    model: {prefer: [Net], spec: "reference.classifiers:CNN", dataset: mnist}
    budget: {wall_s: 300}
    checks:
      - {check: runs_without_error, points: 1}
      - {check: architecture_matches, points: 2}
      - {check: parameter_count, equals: 12810, points: 1}
"""


def test_a_model_under_a_surrogate_name_does_not_crash_the_store(tmp_path: Path, small_data: Path) -> None:
    student = tmp_path / "batch" / "alice"
    student.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("import torch.nn as nn"),
        # The source is plain ASCII; the name the model is kept under holds the lone surrogate U+DCFF.
        nbformat.v4.new_code_cell(
            "globals()['m\\udcff'] = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(dim=1))"
        ),
    ]
    nbformat.write(notebook, student / "CNNMNIST.ipynb")
    out = tmp_path / "out"
    rubric = tmp_path / "surrogate-names.yaml"
    rubric.write_text(RUBRIC, encoding="utf-8")
    command = ["grade", str(tmp_path / "batch"), "--rubric", str(rubric), "--out", str(out), "--data", str(small_data)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "graded 1, unchanged 0, could not load 0" in first.output
    report = json.loads((out / "students" / "alice" / "report.json").read_text(encoding="utf-8"))
    cnn = next(task for task in report["tasks"] if task["task"] == "cnn")
    statuses = {check["check"]: check["status"] for check in cnn["checks"]}
    assert statuses == {"runs_without_error": "passed", "architecture_matches": "failed", "parameter_count": "failed"}
    architecture = next(check for check in cnn["checks"] if check["check"] == "architecture_matches")
    assert architecture["details"]["model"] == "graded `m\\udcff` (an instance of Sequential, not trained: it was never called and no optimizer stepped it)"  # named readably
    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0, second.output
    assert "graded 0, unchanged 1, could not load 0" in second.output
