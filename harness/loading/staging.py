"""Staging: list what a path holds, copy it into ``staging/<student>``, validate it there and describe it.

The original is never touched again once copied; a submission that fails validation leaves no staging folder.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.loading.archives import _check_announced, _stageable, _unpack_zip, _write_member
from harness.loading.common import (
    _CHUNK,
    CODE_SUFFIXES,
    MAX_PATH_DEPTH,
    LoadLimits,
    _Budget,
    _Found,
    _inside,
    _is_junk,
    _Member,
    _not_a_submission,
    _readable,
    _Rejected,
    _shorten,
)
from harness.loading.validation import _validate
from harness.models import LoadFailure, Submission, SubmissionKind

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
