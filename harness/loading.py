"""Find, stage and validate submissions; nothing here ever runs a student's code.

What a submission can be (``load_submission``):

- a single notebook (``CNNMNIST.ipynb``): kind ``notebook``;
- a single Python file (``q1.py``): kind ``module``;
- a package folder (one with an ``__init__.py``): staged as ``<root>/<folder name>/...`` so that its import
  name survives; kind ``package``;
- any other folder: its contents are staged directly under ``<root>``;
- a ``.zip`` of any of those: extracted under ``<root>``. When every entry sits in one top folder that folder
  is unwrapped, except when it is a package (it holds an ``__init__.py``), whose name is kept.

The kind of a folder or a zip follows from the code files it holds (``.ipynb`` and ``.py``): ``notebook`` or
``module`` when there is exactly one and it sits at the top; ``package`` when all of them lie inside one
top-level folder that has an ``__init__.py``; ``folder`` otherwise (several notebooks and scripts, or an
``__init__.py`` at the top, whose import name is unknown).

Everything is copied into ``staging/<student>/`` first (the original is never touched again) and validated
there: every notebook must be UTF-8 JSON in nbformat 4 that passes the nbformat schema (nested at most
``MAX_JSON_DEPTH`` levels, no lone surrogate escapes, no integer longer than Python reads), every ``.py`` must be
UTF-8 text (it is read, never compiled or imported), a lone module must not be empty, and there must be at least
one notebook or ``.py``. Any problem makes the whole submission a ``LoadFailure`` whose reason names the file;
its staging folder is removed. A UTF-8 byte-order mark at the start of a notebook or ``.py`` is dropped from the
staged copy (the runner reads plain UTF-8). A file whose name is not UTF-8, or that lies more than
``MAX_PATH_DEPTH`` folders deep, is skipped with a warning and the rest is staged.

What a batch can be (``load_batch``): a folder, or a zip (unwrapped like above), whose top-level entries are
read one by one:

- a file named like an LMS bulk download, ``<name>_[LATE_]<user id>_<submission id>_<original name>``
  (Canvas/Absalon: ``smithjohn_LATE_12345_6789012_CNNMNIST-1.ipynb``), belongs to student ``<name>_<user id>``
  (``smithjohn_12345``) under its original name, with Canvas's resubmission suffix removed (``CNNMNIST.ipynb``).
  Files of one student are grouped into one submission; when two of them restore to the same name the later
  resubmission (higher suffix, then higher submission id) is kept, with a warning. A ``.zip`` a student
  uploaded is extracted into their submission (one top folder unwrapped as above); a zip inside it is kept as
  a file. A LATE upload adds a warning.
- any other file or folder is one student's submission, named after it without its extension (``alice.ipynb``,
  ``alice.zip`` and the folder ``alice/`` are all ``alice``); when two entries share a name, the full file
  name is used instead.
- hidden entries (``.DS_Store``...) and ``__MACOSX`` are ignored. A top-level symlink of a batch folder that
  points outside the batch folder, or leads nowhere (a loop, a missing target), is a ``LoadFailure`` (not
  followed).

Every entry of a batch ends as a ``Submission`` or a ``LoadFailure``: an unexpected error while loading one
entry is that entry's ``LoadFailure`` (marked as a grader fault), never the end of the batch.

Hostile input is expected. Zip entries with absolute paths, ``..`` components or NUL characters, symbolic
links and special files in zips, and symbolic links in folders that point outside the submission (or at a
folder) are skipped with a warning; nothing is ever written outside ``staging``. A zip bomb is stopped by
``LoadLimits``: the number of entries, the total and per-file sizes and the compression ratio are checked
against the archive's headers before anything is written and again against the bytes actually written.
Operating-system clutter (``__MACOSX``, ``.DS_Store``, ``._*``, ``__pycache__``, ``.ipynb_checkpoints``,
``.git``) is never staged. The staging folder is named after the student, made file-system safe (characters
other than letters, digits, ``.``, ``_`` and ``-`` replaced, and a short hash added when any were).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import warnings as warnings_module
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import nbformat
from jsonschema.exceptions import best_match
from nbformat.validator import get_validator

from harness.errors import LoadError
from harness.models import MiB, LoadFailure, Submission, SubmissionKind

CODE_SUFFIXES = (".ipynb", ".py")
"""File suffixes that hold code the harness can grade."""

JUNK_NAMES = frozenset({"__MACOSX", ".DS_Store", "__pycache__", ".ipynb_checkpoints", ".git", "Thumbs.db"})
"""File and folder names that operating systems and tools leave behind; never staged."""

_LMS_NAME = re.compile(r"^(?P<name>[^_]+)_(?:(?P<late>LATE)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+)$")
"""An LMS bulk-download file name: ``smithjohn_[LATE_]12345_6789012_CNNMNIST.ipynb``."""

_MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_[a-z]+_$")
"""A Moodle bulk-download folder: ``<full name>_<participant id>_assignsubmission_<plugin>_``."""

_RESUBMISSION = re.compile(r"^(?P<stem>.+)-(?P<number>\d{1,3})$")
"""The suffix Canvas adds to a re-uploaded file's stem: ``CNNMNIST-1`` is the second ``CNNMNIST``."""

