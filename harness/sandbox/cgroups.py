"""Per-run cgroup (v1) groups: a hard memory limit, a process limit and CPU accounting.

Each run gets a child group, named ``gradebench-<id>``, under the group this process is
already in, in each of the ``memory``, ``pids`` and ``cpuacct`` hierarchies. The kernel then
enforces the memory and process limits (no polling race) and counts every nanosecond of CPU
the run's processes use, even those that exited early. Where the hierarchies are missing,
read-only (not root) or cgroup v2 only, ``RunCgroups.create`` raises ``CgroupsUnavailable``
and the sandbox falls back to a watchdog that polls the process tree.

``cpu_quota_cores`` reads the CPU quota of the group this process is in (v1 or v2), so that a batch in a
container started with ``--cpus 2`` keeps two cores busy, not every core the container can see.
"""

from __future__ import annotations

import errno
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpuacct")
PREFIX = "gradebench-"
"""Run groups are named ``gradebench-<pid of the harness>-<id>``: a group whose harness is gone is stale."""
STALE_S = 60.0
"""An empty run group of the old naming (no harness pid) older than this was left by a killed harness."""


class CgroupsUnavailable(Exception):
    """The cgroup v1 controllers cannot be used here; the message says why."""


def _v1_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> dict[str, tuple[Path, str]]:
    """Map each cgroup v1 controller to (mount point, root of the mount inside the hierarchy)."""
    mounts: dict[str, tuple[Path, str]] = {}
    for kind, options, mount, root in _cgroup_mounts(mountinfo):
        if kind == "cgroup":
            for option in options:
                mounts.setdefault(option, (mount, root))
    return mounts


def _cgroup_mounts(mountinfo: Path) -> list[tuple[str, list[str], Path, str]]:
    """Every cgroup hierarchy mounted here: (``cgroup`` or ``cgroup2``, its options, mount point, root inside it)."""
    found = []
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
            found.append((rfields[0], rfields[2].split(","), Path(fields[4]), fields[3]))
    return found


