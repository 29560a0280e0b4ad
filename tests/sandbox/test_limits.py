"""Each limit, breached by a real hostile command, gives its own verdict and a message a TA understands.

Every payload stops on its own even unconfined (capped loops, at most 2 GiB, 500 forks, 200 MiB
written, 20 MiB printed). The limits run in four set-ups: bubblewrap with cgroups, bubblewrap with
the watchdog, and the plain-process fallback with and without cgroups.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from harness.models import MiB, Limits
from harness.sandbox import BubblewrapSandbox, PlainProcessSandbox, python_mounts
from harness.sandbox.cgroups import CgroupsUnavailable, RunCgroups

PY = sys.executable


def cgroups_work() -> bool:
    """Whether per-run cgroups can be made here (root on a cgroup v1 host)."""
    try:
        RunCgroups.create(64 * MiB, 8).remove()
        return True
    except CgroupsUnavailable:
        return False


def bubblewrap(use_cgroups: bool | None) -> BubblewrapSandbox:
    """A bubblewrap sandbox; in CI (CI=true) a missing bwrap fails the test instead of skipping it."""
    if os.environ.get("CI") != "true" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (in CI this fails)")
    return BubblewrapSandbox(use_cgroups=use_cgroups)


SETUPS = ["bwrap-cgroups", "bwrap-watchdog", "plain-cgroups", "plain-watchdog"]


@pytest.fixture(params=SETUPS)
def sandbox(request):
    """Each sandbox set-up in turn."""
    kind, control = request.param.split("-")
    if control == "cgroups" and not cgroups_work():
        pytest.skip("per-run cgroups need root on a cgroup v1 host; the watchdog set-ups cover the rest")
    use_cgroups = control == "cgroups" or False
    if kind == "bwrap":
        return bubblewrap(use_cgroups)
    return PlainProcessSandbox(use_cgroups=use_cgroups)


def run_py(sandbox, code: str, tmp_path: Path, **limits) -> object:
    """Run a Python snippet in ``sandbox`` with a fresh workspace and the given limits."""
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return sandbox.run(
        [PY, "-c", textwrap.dedent(code)],
        workspace=workspace,
        limits=Limits(**{"wall_s": 20.0, **limits}),
        mounts=python_mounts(),
        env={"OMP_NUM_THREADS": "1"},
    )


def test_ok_and_exit_code(sandbox, tmp_path):
    ok = run_py(sandbox, "print('hello')", tmp_path)
    assert (ok.verdict, ok.message, ok.returncode, ok.stdout) == ("ok", "exit code 0", 0, "hello\n")
    assert ok.isolated is isinstance(sandbox, BubblewrapSandbox)
    assert 0 < ok.wall_s < 10 and ok.cpu_s > 0 and ok.peak_memory_bytes > 1 * MiB

    failed = run_py(sandbox, "import sys; print('bad', file=sys.stderr); sys.exit(3)", tmp_path)
    assert (failed.verdict, failed.message, failed.returncode) == ("error", "exit code 3", 3)
    assert failed.stderr == "bad\n"


def test_wall_time(sandbox, tmp_path):
    start = time.monotonic()
    result = run_py(sandbox, "import time\nfor _ in range(200): time.sleep(0.05)", tmp_path, wall_s=1.0)
    assert (result.verdict, result.message) == ("timeout", "timed out after 1 s")
    assert 1.0 <= result.wall_s < 3.0 and time.monotonic() - start < 4.0


def test_cpu_time_of_the_whole_tree(sandbox, tmp_path):
    """Two processes each burning 0.8 s stay under a per-process limit of 1 s but not under the tree's."""
    code = """
        import os, time
        os.fork()
        while time.process_time() < 0.8: pass
        time.sleep(3)
    """
    result = run_py(sandbox, code, tmp_path, cpu_s=1.0)
    assert (result.verdict, result.message) == ("cpu_time", "used more than 1 s of CPU time")
    assert 1.0 <= result.cpu_s < 2.5
    assert result.returncode == -9  # killed for the CPU limit, not left to finish its 3 s sleep


def test_memory(sandbox, tmp_path):
    code = """
        import time
        chunks = []
        for _ in range(32):  # 64 MiB steps up to 2 GiB
            chunks.append(b"x" * (64 << 20))
            time.sleep(0.02)
    """
    result = run_py(sandbox, code, tmp_path, memory_bytes=256 * MiB)
    assert (result.verdict, result.message) == ("memory", "exceeded the 256 MiB memory limit")
    assert 200 * MiB < result.peak_memory_bytes < 1024 * MiB


def test_processes(sandbox, tmp_path):
    code = """
        import os, time
        for _ in range(500):
            if os.fork() == 0:
                time.sleep(2)
                os._exit(0)
        time.sleep(2)  # stay, as a fork bomb does: on a loaded machine the forks can end between two polls
    """
    result = run_py(sandbox, code, tmp_path, max_processes=20)
    assert (result.verdict, result.message) == ("processes", "started more than 20 processes (threads count too)")


