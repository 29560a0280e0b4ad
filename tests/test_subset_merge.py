"""Grading late hand-ins into an output folder adds them to the class: the index and gradebook keep the others."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from harness.pipeline import grade_batch, prepare_setup
from tests.test_benchmark_verification import RunsNothing

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "tests" / "fixtures" / "rubrics" / "dl2025-a2-part1.yaml"
SAMPLE = ROOT / "submissions" / "dl2025-a2" / "reference"


def _batch(folder: Path, students: list[str]) -> Path:
    for student in students:
        (folder / student).mkdir(parents=True)
        shutil.copy(SAMPLE / "CNNMNIST.ipynb", folder / student / "CNNMNIST.ipynb")
        (folder / student / "notes.py").write_text(f"# {student}\n", encoding="utf-8")  # distinct content
    return folder


def _gradebook(out: Path) -> list[str]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as stream:
        return [row["student"] for row in csv.DictReader(stream)]


def test_a_late_batch_is_added_to_the_class_not_put_in_its_place(tmp_path: Path, small_data: Path) -> None:
    out = tmp_path / "out"
    first = grade_batch(_batch(tmp_path / "on-time", ["alice", "bob"]),
                        prepare_setup(RUBRIC, small_data, out, sandbox=RunsNothing()))
    assert first.carried == ()
    late = grade_batch(_batch(tmp_path / "late", ["carl", "bob"]), prepare_setup(RUBRIC, small_data, out,
                                                                                   sandbox=RunsNothing()))
    assert [r.student for r in late.reports] == ["bob", "carl"] and late.carried == ("alice",)
    assert _gradebook(out) == ["alice", "bob", "carl"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f'href="students/{name}/index.html"' in index for name in ("alice", "bob", "carl"))
    with open(out / "manual-scores.csv", newline="", encoding="utf-8") as stream:
        assert [row["student"] for row in csv.DictReader(stream)] == ["alice", "bob", "carl"]


def test_reports_of_another_profile_are_not_mixed_in(tmp_path: Path, small_data: Path) -> None:
    out = tmp_path / "out"
    grade_batch(_batch(tmp_path / "full", ["alice"]), prepare_setup(RUBRIC, small_data, out, sandbox=RunsNothing()))
    fast = grade_batch(_batch(tmp_path / "fast", ["bob"]),
                       prepare_setup(RUBRIC, small_data, out, sandbox=RunsNothing(), profile="fast"))
    assert fast.carried == () and _gradebook(out) == ["bob"]
