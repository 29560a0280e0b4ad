"""One sandboxed process serves every rebuild of a submission: torch is imported once, each rebuild is a fresh
process forked for it, nothing a rebuild leaves running outlives it, and a rebuild that hangs is stopped alone."""

from __future__ import annotations

import os
import uuid

import psutil
import pytest
import torch

from harness.checks.rebuild import Rebuilder, RebuildServer
from harness.models import Limits, Submission
from harness.sandbox import BubblewrapSandbox, make_sandbox
from tests.checks.test_rebuild import IMPORTS, OWN_CLASS, defined

INPUTS = torch.randn(40, 1, 28, 28)


class CountingSandbox:
    """The real sandbox, counting the processes it starts."""

    def __init__(self, inner) -> None:
        self.inner, self.runs = inner, 0
        self.isolated, self.warning, self.holds = inner.isolated, inner.warning, getattr(inner, "holds", False)

    def run(self, command, **options):
        self.runs += 1
        return self.inner.run(command, **options)


def sandbox():
    """bubblewrap in CI (a missing one fails the test), else the best available."""
    return BubblewrapSandbox() if os.environ.get("CI") else make_sandbox()


def scripts(tmp_path, **files: str) -> Submission:
    """A submission of ``files`` (name to text)."""
    root = tmp_path / "submission"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    return Submission(student="s", source=root / sorted(files)[0], root=root, files=tuple(sorted(files)),
                      kind="script", content_hash=uuid.uuid4().hex * 2)


def honest(hidden: int):
    """A network of the student's class ``Net`` and what it computes on ``INPUTS``."""
    torch.manual_seed(hidden)
    network = defined(IMPORTS, OWN_CLASS)["Net"](hidden).eval()
    with torch.no_grad():
        return network, network(INPUTS).reshape(len(INPUTS), -1)


def test_one_process_serves_a_submissions_rebuilds_each_in_a_fresh_process(tmp_path) -> None:
    # q1.py's class body patches torch as it is defined; q2.py's rebuild, forked from the clean server, never sees it
    patcher = IMPORTS.replace("%matplotlib inline", "") + OWN_CLASS + (
        "\n\nclass Patcher(nn.Module):\n    nn.Linear.forward = lambda self, x: x.sum(1, keepdim=True) * 0\n")
    submission = scripts(tmp_path, **{"q1.py": patcher, "q2.py": IMPORTS.replace("%matplotlib inline", "") + OWN_CLASS})
    counting = CountingSandbox(sandbox())
    server = RebuildServer(counting, submission, tmp_path / "rebuild", Limits(wall_s=120))
    try:
        first, second = honest(16), honest(24)
        one = Rebuilder(counting, submission, "q1.py", server.folder, Limits(wall_s=120), server=server)
        two = Rebuilder(counting, submission, "q2.py", server.folder, Limits(wall_s=120), server=server)
        patched = one("Net", {"args": [16], "kwargs": {}}, first[0].state_dict(), INPUTS)
        rebuilt = two("Net", {"args": [24], "kwargs": {}}, second[0].state_dict(), INPUTS)
    finally:
        server.close()
    assert isinstance(patched, torch.Tensor) and not torch.allclose(patched, first[1], atol=1e-4)  # q1's own patch
    assert isinstance(rebuilt, torch.Tensor) and torch.allclose(rebuilt, second[1], atol=1e-4)
    assert counting.runs == (1 if counting.holds else 2)


@pytest.mark.skipif(not os.environ.get("CI") and not make_sandbox().isolated, reason="needs an isolating sandbox")
def test_what_a_rebuild_leaves_running_is_killed_before_the_next(tmp_path) -> None:
    token = f"gradebench-leftover-{uuid.uuid4().hex}"
    helper = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', '{token}'])\n"
    code = IMPORTS.replace("%matplotlib inline", "") + "import helper\n" + OWN_CLASS
    submission = scripts(tmp_path, **{"q1.py": code, "helper.py": helper})
    server = RebuildServer(sandbox(), submission, tmp_path / "rebuild", Limits(wall_s=120))
    try:
        network, outputs = honest(16)
        rebuilt = Rebuilder(server.sandbox, submission, "q1.py", server.folder, Limits(wall_s=120), server=server)(
            "Net", {"args": [16], "kwargs": {}}, network.state_dict(), INPUTS)
        left = [p for p in psutil.process_iter(["cmdline"]) if token in (p.info["cmdline"] or [])]
    finally:
        server.close()
    assert isinstance(rebuilt, torch.Tensor) and torch.allclose(rebuilt, outputs, atol=1e-4)
    assert left == []


