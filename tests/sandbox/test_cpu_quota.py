"""The CPU quota of a container (cgroup v1 cpu.cfs_quota_us, v2 cpu.max), read from fake hierarchies: how many
cores a batch may keep busy when the command line does not say."""

from __future__ import annotations


def _cgroup_v1(tmp_path, own: str, quotas: dict[str, int]):
    """A cgroup v1 ``cpu`` hierarchy under ``tmp_path`` with the given quotas (µs per 100,000 µs) per group folder;
    this process in group ``own``. Returns (mountinfo, /proc/self/cgroup) files."""
    mount = tmp_path / "cpu"
    for group in {"", *quotas}:
        (mount / group).mkdir(parents=True, exist_ok=True)
        (mount / group / "cpu.cfs_quota_us").write_text(f"{quotas.get(group, -1)}\n")
        (mount / group / "cpu.cfs_period_us").write_text("100000\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"31 23 0:28 / {tmp_path} rw,relatime - tmpfs tmpfs rw,mode=755\n"
                         f"32 31 0:29 / {mount} rw,relatime - cgroup cgroup rw,cpu\n"
                         f"35 31 0:32 / {tmp_path / 'memory'} rw,relatime - cgroup cgroup rw,memory\n")
    proc = tmp_path / "cgroup"
    proc.write_text(f"4:memory:/elsewhere\n1:cpu:{own}\n0::/\n")
    return mountinfo, proc


def test_a_cpu_quota_is_read_from_the_processs_group_or_the_smallest_above_it(tmp_path) -> None:
    from harness.sandbox.cgroups import cpu_quota_cores

    assert cpu_quota_cores(*_cgroup_v1(tmp_path / "a", "/docker/abc", {"docker/abc": 200_000})) == 2.0
    assert cpu_quota_cores(*_cgroup_v1(tmp_path / "b", "/docker/abc", {"docker/abc": 400_000, "docker": 150_000})) == 1.5
    assert cpu_quota_cores(*_cgroup_v1(tmp_path / "c", "/docker/abc", {})) is None  # -1 everywhere: no quota
    assert cpu_quota_cores(tmp_path / "no-mountinfo", tmp_path / "no-cgroup") is None


def test_a_cgroup_v2_cpu_max_is_a_quota_too(tmp_path) -> None:
    from harness.sandbox.cgroups import cpu_quota_cores

    mount = tmp_path / "unified"
    (mount / "user.slice" / "app").mkdir(parents=True)
    (mount / "cpu.max").write_text("max 100000\n")
    (mount / "user.slice" / "cpu.max").write_text("300000 100000\n")
    (mount / "user.slice" / "app" / "cpu.max").write_text("max 100000\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 23 0:27 / {mount} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/app\n")
    assert cpu_quota_cores(mountinfo, proc) == 3.0
    (mount / "user.slice" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota_cores(mountinfo, proc) is None
