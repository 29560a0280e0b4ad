"""The records that flow through gradebench, as frozen dataclasses.

Submission --load--> Workspace --Engine in Sandbox--> ExecutionResult + Artifacts
  --checks--> CheckResult --scoring--> TaskScore --> GradeReport

Every field says what it holds; nothing here computes a grade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.contract import RunRecord

GiB = 1024**3
MiB = 1024**2

SubmissionKind = Literal["notebook", "module", "package", "folder"]
Verdict = Literal[
    "ok", "error", "timeout", "cpu_time", "memory", "processes", "file_size", "workspace", "output", "killed"
]
CheckStatus = Literal["passed", "failed", "error", "skipped"]


@dataclass(frozen=True)
class Submission:
    """One student's (or group's) hand-in, staged in a folder of its own; never executed by loading."""

    student: str
    """Who handed it in: the LMS name and id (``smithjohn_12345``), else the file or folder name."""
    source: Path
    """What the TA pointed at: the .ipynb, .py, folder or .zip (or the bulk zip it came from)."""
    root: Path
    """Folder holding a staged copy of the submission's files (original file names restored)."""
    files: tuple[str, ...]
    """Paths of every staged file, relative to ``root``, sorted."""
    kind: SubmissionKind
    """``notebook``: a single .ipynb; ``module``: a single .py; ``package``: a folder with an ``__init__.py``;
    ``folder``: anything else (several notebooks and scripts)."""
    content_hash: str
    """sha256 over the sorted relative paths and bytes of every file: the results store's key."""
    warnings: tuple[str, ...] = ()
    """Things a TA should know that do not stop grading (a skipped symlink, a renamed duplicate...)."""
    lms_id: str = ""
    """The student's id in the LMS the submission came from, when its folder name carries one that ``student``
    does not (Moodle: ``Ann Moodle_424242_assignsubmission_file_`` is student ``Ann Moodle``, id ``424242``)."""
    late: bool = False
    """True when the LMS marked an upload late (``smithjohn_LATE_12345_...``): the rubric's late penalty applies."""


@dataclass(frozen=True)
class LoadFailure:
    """A submission that cannot be graded at all, with the reason a TA reads (the batch goes on)."""

    student: str
    """Who handed it in, as for ``Submission.student``."""
    source: Path
    """The file or folder that could not be loaded."""
    reason: str
    """What is wrong, e.g. ``CNNMNIST.ipynb is not a notebook: invalid JSON at line 1 column 1``."""
    lms_id: str = ""
    """The student's LMS id, as for ``Submission.lms_id``."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run; each breach is its own verdict."""

    wall_s: float = 300.0
    """Wall-clock seconds before the run is killed (verdict ``timeout``)."""
    cpu_s: float | None = None
    """CPU seconds over all processes (verdict ``cpu_time``); None: only the wall-clock limit."""
    memory_bytes: int = 4 * GiB
    """Resident memory of the whole process tree (verdict ``memory``)."""
    max_processes: int = 256
    """Processes and threads the run may have at once (verdict ``processes``)."""
    file_size_bytes: int = 1 * GiB
    """Largest file the run may write (verdict ``file_size``)."""
    workspace_bytes: int = 1 * GiB
    """Disk space the run's writable folders (its workspace, the artifacts folder) may hold in all, what was
    there before included (verdict ``workspace``). Measured every 0.25 s; as root the workspace is also a
    tmpfs of about this size (``harness.sandbox.quota``), so no run can put more on the host."""
    workspace_files: int = 10_000
    """Files and folders those writable folders may hold in all (verdict ``workspace``; the tmpfs's inode limit)."""
    output_bytes: int = 1 * MiB
    """What stdout and stderr may each carry; past it the run is stopped as an output flood (verdict ``output``),
    and the first and last half are kept. A notebook cell printing more is stopped alone."""
    gpu: bool = False
    """Expose the GPU device nodes (only for GPU jobs)."""
    cell_timeout_s: float | None = None
    """Seconds one notebook cell may run before it alone is stopped; None: the run's ``wall_s``."""
    gpu_devices: tuple[str, ...] = ()
    """With ``gpu``: the GPU ids the run may use (its ``CUDA_VISIBLE_DEVICES``, one slot of
    :class:`harness.backends.GpuSlots`); empty: every GPU of the machine."""


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed command did."""

    verdict: Verdict
    """``ok`` (exit 0), ``error`` (non-zero exit), or the limit it breached, or ``killed`` (a signal)."""
    message: str
    """For a TA: ``timed out after 300 s``, ``exceeded the 4 GiB memory limit``, ``exit code 1``..."""
    returncode: int | None
    """The command's exit status; negative for a signal; None if it never started."""
    wall_s: float
    """Wall-clock seconds the command ran."""
    cpu_s: float
    """CPU seconds used by the command's process tree (user + system)."""
    peak_memory_bytes: int
    """Largest resident memory of the process tree that was observed."""
    stdout: str
    """Standard output, cut to ``Limits.output_bytes``."""
    stderr: str
    """Standard error, cut to ``Limits.output_bytes``."""
    isolated: bool
    """True under bubblewrap; False for the plain-process fallback, which isolates nothing but time and memory."""


@dataclass(frozen=True)
class CellError:
    """An error raised by one notebook cell (or by a script)."""

    cell: int
    """Index of the code cell (0-based, counting code cells only); -1 for a script."""
    ename: str
    """Exception class name: ``NameError``, ``SyntaxError``..."""
    evalue: str
    """Exception message."""
    source_excerpt: str = ""
    """The first lines of the failing cell, so a student recognises it."""


