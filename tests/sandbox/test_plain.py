"""The plain-process fallback: same API and limits, no isolation, and it says so loudly."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from harness.errors import SandboxError
from harness.models import Limits
from harness.sandbox import Mount, PlainProcessSandbox, make_sandbox


def test_warns_loudly_that_it_isolates_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        sandbox = PlainProcessSandbox(reason="bwrap: No permissions to create new namespace")
    assert sandbox.isolated is False
    assert sandbox.warning.startswith(
        "student code is NOT isolated: the plain-process sandbox isolates nothing but time and memory"
    )
    assert sandbox.warning.endswith("(bubblewrap unavailable: bwrap: No permissions to create new namespace)")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].getMessage() == sandbox.warning
    assert isinstance(make_sandbox("plain"), PlainProcessSandbox)


def test_runs_in_the_workspace_with_a_private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADEBENCH_TEST_SECRET", "token")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    code = "import os; print(os.getcwd()); print(os.environ['HOME']); print(os.environ.get('GRADEBENCH_TEST_SECRET'))"
    result = PlainProcessSandbox().run([sys.executable, "-c", code], workspace=workspace, limits=Limits(wall_s=20))
    cwd, home, secret = result.stdout.splitlines()
    assert (result.verdict, result.isolated, cwd, secret) == ("ok", False, str(workspace.resolve()), "None")
    assert Path(home).name.startswith("gradebench-home-") and not Path(home).exists()  # removed afterwards


def test_cannot_remap_a_mount(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    with pytest.raises(SandboxError, match="cannot show .* at /data; mount it at its own path"):
        PlainProcessSandbox().run(
            ["true"], workspace=workspace, limits=Limits(), mounts=[Mount(tmp_path, Path("/data"))]
        )


def test_a_missing_command_never_starts(tmp_path):
    result = PlainProcessSandbox().run(["no-such-command-xyz"], workspace=tmp_path, limits=Limits())
    assert (result.verdict, result.returncode) == ("error", None)
    assert result.message == "could not start no-such-command-xyz: No such file or directory"
