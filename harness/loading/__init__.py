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

The package's modules, one responsibility each: ``lms`` (whom a batch entry belongs to), ``archives`` (zip entries
and bounded writing), ``validation`` (notebook and script checks), ``staging`` (listing, copying, describing),
``common`` (limits and records they share); this module reads batches and is the public face.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import replace
from pathlib import Path

from harness.errors import LoadError
from harness.loading.archives import _unwrap, _zip_members
from harness.loading.common import (
    CODE_SUFFIXES,
    JUNK_NAMES,
    MAX_PATH_DEPTH,
    LoadLimits,
    _Found,
    _inside,
    _is_junk,
    _Member,
    _not_a_submission,
    _readable,
    _Rejected,
    _shorten,
    _stem,
)
from harness.loading.lms import _LMS_NAME, _Entry, _load_lms_group, _moodle_entry, _unique_names
from harness.loading.staging import _file_member, _members_of_path, _stage, content_hash
from harness.loading.validation import MAX_JSON_DEPTH, notebook_problem, python_problem
from harness.models import LoadFailure, Submission

__all__ = [
    "CODE_SUFFIXES",
    "GRADER_FAULT",
    "JUNK_NAMES",
    "MAX_JSON_DEPTH",
    "MAX_PATH_DEPTH",
    "LoadLimits",
    "content_hash",
    "load_batch",
    "load_submission",
    "notebook_problem",
    "python_problem",
]

GRADER_FAULT = "the grader could not load this submission (a grader fault, please report it)"
"""How a ``LoadFailure`` caused by a bug of the harness rather than by the submission begins."""


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


# ------------------------------------------------------------------------------------------------ batches


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
            # A student's folder: its name is dropped unless it is a package (one top folder, unwrapped).
            inner_found = _Found(members=_unwrap(inner))
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
