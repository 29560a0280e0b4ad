"""The results store: every graded submission in one SQLite file, so a batch resumes and nothing is graded twice.

A report is keyed by (content hash, rubric hash, profile): the same files under
the same rubric file and profile are graded once. Each ``put`` is its own
committed transaction, so a batch killed at any point keeps every report it
finished. The file is in WAL mode with a busy timeout, so several worker
processes can write to it at once (each opens its own :class:`ResultStore`).
The store only stores: scoring happens before, in :mod:`harness.scoring`.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import models
from harness.errors import StoreError
from harness.models import GradeReport
from harness.sqlitefile import open_database

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
"""How long a write waits for another process's write to finish before failing."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    content_hash TEXT NOT NULL,
    rubric_hash  TEXT NOT NULL,
    profile      TEXT NOT NULL,
    student      TEXT NOT NULL,
    assignment   TEXT NOT NULL,
    score        REAL NOT NULL,
    points       REAL NOT NULL,
    report       TEXT NOT NULL,  -- the GradeReport as JSON (report_to_dict)
    created      TEXT NOT NULL,  -- UTC, ISO 8601, when this report was stored
    PRIMARY KEY (content_hash, rubric_hash, profile)
);
"""
_COLUMNS = {"content_hash", "rubric_hash", "profile", "student", "assignment", "score", "points", "report", "created"}
_INDEX = "CREATE INDEX IF NOT EXISTS reports_by_rubric ON reports (rubric_hash, student);"


# -- GradeReport <-> JSON-ready dict ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a value: dataclasses as dicts, tuples as lists, Paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("stored", True)  # what is only passed on in memory (ExecutionResult.run)
        }
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays that slipped into CheckResult.details
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in a report: {value!r}")


def report_to_dict(report: GradeReport) -> dict[str, Any]:
    """A GradeReport as JSON-ready data; ``score`` and ``points`` totals are added for readers."""
    data = _plain(report)
    data["score"] = report.score
    data["points"] = report.points
    return data


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a models dataclass (its annotations are strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, vars(models))
    return _HINTS[cls]


def _build(tp: Any, value: Any, where: str) -> Any:
    """Rebuild a value of type ``tp`` from JSON-ready data."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} for {tp.__name__}")
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where)
    if tp is Path:
        return Path(value)
    if tp is float:
        return float(value)
    return value  # str, int, bool, Literal[...], dict[str, Any]


def execution_to_dict(execution: models.ExecutionResult) -> dict[str, Any]:
    """An ExecutionResult as JSON-ready data (the calibration cache keeps the reference's runs this way)."""
    return _plain(execution)


def execution_from_dict(data: Mapping[str, Any]) -> models.ExecutionResult:
    """The ExecutionResult that :func:`execution_to_dict` turned into ``data``; ValueError when it is not one."""
    return _build(models.ExecutionResult, data, "execution")


def report_from_dict(data: Mapping[str, Any]) -> GradeReport:
    """The GradeReport that :func:`report_to_dict` turned into ``data``."""
    fields = {k: v for k, v in data.items() if k not in ("score", "points")}
    return _build(GradeReport, fields, "report")


