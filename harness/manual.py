"""Manual scores: the CSV in which TAs grade the written answers of a rubric's manual tasks.

The file has a ``student`` column, then for each manual task a ``<task id>``
column (the points) and a ``<task id> comment`` column, and one row per
student::

    student,cnn-why-800,cnn-why-800 comment
    smithjohn_12345,2,
    doejane_67890,1,"explains Flatten, not the 800"
    leeanna_11111,,

An empty score cell means "not graded yet".

Where a batch has points held for a TA's review (checks resting on predictions the grader
could not verify, ``harness.scoring.Review``), the template also gains, for each automatic
task concerned, a ``<task id> review`` column (``release`` or ``reject``; empty: not reviewed
yet) and a ``<task id> review comment`` column, shown to the student. Rescoring after
the file changes reruns nothing.

Scores may use a decimal comma
(``1,5``), and the file may be separated by ``;`` (as spreadsheets in many
locales save it). Problems raise :class:`ManualScoresError`, a
:class:`~harness.errors.HarnessError` (the CSV is not the rubric, so not a
RubricError), naming the file, the row as a spreadsheet numbers it (the header
is row 1) and the column.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError
from harness.rubric import Rubric
from harness.scoring import ManualScore, Review

__all__ = ["ManualScore", "ManualScoresError", "Review", "read_manual_scores", "write_manual_template"]

STUDENT = "student"
COMMENT = " comment"
REVIEW = " review"
DECISIONS = {"release": True, "reject": False}
"""What a review cell may hold (any case), and whether the held points then count."""

_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


class ManualScoresError(HarnessError):
    """The manual-scores CSV cannot be read; the message names the file, row and column."""


def _column_letter(index: int) -> str:
    """Spreadsheet column letter of a 0-based column index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def _where(path: Path, row: int, column: int | None = None, name: str | None = None) -> str:
    """``scores.csv, row 4, column C ('cnn-why-800')``."""
    text = f"{path}, row {row}"
    if column is not None:
        text += f", column {_column_letter(column)}"
        if name:
            text += f" ({name!r})"
    return text


def _read_rows(path: Path) -> list[list[str]]:
    """Every row of the CSV as stripped strings, header first; no type guessing."""
    import pandas as pd  # here: reading a manual-scores file is the only use, and pandas takes a second to import

    try:
        with open(path, encoding="utf-8-sig") as handle:
            first_line = handle.readline()
        # The header holds only 'student' and task ids, so it tells the separator: ';' as spreadsheets
        # in many locales save, else ','.
        sep = ";" if ";" in first_line and "," not in first_line else ","
        frame = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            sep=sep,
            encoding="utf-8-sig",
            skip_blank_lines=False,  # keep row numbers as a spreadsheet shows them
        )
    except FileNotFoundError:
        raise ManualScoresError(f"{path}: the manual-scores file does not exist") from None
    except pd.errors.EmptyDataError:
        raise ManualScoresError(
            f"{path}: the manual-scores file is empty (expected a header row starting with 'student')"
        ) from None
    except (pd.errors.ParserError, csv.Error, UnicodeDecodeError, OSError) as e:
        detail = str(e).strip().removeprefix("Error tokenizing data. C error: ")
        raise ManualScoresError(f"{path}: not a readable CSV file ({detail})") from None
    return [[cell.strip() for cell in row] for row in frame.fillna("").astype(str).values.tolist()]


def _columns(rubric: Rubric, review: Iterable[str] = ()) -> list[str]:
    """The template's columns for this rubric, with review columns for the automatic tasks in ``review``."""
    columns = [STUDENT]
    for task in rubric.manual_tasks:
        columns += [task.id, task.id + COMMENT]
    wanted = set(review)
    for task in rubric.automatic_tasks:
        if task.id in wanted:
            columns += [task.id + REVIEW, task.id + REVIEW + COMMENT]
    return columns


