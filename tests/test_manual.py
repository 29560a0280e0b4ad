"""The manual-scores CSV: a template for every student and manual task, TA values kept, errors by row and column."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.manual import ManualScore, ManualScoresError, Review, read_manual_scores, write_manual_template
from harness.rubric import Rubric, parse_rubric

RUBRIC = """\
assignment: dl2025-a2
title: Deep Learning 2025, Assignment 2
tasks:
  - id: cnn
    title: CNN
    source: CNNMNIST.ipynb
    checks: [{check: parameter_count, equals: 12810, points: 1}]
  - {id: ff-why, title: "Why ReLU?", manual: {points: 1}}
  - {id: cnn-why-800, title: "Why 800 features?", manual: {points: 2}}
"""

HEADER = ["student", "ff-why", "ff-why comment", "cnn-why-800", "cnn-why-800 comment"]


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return parse_rubric(RUBRIC, "dl2025-a2.yaml")


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_template_has_every_student_and_manual_task(tmp_path: Path, rubric: Rubric) -> None:
    path = write_manual_template(tmp_path / "grading" / "manual.csv", rubric, ["smithjohn_12345", "doejane_67890"])
    assert rows(path) == [HEADER, ["smithjohn_12345", "", "", "", ""], ["doejane_67890", "", "", "", ""]]
    # An untouched template reads as "nothing graded yet".
    assert read_manual_scores(path, rubric) == {"smithjohn_12345": {}, "doejane_67890": {}}


def test_rewriting_keeps_what_a_ta_filled_in(tmp_path: Path, rubric: Rubric) -> None:
    path = write_manual_template(tmp_path / "manual.csv", rubric, ["a_1", "b_2"])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER[:3] + ["my notes"])  # a TA's own column; cnn-why-800 columns deleted
        writer.writerow(["a_1", "1", "clear", "check again"])
        writer.writerow(["b_2", "0,5", "half, see margin", ""])
        writer.writerow(["gone_9", "1", "", "withdrew"])
    write_manual_template(path, rubric, ["c_3", "a_1", "b_2", "c_3"])

    assert rows(path) == [
        HEADER[:3] + ["my notes", "cnn-why-800", "cnn-why-800 comment"],
        ["a_1", "1", "clear", "check again", "", ""],
        ["b_2", "0,5", "half, see margin", "", "", ""],
        ["gone_9", "1", "", "withdrew", "", ""],
        ["c_3", "", "", "", "", ""],
    ]


def test_reading_scores_and_comments(tmp_path: Path, rubric: Rubric) -> None:
    path = tmp_path / "manual.csv"
    path.write_text(
        "student,ff-why,ff-why comment,cnn-why-800,cnn-why-800 comment\n"
        'a_1,1,clear,"1,5","explains Flatten,\nnot the 800"\n'
        "\n"
        "b_2,,ask in class,2,\n"
        "c_3,,,,\n",
        encoding="utf-8",
    )
    assert read_manual_scores(path, rubric) == {
        "a_1": {"ff-why": ManualScore(1.0, "clear"), "cnn-why-800": ManualScore(1.5, "explains Flatten,\nnot the 800")},
        "b_2": {"ff-why": ManualScore(None, "ask in class"), "cnn-why-800": ManualScore(2.0, "")},
        "c_3": {},
    }


def test_semicolon_separated_spreadsheet_export(tmp_path: Path, rubric: Rubric) -> None:
    path = tmp_path / "manual.csv"
    path.write_bytes("\ufeffstudent;cnn-why-800\r\na_1;1,5\r\nb_2; 2 \r\n".encode())  # BOM, CRLF, decimal comma
    assert read_manual_scores(path, rubric) == {"a_1": {"cnn-why-800": ManualScore(1.5)}, "b_2": {"cnn-why-800": ManualScore(2.0)}}


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("student,ff-why\na_1,1\nb_2,good\n", "row 3, column B ('ff-why')", "'good' is not a number"),
        ("student,ff-why\na_1,nan\n", "row 2, column B ('ff-why')", "'nan' is not a number"),
        ("student,ff-why,cnn-why-800\na_1,1,-1\n", "row 2, column C ('cnn-why-800')", "-1 is negative; scores run from 0 to 2"),
        ("student,ff-why,cnn-why-800\na_1,1,2.5\n", "row 2, column C ('cnn-why-800')", "2.5 is above the 2 points the task is worth"),
        ("student,ff-why,cnn-why-80\n", "row 1, column C ('cnn-why-80')", "unknown column; expected 'student'"),
        ("student,cnn\n", "row 1, column B ('cnn')", "manual tasks of dl2025-a2: ff-why, cnn-why-800"),
        ("student,ff-why\na_1,1\n\nb_2,0\na_1,0\n", "row 5, column A ('student')", "student 'a_1' already has row 2"),
        ("student,ff-why\n,1\n", "row 2, column A ('student')", "a row with scores but no student"),
        ("student,ff-why,ff-why\n", "row 1, column C ('ff-why')", "the column also appears as column B"),
        ("student,ff-why,\na_1,1,x\n", "row 1, column C", "this column has values but no header"),
        ("ff-why,ff-why comment\n", "row 1", "no 'student' column"),
        ("student,cnn review\na_1,maybe\n", "row 2, column B ('cnn review')",
         "'maybe' is no decision; write 'release' (the held points count) or 'reject' (they are lost), or leave the "
         "cell empty until you have reviewed it"),
        ("student,ff-why review\n", "row 1, column B ('ff-why review')", "'<task id> review' and '<task id> review comment'"),
    ],
)
def test_errors_name_file_row_and_column(tmp_path: Path, rubric: Rubric, text: str, where: str, reason: str) -> None:
    path = tmp_path / "manual.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManualScoresError) as info:
        read_manual_scores(path, rubric)
    message = str(info.value)
    assert message.startswith(f"{path}, {where}: "), message
    assert reason in message
    assert isinstance(info.value, HarnessError)


def test_unreadable_files(tmp_path: Path, rubric: Rubric) -> None:
    with pytest.raises(ManualScoresError, match="the manual-scores file does not exist"):
        read_manual_scores(tmp_path / "missing.csv", rubric)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManualScoresError, match=r"empty\.csv: the manual-scores file is empty"):
        read_manual_scores(empty, rubric)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("student,ff-why\na_1,1,2\n")
    with pytest.raises(ManualScoresError, match=r"ragged\.csv: not a readable CSV file \(Expected 2 fields in line 2, saw 3\)"):
        read_manual_scores(ragged, rubric)


def test_template_refuses_to_overwrite_a_file_that_is_not_a_scores_sheet(tmp_path: Path, rubric: Rubric) -> None:
    path = tmp_path / "manual.csv"
    path.write_text("name,grade\nx,1\n")
    with pytest.raises(ManualScoresError, match=r"row 1, column A: the first column must be 'student'"):
        write_manual_template(path, rubric, ["a_1"])
    assert path.read_text() == "name,grade\nx,1\n"


def test_review_columns_for_tasks_with_held_points(tmp_path: Path, rubric: Rubric) -> None:
    """A batch with points held for a TA's review gains, per task concerned, a decision and a comment column."""
    path = write_manual_template(tmp_path / "manual.csv", rubric, ["a_1", "b_2", "c_3"], review=["cnn"])
    assert rows(path)[0] == [*HEADER, "cnn review", "cnn review comment"]
    text = path.read_text(encoding="utf-8").splitlines()
    text[1] = "a_1,,,,,Release,"
    text[2] = "b_2,,,,,reject,the ghost class is not the network the notebook trained"
    text[3] = "c_3,,,,,,looked at the code; waiting for the student"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    assert read_manual_scores(path, rubric) == {
        "a_1": {"cnn": Review(True)},
        "b_2": {"cnn": Review(False, "the ghost class is not the network the notebook trained")},
        "c_3": {"cnn": Review(None, "looked at the code; waiting for the student")},
    }
    write_manual_template(path, rubric, ["a_1", "d_4"])  # a later batch without held points keeps the decisions
    assert read_manual_scores(path, rubric)["b_2"] == {"cnn": Review(False, "the ghost class is not the network the notebook trained")}
