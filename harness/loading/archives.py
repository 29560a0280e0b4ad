"""Zips and bounded writing: the safe entries of a zip, and copies that stop a zip bomb before the disk fills.

Every file staged, from a folder or a zip, is written by ``_write_member`` through ``_copy_bounded``, which
counts the bytes actually written against ``LoadLimits``; ``_check_announced`` refuses what the headers
already give away before anything is written.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from harness.loading.common import (
    MAX_PATH_DEPTH,
    _CHUNK,
    LoadLimits,
    _Budget,
    _Found,
    _has_surrogates,
    _inside,
    _is_junk,
    _Member,
    _readable,
    _Rejected,
    _shorten,
)

_NAME_MAX = 255
"""Longest file name, in bytes, that Linux file systems accept."""


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


# ------------------------------------------------------------------------------------------------ messages


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


def _size(n: int) -> str:
    """Bytes for people: ``512 bytes``, ``3.5 KiB``, ``200.0 MiB``."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")
