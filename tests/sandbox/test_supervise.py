"""The shared supervisor: messages, output capture, cgroup discovery and clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from harness.models import GiB, Limits, MiB
from harness.sandbox import PlainProcessSandbox
from harness.sandbox.cgroups import CgroupsUnavailable, RunCgroups, _own_groups, _v1_mounts
from harness.sandbox.supervise import _Capture, format_bytes, format_seconds

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PROC_CGROUP = """\
4:memory:/docker/abc/job
2:cpu,cpuacct:/
0::/
"""


def test_sizes_and_times_read_like_a_person_wrote_them():
    assert [format_bytes(n) for n in (512 * MiB, 4 * GiB, 3 * GiB // 2, 800 * 1024, 12)] == [
        "512 MiB", "4 GiB", "1.5 GiB", "800 KiB", "12 bytes"]
    assert [format_seconds(s) for s in (5.0, 2.5, 300)] == ["5 s", "2.5 s", "300 s"]


def test_capture_keeps_the_head_and_the_tail_and_counts_the_rest():
    capture = _Capture(limit=10)
    for chunk in (b"0123", b"456789abc", b"x" * 1000, b"wxyz"):
        capture.feed(chunk)
    assert capture.cut and capture.total == 1017 and (bytes(capture.kept), bytes(capture.tail)) == (b"01234", b"xwxyz")
    assert capture.text() == "01234\n[output cut: 1017 bytes printed, the first 5 bytes and the last 5 bytes kept]\nxwxyz"
    short = _Capture(limit=10)
    short.feed(b"0123456789")
    assert not short.cut and short.text() == "0123456789"
    half_character = _Capture(limit=2)
    half_character.feed("é".encode())
    half_character.feed(b"!")
    assert half_character.text().startswith("\ufffd")


def test_cgroup_discovery_parses_comounted_and_nested_hierarchies(tmp_path):
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(PROC_CGROUP)
    mounts = _v1_mounts(tmp_path / "mountinfo")
    assert mounts["cpuacct"] == (Path("/sys/fs/cgroup/cpu,cpuacct"), "/")
    assert mounts["memory"] == (Path("/sys/fs/cgroup/memory"), "/docker/abc")
    assert "pids" not in mounts
    assert _own_groups(tmp_path / "cgroup") == {"memory": "/docker/abc/job", "cpu": "/", "cpuacct": "/"}


def test_cgroups_are_removed_after_a_run(tmp_path):
    try:
        probe = RunCgroups.create(64 * MiB, 8)
    except CgroupsUnavailable as error:
        pytest.skip(f"per-run cgroups are not usable here ({error}); the watchdog is tested instead")
    parents = [group.parent for group in (probe.memory, probe.pids, probe.cpuacct)]
    probe.remove()
    ours = f"gradebench-{os.getpid()}-"  # another grading on this machine makes and removes groups of its own
    before = {p: sorted(x.name for x in p.iterdir() if x.name.startswith(ours)) for p in parents}
    result = PlainProcessSandbox(use_cgroups=True).run(
        [sys.executable, "-c", "import os; os.fork(); print('x')"], workspace=tmp_path, limits=Limits(wall_s=20))
    after = {p: sorted(x.name for x in p.iterdir() if x.name.startswith(ours)) for p in parents}
    assert result.verdict == "ok" and result.stdout == "x\nx\n"
    assert after == before


def test_groups_left_by_a_killed_harness_are_removed_when_a_sandbox_starts(tmp_path):
    """A harness SIGKILLed mid-run leaves its groups and a process in them; the next sandbox removes both."""
    try:
        RunCgroups.create(64 * MiB, 8).remove()
    except CgroupsUnavailable as error:
        pytest.skip(f"per-run cgroups are not usable here ({error}); the watchdog is tested instead")
    harness_code = textwrap.dedent("""
        import os, subprocess, time
        from harness.sandbox.cgroups import RunCgroups
        groups = RunCgroups.create(64 * 1024 ** 2, 8)
        def join():
            for path in groups.procs_files():
                with open(path, "wb") as f:
                    f.write(str(os.getpid()).encode())
        child = subprocess.Popen(["sleep", "300"], preexec_fn=join, start_new_session=True)
        print(groups.memory, groups.pids, groups.cpuacct, child.pid, flush=True)
        time.sleep(300)
    """)
    harness_process = subprocess.Popen([sys.executable, "-c", harness_code], stdout=subprocess.PIPE, text=True)
    *paths, child = harness_process.stdout.readline().split()
    groups = [Path(p) for p in paths]
    harness_process.kill()
    harness_process.wait()
    assert all(group.exists() for group in groups) and psutil.pid_exists(int(child))  # leaked
    other = RunCgroups.create(64 * MiB, 8)  # a live harness's group is left alone
    try:
        PlainProcessSandbox()
        assert not any(group.exists() for group in groups)
        assert not psutil.pid_exists(int(child)) or psutil.Process(int(child)).status() == psutil.STATUS_ZOMBIE
        assert other.memory.exists() and other.pids.exists()
    finally:
        other.remove()
