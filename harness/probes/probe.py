"""Find the models a notebook or script left behind and record what they are (runs in the sandbox).

``run(config, namespace)`` is called in the student's own process after their last cell (or
after their script), on the kernel's user namespace (``__main__``) or the script's globals. It
writes ``probe.json`` and tensor files into the artifacts folder, following ARTIFACTS.md:
per model candidate its module tree with hyperparameters, parameter counts, the output shape
of every leaf on a dummy batch (forward hooks), the state_dict, and the raw outputs on the
evaluation images (whose labels never enter the sandbox); plus the losses and optimizers in
the namespace, the figures saved so far, the values a rubric asks for by name (``task_values``),
the results of the functions a rubric asks to call on fixed inputs (``calls``), and the names of
the functions and classes the student defined (``callables``).

Models are found by what they are: the configured preferred names first, then every
``nn.Module`` instance (one level into dicts, lists and tuples too; submodules of another
candidate are part of it), then every model the student's code built that is bound to no name
any more (a function's local, kept alive by :mod:`harness.probes.tracking`; trained ones first),
then every ``nn.Module`` class the student defined that has no instance, constructed without
arguments (architecture only). Each instance records whether it was trained and where it was built.

Only plain tensors are saved (``torch.save`` of tensors and dicts of tensors); nothing is
pickled. The student's code runs in this same process and could monkeypatch torch, so the
torch functions used here are captured when this module is first imported (by
``bootstrap.install``, before the student's code runs). That is a cheap guard, not a proof:
where the architecture is fixed, the host loads the exported weights into the reference
module and re-evaluates them itself, and reports a disagreement with these outputs.

The steps live in their own modules: :mod:`~harness.probes.capture` (torch captured at import, time limits,
safe JSON), :mod:`~harness.probes.namespace` (names, losses, optimizers, task values),
:mod:`~harness.probes.calls` (calls on fixed inputs, callables), :mod:`~harness.probes.candidates` (finding
the models), :mod:`~harness.probes.inspection` (one model's tree, shapes, state_dict) and
:mod:`~harness.probes.eval_inputs` (the preprocessed evaluation images and the outputs on them).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import torch

from harness.contract import PROBE_FILE, PROBE_FORMAT
from harness.probes import tracking
from harness.probes.calls import find_callables, record_calls
from harness.probes.candidates import find_candidates
from harness.probes.capture import one_line, write_json
from harness.probes.eval_inputs import EvalContext
from harness.probes.inspection import inspect_candidate
from harness.probes.namespace import find_losses, find_optimizers, namespace_items, record_task_values


def run(config: dict[str, Any], namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inspect ``namespace`` (default: ``__main__``'s globals); write probe.json and tensors; return the record."""
    # First: the probe builds and runs models itself, which the tracker must neither record nor slow down.
    tracker = tracking.stop()
    if namespace is None:
        namespace = vars(sys.modules["__main__"])
    artifacts = Path(config["artifacts"])
    artifacts.mkdir(parents=True, exist_ok=True)
    step_s = float(config.get("step_timeout_s", 30.0))
    deadline = time.monotonic() + float(config.get("probe_budget_s", 90.0))
    errors: list[str] = list(tracker.dropped) if tracker else []
    items = namespace_items(namespace, errors)
    module_name = str(config.get("module_name") or namespace.get("__name__") or "__main__")

    record: dict[str, Any] = {
        "format": PROBE_FORMAT,
        "torch_version": torch.__version__.split("+")[0],
        "models": [],
        "losses": find_losses(items, errors),
        "optimizers": find_optimizers(items, errors),
        "figures": [],
        "namespace_errors": errors,
        "task_values": record_task_values(namespace, config.get("task_values", ()), artifacts, step_s, errors),
        "callables": find_callables(items, module_name, config.get("workspace")),
        # Before the models: a call is quick, and a slow model inspection must not crowd it out.
        "calls": record_calls(namespace, config.get("calls", ()), step_s, deadline, errors),
    }
    found = find_candidates(items, namespace, config, errors, tracker)
    context = EvalContext.build(items, config, errors)
    for index, candidate in enumerate(found):
        started = time.monotonic()
        if started > deadline:  # leave time to write what was found before the runner's probe timeout
            left = ", ".join(c.name for c in found[index:])
            errors.append(f"the probe ran out of time; not inspected: {left}"[:2_000])
            break
        try:
            entry = inspect_candidate(candidate, f"m{index}", artifacts, config, context, step_s)
        except Exception as error:  # one hostile model must not cost the others
            entry = {"id": f"m{index}", "name": candidate.name, "origin": candidate.origin,
                     "probe_error": one_line(error)}
            errors.append(f"{candidate.name}: inspecting it failed: {one_line(error)}")
        entry["probe_seconds"] = round(time.monotonic() - started, 3)
        record["models"].append(entry)

    from harness.probes.figures import save_open_figures

    with contextlib.suppress(Exception):
        save_open_figures(artifacts / "figures")
    record["figures"] = _figures(artifacts / "figures", int(config.get("max_figures", 50)))
    write_json(artifacts / PROBE_FILE, record)
    return record


def _figures(folder: Path, limit: int) -> list[str]:
    """Relative paths of the saved figures, in number order."""
    if not folder.is_dir():
        return []
    numbered = sorted((int(p.stem), p) for p in folder.glob("*.png") if p.stem.isdigit() and p.stat().st_size > 0)
    return [f"figures/{p.name}" for _, p in numbered[:limit]]