_CHUNK = 1 * MiB

GRADER_FAULT = "the grader could not load this submission (a grader fault, please report it)"
"""How a ``LoadFailure`` caused by a bug of the harness rather than by the submission begins."""

MAX_PATH_DEPTH = 32
"""Deepest folder nesting staged; files below it are skipped with a warning."""

_NAME_MAX = 255
"""Longest file name, in bytes, that Linux file systems accept."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a notebook may have (Jupyter writes about 6; widget state about 12)."""


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


# --------------------------------------------------------------------------------------------- public API


def load_submission(
    path: Path, staging: Path, *, student: str | None = None, limits: LoadLimits = LoadLimits()
) -> Submission | LoadFailure:
    """Stage and validate one submission (notebook, .py, folder, package folder or .zip) under ``staging``."""
    path = Path(path)
    if not os.path.lexists(path):
        raise LoadError(f"{path}: no such file or folder")
    if student is None:
        student = _readable(path.resolve().name if path.is_dir() else _stem(path.name))
    try:
        found = _members_of_path(path, limits)
    except _Rejected as e:
        return LoadFailure(student=student, source=path, reason=str(e))
    except OSError as e:
        return LoadFailure(student=student, source=path, reason=f"could not read the submission: {e}")
    return _stage(student, path, found, Path(staging), limits)


def load_batch(path: Path, staging: Path, *, limits: LoadLimits = LoadLimits()) -> list[Submission | LoadFailure]:
    """Stage and validate every submission of a batch folder or zip (LMS bulk download or not), sorted by student."""
    path = Path(path)
    staging = Path(staging)
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    if path.is_dir():
        return _sorted(_load_folder_batch(path, staging, limits))
    if path.suffix.lower() == ".zip":
        return _sorted(_load_zip_batch(path, staging, limits))
    raise LoadError(f"{path}: a batch must be a folder of submissions or a zip (an LMS bulk download)")


def content_hash(root: Path, files: Sequence[str]) -> str:
    """sha256 over the sorted relative paths and bytes of ``files`` under ``root``: equal iff the files are."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        file_digest = hashlib.sha256()
        with open(Path(root) / rel, "rb") as f:
            while chunk := f.read(_CHUNK):
                file_digest.update(chunk)
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + file_digest.digest())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ batches


@dataclass
class _Entry:
    """One student's part of a batch before it is staged."""

    student: str
    """The name it goes by: the LMS name and id, or the file name without its extension."""
    alt_student: str
    """The name used instead when two entries share ``student``: the full file name."""
    load: Callable[[str], Submission | LoadFailure]
    """Stages and validates it under the student name it is given."""


def _guarded(entry: _Entry, student: str, batch: Path) -> Submission | LoadFailure:
    """Load one batch entry; an error nobody foresaw fails this student only, as a grader fault a TA can report."""
    try:
        return entry.load(student)
    except Exception as e:  # the batch must go on: the other students still get their grades
        return LoadFailure(
            student=student, source=batch,
            reason=f"{GRADER_FAULT}: {type(e).__name__}: {_shorten(str(e))}",
        )


def _sorted(results: list[Submission | LoadFailure]) -> list[Submission | LoadFailure]:
    return sorted(results, key=lambda r: r.student)


def _load_folder_batch(folder: Path, staging: Path, limits: LoadLimits) -> list[Submission | LoadFailure]:
    """Every top-level entry of a batch folder: LMS files grouped per student, anything else one student each."""
    root_real = os.path.realpath(folder)
    staging_real = os.path.realpath(staging)
    entries: list[_Entry] = []
    groups: dict[str, list[tuple[re.Match[str], _Member]]] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if _is_junk(entry.name) or os.path.realpath(entry.path) == staging_real:
            continue
        entry_path = Path(entry.path)
        name = _readable(entry.name)
        if entry.is_symlink():
            why = _bad_top_link(entry_path, root_real)
            if why:
                reason = f"{name} is a symbolic link to {_readable(os.readlink(entry_path))}{why}; it was not followed"
                entries.append(_Entry(
                    student=_readable(_stem(entry.name)), alt_student=name,
                    load=lambda student, p=entry_path, r=reason: LoadFailure(student=student, source=p, reason=r),
                ))
                continue
        match = _LMS_NAME.match(entry.name)
        if match and entry.is_file():
            member = _file_member(entry_path, (match["original"],), label=name)
            groups.setdefault(f"{match['name']}_{match['user']}", []).append((match, member))
            continue
        stem = entry.name if entry.is_dir() else _stem(entry.name)
        entries.append(_moodle_entry(entry.name if entry.is_dir() else "", _Entry(
            student=_readable(stem), alt_student=name,
            load=lambda student, p=entry_path: load_submission(p, staging, student=student, limits=limits),
        )))
    for student, uploads in groups.items():
        # The source a TA looks at: the student's one upload, else the batch folder.
        source = uploads[0][1].path if len(uploads) == 1 and uploads[0][1].path else folder
        entries.append(_Entry(
            student=_readable(student), alt_student=_readable(student),
            load=lambda s, u=uploads, src=source: _load_lms_group(s, src, u, staging, limits),
        ))
    return [_guarded(e, name, folder) for e, name in zip(entries, _unique_names(entries))]