def write_manual_template(path: str | Path, rubric: Rubric, students: Iterable[str], review: Iterable[str] = ()) -> Path:
    """Write (or extend) the manual-scores CSV for these students; existing values are never lost.

    ``review``: automatic task ids with points held for a TA's review in this class; each gains its review columns.

    An existing file keeps its rows, values and extra columns; missing rubric
    columns and missing students are added (new students after the existing
    rows, in the order given). The file is replaced atomically.
    """
    path = Path(path)
    wanted = _columns(rubric, review)
    header: list[str] = list(wanted)
    rows: list[dict[str, str]] = []
    if path.exists():
        existing = _read_rows(path)
        old_header = existing[0]
        if not old_header or old_header[0] != STUDENT:
            raise ManualScoresError(f"{_where(path, 1, 0)}: the first column must be 'student', found {old_header[:1]}")
        header = list(old_header) + [c for c in wanted if c not in old_header]
        rows = [dict(zip(old_header, row)) for row in existing[1:] if any(row)]
    known = {row.get(STUDENT, "") for row in rows}
    for student in dict.fromkeys(students):
        if student not in known:
            rows.append({STUDENT: student})
            known.add(student)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row.get(column, "") for column in header])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _parse_score(text: str) -> float | None:
    """A score cell as a number (decimal comma allowed), or None when it is not one."""
    if _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_manual_scores(path: str | Path, rubric: Rubric) -> dict[str, dict[str, ManualScore | Review]]:
    """Read TA scores: ``{student: {task id: ManualScore}}`` (an empty score cell: ``score=None``), and the reviews
    of held points: ``{student: {automatic task id: Review}}`` in the same mapping."""
    path = Path(path)
    rows = _read_rows(path)
    header = rows[0]
    points = {t.id: t.points for t in rubric.manual_tasks}
    automatic = {t.id for t in rubric.automatic_tasks}
    score_cols: dict[int, str] = {}
    comment_cols: dict[str, int] = {}
    review_cols: dict[int, str] = {}
    review_comment_cols: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    student_col: int | None = None
    for i, name in enumerate(header):
        if not name:
            if any(row[i] for row in rows[1:]):
                raise ManualScoresError(f"{_where(path, 1, i)}: this column has values but no header")
            continue
        if name in seen_names:
            raise ManualScoresError(
                f"{_where(path, 1, i, name)}: the column also appears as column {_column_letter(seen_names[name])}"
            )
        seen_names[name] = i
        if name == STUDENT:
            student_col = i
        elif name in points:
            score_cols[i] = name
        elif name.endswith(COMMENT) and name[: -len(COMMENT)] in points:
            comment_cols[name[: -len(COMMENT)]] = i
        elif name.endswith(REVIEW) and name[: -len(REVIEW)] in automatic:
            review_cols[i] = name[: -len(REVIEW)]
        elif name.endswith(REVIEW + COMMENT) and name[: -len(REVIEW + COMMENT)] in automatic:
            review_comment_cols[name[: -len(REVIEW + COMMENT)]] = i
        else:
            manual = ", ".join(points) or "none"
            raise ManualScoresError(
                f"{_where(path, 1, i, name)}: unknown column; expected 'student', for each manual task "
                f"'<task id>' and '<task id> comment' (manual tasks of {rubric.assignment}: {manual}), and for an "
                "automatic task with held points '<task id> review' and '<task id> review comment'"
            )
    if student_col is None:
        raise ManualScoresError(f"{path}, row 1: no 'student' column in the header {header}")

    scores: dict[str, dict[str, ManualScore | Review]] = {}
    first_row: dict[str, int] = {}
    for r, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        student = row[student_col]
        if not student:
            raise ManualScoresError(f"{_where(path, r, student_col, STUDENT)}: a row with scores but no student")
        if student in first_row:
            raise ManualScoresError(
                f"{_where(path, r, student_col, STUDENT)}: student {student!r} already has row {first_row[student]}"
            )
        first_row[student] = r
        entries: dict[str, ManualScore | Review] = {}
        for c, task_id in score_cols.items():
            cell = row[c]
            comment = row[comment_cols[task_id]] if task_id in comment_cols else ""
            if not cell:
                if comment:
                    entries[task_id] = ManualScore(None, comment)
                continue
            value = _parse_score(cell)
            where = _where(path, r, c, task_id)
            if value is None:
                raise ManualScoresError(f"{where}: {cell!r} is not a number")
            if value < 0:
                raise ManualScoresError(f"{where}: {cell} is negative; scores run from 0 to {points[task_id]:g}")
            if value > points[task_id]:
                raise ManualScoresError(f"{where}: {cell} is above the {points[task_id]:g} points the task is worth")
            entries[task_id] = ManualScore(value, comment)
        for task_id, c in comment_cols.items():
            if task_id not in score_cols.values() and row[c]:  # a comment column without its score column
                entries[task_id] = ManualScore(None, row[c])
        for c, task_id in review_cols.items():
            comment = row[review_comment_cols[task_id]] if task_id in review_comment_cols else ""
            decision = row[c].casefold()
            if decision and decision not in DECISIONS:
                raise ManualScoresError(
                    f"{_where(path, r, c, task_id + REVIEW)}: {row[c]!r} is no decision; write 'release' (the held "
                    "points count) or 'reject' (they are lost), or leave the cell empty until you have reviewed it"
                )
            if decision or comment:
                entries[task_id] = Review(DECISIONS.get(decision), comment)
        scores[student] = entries
    return scores