@dataclass(frozen=True)
class ExecutionResult:
    """How running one source of a submission (a notebook or a script) went."""

    source: str
    """Path of the notebook or script inside the submission."""
    sandbox: SandboxResult
    """The sandboxed process that ran it."""
    cells_run: int = 0
    """Code cells executed (notebooks)."""
    cells_total: int = 0
    """Code cells in the notebook."""
    errors: tuple[CellError, ...] = ()
    """Errors raised by cells or by the script, in order."""
    artifacts_dir: Path | None = None
    """Host folder holding what the probes wrote (JSON, tensors, PNG figures); None if nothing came out."""
    run_key: str = ""
    """What decided this run (``harness.runcache.run_key``): a later grading with the same key re-checks these
    records instead of running the source again."""
    missing_packages: tuple[str, ...] = ()
    """Modules the code imported that the grading environment lacks (a ModuleNotFoundError for a module that is
    no file of the submission): an environment problem for the TA, not the student's error."""
    run: RunRecord | None = field(default=None, compare=False, repr=False, metadata={"stored": False})
    """The runner's run.json as the engine read it (validated, capped), passed on so that it is read once per run;
    None when the run left none. Never stored: a stored run's records are read again from its artifacts folder."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one rubric check on one task."""

    task: str
    """Rubric task id."""
    check: str
    """Check name (``parameter_count``...)."""
    status: CheckStatus
    """``passed``; ``failed`` (the student's work is wrong: ``message`` says what to fix); ``error`` (a harness
    fault: a TA should look); ``skipped`` (could not run, e.g. the model never came to exist: ``message`` says why)."""
    message: str
    """What the reader should know; empty when passed."""
    points: float
    """Points this check is worth in the rubric."""
    score: float
    """Points awarded: ``points`` when passed, a fraction for partial credit, else 0."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra figures for reports (measured value, threshold, an architecture diff...). JSON-serialisable."""
    held: str = ""
    """Why a TA must review the score before it counts, for the student: it rests on predictions the grader could not
    verify (``harness.checks.verify``); empty when nothing is held. Scoring keeps it out of the total until then."""


@dataclass(frozen=True)
class TaskScore:
    """Points for one rubric task."""

    task: str
    """Rubric task id."""
    title: str
    """Task title as the rubric gives it."""
    score: float
    """Points awarded."""
    points: float
    """Points available."""
    manual: bool = False
    """True for a TA-graded item (written answers), merged from the manual-scores CSV."""
    checks: tuple[CheckResult, ...] = ()
    """The check results that make up the score (empty for manual items)."""
    note: str = ""
    """A TA's comment (manual items) or why the task could not be graded."""
    pending: bool = False
    """A manual item no TA has graded yet: shown as pending (its 0 is not a grade), counted apart in headlines."""
    held: float = 0.0
    """Points its checks earned on predictions the grader could not verify (``CheckResult.held``): out of ``score``
    while ``review`` is ``pending``, in it once a TA released them, lost when a TA rejected them."""
    review: str = ""
    """The TA's decision on the held points: ``pending``, ``released`` or ``rejected``; empty when nothing is held."""
    source: str = ""
    """The submission file whose work was graded for this task (``trainers/q1.py``); empty when none was found."""
    source_run: str = ""
    """The file run for it: ``source`` itself, or the script that imports it (``main.py``)."""
    source_note: str = ""
    """Why that file was graded, or why none could be (``cnn_final_v2.ipynb was chosen by its content ...``)."""


@dataclass(frozen=True)
class GradeReport:
    """Everything gradebench says about one submission under one rubric."""

    student: str
    """Who handed it in."""
    assignment: str
    """Rubric assignment id (``dl2025-a2``)."""
    content_hash: str
    """The submission's content hash."""
    rubric_hash: str
    """sha256 of the rubric file that graded it."""
    profile: str
    """``full`` or ``fast`` (shorter training, smaller data): reports say which graded them."""
    tasks: tuple[TaskScore, ...]
    """Per task, in rubric order."""
    executions: tuple[ExecutionResult, ...] = ()
    """How each source ran."""
    load_failure: str = ""
    """Set when the submission could not be loaded at all (then ``tasks`` score 0)."""
    load_warnings: tuple[str, ...] = ()
    """What loading set aside or noticed without stopping grading (``Submission.warnings``: a skipped file or
    zip entry, a LATE upload...), shown to the student and the TA."""
    lms_id: str = ""
    """The student's LMS id when loading found one apart from the name (``Submission.lms_id``); exports use it."""

    late: bool = False
    """The LMS marked the hand-in late (``Submission.late``)."""
    late_penalty: float = 0.0
    """Points taken off for lateness under the rubric's ``late_penalty`` (0 when on time or without a policy)."""

    @property
    def earned(self) -> float:
        """Points the tasks earned, before any late penalty."""
        return sum(t.score for t in self.tasks)

    @property
    def score(self) -> float:
        """Total points awarded: what the tasks earned less the late penalty."""
        return max(0.0, self.earned - self.late_penalty)

    @property
    def pending_points(self) -> float:
        """Points waiting for a TA: the manual items no TA has graded yet and the held points no TA has reviewed."""
        return sum(t.points for t in self.tasks if t.pending) + self.held_points

    @property
    def held_points(self) -> float:
        """Points held for a TA's review (``TaskScore.held``) that no TA has released or rejected yet."""
        return sum(t.held for t in self.tasks if t.review == "pending")

    @property
    def points(self) -> float:
        """Total points available."""
        return sum(t.points for t in self.tasks)

    @property
    def environment_problems(self) -> tuple[str, ...]:
        """Per source that imported packages the grading environment lacks, what the TA should do about it."""
        from harness.environment import environment_problem

        return tuple(environment_problem(e.source, e.missing_packages) for e in self.executions if e.missing_packages)