def _bad_top_link(link: Path, root_real: str) -> str:
    """Why a batch folder's top-level symlink is not followed (``", outside the batch folder"``); empty if it is."""
    if not _inside(os.path.realpath(link), root_real):
        return ", outside the batch folder"
    try:
        link.stat()
    except OSError as e:  # ELOOP: a -> b -> a; ENOENT: a dangling link
        return f", which leads nowhere ({e.strerror.lower()})" if e.strerror else ", which leads nowhere"
    return ""


def _load_zip_batch(path: Path, staging: Path, limits: LoadLimits) -> list[Submission | LoadFailure]:
    """Every top-level entry of a batch zip, read like a batch folder's, streamed out of the zip."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise LoadError(f"{path}: not a valid zip archive ({e})") from e
    with archive:
        batch_limits = replace(limits, max_entries=max(limits.max_entries, len(archive.infolist())))
        try:
            found = _zip_members(archive, path.name, batch_limits)
        except _Rejected as e:
            raise LoadError(f"{path}: {e}") from e
        members = _unwrap(found.members)
        # An entry refused at the top of the bulk zip belongs to nobody known: it is reported on its own.
        entries = [
            _Entry(
                student=entry, alt_student=entry,
                load=lambda student, r=warning: LoadFailure(student=student, source=path, reason=r),
            )
            for entry, warning in zip(found.refused, found.warnings)
        ]
        groups: dict[str, list[tuple[re.Match[str], _Member]]] = {}
        folders: dict[str, list[_Member]] = {}
        for member in members:
            top = member.parts[0]
            if len(member.parts) > 1:
                folders.setdefault(top, []).append(member)
                continue
            match = _LMS_NAME.match(top)
            if match:
                restored = replace(member, parts=(match["original"],), label=_readable(top))
                groups.setdefault(f"{match['name']}_{match['user']}", []).append((match, restored))
                continue
            entries.append(_Entry(
                student=_readable(_stem(top)), alt_student=_readable(top),
                load=lambda student, m=member: _load_zip_single(student, path, m, staging, limits),
            ))
        for top, inner in folders.items():
            inner_found = _Found(members=_as_folder_members(top, inner))
            entries.append(_moodle_entry(top, _Entry(
                student=_readable(top), alt_student=_readable(top),
                load=lambda student, f=inner_found: _stage(student, path, f, staging, limits),
            )))
        for student, uploads in groups.items():
            entries.append(_Entry(
                student=_readable(student), alt_student=_readable(student),
                load=lambda s, u=uploads: _load_lms_group(s, path, u, staging, limits),
            ))
        return [_guarded(e, name, path) for e, name in zip(entries, _unique_names(entries))]


def _load_zip_single(
    student: str, source: Path, member: _Member, staging: Path, limits: LoadLimits
) -> Submission | LoadFailure:
    """One top-level file of a batch zip that is a whole submission (a notebook, a .py or a zip)."""
    name = member.parts[0]
    suffix = Path(name).suffix.lower()
    if suffix not in (*CODE_SUFFIXES, ".zip"):
        return LoadFailure(student=student, source=source, reason=_not_a_submission(_readable(name)))
    return _stage(student, source, _Found(members=[replace(member, unpack=suffix == ".zip")]), staging, limits)


def _as_folder_members(top: str, inner: list[_Member]) -> list[_Member]:
    """A student's folder inside a batch zip: keep the folder name only when it is a package."""
    if any(m.parts == (top, "__init__.py") for m in inner):
        return inner
    return [replace(m, parts=m.parts[1:]) for m in inner]


