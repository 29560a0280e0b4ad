"""The only orchestrator: grade one submission, or a batch of them, under a rubric.

For each submission: stage it, run each of the rubric's sources in order in one workspace
inside the sandbox (a later step may load an earlier step's checkpoint), read what the probes
exported, run every task's checks on the host against the hidden labels and the calibrated
reference, score, store the report (committed at once: a batch killed at any point resumes
where it stopped), append a line to the grading log and write the student's HTML and JSON. A
batch ends with the index page, the gradebook CSV and the manual-scores template.

The grading log (``<out>/grading-log.jsonl``) is append-only: one JSON line per completed
grading, written right after the store commit, so a TA can audit what was graded, when, and
with what result. A stored report whose line was lost (the run was killed between the commit
and the append) is logged when the batch resumes, marked as such: every grading in the store
appears in the log exactly once per time it was graded.

Relative thresholds and budgets come from grading the assignment's reference submission on
the same data and machine (:func:`harness.calibration.calibrate_rubric`), only for the tasks the
batch hands in, cached per task.
"""

from __future__ import annotations

import ast
import importlib
import json
import logging
import math
import os
import re
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import nbformat
import numpy as np

from harness.bundle import Bundle, TaskReference
from harness.backends import GpuSlots, make_backend, needs_gpu, visible_gpus
from harness.checks import known_checks, run_check
from harness.data import load_split
from harness.engines import Engine, RunSettings, kind_for, make_workspace
from harness.environment import check_packages
from harness.errors import HarnessError, StoreError
from harness.events import Calibrated, Done, Fault, Loaded, LoadWarning, OnEvent
from harness.loading import load_batch, load_submission
from harness.outdir import STORE_NAME
from harness.contract import DEFAULT_INPUT_SHAPES, RunRecord
from harness.profiles import PROFILES
from harness.manual import read_manual_scores, write_manual_template
from harness.matching import CODE_SUFFIXES, Pins, SourcePlan, check_pins, plan_sources, read_pins, statement_works
from harness.models import CheckResult, ExecutionResult, GradeReport, Limits, LoadFailure, Submission
from harness.reporting import render_index, render_student, safe_name
from harness.runcache import mark, reusable, run_key
from harness.rubric import Rubric, Task, did_you_mean, load_rubric
from harness.sandbox import Gate, Sandbox, make_sandbox
from harness.sandbox.quota import limited_folder, release_folder
from harness.sandbox.supervise import LAUNCHED
from harness.scoring import ManualScore, Review, score_load_failure, score_submission
from harness.store import ResultStore, readable_report, report_from_dict
from harness.syntax import parse_or_none

if TYPE_CHECKING:  # torch and the modules that import it are imported where the host first needs them (its
    # checks, after the first sandboxed run), so that a grading command starts the first run without waiting
    import torch

    from harness.artifacts import Artifacts
    from harness.checks.context import CheckContext


REPORT_MODULES: tuple[str, ...] = ("pandas", "matplotlib.figure", "matplotlib.backends.backend_agg")
"""What writing a batch's pages imports: pandas for the gradebook, matplotlib for the score distribution."""

HOST_MODULES: tuple[str, ...] = (
    "torch",
    "harness.artifacts",
    "harness.checks.context",
    "harness.checks.select",
    "harness.probes.probe",
    *REPORT_MODULES,
)
"""What the host needs once a sandboxed run has ended (torch and the modules that read the run's records with
it: its checks) and at the end of a batch (pandas for the gradebook, matplotlib for the score distribution),
in the order the host first imports them. ``grade_batch`` imports them in the background while the first runs
start (``warm_host``): seconds of imports overlap the sandboxed run instead of adding to it."""

WARM_WAIT_S = 3.0
"""How long ``warm_host`` waits for the first sandboxed launch before it imports anyway."""

GRADING_LOG = "grading-log.jsonl"
"""File name of the grading log in the output folder."""

log = logging.getLogger(__name__)

RESUMED_NOTE = "graded before the run was interrupted; logged when the batch resumed"
"""The note of a log line written for a stored report whose own line was lost in a crash."""


# -- the grading log -----------------------------------------------------------------------------------------


def log_grading(path: Path, report: GradeReport, *, seconds: float | None = None, note: str = "") -> dict[str, Any]:
    """Append one line for a completed grading to the log at ``path``; returns the entry written.

    The line goes out in a single ``write`` on a file opened for appending, so a process killed
    at any moment leaves either the whole line or none of it (a torn last line, from a crash of the
    machine itself, is skipped by :func:`read_grading_log` and a new line starts after it).
    """
    entry: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "student": report.student,
        "content_hash": report.content_hash,
        "rubric_hash": report.rubric_hash,
        "profile": report.profile,
        "score": round(report.score, 4),
        "points": report.points,
        "seconds": None if seconds is None else round(seconds, 2),
    }
    if report.load_warnings:
        entry["warnings"] = list(report.load_warnings)
    if note:
        entry["note"] = note
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(handle).st_size
        if size and os.pread(handle, 1, size - 1) != b"\n":
            line = b"\n" + line  # the previous line was torn: do not glue this one to it
        os.write(handle, line)
    finally:
        os.close(handle)
    return entry


def read_grading_log(path: Path) -> list[dict[str, Any]]:
    """Every complete entry of the grading log at ``path``, oldest first (none when there is no log yet)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(entry, dict) and "content_hash" in entry:
            entries.append(entry)
    return entries


def _log_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry["content_hash"], entry["rubric_hash"], entry["profile"])


class CalibrationFailed(HarnessError):
    """The calibration a student's checks waited for failed: that student is not graded (nor blamed), no later one
    runs, and the batch ends by raising the calibration's own error."""


class BackgroundCalibration:
    """The reference's calibration in a thread of its own, so that the first students' files run meanwhile.

    A run's limits come from the rubric's ceilings, never from the calibration: only the checks need the bars
    it learns (relative thresholds, time budgets), so a student's runs need not wait for it, only its checks.
    """

    def __init__(self, calibrate: Callable[[], object], reference_hash: str) -> None:
        self.reference_hash = reference_hash
        """Content hash of the reference submission: a student handing in the same files waits for the
        calibration before running anything, and is checked on the reference's runs instead of running them twice."""
        self.error: BaseException | None = None
        """Why the calibration failed (None while it runs or when it succeeded)."""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(calibrate,), name="calibration")

    def start(self) -> None:
        """Start calibrating (once)."""
        self._thread.start()

    def _run(self, calibrate: Callable[[], object]) -> None:
        try:
            calibrate()
        except BaseException as error:  # raised to the batch when it ends; its students' waits fail meanwhile
            self.error = error
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        """True once the calibration has ended, well or not."""
        return self._done.is_set()

    def wait(self) -> None:
        """Return once the calibration has ended well; :class:`CalibrationFailed` when it failed."""
        self._done.wait()
        if self.error is not None:
            raise CalibrationFailed(f"the calibration failed: {self.error}") from self.error

    def join(self) -> BaseException | None:
        """Wait for the calibration's thread to end (nothing if it never started); its error, if it failed."""
        if self._thread.ident is not None:
            self._thread.join()
        return self.error