def test_file_size_python(sandbox, tmp_path):
    code = """
        with open("big.bin", "wb") as f:
            for _ in range(200):  # up to 200 MiB
                f.write(b"x" * (1 << 20))
    """
    result = run_py(sandbox, code, tmp_path, file_size_bytes=16 * MiB)
    assert (result.verdict, result.message) == ("file_size", "wrote a file larger than 16 MiB")
    assert (tmp_path / "workspace" / "big.bin").stat().st_size == 16 * MiB


def test_file_size_signal(sandbox, tmp_path):
    """A program that does not ignore SIGXFSZ is killed by it."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = sandbox.run(
        ["sh", "-c", "head -c 200000000 /dev/zero > big.bin"],
        workspace=workspace,
        limits=Limits(wall_s=20, file_size_bytes=8 * MiB),
    )
    assert (result.verdict, result.message) == ("file_size", "wrote a file larger than 8 MiB")


def test_output_is_cut(sandbox, tmp_path):
    code = """
        import sys
        for _ in range(20):  # 20 MiB
            sys.stdout.write("y" * (1 << 20))
        print("done", file=sys.stderr)
    """
    result = run_py(sandbox, code, tmp_path, output_bytes=1 * MiB)
    assert (result.verdict, result.message) == ("output", "printed more than 1 MiB on stdout (an output flood) and was stopped")
    head, note, tail = result.stdout.split("\n", 2)
    assert head == "y" * (1 << 19) and tail == "y" * (1 << 19)  # the first and the last half MiB
    assert re.fullmatch(r"\[output cut: 1(\.\d)? MiB printed, the first 512 KiB and the last 512 KiB kept\]", note)
    assert result.stderr == "" and result.returncode == -9  # stopped at the limit: "done" never printed


def test_filling_the_workspace_stops_the_run(sandbox, tmp_path):
    code = """
        import os, time
        block = os.urandom(1 << 20)
        for i in range(1000):  # a checkpoint of 1 MiB every 10 ms: 1 GiB in 10 s, past the 32 MiB quota
            with open(f"checkpoint-{i}.pt", "wb") as f:
                f.write(block)
            time.sleep(0.01)
        print("never reached")
    """
    result = run_py(sandbox, code, tmp_path, workspace_bytes=32 * MiB)
    assert (result.verdict, result.message) == ("workspace", "wrote more than 32 MiB into its working folder")
    assert "never reached" not in result.stdout and result.wall_s < 5
    written = sum(p.stat().st_size for p in (tmp_path / "workspace").iterdir())
    assert written < 128 * MiB  # stopped soon after the quota (measured every 0.25 s)


def test_a_workspace_filled_faster_than_it_is_measured_is_still_reported(sandbox, tmp_path):
    code = """
        with open("blob", "wb") as f:
            f.write(b"x" * (48 << 20))
    """
    result = run_py(sandbox, code, tmp_path, workspace_bytes=32 * MiB)
    assert (result.verdict, result.message) == ("workspace", "wrote more than 32 MiB into its working folder")


def test_creating_too_many_files_stops_the_run(sandbox, tmp_path):
    code = """
        import os, time
        os.mkdir("many")
        for i in range(100_000):
            open(f"many/{i}", "w").close()
        time.sleep(5)
    """
    result = run_py(sandbox, code, tmp_path, workspace_files=2_000)
    assert (result.verdict, result.message) == ("workspace", "created more than 2,000 files in its working folder")


def test_killed_by_signal(sandbox, tmp_path):
    result = run_py(sandbox, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", tmp_path)
    assert (result.verdict, result.message, result.returncode) == ("killed", "was killed by SIGSEGV (a segmentation fault)", -11)


def test_stdin_reaches_the_command(sandbox, tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    data = bytes(range(256)) * 2048  # 512 KiB: more than a pipe buffer
    result = sandbox.run(
        [PY, "-c", "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
        workspace=workspace, limits=Limits(wall_s=20), mounts=python_mounts(), stdin=data,
    )
    import hashlib

    assert result.verdict == "ok" and result.stdout.strip() == hashlib.sha256(data).hexdigest()


def _marked(marker: str) -> list[psutil.Process]:
    """Processes whose command line contains ``marker``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def test_no_process_survives_a_daemon_or_an_open_pipe(sandbox, tmp_path):
    """A daemonised grandchild holding stdout open neither survives the run nor makes it hang."""
    code = """
        import os, subprocess
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execvp("sleep", ["sleep", "31.4159"])
            os._exit(0)
        print("parent done")
    """
    start = time.monotonic()
    result = run_py(sandbox, code, tmp_path)
    assert result.verdict == "ok" and result.stdout == "parent done\n"
    assert time.monotonic() - start < 3.0
    time.sleep(0.2)
    assert _marked("31.4159") == []


def test_no_process_survives_a_fork_bomb(sandbox, tmp_path):
    code = """
        import os, time
        for _ in range(9):  # up to 512 processes, each sleeping
            try:
                os.fork()
            except OSError:
                break
        time.sleep(27.1828)
    """
    result = run_py(sandbox, code, tmp_path, max_processes=40, wall_s=1.5)
    assert result.verdict == "processes"
    time.sleep(0.2)
    assert _marked("27.1828") == []