def _load_lms_group(
    student: str, source: Path, uploads: list[tuple[re.Match[str], _Member]], staging: Path, limits: LoadLimits
) -> Submission | LoadFailure:
    """One student's LMS uploads: restore original names, keep the latest resubmission, unpack uploaded zips."""
    found = _Found()
    if any(match["late"] for match, _ in uploads):
        found.late = True
        found.warnings.append("handed in late (the LMS marked the upload LATE)")
    by_name: dict[str, list[tuple[tuple[int, int], _Member]]] = {}
    for match, member in uploads:
        original = member.parts[0]
        stem, ext = _split_ext(original)
        resubmission = _RESUBMISSION.match(stem)
        number = int(resubmission["number"]) if resubmission else 0
        restored = f"{resubmission['stem']}{ext}" if resubmission else original
        order = (number, int(match["submission"]))
        by_name.setdefault(restored, []).append((order, replace(member, parts=(restored,))))
    for restored, versions in sorted(by_name.items()):
        versions.sort(key=lambda v: v[0])
        kept = versions[-1][1]
        if len(versions) > 1:
            dropped = ", ".join(v[1].label for v in versions[:-1])
            found.warnings.append(
                f"{dropped} and {kept.label} {'both' if len(versions) == 2 else 'all'} restore to "
                f"{_readable(restored)}: kept {kept.label} (the later resubmission)"
            )
        found.members.append(replace(kept, unpack=restored.lower().endswith(".zip")))
    return _stage(student, source, found, staging, limits)


def _moodle_entry(folder: str, entry: _Entry) -> _Entry:
    """A Moodle bulk-download folder (``Ann Moodle_424242_assignsubmission_file_``) goes by the student's name
    (``Ann Moodle``) and carries the participant id (``424242``) as its LMS id; any other entry is left as it is."""
    match = _MOODLE_FOLDER.match(folder)
    if match is None:
        return entry
    participant, load = match["participant"], entry.load
    return replace(
        entry, student=_readable(match["name"]), load=lambda student: replace(load(student), lms_id=participant)
    )


def _unique_names(entries: list[_Entry]) -> list[str]:
    """Student names, falling back to the full file name (then a counter) where two entries collide."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.student] = counts.get(e.student, 0) + 1
    names = [e.student if counts[e.student] == 1 else e.alt_student for e in entries]
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate, number = name, 1
        while candidate in taken:  # also when a counter lands on another entry's name (``a~2``)
            number += 1
            candidate = f"{name}~{number}"
        taken.add(candidate)
        unique.append(candidate)
    return unique


# ---------------------------------------------------------------------------------------- listing sources


def _members_of_path(path: Path, limits: LoadLimits) -> _Found:
    """What staging ``path`` (a notebook, a .py, a folder or a zip) will copy."""
    name = _readable(path.name)
    if path.is_dir():
        found = _folder_members(path, limits)
        if (path / "__init__.py").is_file():
            package = path.resolve().name
            found.members = [replace(m, parts=(package, *m.parts)) for m in found.members]
        return found
    if not path.is_file():
        raise _Rejected(f"{name} is not a regular file or folder")
    suffix = path.suffix.lower()
    if suffix not in (*CODE_SUFFIXES, ".zip"):
        raise _Rejected(_not_a_submission(name))
    return _Found(members=[replace(_file_member(path, (path.name,), label=name), unpack=suffix == ".zip")])


def _file_member(path: Path, parts: tuple[str, ...], *, label: str) -> _Member:
    """A plain file on disk."""
    return _Member(parts=parts, label=label, size=path.stat().st_size, open=lambda: open(path, "rb"), path=path)


def _folder_members(folder: Path, limits: LoadLimits) -> _Found:
    """Every regular file under ``folder``; symlinks leaving it, symlinked folders and special files skipped."""
    found = _Found()
    root_real = os.path.realpath(folder)
    seen = 0

    def walk(directory: str, parts: tuple[str, ...]) -> None:
        nonlocal seen
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if _is_junk(entry.name):
                continue
            seen += 1
            if seen > limits.max_entries:
                raise _Rejected(
                    f"the submission holds more than {limits.max_entries:,} files and folders, over the limit"
                )
            rel = "/".join((*parts, entry.name))
            shown = _readable(rel)
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                link = _readable(os.readlink(entry.path))
                if not _inside(target, root_real):
                    found.warnings.append(f"skipped symlink {shown} -> {link}: it points outside the submission")
                elif os.path.isdir(target):
                    found.warnings.append(f"skipped symlink {shown} -> {link}: symlinked folders are not followed")
                elif not os.path.isfile(target):
                    found.warnings.append(f"skipped symlink {shown} -> {link}: it points to nothing readable")
                else:
                    found.members.append(_file_member(Path(target), (*parts, entry.name), label=shown))
            elif entry.is_dir(follow_symlinks=False):
                if len(parts) + 1 >= MAX_PATH_DEPTH:  # nothing under it could be staged; stops the recursion too
                    found.warnings.append(
                        f"skipped '{_shorten(shown, 160)}/': it lies more than {MAX_PATH_DEPTH} folders deep"
                    )
                else:
                    walk(entry.path, (*parts, entry.name))
            elif entry.is_file(follow_symlinks=False):
                found.members.append(_file_member(Path(entry.path), (*parts, entry.name), label=shown))
            else:
                found.warnings.append(f"skipped {shown}: it is not a regular file (a pipe, socket or device)")

    walk(str(folder), ())
    return found


def _zip_members(archive: zipfile.ZipFile, label: str, limits: LoadLimits) -> _Found:
    """The safe file entries of a zip; unsafe ones become warnings naming them, nothing is extracted yet."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise _Rejected(f"{label} holds {len(infos):,} entries, over the limit of {limits.max_entries:,}")
    found = _Found()

    def refuse(entry: str, why: str) -> None:
        found.refused.append(entry)
        found.warnings.append(f"skipped zip entry '{entry}' in {label}: {why}")

    for info in infos:
        raw = info.orig_filename
        if info.flag_bits & 0x800 == 0:
            # zipfile decoded the name as cp437; tools that write UTF-8 without the flag are common.
            encoded = raw.encode("cp437", "replace")
            try:
                raw = encoded.decode("utf-8")
            except UnicodeDecodeError:
                raw = encoded.decode("utf-8", "surrogateescape")
        shown = _readable(raw)
        if "\0" in raw:
            refuse(shown, "its name holds a NUL character")
            continue
        name = raw.replace("\\", "/")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            refuse(shown, "it has an absolute path")
            continue
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            refuse(shown, "its path leaves the submission folder")
            continue
        if not parts or name.endswith("/") or any(_is_junk(p) for p in parts):
            continue
        mode = info.external_attr >> 16
        file_type = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            refuse(shown, "it is a symbolic link")
            continue
        if stat.S_ISDIR(mode):
            continue
        if file_type and not stat.S_ISREG(mode):
            refuse(shown, "it is not a regular file")
            continue
        found.members.append(_Member(
            parts=parts, label=shown, size=info.file_size, compressed_size=info.compress_size,
            open=lambda i=info: archive.open(i),
        ))
    return found


