"""Whether a staged notebook or script can be read as one; reads the bytes, never compiles or imports them.

Every notebook must be UTF-8 JSON in nbformat 4 that passes the nbformat schema (nested at most
``MAX_JSON_DEPTH`` levels, no lone surrogate escapes, no integer longer than Python reads), every ``.py`` must be
UTF-8 text, a lone module must not be empty, and there must be at least one notebook or ``.py``.
"""

from __future__ import annotations

import codecs
import json
import sys
import warnings as warnings_module
from collections.abc import Sequence
from pathlib import Path

import nbformat
from jsonschema.exceptions import best_match
from nbformat.validator import get_validator

from harness.loading.common import CODE_SUFFIXES, _has_surrogates, _readable, _Rejected, _shorten
from harness.models import SubmissionKind

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a notebook may have (Jupyter writes about 6; widget state about 12)."""


def _validate(root: Path, files: Sequence[str], kind: SubmissionKind, *, skipped: Sequence[str] = ()) -> None:
    """Refuse the submission if a notebook or script cannot be read as one; never compiles or imports.

    ``skipped``: the warnings of staging; when no code is left they are the reason, so they go in the message.
    """
    code = [f for f in files if f.lower().endswith(CODE_SUFFIXES)]
    if not code and skipped:
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise _Rejected(f"no notebook (.ipynb) or Python file (.py) could be staged: {shown}")
    if not code:
        if not files:
            raise _Rejected("the submission is empty: no files at all")
        shown = ", ".join(_readable(f) for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise _Rejected(f"the submission holds no notebook (.ipynb) or Python file (.py); it holds: {shown}")
    for rel in code:
        data = (root / rel).read_bytes()
        shown = _readable(rel)
        if rel.lower().endswith(".ipynb"):
            problem = notebook_problem(data, shown)
        else:
            problem = python_problem(data, shown, lone=kind == "module")
        if problem:
            raise _Rejected(problem)


def notebook_problem(data: bytes, name: str) -> str | None:
    """What makes ``data`` unreadable as an nbformat-4 notebook called ``name``; None when it is fine."""
    if not data.strip():
        return f"{name} is empty ({len(data)} bytes)"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"{name} is not a notebook: it is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        return f"{name} is not a notebook: invalid JSON (line {e.lineno}, column {e.colno}): {e.msg}"
    except RecursionError:
        return f"{name} is not a notebook: its JSON is nested more than {MAX_JSON_DEPTH} levels deep"
    except ValueError:  # the one other error of json.loads: an integer longer than Python converts
        return f"{name} is not a notebook: it holds a number of more than {sys.get_int_max_str_digits():,} digits"
    problem = _json_problem(raw)
    if problem:
        return f"{name} is not a notebook: {problem}"
    if not isinstance(raw, dict) or "nbformat" not in raw:
        return f"{name} is not a notebook: it is JSON but has no 'nbformat' field"
    version = raw["nbformat"]
    if not isinstance(version, int) or isinstance(version, bool):
        return f"{name} is not a notebook: its 'nbformat' field is {version!r}, not a version number"
    if version < 4:
        return (
            f"{name} is saved as nbformat {version}, an old notebook format: open it in a current Jupyter and "
            "save it again (or run `jupyter nbconvert --to notebook --nbformat 4`) so that it is nbformat 4"
        )
    if version > 4:
        return f"{name} is saved as nbformat {version}, which this harness cannot read; save it as nbformat 4"
    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore")  # e.g. "cell is missing an id field": nbformat repairs that itself
        try:
            nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
        except Exception as e:  # nbformat raises assorted errors on malformed input
            where = _schema_problem(raw) or _shorten(str(getattr(e, "message", e)))
            return f"{name} is not a valid notebook: {where}"
    return None


def _json_problem(raw: object) -> str | None:
    """What in parsed notebook JSON would break the readers after loading (nbformat, the runner, reports).

    JSON nested deeper than ``MAX_JSON_DEPTH`` (the schema validator and nbformat recurse once per level) and
    strings holding an escaped lone surrogate (``"\\ud800"``: Python reads it, but it cannot be written out
    as UTF-8 again). Walks iteratively, so no input can exhaust the stack here.
    """
    stack: list[tuple[object, tuple[object, ...]]] = [(raw, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            return f"its JSON is nested more than {MAX_JSON_DEPTH} levels deep (at {_json_path(path[:8])}...)"
        if isinstance(value, dict):
            for key, item in value.items():
                if _has_surrogates(key):
                    return f"{_json_path(path)} has a key with an invalid escaped character (a lone UTF-16 surrogate)"
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, str) and _has_surrogates(value):
            return (
                f"{_json_path(path)} holds an invalid escaped character (a lone UTF-16 surrogate such as \\ud800); "
                "save the notebook again from Jupyter"
            )
    return None


def _json_path(path: Sequence[object]) -> str:
    """A place in notebook JSON for messages: ``cell 3.source``, ``metadata.widgets``."""
    if len(path) >= 2 and path[0] == "cells" and isinstance(path[1], int):
        return f"cell {path[1]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{_shorten(p, 40)}" for p in path[2:])
    return ".".join(_shorten(str(p), 40) for p in path) or "the notebook"


def python_problem(data: bytes, name: str, *, lone: bool = False) -> str | None:
    """What makes ``data`` unreadable as a UTF-8 Python source file called ``name``; None when it is fine."""
    if lone and not data.strip():
        return f"{name} is empty ({len(data)} bytes)"
    if b"\0" in data:
        return f"{name} is not a Python text file: it contains NUL bytes (is it a binary file renamed .py?)"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return (
            f"{name} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} cannot be decoded; "
            "save the file as UTF-8"
        )
    return None


def _schema_problem(raw: dict) -> str | None:
    """Where ``raw`` breaks the nbformat-4 schema and how, in a line; None if the schema is not what failed."""
    minor = raw.get("nbformat_minor")
    validator = get_validator(
        version=4, version_minor=minor if isinstance(minor, int) and minor >= 0 else None, name="jsonschema"
    )
    error = best_match(validator.iter_errors(raw)) if validator is not None else None
    if error is None:
        return None
    # A cell or an output matches one of several shapes (oneOf): explain the shape it comes closest to.
    while error.validator == "oneOf" and error.context:
        branches: dict[object, list] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        error = best_match(min(branches.values(), key=len))
    return f"{_json_path(list(error.absolute_path))}: {_shorten(error.message, 160)}"