@dataclass
class GradingSetup:
    """Everything grading needs that does not change from one submission to the next."""

    rubric: Rubric
    """The validated rubric."""
    data_dir: Path
    """Prepared datasets (``harness.data.prepare``)."""
    out_dir: Path
    """Where reports, the results store, workspaces and artifacts go."""
    sandbox: Sandbox
    """Runs the students' code."""
    profile: str = "full"
    """``full`` or ``fast`` (fewer evaluation images, shorter default limits)."""
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per task id: the reference submission's hidden accuracy, worst class accuracy and seconds."""
    manual: dict[str, dict[str, ManualScore | Review]] = field(default_factory=dict)
    """TA scores of manual items, per student and task id, and TA reviews of held points (per automatic task id)."""
    threads: int = 1
    """Torch threads inside each sandboxed run."""
    limits: Limits = field(default_factory=Limits)
    """Base resource limits; the wall-clock limit of a source comes from its tasks' budgets."""
    hidden: dict[str, tuple[Path, np.ndarray]] = field(default_factory=dict)
    """Per dataset: the evaluation images file handed to the sandbox, and the labels kept on the host."""
    keep_workspaces: bool = False
    """Keep each submission's workspace (``out/work/<student>``) after grading, for a TA to look into; by default
    it is removed once the submission is graded, so what a submission wrote never stays on the host."""
    hidden_images: dict[str, np.ndarray] = field(default_factory=dict)
    """Per dataset: the evaluation images as written for the sandbox, kept on the host to check what comes back."""
    reusable_runs: dict[str, dict[str, ExecutionResult]] = field(default_factory=dict)
    """Runs made while calibrating, by content hash, then by source: the reference in the batch is checked on
    them again with the calibrated bars instead of running the same code twice."""
    pins: Pins = field(default_factory=Pins)
    """A TA's per-student choices of the file serving a task (``--pins``), over what the matcher chose."""
    references: dict[str, TaskReference] | None = None
    """The reference networks as a self-check bundle describes them, by task id (``harness.bundle``); None: built
    from the rubric's specs (the course repository, with the ``reference`` package)."""
    calibrating: BackgroundCalibration | None = field(default=None, compare=False, repr=False)
    """The reference's calibration while it runs beside the batch's first students (:func:`grade_batch`): their
    files run meanwhile, their checks wait for it (:meth:`BackgroundCalibration.wait`). None: calibrated before."""
    hold_next: bool = True
    """In a batch, each worker starts its next student's first run while it grades the current one and holds it
    after its setup (:func:`hold_first_run`); False: each run starts when its turn comes (a machine short of
    memory: a held run keeps a kernel with torch imported, a few hundred MB, per worker)."""

    @property
    def store_path(self) -> Path:
        """The SQLite results store of this output folder."""
        return self.out_dir / STORE_NAME

    @property
    def grading_log_path(self) -> Path:
        """The append-only grading log of this output folder (one JSON line per completed grading)."""
        return self.out_dir / GRADING_LOG


def prepare_setup(
    rubric_path: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    profile: str = "full",
    sandbox: Sandbox | None = None,
    manual_csv: Path | None = None,
    threads: int = 1,
    memory_bytes: int | None = None,
    cell_timeout_s: float | None = None,
    pins: Path | None = None,
    bundle: Bundle | None = None,
) -> GradingSetup:
    """Load the rubric, the manual scores and the hidden evaluation data; write the images the sandbox may see.

    Limits: the profile's defaults, then the rubric's ``limits``, then ``memory_bytes`` and ``cell_timeout_s``
    (the command line's ``--memory`` and ``--cell-timeout``). With a self-check ``bundle`` (``rubric_path`` is
    then its file), the rubric, the calibration and the reference descriptions are the bundle's.
    """
    if profile not in PROFILES:
        raise HarnessError(f"no profile {profile!r}; known: {', '.join(PROFILES)}")
    rubric = bundle.rubric if bundle is not None else load_rubric(rubric_path, known_checks=known_checks())
    check_packages(rubric.packages, str(rubric_path))  # before anything is graded: a clear error, not 0 points each
    out_dir.mkdir(parents=True, exist_ok=True)
    setup = GradingSetup(
        rubric=rubric,
        data_dir=data_dir,
        out_dir=out_dir,
        sandbox=sandbox or make_sandbox(),
        profile=profile,
        threads=threads,
        limits=_limits(rubric, profile, memory_bytes, cell_timeout_s),
    )
    if bundle is not None:
        setup.calibration = dict(bundle.calibration)
        setup.references = dict(bundle.references)
    if manual_csv is not None:
        if not manual_csv.is_file():
            raise HarnessError(
                f"{manual_csv}: no such manual scores file (the template {out_dir / 'manual-scores.csv'} is written "
                "by the first grading run without --manual)"
            )
        setup.manual = read_manual_scores(manual_csv, rubric)
    if pins is not None:
        setup.pins = read_pins(pins, rubric)  # students and files are checked against the batch once it is loaded
    limit = PROFILES[profile].eval_images
    eval_dir = out_dir / "eval"
    eval_dir.mkdir(exist_ok=True)
    for dataset in rubric.datasets:
        images, labels = load_split(data_dir, dataset, "hidden")
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        path = eval_dir / f"{dataset}-images.npy"
        np.save(path, images)  # images only: the labels never leave the host
        setup.hidden[dataset] = (path, labels)
        setup.hidden_images[dataset] = images
    return setup


def _limits(rubric: Rubric, profile: str, memory_bytes: int | None, cell_timeout_s: float | None) -> Limits:
    """The base limits of every run: the profile's wall clock, the rubric's limits (memory, cell time, workspace),
    the command line's overrides."""
    limits = Limits(wall_s=PROFILES[profile].default_wall_s)
    given = rubric.limits
    memory = memory_bytes or (int(given.memory) if given and given.memory else None)
    cell = cell_timeout_s or (given.cell_timeout_s if given else None)
    if memory is not None:
        limits = replace(limits, memory_bytes=int(memory))
    if cell is not None:
        limits = replace(limits, cell_timeout_s=float(cell))
    if given and given.workspace:
        limits = replace(limits, workspace_bytes=int(given.workspace))
    if given and given.workspace_files:
        limits = replace(limits, workspace_files=given.workspace_files)
    return limits


# -- one submission ------------------------------------------------------------------------------------------


MAX_MATCHED_BYTES = 5 * 1024 * 1024
"""Notebooks and scripts larger than this are matched by their name only (their outputs may be huge)."""


def plan_for(submission: Submission, rubric: Rubric, pins: Pins | None = None) -> SourcePlan:
    """Which of ``submission``'s files serves which task and what runs in which order (``harness.matching``)."""
    texts = {}
    for relative in submission.files:
        if not relative.lower().endswith(CODE_SUFFIXES):
            continue
        path = submission.root / relative
        try:
            small = path.stat().st_size <= MAX_MATCHED_BYTES
            texts[relative] = path.read_text(encoding="utf-8", errors="replace") if small else ""
        except OSError:
            texts[relative] = ""
    return plan_sources(rubric, texts, pins.of(submission.student) if pins else None)


