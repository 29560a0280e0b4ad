"""What a batch tells whoever watches it (the CLI's progress bar, a test), as typed events.

``grade_batch(..., on_event=f)`` calls ``f`` with one of these, from the driver thread or a worker
thread of the driver (never from a sandboxed run); ``f`` must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Calibrating:
    """The reference submission is being graded to learn the relative bars (not cached yet)."""

    reference: str
    """The reference submission's folder."""
    tasks: tuple[str, ...] = ()
    """The tasks calibrated now (the others are cached, or no submission of the batch hands them in)."""


@dataclass(frozen=True)
class Calibrated:
    """The calibration that ran beside the first students has ended (their checks could go on)."""

    reference: str
    """The reference submission's folder."""


@dataclass(frozen=True)
class Loaded:
    """The batch is loaded: this many submissions will be reported (graded, reused or failed to load)."""

    total: int


@dataclass(frozen=True)
class LoadWarning:
    """Loading noticed something about a submission without stopping (a LATE upload, a skipped file)."""

    student: str
    message: str


@dataclass(frozen=True)
class Fault:
    """A grader fault for one student (a crash of the grader, a report that could not be stored or written)."""

    student: str
    message: str


@dataclass(frozen=True)
class Done:
    """A submission's report is ready."""

    student: str
    score: float
    points: float
    reused: bool
    """True when the stored report of the same content was reused, not graded again."""


ProgressEvent = Union[Calibrating, Calibrated, Loaded, LoadWarning, Fault, Done]
"""Every event a batch emits."""

OnEvent = Callable[[ProgressEvent], None]
"""Receives the events of a batch."""