def _unwrap(members: list[_Member]) -> list[_Member]:
    """Drop the one top folder every entry sits in, unless it is a package (its name is its import name)."""
    tops = {m.parts[0] for m in members}
    if len(tops) != 1 or any(len(m.parts) < 2 for m in members):
        return members
    (top,) = tops
    if any(m.parts == (top, "__init__.py") for m in members):
        return members
    return [replace(m, parts=m.parts[1:]) for m in members]


# ------------------------------------------------------------------------------------------------ staging


def _stage(student: str, source: Path, found: _Found, staging: Path, limits: LoadLimits) -> Submission | LoadFailure:
    """Copy (or extract) ``found`` into ``staging/<student>``, validate it, and describe it; never run anything."""
    staging.mkdir(parents=True, exist_ok=True)
    root = staging / _folder_name(student)
    _remove(root)
    root.mkdir()
    warnings = list(found.warnings)
    budget = _Budget()
    try:
        members = _stageable(found.members, warnings)
        _check_announced(members, limits, budget, context="")
        for member in sorted(members, key=lambda m: m.parts):
            if member.unpack:
                _unpack_zip(member, root, limits, budget, warnings)
            else:
                _write_member(member, root, limits, budget, warnings)
        files = _staged_files(root)
        _strip_boms(root, files)
        kind = _kind(files)
        _validate(root, files, kind, skipped=warnings)
    except _Rejected as e:
        _remove(root)
        return LoadFailure(student=student, source=source, reason=str(e))
    except OSError as e:
        _remove(root)
        return LoadFailure(student=student, source=source, reason=f"could not stage the submission: {e}")
    return Submission(
        student=student, source=source, root=root, files=files, kind=kind,
        content_hash=content_hash(root, files), warnings=tuple(warnings), late=found.late,
    )


def _stageable(members: Sequence[_Member], warnings: list[str], *, within: str = "") -> list[_Member]:
    """The members whose paths can be staged; the others are skipped with a warning that names them.

    A name that is not UTF-8 cannot be shown, stored or matched against the rubric's file names; a path deeper
    than ``MAX_PATH_DEPTH`` folders or a name longer than the file system allows cannot be written.
    ``within``: the handed-in zip the members come from, for the warnings.
    """
    kept = []
    for member in members:
        skipped = f"skipped '{_shorten(member.label, 160)}'" + (f" (in {within})" if within else "")
        bad = next((p for p in member.parts if _has_surrogates(p)), None)
        if bad is not None:
            warnings.append(f"{skipped}: {_bad_name(bad, whole=_readable(bad) == member.label)}")
        elif len(member.parts) > MAX_PATH_DEPTH:
            warnings.append(f"{skipped}: it lies more than {MAX_PATH_DEPTH} folders deep")
        elif any(len(p.encode("utf-8")) > _NAME_MAX for p in member.parts):
            warnings.append(f"{skipped}: a name in its path is longer than {_NAME_MAX} bytes")
        else:
            kept.append(member)
    return kept