def _static_text(workspace: Path, files: Sequence[str]) -> str:
    """The code static checks read for a task: its file first, then the modules and helpers of the package."""
    return "\n\n".join(text for text in (_source_text(workspace / f) for f in files) if text)


_IMPORT_ERRORS = ("SyntaxError", "IndentationError", "TabError", "ImportError", "ModuleNotFoundError")


def died_at_import(execution: ExecutionResult | None, run: RunRecord | None, script: str) -> str:
    """Why a script did no work at all (it raised before anything ran: a syntax error, or an import at its top
    that failed), as a student reads it; empty when it ran (notebooks run on after a failing cell: never)."""
    if execution is None or run is None or run.kind != "script":
        return ""
    if not run.errors or run.errors[0].ename not in _IMPORT_ERRORS:
        return ""
    first = run.errors[0]
    if first.ename in _IMPORT_ERRORS[3:]:
        line = re.match(r"line (\d+):", first.source_excerpt)
        if line is None or not _before_any_work(script, int(line.group(1))):
            return ""  # an import inside a function, or after the training: the code did work
    evalue = first.evalue[:200]
    return f"your script stopped at its start ({first.ename}: {evalue}) before doing any work"


def _before_any_work(script: str, lineno: int) -> bool:
    """True when line ``lineno`` of ``script`` is a top-level import with nothing that does work before it
    (imports, definitions, constants and setup assignments only)."""
    tree = parse_or_none(script)
    if tree is None:
        return True
    for node in tree.body:
        if node.lineno <= lineno <= (node.end_lineno or node.lineno):
            return isinstance(node, (ast.Import, ast.ImportFrom))
        if statement_works(node):
            return False
    return False


def _source_text(path: Path) -> str:
    """The code of a notebook (code cells joined) or a script, read as text; never executed."""
    try:
        if path.suffix.lower() == ".ipynb":  # find_source matches names case-insensitively: CNNMNIST.IPYNB
            nb = nbformat.read(path, as_version=4)
            return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
        return path.read_text(encoding="utf-8", errors="replace")
    except Exception:  # an unreadable source is reported by the engine; static checks then see nothing
        return ""


def _budget(setup: GradingSetup, task: Task) -> tuple[float | None, str]:
    """The task's time budget in seconds and how it was set."""
    budget = task.budget
    if budget is None:
        return None, ""
    ceiling = budget.wall_s
    reference = setup.calibration.get(task.id, {}).get("seconds")
    if budget.reference_multiple is not None and reference is not None:
        allowed = budget.reference_multiple * reference
        if ceiling is not None and ceiling < allowed:
            return ceiling, f"{ceiling:.0f} s (the ceiling; {budget.reference_multiple:g}x reference would be {allowed:.0f} s)"
        return allowed, f"{budget.reference_multiple:g}x reference ({reference:.1f} s) = {allowed:.0f} s"
    if ceiling is not None:
        return ceiling, f"{ceiling:.0f} s"
    return None, ""


def _by_rubric_source(tasks: Sequence[Task]) -> list[list[Task]]:
    """``tasks`` grouped by the rubric source they name (one file of the student's may answer several)."""
    groups: dict[tuple[str, ...], list[Task]] = {}
    for task in tasks:
        groups.setdefault(tuple(s.casefold() for s in task.source), []).append(task)
    return list(groups.values())


def _step_budget(setup: GradingSetup, task: Task, step: Sequence[Task]) -> tuple[float | None, str]:
    """The time budget of ``task`` when its file also answers other parts of the rubric (``step``: every task the
    file serves): the sum of the budgets of each rubric source it answers, since it does all their work."""
    own = _budget(setup, task)
    parts = [_budget(setup, next((t for t in group if t.budget), group[0])) for group in _by_rubric_source(step)]
    parts = [p for p in parts if p[0] is not None]
    if own[0] is None or len(parts) < 2:
        return own
    total = sum(p[0] for p in parts)
    return total, f"{total:.0f} s, the sum of the budgets of the {len(parts)} parts of the assignment this file answers"


def _source_limits(setup: GradingSetup, tasks: Sequence[Task]) -> Limits:
    """Limits of one file's run: the largest wall-clock ceiling among the tasks of each rubric source it answers,
    added up over those sources (one notebook for every question does the work of all); GPU if any task asks."""
    ceilings = [
        max(c) for c in ([t.budget.wall_s for t in g if t.budget and t.budget.wall_s] for g in _by_rubric_source(tasks)) if c
    ]
    wall = sum(ceilings) if ceilings else setup.limits.wall_s
    gpu = any(t.budget and t.budget.device == "gpu" for t in tasks)
    return replace(setup.limits, wall_s=wall, gpu=gpu)


def _run_settings(setup: GradingSetup, tasks: Sequence[Task]) -> RunSettings:
    """What the engine needs to run one source: limits, data, evaluation images, preferred model names,
    and what the tasks' probe blocks ask the probe to record (values, function calls), merged in rubric order."""
    prefer: list[str] = []
    evaluated: list[str] = []
    values: dict[str, None] = {}
    calls: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.model is not None:
            prefer += [name for name in task.model.prefer if name not in prefer]
            if task.model.dataset and task.model.dataset not in evaluated:
                evaluated.append(task.model.dataset)
        if task.probe is not None:
            values.update(dict.fromkeys(task.probe.values))
            for call in task.probe.calls:
                calls.setdefault(call.id, call.as_config())
    limits = _source_limits(setup, tasks)
    return RunSettings(
        limits=limits,
        cell_timeout_s=min(limits.cell_timeout_s or limits.wall_s, limits.wall_s),
        threads=setup.threads,
        seed=setup.rubric.seed,
        data_dir=setup.data_dir,
        eval_images={d: setup.hidden[d][0] for d in evaluated if d in setup.hidden},
        datasets=tuple(setup.rubric.datasets),
        prefer=tuple(prefer),
        task_values=tuple(values),
        calls=tuple(calls.values()),
    )


def _reference_for(
    setup: GradingSetup, task: Task
) -> tuple[torch.nn.Module | None, list[dict[str, Any]] | None, int | None]:
    if task.model is None or task.model.spec is None:
        return None, None, None
    if setup.references is not None:  # a self-check bundle: the reference's description, not its code
        published = setup.references.get(task.id)
        return (None, published.layers, published.parameters) if published else (None, None, None)
    model = task.model.build_reference()
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # the computation, as the probe traces the student's network, with the sizes the assignment leaves open marked
    shapes = DEFAULT_INPUT_SHAPES.get(task.model.dataset or "", DEFAULT_INPUT_SHAPES["mnist"])
    layers = task.model.reference_layers(shapes, f"{setup.rubric.path or setup.rubric.assignment}: tasks ({task.id})")
    return model, layers, parameters


