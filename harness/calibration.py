"""Calibrating a rubric for grading: what the assignment's reference submission reaches, on this machine.

The reference submission is graded like a student's, and what its checks declare they measure
(``@check(..., measures=...)``: ``hidden_accuracy``, ``reconstruction_error``...) and how long each file ran
become the bars of relative thresholds (``relative_to_reference: 0.98``) and budgets (``reference_multiple: 5``).
Only the tasks a batch needs are calibrated, each cached under a key of its own in
``<data>/calibration/<assignment>-<profile>.json``.

Grading, the self-check bundles and the in-notebook check use this module; it imports none of the reference
implementations (``reference/``), which only the reference submission's notebooks use, in the sandbox. Training
the references (``gradebench calibrate``) is :mod:`harness.calibrate`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.checks import measurements
from harness.data.formats import atomic_write_bytes
from harness.errors import HarnessError, StoreError
from harness.events import OnEvent, Calibrating
from harness.loading import load_submission
from harness.matching import SourcePlan
from harness.models import ExecutionResult, GradeReport, LoadFailure, Submission
from harness.pipeline import GradingSetup, grade_submission, plan_for
from harness.store import ResultStore, execution_from_dict, execution_to_dict


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write a calibration JSON atomically (a run that is killed leaves the previous file whole)."""
    atomic_write_bytes(path, (json.dumps(document, indent=2, allow_nan=True) + "\n").encode("utf-8"))


CACHE_FORMAT = 2
"""Version of a rubric's calibration file; a file of another version is calibrated again (its runs are reused)."""


def calibration_path(setup: GradingSetup) -> Path:
    """Where the calibration of ``setup``'s rubric is cached: ``<data>/calibration/<assignment>-<profile>.json``."""
    return setup.data_dir / "calibration" / f"{setup.rubric.assignment}-{setup.profile}.json"


def reference_metrics(setup: GradingSetup, report: GradeReport) -> dict[str, dict[str, float]]:
    """Per task of ``report`` (the reference's grading): what its checks declared they measure
    (:func:`harness.checks.measurements`; the first, when a task has the same check twice) and ``seconds``, how
    long the file serving the task ran."""
    seconds = {e.source: e.sandbox.wall_s for e in report.executions}
    metrics: dict[str, dict[str, float]] = {}
    for task_score in report.tasks:
        if task_score.manual:
            continue
        task = setup.rubric.task(task_score.task)
        entry: dict[str, float] = {}
        source = task_score.source_run or task.find_source(seconds.keys())
        if source in seconds:
            entry["seconds"] = seconds[source]
        for result in task_score.checks:
            for name, value in measurements(result).items():
                entry.setdefault(name, value)
        metrics[task.id] = entry
    return metrics


def _served_together(plan: SourcePlan, task_id: str) -> tuple[str, ...]:
    """The tasks the reference file serving ``task_id`` serves (``task_id`` alone when no file does)."""
    step = plan.step_of(task_id)
    return step.tasks if step else (task_id,)


def _task_keys(setup: GradingSetup, reference: Submission, plan: SourcePlan, tasks: Iterable[str]) -> dict[str, str]:
    """Per task: a key over everything its calibration depends on: its rubric entry and those of the tasks its
    reference file also serves (the file runs with what they all ask of it), the rubric's data, limits and
    packages, the reference submission, the profile and the prepared data."""
    rubric = setup.rubric
    manifest = setup.data_dir / "manifest.json"
    shared = [
        rubric.model_dump_json(include={"datasets", "limits", "packages"}).encode(),
        reference.content_hash.encode(),
        setup.profile.encode(),
        manifest.read_bytes() if manifest.exists() else b"",
    ]
    keys = {}
    for task_id in tasks:
        digest = hashlib.sha256()
        for part in shared:
            digest.update(hashlib.sha256(part).digest())
        for together in _served_together(plan, task_id):
            digest.update(hashlib.sha256(rubric.task(together).model_dump_json().encode()).digest())
        keys[task_id] = digest.hexdigest()
    return keys


def _reference_runs(setup: GradingSetup, content_hash: str) -> dict[str, ExecutionResult]:
    """The reference's runs stored in this output folder by an earlier grading (a rubric edit that changed only
    points or bars then recalibrates without running the reference again)."""
    if not setup.store_path.is_file():
        return {}
    try:
        with ResultStore(setup.store_path) as store:  # a store of its own: nothing else uses it yet
            earlier = store.latest(content_hash, setup.profile)
    except StoreError:
        return {}
    return {e.source: e for e in earlier.executions} if earlier else {}


