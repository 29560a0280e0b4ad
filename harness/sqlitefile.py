"""Open gradebench's SQLite files (the results store, the benchmark history) the same careful way.

Both are single files several processes may open at once: the opener creates the folder, refuses a
folder or a file written by a newer gradebench, creates the schema in one immediate transaction
(retried while another process is creating the same file), and turns every SQLite error into a
:class:`StoreError` that names the file and what it was meant to be.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import StoreError


def when_unlocked(step: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``step``, retrying while another process holds the database locked (up to ``timeout_s``).

    Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is locked" at once,
    without waiting for the busy timeout, while another process is creating the same file.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return step()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


FULL_BELOW_BYTES = 1024**2
"""Free space under which a failing SQLite file is said to be on a full disk (SQLite grows its files in pages and
its shared-memory file in 32 KiB steps, so it fails a little before the last byte is taken)."""


def _free_bytes(path: Path) -> int | None:
    """Bytes an ordinary user may still write on the file system holding ``path``; None when unknown."""
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return None


def open_database(
    path: Path,
    *,
    what: str,
    example: str,
    schema: str,
    version: int,
    timeout_s: float,
    wal: bool = False,
    shared: bool = False,
    before_schema: Callable[[sqlite3.Connection], None] | None = None,
    after_schema: Callable[[sqlite3.Connection], None] | None = None,
) -> sqlite3.Connection:
    """Open (or create) the SQLite file ``path`` holding ``what`` (``"results store"``); StoreError if it cannot.

    ``schema``: the CREATE statements, run with ``PRAGMA user_version = version`` in one transaction.
    ``wal``: write-ahead logging and full syncs (several writers at once). ``shared``: the connection may be
    used from other threads (the caller serialises). ``before_schema`` and ``after_schema`` raise StoreError
    when the file is some other SQLite file (``example``: a file name to suggest when ``path`` is a folder).
    """
    if path.is_dir():
        raise StoreError(f"{path}: is a folder; the {what} is a file (e.g. {example})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=not shared)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"{path}: cannot open the {what} ({e})") from None
    try:
        if wal:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            when_unlocked(lambda: conn.execute("PRAGMA journal_mode = WAL"), timeout_s)
            conn.execute("PRAGMA synchronous = FULL")
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise StoreError(
                f"{path}: {what} schema {found} was written by a newer gradebench (this one reads schema {version})"
            )
        if before_schema is not None:
            before_schema(conn)
        when_unlocked(
            lambda: conn.executescript(f"BEGIN IMMEDIATE; {schema} PRAGMA user_version = {version}; COMMIT;"),
            timeout_s,
        )
        if after_schema is not None:
            after_schema(conn)
    except sqlite3.Error as e:
        conn.close()
        free = _free_bytes(path)
        # On a full disk SQLite says "disk I/O error": "not readable" would invite deleting a store that is whole.
        if free is not None and free < FULL_BELOW_BYTES:
            raise StoreError(
                f"{path}: cannot open the {what}: the disk holding it is full ({free // 1024:,} KiB free); free some "
                f"space and run the same command again (SQLite said: {e})"
            ) from None
        raise StoreError(f"{path}: not a readable {what} ({e})") from None
    except StoreError:
        conn.close()
        raise
    return conn
