"""The size-limited working folder of a submission: a hard cap as root, removed (or kept as a copy) afterwards."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from harness.models import Limits, MiB
from harness.sandbox import make_sandbox, python_mounts
from harness.sandbox.quota import MARGIN_BYTES, limited_folder, release_folder

LIMITS = Limits(wall_s=30, workspace_bytes=32 * MiB, workspace_files=200)


@pytest.fixture
def folder(tmp_path):
    """A working folder made by ``limited_folder``, released whatever the test does."""
    path = tmp_path / "work" / "student"
    hard = limited_folder(path, LIMITS)
    if os.geteuid() == 0:
        assert hard, "as root the working folder must be a size-limited tmpfs"
    yield path, hard
    release_folder(path)


def test_the_folder_holds_no_more_than_its_limit(folder):
    path, hard = folder
    if not hard:
        pytest.skip("a hard limit needs root (the supervisor's measures are tested in test_limits.py)")
    with pytest.raises(OSError, match="No space left on device"):
        with open(path / "blob", "wb") as stream:
            for _ in range(200):
                stream.write(b"\1" * MiB)
    assert (path / "blob").stat().st_size <= 32 * MiB + MARGIN_BYTES
    (path / "blob").unlink()
    with pytest.raises(OSError, match="No space left on device"):
        for i in range(10_000):
            (path / f"{i}.txt").write_text("x")
    assert len(os.listdir(path)) < 400


def test_a_run_filling_it_is_stopped_with_the_reason_and_the_folder_is_removed(folder):
    path, _ = folder
    code = """
        import os
        block = os.urandom(1 << 20)
        for i in range(1000):
            with open(f"checkpoint-{i}.pt", "wb") as f:
                f.write(block)
    """
    result = make_sandbox().run([sys.executable, "-c", textwrap.dedent(code)], workspace=path, limits=LIMITS,
                                mounts=python_mounts())
    assert (result.verdict, result.message) == ("workspace", "wrote more than 32 MiB into its working folder")
    release_folder(path)
    assert not path.exists()


def test_a_kept_folder_is_a_plain_copy(folder):
    path, _ = folder
    (path / "checkpoint.pt").write_bytes(b"weights")
    release_folder(path, keep=True)
    assert not os.path.ismount(path) and (path / "checkpoint.pt").read_bytes() == b"weights"


def test_a_folder_left_by_a_killed_grading_is_replaced(folder):
    path, hard = folder
    (path / "stale.txt").write_text("left by a killed grading")
    assert limited_folder(path, LIMITS) == hard
    assert list(path.iterdir()) == [] and os.path.ismount(path) == hard
    assert Path(path).parent.is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="a workspace is a tmpfs (and can be left mounted) only as root")
def test_a_workspace_left_mounted_by_a_killed_grading_is_unmounted_by_the_next(tmp_path):
    """Played in a mount namespace of its own: any grading on this machine sweeps workspaces left by killed ones,
    so a grading of another test running beside this one (a parallel worker) could otherwise sweep it first."""
    import json
    import subprocess

    own = tmp_path / "own-out" / "work" / "student"  # mounted by a harness still running: it must stay
    left = tmp_path / "other-out" / "work" / "killed"
    following = tmp_path / "next-out" / "work" / "student"
    # a grading that mounts its workspace and dies without releasing it (as a SIGKILL leaves it)
    killed = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from harness.sandbox.quota import limited_folder
        from tests.sandbox.test_quota import LIMITS
        assert limited_folder(Path({str(left)!r}), LIMITS)
        Path({str(left)!r}, "checkpoint.pt").write_bytes(b"weights")
        os._exit(0)
    """)
    scenario = textwrap.dedent(f"""
        import json, logging, os, subprocess, sys
        from pathlib import Path
        from harness.sandbox.quota import limited_folder, release_folder
        from tests.sandbox.test_quota import LIMITS
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        own, left, following = Path({str(own)!r}), Path({str(left)!r}), Path({str(following)!r})
        assert limited_folder(own, LIMITS)
        subprocess.run([sys.executable, "-c", {killed!r}], check=True)
        seen = {{"left_mounted_before": os.path.ismount(left)}}
        assert limited_folder(following, LIMITS)
        seen.update(left_mounted=os.path.ismount(left), left_exists=left.exists(), own_mounted=os.path.ismount(own))
        release_folder(following)
        release_folder(own)
        print(json.dumps(seen))
    """)
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", scenario],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {
        "left_mounted_before": True, "left_mounted": False, "left_exists": False, "own_mounted": True}
    assert f"unmounted the workspace {left}, left by a grading that was killed" in done.stderr


def test_files_in_the_working_folder_do_not_count_as_the_runs_memory(tmp_path):
    """A run holding 200 MiB in memory and writing a 200 MiB checkpoint stays within a 384 MiB memory limit and a
    256 MiB workspace. As root the workspace is a tmpfs, whose pages the kernel charges to the memory group of the
    process that wrote them: the group has room for the workspace above the memory limit, and the supervisor holds
    the processes' own memory to the limit (before, the run was stopped with "exceeded the 384 MiB memory limit")."""
    limits = Limits(wall_s=60, memory_bytes=384 * MiB, workspace_bytes=256 * MiB)
    folder = tmp_path / "work" / "student"
    limited_folder(folder, limits)
    code = """
        held = bytearray(200 * 2**20)  # touched: resident
        for i in range(0, len(held), 4096):
            held[i] = 1
        block = bytes(2**20)
        with open("checkpoint.pt", "wb") as f:
            for _ in range(200):
                f.write(block)
        print("done")
    """
    try:
        result = make_sandbox().run([sys.executable, "-c", textwrap.dedent(code)], workspace=folder, limits=limits,
                                    mounts=python_mounts())
    finally:
        release_folder(folder)
    assert (result.verdict, result.message, result.stdout) == ("ok", "exit code 0", "done\n")
