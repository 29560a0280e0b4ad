"""Runs kept for rescoring: a rubric edit that only changes points, thresholds or messages re-checks the
stored runs instead of running every notebook again.

A report is stored under the rubric file's hash, so any rubric edit grades again; but what a run *does*
depends on much less: the submission's files, the source, the sandbox limits, what the probe is asked to
record, the prepared data, the profile and the code of the runner and probes. That is the *run key*
(:func:`run_key`). Every run's artifacts folder gets a marker holding its key (:func:`mark`), written on the
host after the run; a later grading of the same content reuses the runs of its last stored report when
every source's key is unchanged and its artifacts folder still holds that marker (:func:`reusable`).
Reuse is all or nothing per submission: a later script may read what an earlier one saved in the
workspace, so a source is never run alone after its predecessors were skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.engines.base import RunSettings
from harness.models import ExecutionResult

RUN_MARKER = ".gradebench-run"
"""File in a run's artifacts folder holding the run key, written by the host once the run is over."""

_RUNNER_CODE = ("probes", "engines", "sandbox", "architecture.py", "data/formats.py")
"""Parts of the harness whose code decides what a run records (relative to the package)."""


@functools.lru_cache(maxsize=1)
def runner_code_digest() -> str:
    """sha256 over the code that runs in or around the sandbox: any change to it makes every run key new."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for part in _RUNNER_CODE:
        path = package / part
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(package).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _manifest_digest(data_dir: Path | None) -> str:
    """sha256 of the prepared data's manifest (the data a run reads and is evaluated on)."""
    manifest = Path(data_dir) / "manifest.json" if data_dir else None
    if manifest is None or not manifest.is_file():
        return ""
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def run_key(settings: RunSettings, source: str, content_hash: str, profile: str) -> str:
    """The key of running ``source`` of the submission with ``content_hash`` under ``settings``."""
    described = dataclasses.asdict(settings)
    described["data_dir"] = _manifest_digest(settings.data_dir)
    described["eval_images"] = sorted(settings.eval_images)  # the files follow from the data and the profile
    document = {"source": source, "content": content_hash, "profile": profile, "settings": described,
                "code": runner_code_digest()}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def mark(execution: ExecutionResult, key: str) -> ExecutionResult:
    """The execution with its run key, and the key written into its artifacts folder (when it has one)."""
    if execution.artifacts_dir is not None and Path(execution.artifacts_dir).is_dir():
        (Path(execution.artifacts_dir) / RUN_MARKER).write_text(key, encoding="utf-8")
    return dataclasses.replace(execution, run_key=key)


def _still_there(execution: ExecutionResult, key: str) -> bool:
    """True when ``execution`` ran with ``key`` and its artifacts folder still holds that run's records."""
    if execution.run_key != key or execution.artifacts_dir is None:
        return False
    marker = Path(execution.artifacts_dir) / RUN_MARKER
    try:
        return not marker.is_symlink() and marker.read_text(encoding="utf-8") == key
    except OSError:
        return False


def reusable(planned: Sequence[tuple[str, str]], *pools: Mapping[str, ExecutionResult]) -> dict[str, ExecutionResult]:
    """Earlier runs for every planned (source, run key), looked up in ``pools`` in order; empty unless every
    source has one whose key matches and whose records are still on disk."""
    found: dict[str, ExecutionResult] = {}
    for source, key in planned:
        match = next((pool[source] for pool in pools if source in pool and _still_there(pool[source], key)), None)
        if match is None:
            return {}
        found[source] = match
    return found
