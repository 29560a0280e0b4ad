"""The output folder of a grading run: claimed by one run at a time, writable, and never left half-made.

``claim_output(out)`` is what every command that writes into an output folder runs inside:

- it creates the folder (and its parents) or says plainly why it cannot: a read-only file system, a file in
  the way, missing permission: an ``OutputError`` naming the folder, never an ``OSError`` traceback;
- it takes an exclusive lock on ``<out>/.gradebench.lock`` (``fcntl.flock``): a second run on the same folder
  refuses at once with the first run's process id, start time and command, instead of wiping the first run's
  workspaces and storing scores computed from them. The lock goes with the process (a killed run leaves no
  stale lock behind; the file stays, its contents only say who held it last);
- when the command fails and the folder did not exist before, the folder is removed again, unless a result was
  already stored in it: a failed first run leaves nothing behind, and a batch interrupted after grading some
  students keeps them. A folder that existed before (earlier results) is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import HarnessError

LOCK_NAME = ".gradebench.lock"
"""The lock file inside an output folder."""

STORE_NAME = "results.sqlite"
"""The results store inside an output folder."""


class OutputError(HarnessError):
    """An output folder cannot be created or written, or another run holds it."""


def _why(error: OSError) -> str:
    """What an ``OSError`` means for someone choosing an output folder."""
    reasons = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a file is in the way (a part of the path is not a folder)",
        errno.EEXIST: "a file with that name exists",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
    }
    return reasons.get(error.errno, error.strerror or str(error))


def _create(out: Path) -> Path | None:
    """Create ``out`` if needed; the topmost folder this call created (None: ``out`` existed).

    OutputError when it cannot be made or written.
    """
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write the results to {out}: it is a file, not a folder; choose another --out")
    top = None
    for folder in (out, *out.absolute().parents):
        if os.path.lexists(folder):
            break
        top = folder
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".gradebench-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"cannot write the results to {out}: {_why(error)}; choose another --out") from None
    return top


def _holder(lock_file: Path) -> str:
    """Who holds the lock, as its holder wrote it ("pid 1234 since ... : gradebench grade ...")."""
    try:
        text = lock_file.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another process"
    return text.splitlines()[0] if text else "another process"


def _holds_results(out: Path) -> bool:
    """True when a results store in ``out`` holds at least one report (or cannot be read: keep it to be safe)."""
    store = out / STORE_NAME
    if not store.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
            return bool(conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
    except sqlite3.Error as error:
        return "no such table" not in str(error)


@contextlib.contextmanager
def claim_output(out: Path, *, command: str | None = None) -> Iterator[Path]:
    """Hold ``out`` for this run (see the module's docstring); yields the folder.

    ``command`` is written into the lock file for the message a second run shows (default: this
    process's command line).
    """
    created = _create(out)
    lock_file = out / LOCK_NAME
    try:
        handle = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise OutputError(f"cannot write the results to {out}: {_why(error)}; choose another --out") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"{out} is in use by another gradebench run ({_holder(lock_file)}); wait for it to finish, "
                "or give this run another --out"
            ) from None
        since = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        what = command or " ".join(["gradebench", *sys.argv[1:]])
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()} since {since}: {what}\n".encode("utf-8", "backslashreplace"), 0)
        try:
            yield out
        except BaseException:
            if created is not None and not _holds_results(out):  # a failed first run leaves no half-made folder
                os.close(handle)
                handle = -1
                shutil.rmtree(created, ignore_errors=True)
            raise
    finally:
        if handle >= 0:
            os.close(handle)  # releases the lock