def _check_announced(members: Sequence[_Member], limits: LoadLimits, budget: _Budget, *, context: str) -> None:
    """Refuse before writing anything when announced counts or sizes already break the rules."""
    if budget.files + len(members) > limits.max_entries:
        raise _Rejected(
            f"{context}the submission holds {len(members):,} files, over the limit of {limits.max_entries:,}"
        )
    for member in members:
        if member.size > limits.max_file_bytes:
            raise _Rejected(
                f"{context}{member.label} is {_size(member.size)}, over the {_size(limits.max_file_bytes)} limit "
                "for one file"
            )
        if (
            member.compressed_size is not None
            and member.size > limits.ratio_floor_bytes
            and member.size > limits.max_ratio * max(member.compressed_size, 1)
        ):
            raise _Rejected(_bomb(context, member, member.size, limits))
    total = sum(m.size for m in members)
    if budget.bytes + total > limits.max_total_bytes:
        raise _Rejected(
            f"{context}the submission expands to {_size(budget.bytes + total)}, over the "
            f"{_size(limits.max_total_bytes)} limit for one submission"
        )


def _write_member(member: _Member, root: Path, limits: LoadLimits, budget: _Budget, warnings: list[str]) -> None:
    """Copy one member to ``root/<parts>``, counting the real bytes against the limits."""
    dest = root.joinpath(*member.parts)
    if not _inside(os.path.abspath(dest), os.path.abspath(root)):
        warnings.append(f"skipped {member.label}: its path leaves the submission folder")
        return
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        warnings.append(f"skipped {member.label}: a file of the same name as one of its folders was staged first")
        return
    if dest.is_dir():
        warnings.append(f"skipped {member.label}: a folder of the same name was staged first")
        return
    if dest.exists():
        warnings.append(f"{member.label} appears twice; kept the last copy")
    budget.files += 1
    if budget.files > limits.max_entries:
        raise _Rejected(f"the submission holds more than {limits.max_entries:,} files, over the limit")
    try:
        with member.open() as src, open(dest, "wb") as out:
            _copy_bounded(src, out, member, limits, budget)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise _Rejected(f"{member.label} is damaged inside its zip ({e})") from e
    except NotImplementedError as e:
        raise _Rejected(f"{member.label} uses a compression method that cannot be read ({e}); re-zip it") from e
    except RuntimeError as e:  # zipfile: "File ... is encrypted, password required for extraction"
        if "encrypted" in str(e):
            raise _Rejected(f"{member.label} is password-protected; hand it in without a password") from e
        raise _Rejected(f"{member.label} cannot be extracted ({e})") from e


def _copy_bounded(src: IO[bytes], out: IO[bytes], member: _Member, limits: LoadLimits, budget: _Budget) -> int:
    """Copy ``src`` to ``out`` chunk by chunk, stopping as soon as a limit is passed; returns the bytes written."""
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        budget.bytes += len(chunk)
        if written > limits.max_file_bytes:
            raise _Rejected(
                f"{member.label} is larger than {_size(limits.max_file_bytes)} (announced as {_size(member.size)}), "
                "over the limit for one file"
            )
        if budget.bytes > limits.max_total_bytes:
            raise _Rejected(
                f"the submission expands to more than {_size(limits.max_total_bytes)} "
                f"(stopped in {member.label}), over the limit for one submission"
            )
        if (
            member.compressed_size is not None
            and written > limits.ratio_floor_bytes
            and written > limits.max_ratio * max(member.compressed_size, 1)
        ):
            raise _Rejected(_bomb("", member, written, limits, at_least=True))
        out.write(chunk)
    return written


def _unpack_zip(member: _Member, root: Path, limits: LoadLimits, budget: _Budget, warnings: list[str]) -> None:
    """Extract a handed-in zip into ``root`` (one top folder unwrapped), with every limit applied."""
    if member.size == 0:
        raise _Rejected(f"{member.label} is empty (0 bytes)")
    with tempfile.TemporaryFile(dir=root.parent) as spool:
        if member.path is not None:
            target: str | IO[bytes] = str(member.path)
        else:
            try:
                with member.open() as src:
                    _copy_bounded(src, spool, member, limits, budget)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise _Rejected(f"{member.label} is damaged inside its zip ({e})") from e
            spool.seek(0)
            target = spool
        try:
            archive = zipfile.ZipFile(target)
        except (zipfile.BadZipFile, EOFError, ValueError) as e:
            raise _Rejected(f"{member.label} is not a valid zip archive ({e})") from e
        with archive:
            found = _zip_members(archive, member.label, limits)
            warnings.extend(found.warnings)
            inner = _unwrap(found.members)
            inner = _stageable(inner, warnings, within=member.label)
            _check_announced(inner, limits, budget, context=f"{member.label}: ")
            for entry in sorted(inner, key=lambda m: m.parts):
                entry = replace(entry, label=f"{entry.label} (in {member.label})")
                _write_member(entry, root, limits, budget, warnings)


