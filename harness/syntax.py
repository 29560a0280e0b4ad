"""Python source parsed by the host, one parse at a time, whatever thread asks.

CPython 3.11 counts the depth of its AST conversion in interpreter-wide state. Two grading threads in
:func:`ast.parse` at once (a garbage collection inside one hands the interpreter to the other) then fail with
``SystemError: AST constructor recursion depth mismatch``: a healthy submission graded as a grader fault. Every
host-side parse goes through :func:`parse`, which holds one lock while the tree is built.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)``, never at the same time as another thread's :func:`parse`."""
    with _LOCK:
        return ast.parse(source, filename)


def parse_or_none(source: str | bytes, filename: str = "<unknown>") -> ast.Module | None:
    """:func:`parse`, or None for source that is not Python (a syntax error, a null byte): for the host's readings
    of a student's code, which judge what parses and leave the rest to the run."""
    try:
        return parse(source, filename)
    except (SyntaxError, ValueError):
        return None
