"""A working folder with a hard size and file-count limit, for the runs of one submission.

As root, the folder is a tmpfs mounted for the submission's grading (``size=`` and ``nr_inodes=``
from ``Limits``, plus a small margin so that the supervisor still sees the limit passed and names
it): whatever the student's code does, it cannot put more than that on the host, and the space
is given back when the folder is unmounted. Elsewhere (no root, or a kernel that refuses the
mount) the folder is a plain one and only the supervisor's measures stop a run that fills it.
Either way :func:`release_folder` removes it when the submission is graded.

A grading killed before it cleaned up (SIGKILL, SIGTERM, a pytest timeout) leaves its tmpfs mounted, holding
the student's files in memory until the machine restarts. Each tmpfs is named after the harness process that
mounted it (``gradebench-work-<pid>``), so the next :func:`limited_folder`, in any output folder, unmounts
the ones whose harness is gone (:func:`remove_stale_workspaces`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import shutil
from pathlib import Path

from harness.models import Limits, MiB

log = logging.getLogger(__name__)

MARGIN_BYTES = 64 * MiB
"""Room above ``Limits.workspace_bytes`` on the tmpfs, so a run passing the limit is caught and named."""
MARGIN_FILES = 100
"""Room above ``Limits.workspace_files``, for the same reason."""
SOURCE = "gradebench-work"
"""The mount source of a workspace tmpfs: ``gradebench-work-<pid of the harness that mounted it>``."""
MS_NOSUID, MS_NODEV = 2, 4
_OCTAL = re.compile(rb"\\([0-7]{3})")
MNT_DETACH = 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def limited_folder(folder: Path, limits: Limits) -> bool:
    """Make ``folder`` an empty working folder, size-limited when possible; True when the limit is a hard one.

    Whatever was there before (a grading killed midway: its files, or its still mounted tmpfs) is removed.
    """
    folder = Path(folder)
    release_folder(folder)
    folder.mkdir(parents=True)
    if os.geteuid() != 0:
        return False
    for stale in remove_stale_workspaces():
        log.warning("unmounted the workspace %s, left by a grading that was killed", stale)
    options = (f"size={limits.workspace_bytes + MARGIN_BYTES},nr_inodes={limits.workspace_files + MARGIN_FILES},"
               "mode=0755")
    libc = _libc()
    done = libc.mount(f"{SOURCE}-{os.getpid()}".encode(), os.fsencode(folder), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())
    if done != 0:
        log.warning("no size-limited workspace (mounting a tmpfs failed: %s); its size is only measured",
                    os.strerror(ctypes.get_errno()))
        return False
    return True


def remove_stale_workspaces(mounts: Path = Path("/proc/self/mounts")) -> list[Path]:
    """Unmount the workspaces whose harness is gone (killed before it released them); returns their folders.

    A workspace is stale when the process named in its source has exited, or when a process with that pid
    started after the workspace last changed (the pid was reused). Workspaces of a harness still running, and
    those of older versions (source without a pid), are left: a rerun on the same folder replaces the latter.
    """
    import psutil

    try:
        lines = mounts.read_bytes().splitlines()
    except OSError:
        return []
    prefix = SOURCE.encode() + b"-"
    removed = []
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or fields[2] != b"tmpfs" or not fields[0].startswith(prefix):
            continue
        pid = fields[0][len(prefix):].decode("ascii", "replace")
        if not pid.isdigit():
            continue
        # the kernel writes a space, tab, newline or backslash in a path as an octal escape (\040)
        folder = Path(os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), fields[1])))
        try:
            changed = folder.stat().st_ctime
            if psutil.Process(int(pid)).create_time() <= changed + 1:
                continue  # its harness is still running
        except psutil.NoSuchProcess:
            pass
        except (psutil.Error, OSError):
            continue
        if _libc().umount2(os.fsencode(folder), MNT_DETACH) == 0:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def release_folder(folder: Path, keep: bool = False) -> None:
    """Remove a working folder (unmounting its tmpfs); ``keep``: leave a copy of its files on disk instead."""
    folder = Path(folder)
    mounted = os.path.ismount(folder)
    if keep and not mounted:
        return
    kept = folder.with_name(folder.name + ".kept")
    if keep:
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(folder, kept, symlinks=True)  # bounded by the tmpfs's own limits
    if mounted and _libc().umount2(os.fsencode(folder), MNT_DETACH) != 0:
        log.warning("could not unmount the workspace %s: %s", folder, os.strerror(ctypes.get_errno()))
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    if keep:
        kept.rename(folder)