def _strip_boms(root: Path, files: Sequence[str]) -> None:
    """Drop the UTF-8 byte-order mark some Windows editors put at the start of a notebook or script.

    It is an editor's artefact, not part of the code: nbformat would refuse the notebook ("Unexpected UTF-8
    BOM") and Python would see U+FEFF as an invalid character when the runner executes the script, so the
    staged copy is written without it.
    """
    for rel in files:
        if not rel.lower().endswith(CODE_SUFFIXES):
            continue
        path = root / rel
        with open(path, "rb") as f:
            if f.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
                continue
            rest = f.read()
        while rest.startswith(codecs.BOM_UTF8):  # an editor that added one to a file that had one
            rest = rest[len(codecs.BOM_UTF8):]
        path.write_bytes(rest)


def _staged_files(root: Path) -> tuple[str, ...]:
    """Relative POSIX paths of every file under ``root``, sorted."""
    files = []
    for directory, _, names in os.walk(root):
        for name in names:
            files.append(Path(directory, name).relative_to(root).as_posix())
    return tuple(sorted(files))


def _kind(files: Sequence[str]) -> SubmissionKind:
    """``notebook``/``module`` for one top-level code file, ``package`` for one package folder, else ``folder``."""
    code = [f for f in files if f.lower().endswith(CODE_SUFFIXES)]
    top_level = [f for f in code if "/" not in f]
    if len(code) == 1 and top_level:
        return "notebook" if code[0].lower().endswith(".ipynb") else "module"
    tops = {f.split("/")[0] for f in code}
    if code and not top_level and len(tops) == 1 and f"{next(iter(tops))}/__init__.py" in files:
        return "package"
    return "folder"


# --------------------------------------------------------------------------------------------- validation


