"""A TA's mistakes are errors before anything runs, not a class of silent zeros."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.pipeline import grade_batch, prepare_setup
from tests.test_benchmark_verification import RunsNothing

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"
SAMPLE = ROOT / "submissions" / "dl2025-a2" / "reference"


def _batch(folder: Path, files: dict[str, list[str]]) -> Path:
    for student, names in files.items():
        (folder / student).mkdir(parents=True)
        for name in names:
            shutil.copy(SAMPLE / name, folder / student / name)
    return folder


def test_a_rubric_none_of_whose_files_is_handed_in_is_refused(tmp_path: Path, small_data: Path) -> None:
    batch = _batch(tmp_path / "batch", {"alice": ["vae.ipynb"], "bob": ["autoencoders.ipynb", "vae.ipynb"]})
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing())
    with pytest.raises(HarnessError) as refused:
        grade_batch(batch, setup)
    assert str(refused.value) == (
        "none of the 2 submission(s) holds any file the rubric dl2025-a2-part1 grades (CNNMNIST.ipynb, "
        "feedForwardMNIST.ipynb); they hold autoencoders.ipynb, vae.ipynb. Is this the right rubric for this folder?"
    )


def test_a_submission_that_could_not_be_loaded_may_be_the_rubrics(tmp_path: Path, small_data: Path) -> None:
    batch = _batch(tmp_path / "batch", {"alice": ["vae.ipynb"]})
    (batch / "bob").mkdir()
    (batch / "bob" / "CNNMNIST.ipynb").write_bytes(b"")  # refused when loading: empty
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing())
    summary = grade_batch(batch, setup)
    assert [r.student for r in summary.reports] == ["alice", "bob"] and summary.failed_to_load == 1


def test_one_matching_submission_is_enough(tmp_path: Path, small_data: Path) -> None:
    batch = _batch(tmp_path / "batch", {"alice": ["vae.ipynb"], "bob": ["CNNMNIST.ipynb"]})
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing())
    summary = grade_batch(batch, setup)
    assert [r.student for r in summary.reports] == ["alice", "bob"]


def test_manual_scores_for_an_unknown_student_are_refused(tmp_path: Path, small_data: Path) -> None:
    batch = _batch(tmp_path / "batch", {"alice": ["CNNMNIST.ipynb"]})
    scores = tmp_path / "scores.csv"
    scores.write_text("student,ff-description\nalcie,2\n", encoding="utf-8")
    setup = prepare_setup(RUBRIC, small_data, tmp_path / "out", sandbox=RunsNothing(), manual_csv=scores)
    with pytest.raises(HarnessError) as refused:
        grade_batch(batch, setup)
    assert str(refused.value) == (
        "the manual scores name student(s) who are neither in this batch nor graded before: 'alcie' (did you mean "
        "'alice'?); correct the student column of the manual scores file"
    )


def test_a_manual_scores_file_that_does_not_exist_is_an_error(tmp_path: Path, small_data: Path) -> None:
    batch = _batch(tmp_path / "batch", {"alice": ["CNNMNIST.ipynb"]})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["grade", str(batch), "--rubric", str(RUBRIC), "--out", str(out),
                                      "--data", str(small_data), "--manual", str(tmp_path / "scores.csv")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"{tmp_path / 'scores.csv'}: no such manual scores file" in said
    assert not out.exists()
