"""LMS bulk downloads: whom a batch entry belongs to, and one student's uploads put back together.

Canvas/Absalon file names (``smithjohn_LATE_12345_6789012_CNNMNIST-1.ipynb``) give the student, their id, a
LATE mark and the original file name with a resubmission suffix; Moodle folders
(``Ann Moodle_424242_assignsubmission_file_``) give the student's name and participant id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.loading.common import LoadLimits, _Found, _Member, _readable, _split_ext
from harness.loading.staging import _stage
from harness.models import LoadFailure, Submission

_LMS_NAME = re.compile(r"^(?P<name>[^_]+)_(?:(?P<late>LATE)_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+)$")
"""An LMS bulk-download file name: ``smithjohn_[LATE_]12345_6789012_CNNMNIST.ipynb``."""

_MOODLE_FOLDER = re.compile(r"^(?P<name>.+)_(?P<participant>\d+)_assignsubmission_[a-z]+_$")
"""A Moodle bulk-download folder: ``<full name>_<participant id>_assignsubmission_<plugin>_``."""

_RESUBMISSION = re.compile(r"^(?P<stem>.+)-(?P<number>\d{1,3})$")
"""The suffix Canvas adds to a re-uploaded file's stem: ``CNNMNIST-1`` is the second ``CNNMNIST``."""


@dataclass
class _Entry:
    """One student's part of a batch before it is staged."""

    student: str
    """The name it goes by: the LMS name and id, or the file name without its extension."""
    alt_student: str
    """The name used instead when two entries share ``student``: the full file name."""
    load: Callable[[str], Submission | LoadFailure]
    """Stages and validates it under the student name it is given."""


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
