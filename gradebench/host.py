"""The checker's side of ``gradebench.check``, in a Python process of its own (never the student's kernel).

``python -m gradebench.host REQUEST`` runs two phases. ``prepare``: read the bundle (or the course rubric),
prepare the small data and the evaluation images, and answer the probe's configuration for the task. Then it
waits for a line on stdin (the kernel has run the probe) and runs ``check``: check the records the probe wrote,
as grading checks a run's records, and answer the results. ``REQUEST`` is the ``request.json``
``gradebench.live`` wrote in its work folder; each phase writes ``answer-<phase>.json`` there (whole, by a
rename), ``{"error": message}`` when it cannot run (what to do, for the student).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

CLEAN_RUN_CHECKS = {
    "runs_without_error": "whether every cell runs from the top",
    "within_budget": "how long the notebook takes from the top",
}
"""Checks that judge a clean run of the notebook, which an in-notebook check does not make: reported as not
checked on the live kernel, with what they judge."""


def _setup(request: dict[str, Any]) -> tuple[Any, Any]:
    """The grading setup of the request (bundle or rubric; fast profile) and its task."""
    from harness.bundle import read_bundle
    from harness.cli import default_data_dir
    from harness.data import prepare
    from harness.pipeline import prepare_setup
    from harness.sandbox import make_sandbox

    data_dir = Path(request["data"]) if request.get("data") else default_data_dir().with_name("data-small")
    if not (data_dir / "manifest.json").exists():
        prepare(data_dir, source="synthetic", small=True)
    bundle = read_bundle(Path(request["bundle"])) if request.get("bundle") else None
    source = Path(request["bundle"] or request["rubric"])
    # nothing runs in a sandbox here: the kernel ran the student's code, the probe recorded it
    setup = prepare_setup(source, data_dir, Path(request["work"]) / "out", profile="fast",
                          sandbox=make_sandbox("plain"), bundle=bundle)
    try:
        task = setup.rubric.task(request["task"])
    except KeyError as error:
        raise HarnessError(str(error.args[0])) from None
    if task.is_manual:
        raise HarnessError(f"task {task.id!r} is a written answer a TA grades: it has no automatic checks")
    return setup, task


def prepare(request: dict[str, Any]) -> dict[str, Any]:
    """The probe's configuration for the request's task, as the runner gives it after the last cell."""
    from harness.pipeline import _run_settings
    from harness.contract import DEFAULT_INPUT_SHAPES

    setup, task = _setup(request)
    settings = _run_settings(setup, [task])
    datasets = list(dict.fromkeys((*settings.datasets, *settings.eval_images)))
    shapes = settings.input_shapes or tuple(dict.fromkeys(tuple(s) for d in datasets for s in DEFAULT_INPUT_SHAPES.get(d, ())))
    config = {
        "artifacts": str(Path(request["work"]) / "artifacts"),
        "workspace": request.get("cwd") or None,
        "datasets": datasets,
        "prefer": list(settings.prefer),
        "task_values": list(settings.task_values),
        "calls": [dict(call) for call in settings.calls],
        "step_timeout_s": max(5.0, settings.probe_timeout_s / 4),
        "probe_budget_s": settings.probe_timeout_s * 0.75,
        "max_candidates": settings.max_candidates,
        "export_inputs": settings.export_inputs,
        "output_bytes": settings.limits.output_bytes,
        "eval": {dataset: str(Path(images).resolve()) for dataset, images in settings.eval_images.items()},
        "input_shapes": [list(s) for s in shapes],
    }
    return {"config": config}


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Check the records the probe wrote in the kernel; the task's results and score."""
    from harness.calibration import calibrate_rubric
    from harness.checks import run_check
    from harness.cli import _reference_dir
    from harness.models import CheckResult, ExecutionResult, SandboxResult
    from harness.pipeline import _task_context, classify_run

    setup, task = _setup(request)
    if request.get("rubric"):  # the course repository: the bars come from its reference, calibrated once
        setup.rubric = setup.rubric.restricted([t.id for t in setup.rubric.automatic_tasks if t.source == task.source])
        reference_dir = _reference_dir(Path(request["rubric"]), setup.rubric.assignment, None)
        if reference_dir is not None:
            calibrate_rubric(setup, reference_dir)
    kernel = SandboxResult(verdict="ok", message="ran in the notebook's own kernel", returncode=0, wall_s=0.0,
                           cpu_s=0.0, peak_memory_bytes=0, stdout="", stderr="", isolated=False)
    artifacts = Path(request["work"]) / "artifacts"
    execution = ExecutionResult(source="the running kernel", sandbox=kernel, artifacts_dir=artifacts)
    outcome = classify_run(execution)
    if outcome.unusable:
        raise HarnessError(f"the probe's records of the running kernel are unusable: {outcome.unusable}")
    ctx = _task_context(setup, task, execution, outcome, request.get("source_text", ""), "")
    results = []
    for spec in task.checks:
        if spec.check in CLEAN_RUN_CHECKS:
            results.append(CheckResult(
                task.id, spec.check, "skipped",
                f"not checked on the live kernel: it judges {CLEAN_RUN_CHECKS[spec.check]}; "
                "`gradebench check` runs your notebook from the top and checks it",
                float(spec.points), 0.0,
            ))
        else:
            results.append(run_check(ctx, spec))
    return {
        "task": task.id,
        "title": task.title,
        "assignment": setup.rubric.assignment,
        "score": round(sum(r.score for r in results), 4),
        "points": sum(r.points for r in results),
        "results": [asdict(r) for r in results],
        "model_note": ctx.model_note,
    }


PHASES = {"prepare": prepare, "check": check}
"""The phases, by the name on the command line."""


def main(argv: list[str]) -> int:
    """Prepare, wait for the kernel's probe, check; write each answer beside the request."""
    [request_path] = argv
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    for phase in ("prepare", "check"):
        if phase == "check" and sys.stdin.readline().strip() != "check":
            return 0  # the kernel gave up (its probe failed): nothing to check
        try:
            answer = PHASES[phase](request)
        except HarnessError as error:
            answer = {"error": str(error)}
        partial = Path(request["work"], f"answer-{phase}.json.tmp")
        partial.write_text(json.dumps(answer, default=str), encoding="utf-8")
        partial.replace(partial.with_suffix(""))  # the kernel polls for the file: it appears whole
        if "error" in answer:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