def _task_context(
    setup: GradingSetup,
    task: Task,
    execution: ExecutionResult | None,
    outcome: RunOutcome,
    source_text: str,
    missing: str,
    related: dict[str, CheckContext] | None = None,
    step: Sequence[Task] = (),
) -> CheckContext:
    """Everything the checks of ``task`` read; ``outcome``: what its run's records say (``classify_run``);
    ``related``: the contexts of the tasks graded before it."""
    from harness.checks.context import CheckContext
    from harness.checks.select import select_model

    artifacts = execution.artifacts_dir if execution else None
    records = outcome.records
    run = records.run if records else None
    probe = records.probe if records else None
    reference, reference_layers, reference_parameters = _reference_for(setup, task)
    fixed = task.model is None or task.model.architecture == "fixed"
    if missing:
        model, note = None, missing
    elif probe is None:
        model, note = None, _why_no_probe(execution, run)
    else:
        prefer = task.model.prefer if task.model else ()
        model, note = select_model(
            [m.to_json() for m in probe.models], prefer, reference_layers, reference_parameters, require_similarity=fixed
        )
    dataset = task.model.dataset if task.model else None
    budget_s, budget_note = _step_budget(setup, task, step or (task,))
    return CheckContext(
        task_id=task.id,
        execution=execution,
        run=run,
        probe=probe,
        artifacts_dir=artifacts,
        model=model,
        model_note=note,
        dataset=dataset,
        reference_layers=reference_layers,
        reference_model=reference,
        reference_code=setup.references is None,
        reference_accepted=None if setup.references is None else (
            setup.references[task.id].accepted if task.id in setup.references else {}
        ),
        reference_metrics=setup.calibration.get(task.id, {}),
        reference_seconds=setup.calibration.get(task.id, {}).get("seconds"),
        budget_s=budget_s,
        budget_note=budget_note,
        hidden_labels=setup.hidden[dataset][1] if dataset in setup.hidden else None,
        hidden_images=setup.hidden_images.get(dataset or ""),
        fixed_architecture=fixed,
        source_text=source_text,
        run_died=outcome.died,
        data_dir=setup.data_dir,
        related=dict(related or {}),
        records=records,
    )


def _harness_errors(task: Task, fault: str) -> list[CheckResult]:
    return [
        CheckResult(task=task.id, check=spec.check, status="error", message=fault, points=float(spec.points), score=0.0)
        for spec in task.checks
    ]


@dataclass(frozen=True)
class RunOutcome:
    """What the records of one run say before any check reads them (``classify_run``)."""

    records: Artifacts | None = None
    """The run's artifacts folder, read and validated once; None when the run left none or it is unusable."""
    unusable: str = ""
    """Why the records could not be read (malformed or forged): every check of the run's tasks is then a grader
    error; empty when they were read."""
    setup_problem: str = ""
    """Why the grader could not prepare the run (its fault, never the student's; see ``_setup_problem``): every
    check of the run's tasks is then a grader error; empty when it could."""
    died: str = ""
    """Why a script did no work at all, as a student reads it (``died_at_import``); empty when it ran."""


def classify_run(execution: ExecutionResult, script: str = "") -> RunOutcome:
    """Read the records ``execution`` left (once) and say what they show: unusable records, a grader fault
    preparing the run, or a script that died at its imports. ``script``: the code of a script run, else empty."""
    from harness.artifacts import ArtifactError, load_artifacts

    try:
        # the engine read run.json already (execution.run); a stored run's is read again here
        records = load_artifacts(execution.artifacts_dir, execution.run) if execution.artifacts_dir else None
    except ArtifactError as error:
        return RunOutcome(unusable=str(error))
    run = records.run if records else None
    return RunOutcome(
        records=records,
        setup_problem=_setup_problem(execution, run),
        died=died_at_import(execution, run, script),
    )


def _setup_problem(execution: ExecutionResult, run: RunRecord | None) -> str:
    """Why the grader could not prepare the run of ``execution`` (its fault, never the student's); empty if not.

    Either the runner recorded a setup error (the hidden first cell, or the bootstrap of a script, failed: an
    environment that cannot import torch), or the runner left no record at all and exited with an error before
    any of the student's code could run (the interpreter or the harness would not start in the sandbox).
    """
    where = f"the grader could not prepare the run of {execution.source} (not a problem with your code: a TA will look)"
    if run is not None:
        if run.setup_error and run.setup_error.strip():
            return f"{where}: {_last_line(run.setup_error)}"
        return ""
    if execution.sandbox.verdict == "error":
        said = _last_line(execution.sandbox.stderr) or execution.sandbox.message
        return f"{where}: the runner stopped before your code started ({execution.sandbox.message}): {said}"
    return ""


def _last_line(text: str) -> str:
    """The last non-empty line of a traceback or of stderr (the exception itself), cut to 300 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _why_no_probe(execution: ExecutionResult | None, run: RunRecord | None) -> str:
    if execution is None:
        return "your code was not run"
    died = run.kernel_died if run else None
    if died is not None:
        how = died.message[:300] or "the kernel died (out of memory, a crash, or exit())"
        return f"your code did not finish: {how} in cell {died.cell + 1}, so no model could be inspected"
    if run and run.probe_error:
        return "the grader could not inspect your models (a harness error: a TA will look)"
    if execution.sandbox.verdict != "ok":
        return f"your code did not finish: it {execution.sandbox.message}, so no model could be inspected"
    return "no model could be inspected after running your code"


def grade_submission(
    submission: Submission,
    setup: GradingSetup,
    reuse: Mapping[str, ExecutionResult] | None = None,
    held: HeldRun | None = None,
) -> GradeReport:
    """Run every source of the rubric on ``submission`` and score every task; its workspace is removed afterwards
    (unless ``setup.keep_workspaces``).

    ``reuse``: the runs of an earlier grading of the same content, by source (its stored report's executions):
    when every source would run exactly as then (:mod:`harness.runcache`), their records are checked again
    and nothing runs. ``held``: the submission's first run, started ahead by :func:`hold_first_run` (its
    workspace is used, its run goes on from its setup).
    """
    student_dir = safe_name(submission.student)
    folder = setup.out_dir / "work" / student_dir
    try:
        if held is None:
            limited_folder(folder, setup.limits)  # as root a tmpfs: the submission never puts more on the host
            workspace = make_workspace(submission, folder)
        else:
            workspace = held.workspace
        return _grade_in(submission, setup, workspace, student_dir, reuse or {}, held)
    finally:
        if held is not None:
            held.cancel()  # nothing if it went; else (a fault before its turn) it must not stay held
        # every source has run: nothing the student's code wrote is needed any more
        release_folder(folder, keep=setup.keep_workspaces)


@dataclass
class HeldRun:
    """A submission's first run, started in its own fresh sandbox while the worker is still busy with the previous
    student, and held once the kernel is started and the hidden setup has run (``Engine.run(gate=...)``): no code of
    the student's runs before :meth:`go`."""

    submission: Submission
    """Whose run it is."""
    source: str
    """The file it runs (the first step of the submission's plan)."""
    workspace: Path
    """The submission's workspace, made for this grading (the later steps use it too)."""
    folder: Path
    """The working folder holding ``workspace`` (as root a tmpfs of its own), released after the grading."""
    gate: Gate
    """Opened by :meth:`go`; closed by :meth:`cancel`."""
    thread: threading.Thread
    """Runs ``Engine.run`` to the run's end."""
    outcome: list[ExecutionResult | BaseException] = field(default_factory=list)
    """What the thread ended with: the run's result, or what the harness raised running it."""

    def go(self) -> ExecutionResult:
        """Let the student's code run now; the run's result once it is over (what running it raised, raised)."""
        self.gate.open()
        self.thread.join()
        outcome = self.outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def cancel(self) -> None:
        """End a run that did not go without running any of the student's code, and wait for its sandbox to be
        gone; after :meth:`go`, nothing."""
        self.gate.close()
        self.thread.join()

    def discard(self, keep: bool = False) -> None:
        """:meth:`cancel`, and release its working folder (once the grading that took it is over; ``keep``: as
        ``GradingSetup.keep_workspaces``). A folder already released is left alone."""
        self.cancel()
        release_folder(self.folder, keep=keep)