def _cached_runs(document: Mapping[str, Any]) -> dict[str, ExecutionResult]:
    """The reference's runs a calibration file kept, by source (none when it holds none or they do not decode)."""
    try:
        return {e.source: e for e in map(execution_from_dict, document.get("runs") or [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def _read_cache(path: Path) -> dict[str, Any]:
    """The calibration file at ``path`` (empty when there is none or it cannot be read)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _cached_tasks(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-task entries (``key``, ``metrics``) of a calibration file of this version."""
    tasks = document.get("tasks") if document.get("format") == CACHE_FORMAT else None
    if not isinstance(tasks, dict):
        return {}
    return {t: e for t, e in tasks.items() if isinstance(e, dict) and isinstance(e.get("metrics"), dict)}


def reference_content_hash(setup: GradingSetup, reference_dir: Path) -> str | None:
    """The content hash of the reference submission as loading computes it for a student's hand-in; None when it
    cannot be loaded (:func:`calibrate_rubric` then says why)."""
    staging = Path(tempfile.mkdtemp(prefix="reference-", dir=setup.out_dir))
    try:
        loaded = load_submission(reference_dir, staging, student="reference")
        return None if isinstance(loaded, LoadFailure) else loaded.content_hash
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def calibrate_rubric(
    setup: GradingSetup,
    reference_dir: Path,
    on_event: OnEvent | None = None,
    *,
    tasks: Iterable[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Learn the bars of relative thresholds and budgets of ``tasks`` (default: every automatic task) by grading
    the reference submission; cached per task. Fills ``setup.calibration`` and returns it.

    A task whose cached entry is still valid (:func:`_task_keys`: its rubric entry, the reference, the profile
    and the data are unchanged) is not graded again; the others are, together with the tasks their reference
    file also serves, on a rubric restricted to them (the reference's other files do not run). They are graded
    with provisional bars (their own measurements cannot be known before they run); only their measurements are
    kept. The runs are kept too, in the cache file and in ``setup.reusable_runs``: a rubric edit that changes
    no run recalibrates without running anything, and the reference in a batch is not run twice.
    """
    staging = Path(tempfile.mkdtemp(prefix="reference-", dir=setup.out_dir))
    try:
        loaded = load_submission(reference_dir, staging, student="reference")
        if isinstance(loaded, LoadFailure):
            raise HarnessError(f"the reference submission {reference_dir} cannot be loaded: {loaded.reason}")
        automatic = [t.id for t in setup.rubric.automatic_tasks]
        wanted = automatic if tasks is None else [t for t in automatic if t in set(tasks)]
        plan = plan_for(loaded, setup.rubric)
        keys = _task_keys(setup, loaded, plan, wanted)
        path = calibration_path(setup)
        document = _read_cache(path)
        entries = _cached_tasks(document)
        fresh = {t for t in wanted if entries.get(t, {}).get("key") == keys[t]}
        setup.calibration.update({t: dict(entries[t]["metrics"]) for t in fresh})
        todo = [t for t in wanted if t not in fresh]
        if not todo:
            return setup.calibration
        # with every task its reference file serves: the file runs, and is reused, as the whole rubric runs it
        serving = {t for task in todo for t in _served_together(plan, task)}
        graded = [t for t in automatic if t in serving]
        keys.update(_task_keys(setup, loaded, plan, graded))
        if on_event:
            on_event(Calibrating(str(reference_dir), tuple(graded)))
        started = time.perf_counter()
        for task_id in graded:  # provisional bars while they are graded, as before any calibration
            setup.calibration.pop(task_id, None)
        runs = _reference_runs(setup, loaded.content_hash)
        kept = _cached_runs(document) if document.get("reference") == loaded.content_hash else {}
        report = grade_submission(loaded, replace(setup, rubric=setup.rubric.restricted(graded)), {**kept, **runs})
        measured = reference_metrics(setup, report)
        setup.calibration.update(measured)
        setup.reusable_runs.setdefault(loaded.content_hash, {}).update({e.source: e for e in report.executions})
        kept.update({e.source: e for e in report.executions})
        entries.update({t: {"key": keys[t], "metrics": measured.get(t, {})} for t in graded})
        write_json(path, {
            "format": CACHE_FORMAT, "assignment": setup.rubric.assignment, "profile": setup.profile,
            "reference": loaded.content_hash, "seconds": round(time.perf_counter() - started, 2),
            "tasks": entries, "runs": [execution_to_dict(e) for e in kept.values()],
        })
        return setup.calibration
    finally:
        shutil.rmtree(staging, ignore_errors=True)