def readable_text(text: str) -> str:
    """``text`` with every lone surrogate written as its escape (``\\udcff``): storable and printable as UTF-8.

    Lone surrogates reach a report from what the student's code made (a model kept under
    ``globals()['m\\udcff']``, an exception message with ``'\\ud800'``) or from file names that are not
    UTF-8; SQLite, JSON files and HTML pages cannot hold them.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _readable(value: Any) -> Any:
    if isinstance(value, str):
        return readable_text(value)
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    return value


def readable_report(report: GradeReport) -> GradeReport:
    """``report`` with every text in it made UTF-8-safe (:func:`readable_text`); the same object when it already is."""
    data = report_to_dict(report)
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
        return report
    except UnicodeEncodeError:
        return report_from_dict(_readable(data))


# -- the store ------------------------------------------------------------------------------------------------


class ResultStore:
    """Grade reports in one SQLite file, keyed by (content hash, rubric hash, profile)."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the store at ``path``; StoreError if it is not a readable results store."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._conn = open_database(
            self.path,
            what="results store",
            example="results.sqlite",
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            timeout_s=BUSY_TIMEOUT_S,
            wal=True,
            shared=True,  # one store serves the pool's threads; self._lock serialises them
            after_schema=self._check_columns,
        )

    def _check_columns(self, conn: sqlite3.Connection) -> None:
        """StoreError when the file's ``reports`` table is not a results store's; else make sure of the index."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(reports)")}
        missing = _COLUMNS - columns
        if missing:
            raise StoreError(f"{self.path}: has a 'reports' table that is not a results store's (no {sorted(missing)})")
        conn.execute(_INDEX)

    def _db(self) -> sqlite3.Connection:
        """The open connection; StoreError after close()."""
        if self._conn is None:
            raise StoreError(f"{self.path}: the results store is closed")
        return self._conn

    def _row_report(self, text: str, key: tuple[str, str, str]) -> GradeReport:
        """Decode one stored report; StoreError naming the row if it is damaged."""
        try:
            return report_from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as e:
            raise StoreError(f"{self.path}: the stored report for {key} is damaged ({e})") from None

    def get(self, content_hash: str, rubric_hash: str, profile: str) -> GradeReport | None:
        """The stored report for this submission, rubric and profile, or None."""
        key = (content_hash, rubric_hash, profile)
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT report FROM reports WHERE content_hash = ? AND rubric_hash = ? AND profile = ?", key
                ).fetchone()
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot read the results store ({e})") from None
        return None if row is None else self._row_report(row[0], key)

    def put(self, report: GradeReport) -> None:
        """Store a report, replacing any under the same key; committed before this returns."""
        try:
            report = readable_report(report)
            text = json.dumps(report_to_dict(report), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{self.path}: cannot store the report of {report.student!r} ({e})") from None
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        row = (report.content_hash, report.rubric_hash, report.profile, report.student, report.assignment,
               report.score, report.points, text, created)
        with self._lock:
            try:
                self._db().execute(
                    """INSERT INTO reports (content_hash, rubric_hash, profile, student, assignment,
                                            score, points, report, created)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (content_hash, rubric_hash, profile) DO UPDATE SET
                           student = excluded.student, assignment = excluded.assignment,
                           score = excluded.score, points = excluded.points,
                           report = excluded.report, created = excluded.created""",
                    row,
                )
            except sqlite3.Error as e:  # a full disk or a damaged file: this report is not stored, and says so
                raise StoreError(f"{self.path}: cannot write the report of {report.student!r} ({e})") from None

    def latest(self, content_hash: str, profile: str) -> GradeReport | None:
        """The report stored last for this content and profile under any rubric file (its runs may be reused)."""
        with self._lock:
            try:
                row = self._db().execute(
                    "SELECT rubric_hash, report FROM reports WHERE content_hash = ? AND profile = ? "
                    "ORDER BY created DESC LIMIT 1",
                    (content_hash, profile),
                ).fetchone()
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot read the results store ({e})") from None
        return None if row is None else self._row_report(row[1], (content_hash, row[0], profile))

    def all(self, rubric_hash: str | None = None) -> list[GradeReport]:
        """Every stored report (those graded by one rubric file when ``rubric_hash`` is given), by student."""
        query = "SELECT content_hash, rubric_hash, profile, report FROM reports"
        args: tuple[str, ...] = ()
        if rubric_hash is not None:
            query += " WHERE rubric_hash = ?"
            args = (rubric_hash,)
        query += " ORDER BY student, profile, created"
        with self._lock:
            try:
                rows = self._db().execute(query, args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot read the results store ({e})") from None
        return [self._row_report(text, (c, r, p)) for c, r, p, text in rows]

    def delete(self, content_hash: str, rubric_hash: str | None = None, profile: str | None = None) -> int:
        """Forget the reports of a submission (to regrade it), optionally only one rubric's or profile's; how many."""
        query = "DELETE FROM reports WHERE content_hash = ?"
        args: list[str] = [content_hash]
        if rubric_hash is not None:
            query += " AND rubric_hash = ?"
            args.append(rubric_hash)
        if profile is not None:
            query += " AND profile = ?"
            args.append(profile)
        with self._lock:
            try:
                return self._db().execute(query, args).rowcount
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: cannot delete from the results store ({e})") from None

    def __len__(self) -> int:
        """How many reports are stored."""
        with self._lock:
            return self._db().execute("SELECT COUNT(*) FROM reports").fetchone()[0]

    def close(self) -> None:
        """Close the file; closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResultStore:
        """Use the store in a ``with`` block; it closes at the end."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()