def test_a_rebuild_that_hangs_is_stopped_and_the_next_gets_a_new_process(tmp_path) -> None:
    hang = IMPORTS.replace("%matplotlib inline", "") + "\n\nclass Net(nn.Module):\n    while True:\n        pass\n"
    submission = scripts(tmp_path, **{"q1.py": hang, "q2.py": IMPORTS.replace("%matplotlib inline", "") + OWN_CLASS})
    counting = CountingSandbox(sandbox())
    server = RebuildServer(counting, submission, tmp_path / "rebuild", Limits(wall_s=3))
    try:
        network, outputs = honest(16)
        stuck = Rebuilder(counting, submission, "q1.py", server.folder, Limits(wall_s=3), server=server)(
            "Net", {"args": [16], "kwargs": {}}, network.state_dict(), INPUTS)
        rebuilt = Rebuilder(counting, submission, "q2.py", server.folder, Limits(wall_s=3), server=server)(
            "Net", {"args": [16], "kwargs": {}}, network.state_dict(), INPUTS)
    finally:
        server.close()
    assert stuck == "the rebuild did not finish: it timed out after 3 s"
    assert isinstance(rebuilt, torch.Tensor) and torch.allclose(rebuilt, outputs, atol=1e-4)
    assert counting.runs == 2


def _first_rebuild(tmp_path, name: str, code: str) -> dict:
    """Rebuild ``Net`` once from a submission whose only file is ``q1.py`` (``code``), checking that it reproduces
    the network; returns the serving process's ``done`` record of that rebuild."""
    import json

    submission = scripts(tmp_path / name, **{"q1.py": code})
    server = RebuildServer(sandbox(), submission, tmp_path / name / "rebuild", Limits(wall_s=120))
    try:
        network, outputs = honest(16)
        rebuilt = Rebuilder(server.sandbox, submission, "q1.py", server.folder, Limits(wall_s=120), server=server)(
            "Net", {"args": [16], "kwargs": {}}, network.state_dict(), INPUTS)
    finally:
        server.close()
    assert isinstance(rebuilt, torch.Tensor) and torch.allclose(rebuilt, outputs, atol=1e-4)
    return json.loads((server.folder / "io" / "out" / "0" / "done").read_text())


def test_torchvision_and_pyplot_are_imported_before_the_first_rebuild_when_the_submission_names_them(tmp_path) -> None:
    # imported in each rebuild's process (pyplot) or in the first and again in the server's (torchvision), they cost
    # 0.3 to 1 s a rebuild
    plain = IMPORTS.replace("%matplotlib inline", "")
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    both = plain + "from torchvision import transforms\nfrom matplotlib import pyplot as plt\n" + OWN_CLASS
    named = _first_rebuild(tmp_path, "a", both)
    one = _first_rebuild(tmp_path, "b", plain + "import torchvision\n" + OWN_CLASS)
    unnamed = _first_rebuild(tmp_path, "c", plain + OWN_CLASS)
    assert named == {"status": 0, "warm": ["torchvision", "matplotlib.pyplot"]}
    assert one == {"status": 0, "warm": ["torchvision"]}
    assert unnamed == {"status": 0, "warm": []}


def test_only_the_submissions_own_python_files_and_notebooks_name_a_library(tmp_path) -> None:
    from harness.checks.rebuild import mentioned

    (tmp_path / "q1.py").write_text("import torch\n")
    (tmp_path / "work.ipynb").write_text('{"cells": [{"source": ["from torchvision import datasets"]}]}')
    (tmp_path / "plots.py").write_text("import matplotlib.pyplot as plt\n")
    (tmp_path / "notes.txt").write_text("torchvision")
    (tmp_path / "outside.py").write_text("import torchvision\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "outside.py")
    os.mkfifo(tmp_path / "pipe.py")  # read, it would block the grader
    assert mentioned(tmp_path, ["q1.py"]) == []
    assert mentioned(tmp_path, ["notes.txt", "link.py", "pipe.py", "missing.py"]) == []
    assert mentioned(tmp_path, ["q1.py", "work.ipynb"]) == ["torchvision"]
    assert mentioned(tmp_path, ["plots.py", "work.ipynb"]) == ["torchvision", "matplotlib.pyplot"]
