"""What every step of loading shares: the limits, a file offered for staging, a refusal, and names in messages."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from harness.models import MiB

CODE_SUFFIXES = (".ipynb", ".py")
"""File suffixes that hold code the harness can grade."""

JUNK_NAMES = frozenset({"__MACOSX", ".DS_Store", "__pycache__", ".ipynb_checkpoints", ".git", "Thumbs.db"})
"""File and folder names that operating systems and tools leave behind; never staged."""

_CHUNK = 1 * MiB

MAX_PATH_DEPTH = 32
"""Deepest folder nesting staged; files below it are skipped with a warning."""


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on what loading stages for one submission, so hostile input cannot fill the disk or memory."""

    max_file_bytes: int = 100 * MiB
    """Largest single file (a notebook, a script, an uploaded zip, one zip entry)."""
    max_total_bytes: int = 500 * MiB
    """Bytes written for one submission in all, zips unpacked included."""
    max_entries: int = 10_000
    """Entries of one zip, or files and sub-folders of one folder."""
    max_ratio: float = 200.0
    """Largest expansion of one zip entry, uncompressed over compressed bytes (a zip bomb's is about 1,000)."""
    ratio_floor_bytes: int = 1 * MiB
    """Entries that expand to no more than this are not held to ``max_ratio`` (tiny files compress wildly)."""


class _Rejected(Exception):
    """A submission cannot be loaded; the message is the ``LoadFailure`` reason."""


@dataclass(frozen=True)
class _Member:
    """One file offered for staging: where it lands under the root and how to read it."""

    parts: tuple[str, ...]
    """Path components relative to the submission root (already checked: no ``..``, no absolute path)."""
    label: str
    """How messages name it: the name the student gave it (zip entry, relative path, LMS file name)."""
    size: int
    """Size announced by the file system or the zip header (checked again while copying)."""
    open: Callable[[], IO[bytes]]
    """Opens the bytes for reading."""
    compressed_size: int | None = None
    """Compressed bytes of a zip entry (for the ratio check); None for plain files."""
    path: Path | None = None
    """The file on disk, when there is one (lets a zip be opened in place)."""
    unpack: bool = False
    """True for a zip that is itself the hand-in (or an LMS upload): extract it instead of copying it."""


@dataclass
class _Budget:
    """Bytes and files written so far for one submission."""

    bytes: int = 0
    files: int = 0


@dataclass
class _Found:
    """What listing a folder or a zip found."""

    members: list[_Member] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Names of the zip entries refused (one per warning ``_zip_members`` added)."""
    late: bool = False
    """The LMS marked an upload late."""


# ------------------------------------------------------------------------------------------------ helpers


def _readable(name: str) -> str:
    """A file name for messages: bytes that are not UTF-8 shown as ``\\xe9`` instead of surrogates."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_surrogates(name: str) -> bool:
    """True for a name decoded with surrogateescape from bytes that are not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _not_a_submission(name: str) -> str:
    return f"{name} is not a submission: expected a notebook (.ipynb), a Python file (.py), a folder or a .zip"


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stem(name: str) -> str:
    return _split_ext(name)[0] or name


def _split_ext(name: str) -> tuple[str, str]:
    stem, ext = os.path.splitext(name)
    return stem, ext


def _is_junk(name: str) -> bool:
    return name in JUNK_NAMES or name.startswith("._")


def _inside(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or lies under it (both absolute, already resolved as needed)."""
    return os.path.commonpath([path, root]) == root