def hold_first_run(
    submission: Submission, setup: GradingSetup, reuse: Mapping[str, ExecutionResult] | None = None
) -> HeldRun | None:
    """Start ``submission``'s first run ahead and hold it after its setup (:class:`HeldRun`); None when there is
    nothing to start ahead: a sandbox that cannot hold, a plan with no file to run, a first run whose earlier
    records are reused. ``grade_submission(..., held=...)`` takes it from there; its workspace is released there.
    """
    if not getattr(setup.sandbox, "holds", False):
        return None
    plan = plan_for(submission, setup.rubric, setup.pins)
    if not plan.steps:
        return None
    keys = _run_keys(setup, submission, plan)
    if reusable(list(keys.items()), setup.reusable_runs.get(submission.content_hash, {}), reuse or {}):
        return None
    step = plan.steps[0]
    student_dir = safe_name(submission.student)
    folder = setup.out_dir / "work" / student_dir
    limited_folder(folder, setup.limits)
    try:
        workspace = make_workspace(submission, folder)
    except BaseException:
        release_folder(folder, keep=setup.keep_workspaces)
        raise
    engine = Engine(setup.sandbox, kind_for(step.file))
    settings = _run_settings(setup, [setup.rubric.task(t) for t in step.tasks])
    gate = Gate()
    outcome: list[ExecutionResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(engine.run(submission, step.file, _run_dir(setup, student_dir, 0, step.file), settings,
                                      workspace=workspace, gate=gate))
        except BaseException as error:  # raised where the run is taken: grade_submission handles it as a fault
            outcome.append(error)

    thread = threading.Thread(target=run, name=f"held-{student_dir}", daemon=True)
    thread.start()
    return HeldRun(submission, step.file, workspace, folder, gate, thread, outcome)


def _run_dir(setup: GradingSetup, student_dir: str, index: int, relative: str) -> Path:
    """The folder of the ``index``-th run of a student's plan (its artifacts, records and config)."""
    return setup.out_dir / "artifacts" / student_dir / f"{index}-{safe_name(Path(relative).stem)}"


def _run_keys(setup: GradingSetup, submission: Submission, plan: SourcePlan) -> dict[str, str]:
    """What decides each run of ``plan``, by file: unchanged keys let an earlier grading's runs be checked again."""
    return {
        step.file: run_key(_run_settings(setup, [setup.rubric.task(t) for t in step.tasks]), step.file,
                           submission.content_hash, setup.profile)
        for step in plan.steps
    }


def _grade_in(
    submission: Submission,
    setup: GradingSetup,
    workspace: Path,
    student_dir: str,
    reuse: Mapping[str, ExecutionResult],
    held: HeldRun | None = None,
) -> GradeReport:
    """Grade ``submission``: run each file of its plan once, in order, in ``workspace`` (or, when every file would
    run as an earlier grading ran it, take those runs' records); then check every task. ``held``: the first run,
    already set up."""
    rubric = setup.rubric
    plan = plan_for(submission, rubric, setup.pins)
    results: list[CheckResult] = []
    executions: list[ExecutionResult] = []
    ran: dict[str, ExecutionResult] = {}
    outcomes: dict[str, RunOutcome] = {}  # what each run's records say, read once
    faults: dict[str, str] = {}
    keys = _run_keys(setup, submission, plan)
    if held is not None and (not plan.steps or plan.steps[0].file != held.source):
        held.cancel()  # started for another first file (cannot happen with the same plan): never run two at once
        held = None
    reused = {} if held is not None else reusable(
        list(keys.items()), setup.reusable_runs.get(submission.content_hash, {}), reuse
    )
    for index, step in enumerate(plan.steps):
        tasks = [rubric.task(t) for t in step.tasks]
        relative = step.file
        run_dir = _run_dir(setup, student_dir, index, relative)
        try:
            execution = reused.get(relative)
            if execution is None and held is not None and index == 0 and held.source == relative:
                execution = mark(held.go(), keys[relative])
            elif execution is None:
                engine = Engine(setup.sandbox, kind_for(relative))
                execution = engine.run(submission, relative, run_dir, _run_settings(setup, tasks), workspace=workspace)
                execution = mark(execution, keys[relative])
        except Exception as error:  # a harness fault running this file: its checks are errors, the rest goes on
            faults[relative] = f"the grader could not run {relative}: {type(error).__name__}: {error}"
            continue
        executions.append(execution)
        ran[relative] = execution
        script = _source_text(workspace / relative) if relative.lower().endswith(".py") else ""
        outcome = outcomes[relative] = classify_run(execution, script)
        if outcome.setup_problem:  # the grader's own preparation failed: not the student's error, no check can judge
            faults[relative] = outcome.setup_problem
        elif outcome.unusable:
            faults[relative] = f"the records of running {relative} are unusable: {outcome.unusable}"
    if setup.calibrating is not None:  # every file has run; the checks need the bars it learns
        setup.calibrating.wait()
    graded: dict[str, CheckContext] = {}  # contexts of the tasks graded so far, for cross-task checks
    from harness.checks.rebuild import CACHE_FOLDER, Rebuilder, RebuildServer

    # the student's own classes are built again in a second clean sandbox, one for all of this submission's tasks
    rebuilds = RebuildServer(setup.sandbox, submission, setup.out_dir / "artifacts" / student_dir / "rebuild",
                             setup.limits)
    try:
        for task in rubric.grading_order():
            entry = plan.source(task.id)
            if entry.run in faults:
                results.extend(_harness_errors(task, faults[entry.run]))
                continue
            execution = ran.get(entry.run) if entry.run else None
            outcome = outcomes.get(entry.run, RunOutcome()) if entry.run else RunOutcome()
            text = _static_text(workspace, plan.static_files(task.id)) if entry.found else ""
            step = plan.step_of(task.id)
            tasks = [rubric.task(t) for t in step.tasks] if step else [task]
            ctx = _task_context(setup, task, execution, outcome, text, "" if entry.found else entry.reason, graded,
                                tasks)
            if execution is not None and entry.run:
                ctx.rebuild = Rebuilder(setup.sandbox, submission, entry.run, rebuilds.folder, setup.limits,
                                        cache=setup.out_dir / CACHE_FOLDER, server=rebuilds)
            results.extend(run_check(ctx, spec) for spec in task.checks)
            graded[task.id] = ctx
    finally:
        rebuilds.close()
    report = score_submission(
        rubric,
        submission.student,
        submission.content_hash,
        results,
        setup.manual.get(submission.student, {}),
        executions,
        profile=setup.profile,
        late=submission.late,
        sources={t.task: (t.file or "", t.run or "", t.reason) for t in plan.tasks},
    )
    # names and messages from the student's run may hold lone surrogates
    return readable_report(replace(report, load_warnings=submission.warnings, lms_id=submission.lms_id))


# -- a batch -------------------------------------------------------------------------------------------------


def warm_host(
    modules: Sequence[str] = HOST_MODULES, after: threading.Event | None = None, wait_s: float = WARM_WAIT_S
) -> threading.Thread:
    """Start importing ``modules`` in a background thread, in order, once ``after`` is set (or ``wait_s`` has
    passed); the thread.

    The default ``after`` is the first launch of a sandboxed command in this process (``LAUNCHED``): until then
    the host is busy loading the batch and starting that run, and a torch import beside it (it holds the
    interpreter for most of a second) only delays the first student. ``wait_s`` bounds the wait for a batch
    whose results are all reused, or whose loading takes long.

    A module a thread is importing is waited for by any other thread that imports it, so whichever comes first
    does the work once. A module that fails to import is left alone here: where it is used, importing it again
    raises the error in the right place. The thread is not a daemon: the interpreter waits for it before it
    exits, because a thread stopped in the middle of an extension module's import (torch's) can abort the process.
    """
    ready = LAUNCHED if after is None else after

    def load() -> None:
        ready.wait(wait_s)
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # reported where the module is used
                continue

    thread = threading.Thread(target=load, name="warm-host")
    thread.start()
    return thread


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did."""

    graded: int
    """Submissions graded in this run."""
    reused: int
    """Submissions whose stored result was still valid (same content, rubric and profile)."""
    failed_to_load: int
    """Submissions that could not be loaded (graded 0 with the reason)."""
    reports: tuple[GradeReport, ...]
    """Every report of the batch, new and reused, by student."""
    index: Path
    """The index page."""
    seconds: float
    """Wall-clock seconds of the whole run."""
    faults: tuple[str, ...] = ()
    """Grader faults met (a submission that could not be graded, a page that could not be written)."""
    carried: tuple[str, ...] = ()
    """Students graded into the same output folder by earlier runs (same rubric and profile) and not in this
    batch: the index, gradebook and manual-scores template keep them (grading late hand-ins adds to the class)."""


def grade_batch(
    path: Path,
    setup: GradingSetup,
    *,
    jobs: int = 1,
    force: bool = False,
    reference_dir: Path | None = None,
    on_event: OnEvent | None = None,
    backend: str = "threads",
    ray_address: str | None = None,
    gpu_slots: GpuSlots | None = None,
) -> BatchSummary:
    """Grade every submission under ``path`` (a folder or an LMS bulk zip) with ``jobs`` in parallel.

    ``backend`` (:mod:`harness.backends`): where each submission is graded, ``threads``, ``processes`` or
    ``ray`` (at ``ray_address``, else a local instance); whatever the backend, this driver stores, logs and
    renders. ``gpu_slots``: the GPUs that GPU tasks share (default: every GPU visible, one job each).
    """
    started = time.perf_counter()
    emit: OnEvent = on_event or (lambda event: None)
    staging = setup.out_dir / "staging"
    entries = load_batch(path, staging)
    store = ResultStore(setup.store_path)
    try:
        _check_batch_fits(setup, entries, store)
    except HarnessError:
        store.close()
        raise
    # The batch will be graded: what the host needs after the first runs is imported while they start. Graded in
    # other processes, the checks run there; this one only writes the pages.
    warm_host(HOST_MODULES if backend == "threads" else REPORT_MODULES)
    calibrating: BackgroundCalibration | None = None
    if reference_dir is not None:
        from harness.calibration import calibrate_rubric, reference_content_hash  # they grade with this module

        # only the tasks some submission hands in a file for: the reference's other notebooks would run for nothing
        needed = {t for e in entries if isinstance(e, Submission) for t in plan_for(e, setup.rubric, setup.pins).matched}
        reference_hash = reference_content_hash(setup, reference_dir) if backend == "threads" else None
        if reference_hash is not None:
            # Beside the first students (graded in this process's threads): their files run meanwhile, on the core
            # the reference's one-after-another runs leave idle; their checks wait for the bars. Its own setup
            # shares the calibration and the reusable runs with the batch's, and waits for nothing.
            alone = replace(setup, calibrating=None)

            def calibrate() -> None:
                calibrate_rubric(alone, reference_dir, emit, tasks=needed)
                emit(Calibrated(str(reference_dir)))

            calibrating = BackgroundCalibration(calibrate, reference_hash)
            setup = replace(setup, calibrating=calibrating)
        else:  # other processes get a copy of the setup: calibrated first (and a reference that cannot load says so)
            try:
                calibrate_rubric(setup, reference_dir, emit, tasks=needed)
            except BaseException:
                store.close()
                raise
    emit(Loaded(len(entries)))
    logged = {_log_key(e) for e in read_grading_log(setup.grading_log_path)}
    reports: dict[str, GradeReport] = {}
    lock = threading.Lock()
    todo: list[Submission] = []
    reused = failed = 0
    faults: list[str] = []

    def render(report: GradeReport) -> None:
        try:
            render_student(report, setup.out_dir, setup.rubric.title, seed=setup.rubric.seed)
        except Exception as error:  # the report is stored; only its page is missing: say so and go on
            fault = f"{report.student}: could not write the report page ({type(error).__name__}: {error})"
            faults.append(fault)
            emit(Fault(report.student, fault))

    for entry in entries:
        for warning in entry.warnings if isinstance(entry, Submission) else ():
            emit(LoadWarning(entry.student, warning))
        if isinstance(entry, LoadFailure):
            report = readable_report(replace(score_load_failure(
                setup.rubric, entry.student, _readable_path(entry.source), entry.reason,
                manual=setup.manual.get(entry.student), profile=setup.profile,
            ), lms_id=entry.lms_id))
            failed += 1
            reports[entry.student] = report
            render(report)
            emit(Done(entry.student, report.score, report.points, reused=False))
            continue
        stored = None if force else store.get(entry.content_hash, setup.rubric.hash, setup.profile)
        if stored is not None and not _pins_agree(stored, setup.pins.of(entry.student)):
            stored = None  # a TA pinned a file since: grade again with it
        if stored is not None:
            # Loading warnings belong to this upload, not to its content (a LATE mark, the name of a skipped file).
            stored = replace(stored, load_warnings=entry.warnings)
            if (stored.content_hash, stored.rubric_hash, stored.profile) not in logged:
                log_grading(setup.grading_log_path, stored, note=RESUMED_NOTE)
            # The store is keyed by content: identical hand-ins of two students share a row.
            stored = replace(_with_manual(setup, replace(stored, student=entry.student)), lms_id=entry.lms_id)
            reports[entry.student] = stored
            render(stored)
            reused += 1
            emit(Done(entry.student, stored.score, stored.points, reused=True))
        else:
            todo.append(entry)

    runner, slots = None, None
    try:
        runner = make_backend(backend, setup, max(1, jobs), address=ray_address) if todo else None
        if runner is not None and needs_gpu(setup) and not runner.assigns_gpus:
            slots = gpu_slots or GpuSlots(visible_gpus())
    except HarnessError:  # e.g. Ray missing, no GPU for a GPU rubric: nothing was graded
        if runner is not None:
            runner.close()
        store.close()
        raise
    if calibrating is not None:  # only now: a batch refused above has run nothing, the reference included
        calibrating.start()

    def same_as_reference(submission: Submission) -> bool:
        """True for a hand-in of the reference's very files while it is being calibrated: it waits for the
        calibration's runs instead of running the same code beside them."""
        return calibrating is not None and submission.content_hash == calibrating.reference_hash

    def stored_runs(submission: Submission) -> dict[str, ExecutionResult]:
        if force:
            return {}
        with lock:  # the store is shared by the grading threads
            return _stored_runs(store, submission.content_hash, setup.profile)

    def graded_by_backend(submission: Submission, held: HeldRun | None) -> GradeReport:
        assert runner is not None
        reuse = stored_runs(submission)
        if held is not None:  # only in this process's threads (``holding``)
            try:
                return grade_submission(submission, setup, reuse, held)
            finally:  # after its go and the grading's own release, nothing; else it must not outlive its turn
                held.discard(keep=setup.keep_workspaces)
        gpu = slots.acquire() if slots is not None else None
        try:
            return runner.grade(submission, gpu, reuse)
        finally:
            if gpu is not None and slots is not None:
                slots.release(gpu)

    def work(submission: Submission, held: HeldRun | None = None) -> GradeReport | None:
        began = time.perf_counter()
        try:
            if calibrating is not None and (same_as_reference(submission) or calibrating.error is not None):
                calibrating.wait()  # raises once the calibration failed: nothing more is run for nothing
            report = graded_by_backend(submission, held)
        except CalibrationFailed:  # not this student's fault: the batch ends by saying why the calibration failed
            if held is not None:
                held.discard(keep=setup.keep_workspaces)
            return None
        except Exception as error:  # a harness fault: not stored, so the next run tries again; the batch goes on
            fault = f"{submission.student}: grading failed, a grader fault ({type(error).__name__}: {error})"
            faults.append(fault)
            emit(Fault(submission.student, fault))
            return None
        try:
            with lock:
                store.put(report)  # committed before anything else: a crash after this loses nothing
                log_grading(setup.grading_log_path, report, seconds=time.perf_counter() - began)
        except (StoreError, OSError) as error:  # e.g. a full disk: this student is retried next run, the batch goes on
            fault = f"{submission.student}: the result could not be saved, a grader fault ({error})"
            faults.append(fault)
            emit(Fault(submission.student, fault))
            return None
        render(report)
        return report

    # A worker starts the next student's first run while it grades the current one, held after its setup (kernel
    # started, torch imported, probe installed) until the worker is free: that setup is off the critical path. Only
    # where this process grades (threads) in a sandbox that can hold, and not on GPUs (a held run would keep a slot).
    holds = bool(getattr(setup.sandbox, "holds", False))
    holding = setup.hold_next and holds and backend == "threads" and slots is None
    # a hand-in of the reference's files last: by its turn, the calibration has run those files for it
    waiting: deque[Submission] = deque(sorted(_longest_first(todo, store, lock, setup), key=same_as_reference))
    ahead: deque[tuple[Submission, HeldRun | None]] = deque()  # started ahead, in the order they were due
    schedule = threading.Lock()
    stopping = threading.Event()
    done: dict[str, Future[GradeReport | None]] = {submission.student: Future() for submission in waiting}

    def hold(submission: Submission) -> HeldRun | None:
        if same_as_reference(submission) and calibrating is not None and not calibrating.done:
            return None
        try:
            return hold_first_run(submission, setup, stored_runs(submission))
        except Exception as error:  # e.g. its workspace could not be made: it is graded the ordinary way, in turn
            log.warning("%s: could not start its run ahead (%s: %s)", submission.student, type(error).__name__, error)
            return None

    def next_job() -> tuple[Submission, HeldRun | None] | None:
        """The next submission in the batch's order, with its held run if one was started; a held run for the one
        after it is started (at most one per worker waits)."""
        with schedule:
            if stopping.is_set():
                return None
            if ahead:
                job = ahead.popleft()
            elif waiting:
                job = (waiting.popleft(), None)
            else:
                return None
            if holding and waiting and len(ahead) < max(1, jobs):
                upcoming = waiting.popleft()
                ahead.append((upcoming, hold(upcoming)))
        return job

    def worker() -> None:
        while (job := next_job()) is not None:
            submission, held = job
            try:
                done[submission.student].set_result(work(submission, held))
            except BaseException as error:
                done[submission.student].set_exception(error)
                raise

    def stop() -> None:
        """No new grading starts; every run held for a later one ends without running its code."""
        stopping.set()
        with schedule:
            left = list(ahead)
            ahead.clear()
        for _, held in left:
            if held is not None:
                held.discard(keep=setup.keep_workspaces)

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            workers = [pool.submit(worker) for _ in range(max(1, min(jobs, len(done))))]
            try:
                whose = {future: student for student, future in done.items()}
                for future in as_completed(whose):
                    report = future.result()
                    if report is None:
                        continue
                    reports[whose[future]] = report
                    emit(Done(whose[future], report.score, report.points, reused=False))
            finally:
                stop()
            for future in workers:
                future.result()
    finally:
        stop()
        if runner is not None:
            runner.close()
        if calibrating is not None:
            calibrating.join()
    if calibrating is not None and calibrating.error is not None:
        store.close()
        raise calibrating.error
    store.close()
    ordered = tuple(sorted(reports.values(), key=lambda r: r.student))
    carried = _earlier_reports(setup, exclude=set(reports), render=render)
    whole_class = sorted([*ordered, *carried], key=lambda r: r.student)
    manual_csv = setup.out_dir / "manual-scores.csv"
    review = sorted({t.task for r in whole_class for t in r.tasks if t.held})  # tasks with points a TA must review
    if setup.rubric.manual_tasks or review:
        write_manual_template(manual_csv, setup.rubric, [r.student for r in whole_class], review)
    index = render_index(
        whole_class,
        setup.out_dir,
        setup.rubric.title,
        [(t.id, t.title) for t in setup.rubric.tasks],
        manual_csv=manual_csv.name if setup.rubric.manual_tasks or review else None,
    )
    graded = sum(1 for submission in todo if submission.student in reports)
    return BatchSummary(graded, reused, failed, ordered, index, time.perf_counter() - started, tuple(faults),
                        carried=tuple(r.student for r in carried))


def _longest_first(
    todo: Sequence[Submission], store: ResultStore, lock: threading.Lock, setup: GradingSetup
) -> list[Submission]:
    """``todo`` in the order the workers take them: the longest expected grading first, so that the batch ends on
    short ones and no worker is left running a long one alone while the others have nothing to do.

    Expected: how long the sandboxed runs of the same content took when it was last graded (the store keeps
    them, under any rubric file); a submission never run before may be long and goes first, ordered by the bytes
    of notebooks and scripts it holds (more or longer sources run longer). Equal ones keep the batch's order.
    """

    def expected(submission: Submission) -> tuple[float, int]:
        with lock:
            earlier = _stored_runs(store, submission.content_hash, setup.profile)
        seconds = sum(e.sandbox.wall_s for e in earlier.values()) if earlier else math.inf
        return seconds, _code_bytes(submission)

    costs = {s.student: expected(s) for s in todo}
    return sorted(todo, key=lambda s: costs[s.student], reverse=True)


def _code_bytes(submission: Submission) -> int:
    """Bytes of the notebooks and scripts of a submission (0 for one that cannot be read)."""
    total = 0
    for relative in submission.files:
        if relative.lower().endswith(CODE_SUFFIXES):
            try:
                total += (submission.root / relative).stat().st_size
            except OSError:
                continue
    return total


def _stored_runs(store: ResultStore, content_hash: str, profile: str) -> dict[str, ExecutionResult]:
    """The runs of the last stored report of this content (under any rubric file), by source; none if unreadable.
    A caller sharing ``store`` between threads holds its lock around the call."""
    try:
        earlier = store.latest(content_hash, profile)
    except StoreError:  # a damaged row: run again
        return {}
    return {e.source: e for e in earlier.executions} if earlier else {}


def _earlier_reports(
    setup: GradingSetup, exclude: set[str], render: Callable[[GradeReport], None]
) -> list[GradeReport]:
    """The reports earlier runs wrote into this output folder for other students, under the same rubric file and
    profile (``students/*/report.json``), with the current manual scores merged (their pages are written again
    with ``render`` when those changed); a damaged one is left out."""
    earlier = []
    for path in sorted((setup.out_dir / "students").glob("*/report.json")):
        try:
            report = report_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except Exception:  # a damaged page of an earlier run: it is not this batch's, and its student regrades
            continue
        if report.student in exclude or report.rubric_hash != setup.rubric.hash or report.profile != setup.profile:
            continue
        merged = _with_manual(setup, report)
        if merged != report:
            render(merged)
        earlier.append(merged)
    return earlier


def _check_batch_fits(setup: GradingSetup, entries: Sequence[Submission | LoadFailure], store: ResultStore) -> None:
    """Refuse a batch that cannot be what the TA meant: HarnessError when no submission holds any of the
    rubric's notebooks or scripts (by name or by content: the wrong rubric, or the wrong folder), when the manual
    scores name students who are neither in this batch nor graded before under this rubric (a typo would score 0),
    or when the pins name a student, or a file of a student, that is not in this batch."""
    submissions = [e for e in entries if isinstance(e, Submission)]
    tasks = setup.rubric.automatic_tasks
    failed = len(entries) - len(submissions)  # a submission that could not be loaded may hold the rubric's files
    if setup.pins.by_student:
        check_pins(setup.pins, {s.student: s.files for s in submissions})
    if submissions and tasks and not failed and not any(plan_for(s, setup.rubric, setup.pins).matched for s in submissions):
        wanted = sorted({name for t in tasks for name in t.source})
        held = sorted({Path(f).name for s in submissions for f in s.files if f.endswith((".ipynb", ".py"))})
        shown = ", ".join(held[:8]) + (f" and {len(held) - 8} more" if len(held) > 8 else "") if held else "no code"
        raise HarnessError(
            f"none of the {len(submissions)} submission(s) holds any file the rubric {setup.rubric.assignment} grades "
            f"({', '.join(wanted)}); they hold {shown}. Is this the right rubric for this folder?"
        )
    if setup.manual:
        known = {e.student for e in entries} | {r.student for r in store.all(setup.rubric.hash)}
        unknown = sorted(set(setup.manual) - known)
        if unknown:
            hints = [f"{name!r}{did_you_mean(name, sorted(known))}" for name in unknown]
            raise HarnessError(
                f"the manual scores name student(s) who are neither in this batch nor graded before: {', '.join(hints)}; "
                "correct the student column of the manual scores file"
            )


def _pins_agree(report: GradeReport, pins: dict[str, str] | Any) -> bool:
    """True when every pinned task of ``report`` was graded on the pinned file (a stored report made before the
    pin is not reused)."""
    by_task = {t.task: t for t in report.tasks}
    return all(t in by_task and by_task[t].source == path and "pinned" in by_task[t].source_note for t, path in pins.items())


def _readable_path(path: Path) -> str:
    """A path for reports: bytes of a file name that are not UTF-8 shown as ``\\xfc`` (they cannot be written out)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _with_manual(setup: GradingSetup, report: GradeReport) -> GradeReport:
    """A stored report with the current manual scores and reviews of held points merged in (they change after
    automatic grading); the stored check results are scored again, nothing runs."""
    if not setup.rubric.manual_tasks and not any(t.held for t in report.tasks):
        return report
    results = [c for t in report.tasks for c in t.checks]
    rescored = score_submission(
        setup.rubric, report.student, report.content_hash, results, setup.manual.get(report.student, {}),
        report.executions, profile=report.profile, late=report.late,
        sources={t.task: (t.source, t.source_run, t.source_note) for t in report.tasks if not t.manual},
    )
    return replace(rescored, load_warnings=report.load_warnings, lms_id=report.lms_id)


def grade_single(
    path: Path, setup: GradingSetup, *, student: str, reference_dir: Path | None = None, on_event: OnEvent | None = None
) -> GradeReport:
    """Grade the one submission at ``path`` (a folder, notebook, script or zip), as an autograder does.

    Calibrates the tasks it hands in a file for first when ``reference_dir`` is given; a submission that cannot be loaded scores 0 with the
    reason, like one in a batch. Nothing is stored and no page is written: the caller decides what to write.
    """
    staging = setup.out_dir / "staging"
    if staging.exists():
        shutil.rmtree(staging)
    loaded = load_submission(path, staging, student=student)
    if isinstance(loaded, LoadFailure):
        return readable_report(score_load_failure(
            setup.rubric, student, _readable_path(loaded.source), loaded.reason,
            manual=setup.manual.get(student), profile=setup.profile,
        ))
    if reference_dir is not None:
        from harness.calibration import calibrate_rubric  # it grades with this module's functions

        calibrate_rubric(setup, reference_dir, on_event, tasks=plan_for(loaded, setup.rubric, setup.pins).matched)
    return grade_submission(loaded, setup)
