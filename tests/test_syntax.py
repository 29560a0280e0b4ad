"""The host's parses of Python source, from several grading threads at once (``harness.syntax``)."""

from __future__ import annotations

import ast
import gc
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.syntax import parse, parse_or_none

_SOURCE = "\n".join(
    f"def f{i}(x):\n    return [(a, {{b: (c + d) * e for b in x}}) for a in range({i})]" for i in range(200)
)


def _parse_in_two_threads(parser: Callable[[str], ast.Module], rounds: int = 30) -> list[str]:
    """The SystemErrors of two threads each parsing a nested module ``rounds`` times while a garbage-collection
    callback runs Python code mid-conversion: the way a grading thread's GC hands the interpreter to another.
    A tree that comes back incomplete is reported among them (an assertion inside a thread fails no test)."""
    errors: list[str] = []
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    callback = lambda phase, info: sum(range(10))  # noqa: E731 - Python code inside every collection

    def work() -> None:
        for _ in range(rounds):
            try:
                tree = parser(_SOURCE)
            except SystemError as error:
                errors.append(str(error))
            else:
                if len(tree.body) != 200:
                    errors.append(f"a tree of {len(tree.body)} statements instead of 200")

    gc.callbacks.append(callback)
    gc.set_threshold(50, 1, 1)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
    return errors


def test_two_threads_parsing_at_once_never_fail_with_a_recursion_depth_mismatch():
    assert _parse_in_two_threads(parse) == []


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the interpreter-wide AST depth counter is CPython 3.11's")
def test_the_same_load_makes_a_bare_ast_parse_fail_on_this_interpreter():
    """Shows the stress above reaches the fault :func:`parse` avoids: without the lock, healthy code fails."""
    errors = [e for _ in range(5) for e in _parse_in_two_threads(ast.parse)]
    assert errors and all("AST constructor recursion depth mismatch" in e for e in errors)


def test_the_host_parses_python_only_through_the_lock():
    """Grading runs students in threads: a direct ``ast.parse`` in host code brings the fault back. The sandboxed
    rebuild (``harness/probes``) runs alone in its own process and may parse directly."""
    root = Path(__file__).resolve().parents[1] / "harness"
    direct = [f"{path.relative_to(root.parent)}:{number}"
              for path in sorted(root.rglob("*.py")) if path.name != "syntax.py" and "probes" not in path.parts
              for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if re.search(r"\bast\.parse\(", line)]
    assert direct == [], f"use harness.syntax.parse instead of ast.parse at {', '.join(direct)}"


def test_a_parse_still_raises_the_students_syntax_error():
    with pytest.raises(SyntaxError):
        parse("def broken(:\n", "cell.py")


def test_source_that_is_not_python_reads_as_none_where_the_host_judges_what_parses():
    assert parse_or_none("def broken(:\n") is None
    assert parse_or_none("x = 1\x00\n") is None  # a null byte: ValueError, not SyntaxError, on some versions
    assert isinstance(parse_or_none("x = 1\n"), ast.Module)
