"""The order in which a batch's workers take the submissions: the longest expected grading first."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from harness.loading import load_submission
from harness.pipeline import _longest_first
from harness.models import Submission


class EarlierRuns:
    """A results store that remembers how long the sandboxed runs of some contents took (seconds per source)."""

    def __init__(self, seconds: dict[str, dict[str, float]]) -> None:
        self.seconds = seconds

    def latest(self, content_hash: str, profile: str):
        runs = self.seconds.get(content_hash)
        if runs is None:
            return None
        return SimpleNamespace(executions=[SimpleNamespace(source=s, sandbox=SimpleNamespace(wall_s=t))
                                           for s, t in runs.items()])


def _student(tmp_path: Path, name: str, code: str) -> Submission:
    folder = tmp_path / "hand-ins" / name
    folder.mkdir(parents=True)
    (folder / "q1.py").write_text(code, encoding="utf-8")
    loaded = load_submission(folder, tmp_path / "staging" / name, student=name)
    assert isinstance(loaded, Submission)
    return loaded


def test_the_longest_earlier_runs_go_first_and_new_code_before_them(tmp_path: Path) -> None:
    short, long, new_small, new_large = (
        _student(tmp_path, "short", "x = 1\n"),
        _student(tmp_path, "long", "x = 2\n"),
        _student(tmp_path, "new_small", "x = 3\n"),
        _student(tmp_path, "new_large", "x = 4\n" * 200),
    )
    store = EarlierRuns({short.content_hash: {"q1.py": 3.0}, long.content_hash: {"q1.py": 20.0, "q2.py": 5.0}})
    setup = SimpleNamespace(profile="fast")
    order = _longest_first([short, new_small, long, new_large], store, threading.Lock(), setup)
    # never run: may be long, so first, the more code first; then 25 s before 3 s
    assert [s.student for s in order] == ["new_large", "new_small", "long", "short"]


def test_equal_expectations_keep_the_batch_order(tmp_path: Path) -> None:
    students = [_student(tmp_path, f"student{i}", "x = 1\n") for i in range(4)]
    order = _longest_first(students, EarlierRuns({}), threading.Lock(), SimpleNamespace(profile="fast"))
    assert [s.student for s in order] == ["student0", "student1", "student2", "student3"]