def _own_groups(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """Map each v1 controller to the group this process is in (``/process_api/ab12...``)."""
    groups: dict[str, str] = {}
    for line in proc_cgroup.read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name:
                groups[name] = path
    return groups


def _group_folder(mount: Path, root: str, path: str) -> Path:
    """Where the group ``path`` of ``/proc/self/cgroup`` lies under a hierarchy mounted at ``mount`` from ``root``."""
    relative = os.path.relpath(path, root)
    return mount if relative == "." else mount / relative


@dataclass
class RunCgroups:
    """The memory, pids and cpuacct groups of one run; ``remove`` kills what is left and deletes them."""

    memory: Path
    pids: Path
    cpuacct: Path

    @classmethod
    def create(cls, memory_bytes: int, max_tasks: int, files_bytes: int = 0) -> RunCgroups:
        """Create the run's groups with their limits, or raise CgroupsUnavailable saying why.

        ``files_bytes``: room for the files the run keeps in memory-backed folders (its tmpfs workspace), whose
        pages the kernel charges to the group as well: the group's hard limit is ``memory_bytes`` plus that room,
        and the supervisor holds what the run's processes themselves hold (:meth:`process_bytes`) to
        ``memory_bytes``. Else a run within its memory limit and its workspace's size is killed as out of memory.
        """
        mounts, own = _v1_mounts(), _own_groups()
        name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        made: list[Path] = []
        try:
            for controller in CONTROLLERS:
                if controller not in mounts or controller not in own:
                    raise CgroupsUnavailable(f"no cgroup v1 {controller} hierarchy is mounted")
                parent = _group_folder(*mounts[controller], own[controller])
                group = parent / name
                _remove_stale(parent)
                try:
                    group.mkdir()
                except OSError as error:
                    raise CgroupsUnavailable(f"cannot create {group}: {error.strerror}") from error
                made.append(group)
            groups = cls(memory=made[0], pids=made[1], cpuacct=made[2])
            groups._write("memory", "memory.limit_in_bytes", memory_bytes + files_bytes)
            if (groups.memory / "memory.memsw.limit_in_bytes").exists():  # no swapping past the limit
                groups._write("memory", "memory.memsw.limit_in_bytes", memory_bytes + files_bytes)
            groups._write("pids", "pids.max", max_tasks)
            return groups
        except BaseException:
            for group in reversed(made):
                _rmdir(group)
            raise

    def _write(self, controller: str, file: str, value: int) -> None:
        path = getattr(self, controller) / file
        try:
            path.write_text(str(value))
        except OSError as error:
            raise CgroupsUnavailable(f"cannot write {path}: {error.strerror}") from error

    def procs_files(self) -> list[bytes]:
        """The ``cgroup.procs`` paths a freshly forked child writes its pid into (encoded, for preexec)."""
        return [os.fsencode(group / "cgroup.procs") for group in (self.memory, self.pids, self.cpuacct)]

    def _read_int(self, path: Path) -> int:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def _read_key(self, path: Path, key: str) -> int:
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def memory_bytes(self) -> int:
        """Memory charged to the run now (resident pages, page cache and tmpfs included)."""
        return self._read_int(self.memory / "memory.usage_in_bytes")

    def process_bytes(self) -> int:
        """Memory the run's processes hold now: anonymous pages (and their swap), not the page cache nor the files
        of a tmpfs."""
        stat = self.memory / "memory.stat"
        return self._read_key(stat, "total_rss") + self._read_key(stat, "total_swap")

    def peak_memory_bytes(self) -> int:
        """Largest memory ever charged to the run (exact, not sampled)."""
        return self._read_int(self.memory / "memory.max_usage_in_bytes")

    def oom_kills(self) -> int:
        """Processes the kernel killed for breaking the memory limit."""
        return self._read_key(self.memory / "memory.oom_control", "oom_kill")  # counter since Linux 4.13

    def refused_forks(self) -> int:
        """Forks and thread creations refused because the run was at its process limit."""
        return self._read_key(self.pids / "pids.events", "max")

    def tasks(self) -> int:
        """Processes and threads in the run now."""
        return self._read_int(self.pids / "pids.current")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used by every process of the run so far, exited ones included."""
        return self._read_int(self.cpuacct / "cpuacct.usage") / 1e9

    def processes(self) -> list[int]:
        """Processes in the run now."""
        try:
            return [int(pid) for pid in (self.pids / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process of the run until none is left; False if some survived ``timeout_s``."""
        return _kill_until_empty(self.pids, timeout_s)

    def remove(self) -> list[str]:
        """Kill what is left and delete the groups; returns problems worth logging (normally none)."""
        problems = [] if self.kill_all() else [f"processes survived SIGKILL in {self.pids}"]
        for group in (self.memory, self.pids, self.cpuacct):
            if not _rmdir(group):
                problems.append(f"could not remove {group}")
        return problems


def remove_stale_groups() -> list[Path]:
    """Remove the run groups whose harness is gone (SIGKILLed before it cleaned up), killing what still runs there.

    Called when a sandbox starts; returns the groups removed. Does nothing where cgroups are unusable.
    """
    try:
        mounts, own = _v1_mounts(), _own_groups()
    except OSError:
        return []
    removed: list[Path] = []
    for controller in CONTROLLERS:
        if controller not in mounts or controller not in own:
            continue
        removed += _remove_stale(_group_folder(*mounts[controller], own[controller]))
    return removed


def _harness_gone(group: Path) -> bool:
    """Whether the harness that made ``group`` has exited (its pid is free or belongs to a newer process)."""
    import psutil

    parts = group.name[len(PREFIX):].split("-")
    if len(parts) != 2 or not parts[0].isdigit():  # the old naming: stale when old and empty
        return time.time() - group.stat().st_mtime > STALE_S and not (group / "cgroup.procs").read_text().strip()
    try:
        return psutil.Process(int(parts[0])).create_time() > group.stat().st_mtime + 1
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _remove_stale(parent: Path) -> list[Path]:
    """Remove the run groups under ``parent`` left by a harness that was killed, and their processes."""
    try:
        siblings = [p for p in parent.iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:
        return []
    removed = []
    for group in siblings:
        try:
            if not _harness_gone(group):
                continue
        except OSError:
            continue
        _kill_until_empty(group, 5.0)  # its processes outlived the harness (a plain run, a daemon)
        if _rmdir(group):
            removed.append(group)
    return removed


def _kill_until_empty(group: Path, timeout_s: float) -> bool:
    """SIGKILL the processes of ``group`` until it has none; False if some survived ``timeout_s``.

    A group that cannot be read (removed meanwhile) counts as empty.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pids = [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return True
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _rmdir(group: Path) -> bool:
    """Remove an empty cgroup, retrying while its last processes are being reaped."""
    for _ in range(200):
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY:
                return False
            time.sleep(0.01)
    return False


def cpu_quota_cores(mountinfo: Path = Path("/proc/self/mountinfo"),
                    proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """How many CPUs a cgroup CPU quota grants this process (a container's ``--cpus``): the smallest quota / period
    from its group up to the hierarchy's root, in cgroup v1's ``cpu`` controller (``cpu.cfs_quota_us``) or in
    cgroup v2 (``cpu.max``); None where no quota is set or the groups cannot be read."""
    try:
        mounts = _cgroup_mounts(mountinfo)
        groups = _own_groups(proc_cgroup)
        unified = next((line.split(":", 2)[2] for line in proc_cgroup.read_text().splitlines()
                        if line.startswith("0::")), None)
    except (OSError, ValueError, IndexError):
        return None
    places: list[tuple[Path, Path, str]] = []  # (mount point, the process's group folder, kind)
    for kind, options, mount, root in mounts:
        if kind == "cgroup2" and unified is not None:
            places.append((mount, _group_folder(mount, root, unified), "v2"))
        elif kind == "cgroup" and "cpu" in options and "cpu" in groups:
            places.append((mount, _group_folder(mount, root, groups["cpu"]), "v1"))
    quotas = []
    for mount, folder, kind in places:
        while True:
            quota = _quota(folder, kind)
            if quota is not None:
                quotas.append(quota)
            if folder == mount or mount not in folder.parents:
                break
            folder = folder.parent
    return min(quotas) if quotas else None


def _quota(folder: Path, kind: str) -> float | None:
    """The CPUs the quota of one group grants; None without one."""
    try:
        if kind == "v2":
            limit, period = (folder / "cpu.max").read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        limit_us = int((folder / "cpu.cfs_quota_us").read_text())
        period_us = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return limit_us / period_us if limit_us > 0 and period_us > 0 else None