def _validate(root: Path, files: Sequence[str], kind: SubmissionKind, *, skipped: Sequence[str] = ()) -> None:
    """Refuse the submission if a notebook or script cannot be read as one; never compiles or imports.

    ``skipped``: the warnings of staging; when no code is left they are the reason, so they go in the message.
    """
    code = [f for f in files if f.lower().endswith(CODE_SUFFIXES)]
    if not code and skipped:
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise _Rejected(f"no notebook (.ipynb) or Python file (.py) could be staged: {shown}")
    if not code:
        if not files:
            raise _Rejected("the submission is empty: no files at all")
        shown = ", ".join(_readable(f) for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise _Rejected(f"the submission holds no notebook (.ipynb) or Python file (.py); it holds: {shown}")
    for rel in code:
        data = (root / rel).read_bytes()
        shown = _readable(rel)
        if rel.lower().endswith(".ipynb"):
            problem = notebook_problem(data, shown)
        else:
            problem = python_problem(data, shown, lone=kind == "module")
        if problem:
            raise _Rejected(problem)


def notebook_problem(data: bytes, name: str) -> str | None:
    """What makes ``data`` unreadable as an nbformat-4 notebook called ``name``; None when it is fine."""
    if not data.strip():
        return f"{name} is empty ({len(data)} bytes)"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"{name} is not a notebook: it is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        return f"{name} is not a notebook: invalid JSON (line {e.lineno}, column {e.colno}): {e.msg}"
    except RecursionError:
        return f"{name} is not a notebook: its JSON is nested more than {MAX_JSON_DEPTH} levels deep"
    except ValueError:  # the one other error of json.loads: an integer longer than Python converts
        return f"{name} is not a notebook: it holds a number of more than {sys.get_int_max_str_digits():,} digits"
    problem = _json_problem(raw)
    if problem:
        return f"{name} is not a notebook: {problem}"
    if not isinstance(raw, dict) or "nbformat" not in raw:
        return f"{name} is not a notebook: it is JSON but has no 'nbformat' field"
    version = raw["nbformat"]
    if not isinstance(version, int) or isinstance(version, bool):
        return f"{name} is not a notebook: its 'nbformat' field is {version!r}, not a version number"
    if version < 4:
        return (
            f"{name} is saved as nbformat {version}, an old notebook format: open it in a current Jupyter and "
            "save it again (or run `jupyter nbconvert --to notebook --nbformat 4`) so that it is nbformat 4"
        )
    if version > 4:
        return f"{name} is saved as nbformat {version}, which this harness cannot read; save it as nbformat 4"
    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore")  # e.g. "cell is missing an id field": nbformat repairs that itself
        try:
            nbformat.validate(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
        except Exception as e:  # nbformat raises assorted errors on malformed input
            where = _schema_problem(raw) or _shorten(str(getattr(e, "message", e)))
            return f"{name} is not a valid notebook: {where}"
    return None


def _json_problem(raw: object) -> str | None:
    """What in parsed notebook JSON would break the readers after loading (nbformat, the runner, reports).

    JSON nested deeper than ``MAX_JSON_DEPTH`` (the schema validator and nbformat recurse once per level) and
    strings holding an escaped lone surrogate (``"\\ud800"``: Python reads it, but it cannot be written out
    as UTF-8 again). Walks iteratively, so no input can exhaust the stack here.
    """
    stack: list[tuple[object, tuple[object, ...]]] = [(raw, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            return f"its JSON is nested more than {MAX_JSON_DEPTH} levels deep (at {_json_path(path[:8])}...)"
        if isinstance(value, dict):
            for key, item in value.items():
                if _has_surrogates(key):
                    return f"{_json_path(path)} has a key with an invalid escaped character (a lone UTF-16 surrogate)"
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, str) and _has_surrogates(value):
            return (
                f"{_json_path(path)} holds an invalid escaped character (a lone UTF-16 surrogate such as \\ud800); "
                "save the notebook again from Jupyter"
            )
    return None


def _json_path(path: Sequence[object]) -> str:
    """A place in notebook JSON for messages: ``cell 3.source``, ``metadata.widgets``."""
    if len(path) >= 2 and path[0] == "cells" and isinstance(path[1], int):
        return f"cell {path[1]}" + "".join(f"[{p}]" if isinstance(p, int) else f".{_shorten(p, 40)}" for p in path[2:])
    return ".".join(_shorten(str(p), 40) for p in path) or "the notebook"


def python_problem(data: bytes, name: str, *, lone: bool = False) -> str | None:
    """What makes ``data`` unreadable as a UTF-8 Python source file called ``name``; None when it is fine."""
    if lone and not data.strip():
        return f"{name} is empty ({len(data)} bytes)"
    if b"\0" in data:
        return f"{name} is not a Python text file: it contains NUL bytes (is it a binary file renamed .py?)"
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return (
            f"{name} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line} cannot be decoded; "
            "save the file as UTF-8"
        )
    return None


def _schema_problem(raw: dict) -> str | None:
    """Where ``raw`` breaks the nbformat-4 schema and how, in a line; None if the schema is not what failed."""
    minor = raw.get("nbformat_minor")
    validator = get_validator(
        version=4, version_minor=minor if isinstance(minor, int) and minor >= 0 else None, name="jsonschema"
    )
    error = best_match(validator.iter_errors(raw)) if validator is not None else None
    if error is None:
        return None
    # A cell or an output matches one of several shapes (oneOf): explain the shape it comes closest to.
    while error.validator == "oneOf" and error.context:
        branches: dict[object, list] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        error = best_match(min(branches.values(), key=len))
    return f"{_json_path(list(error.absolute_path))}: {_shorten(error.message, 160)}"


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


def _bad_name(part: str, *, whole: bool) -> str:
    """Why a name decoded with surrogates is refused; ``whole``: it is the whole path the message names."""
    raw = part.encode("utf-8", "surrogateescape")
    bad = next(b for b in raw if b >= 0x80)
    which = "its name" if whole else f"the name '{_readable(part)}'"
    return (
        f"{which} is not valid UTF-8 (byte 0x{bad:02x}; was it zipped or saved with a Windows code page?): "
        "rename it with UTF-8 characters only"
    )


def _bomb(context: str, member: _Member, size: int, limits: LoadLimits, *, at_least: bool = False) -> str:
    ratio = size / max(member.compressed_size or 0, 1)
    more = "more than " if at_least else ""
    return (
        f"{context}{member.label} expands from {_size(member.compressed_size or 0)} to {more}{_size(size)} "
        f"({more}{ratio:,.0f} times), over the {limits.max_ratio:,.0f}x compression limit: refused as a zip bomb"
    )


def _not_a_submission(name: str) -> str:
    return f"{name} is not a submission: expected a notebook (.ipynb), a Python file (.py), a folder or a .zip"


def _size(n: int) -> str:
    """Bytes for people: ``512 bytes``, ``3.5 KiB``, ``200.0 MiB``."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


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


def _folder_name(student: str) -> str:
    """A file-system-safe folder name for ``student``; a hash suffix keeps changed names distinct."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", student).lstrip(".") or "student"
    if safe != student:
        safe = f"{safe[:100]}-{hashlib.sha256(student.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
    return safe


def _remove(path: Path) -> None:
    """Delete a staged folder (or a stray file or link at its place)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)

