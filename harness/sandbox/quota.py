"""A working folder with a hard size and file-count limit, for the runs of one submission.

As root, the folder is a tmpfs mounted for the submission's grading (``size=`` and ``nr_inodes=``
from ``Limits``, plus a small margin so that the supervisor still sees the limit passed and names
it): whatever the student's code does, it cannot put more than that on the host, and the space
is given back when the folder is unmounted. Elsewhere (no root, or a kernel that refuses the
mount) the folder is a plain one and only the supervisor's measures stop a run that fills it.
Either way :func:`release_folder` removes it when the submission is graded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
from pathlib import Path

from harness.models import Limits, MiB

log = logging.getLogger(__name__)

MARGIN_BYTES = 64 * MiB
"""Room above ``Limits.workspace_bytes`` on the tmpfs, so a run passing the limit is caught and named."""
MARGIN_FILES = 100
"""Room above ``Limits.workspace_files``, for the same reason."""
MS_NOSUID, MS_NODEV = 2, 4
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
    options = (f"size={limits.workspace_bytes + MARGIN_BYTES},nr_inodes={limits.workspace_files + MARGIN_FILES},"
               "mode=0755")
    libc = _libc()
    done = libc.mount(b"gradebench-work", os.fsencode(folder), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())
    if done != 0:
        log.warning("no size-limited workspace (mounting a tmpfs failed: %s); its size is only measured",
                    os.strerror(ctypes.get_errno()))
        return False
    return True


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
