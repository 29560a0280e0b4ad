"""``gradebench.check``: the kernel's side of an in-notebook check.

What runs in the student's kernel is only what grading runs in the student's process anyway: the probe
(``harness.probes.probe.run``) over the kernel's namespace, writing its records into a temporary folder. The
rubric, the hidden labels and the checks stay out of the kernel: a separate Python process
(:mod:`gradebench.host`) prepares the probe's configuration, then checks the records and scores them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.models import CheckResult

LIVE_NOTE = (
    "This checked the objects in the running kernel as they are now, not a clean run: grading runs your "
    "notebook from the top, as `gradebench check {command}` does."
)
"""Said under every in-notebook result ({command}: how to run the clean self-check)."""


class CheckFailed(Exception):
    """The in-notebook check could not run (no bundle, an unknown task id, a damaged bundle...): the message says
    what to do. A failing check of your work is not this: it is a row of the result."""


@dataclass(frozen=True)
class SelfCheck:
    """The result of ``gradebench.check``: shown as a table in Jupyter (HTML) and as text elsewhere."""

    task: str
    """The rubric task id checked (``cnn``)."""
    title: str
    """The task's title in the rubric."""
    assignment: str
    """The rubric's assignment id (``dl2025-a2``)."""
    score: float
    """Points earned by the checks."""
    points: float
    """Points the checks are worth."""
    results: tuple[CheckResult, ...]
    """One result per check of the task, in the rubric's order."""
    checked_with: str
    """What the bars came from: ``self-check bundle dl2025-a2.gbundle`` or the course rubric's path."""
    command: str
    """The clean self-check of the same work: ``--bundle dl2025-a2.gbundle CNNMNIST.ipynb``."""
    model_note: str = ""
    """How the model was chosen among the kernel's objects, or why none was."""

    @property
    def passed(self) -> bool:
        """Whether every check passed (a check the self-check cannot run is not counted against you)."""
        return all(r.status == "passed" or _not_here(r) for r in self.results)

    @property
    def unchecked(self) -> float:
        """Points of the checks this in-notebook check cannot run (they are checked when you hand in)."""
        return sum(r.points for r in self.results if _not_here(r))

    @property
    def note(self) -> str:
        """That the live kernel was checked, and how to run the notebook from the top."""
        return LIVE_NOTE.format(command=self.command)

    def __str__(self) -> str:
        unchecked = f" ({self.unchecked:g} of them not checked here)" if self.unchecked else ""
        lines = [f"{self.task} ({self.title}): {self.score:g} / {self.points:g} points{unchecked}, {self.checked_with}"]
        if self.model_note:
            lines.append(f"  model: {self.model_note}")
        width = max((len(r.check) for r in self.results), default=0)
        for result in self.results:
            lines.append(f"  {result.status:<8} {result.check:<{width}}  {result.score:g}/{result.points:g}")
            if result.message:
                lines.extend(f"           {line}" for line in result.message.splitlines())
        lines.append(self.note)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        """The result table in a notebook (``reports/templates/selfcheck.html.j2``)."""
        from harness.reporting import render_live_check

        return render_live_check(self)


def _not_here(result: CheckResult) -> bool:
    from harness.checks import NOT_AVAILABLE  # noqa: PLC0415  (only the constant; the checks stay out of the kernel)

    return result.status == "skipped" and result.message.startswith((NOT_AVAILABLE, "not checked on the live kernel"))


def check(
    task: str,
    bundle: str | os.PathLike[str] | None = None,
    *,
    rubric: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    namespace: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
) -> SelfCheck:
    """Check task ``task`` of the assignment on the objects of this kernel, and show the result.

    ``bundle``: your course's self-check bundle; by default the one named by ``$GRADEBENCH_BUNDLE``, else the one
    ``*.gbundle`` file in the current folder (the notebook's). ``rubric``: a course rubric instead (course staff,
    with the course repository: it is calibrated on the reference first). ``data``: the small data folder
    (default: the one ``gradebench check`` uses; prepared on first use). ``namespace``: the objects to check
    (default: the notebook's, ``__main__``).
    """
    from harness.bundle import ENVIRONMENT, find_bundle
    from harness.errors import HarnessError

    if bundle is None and rubric is None:
        try:
            found = find_bundle(Path.cwd())
        except HarnessError as error:
            raise CheckFailed(str(error)) from None
        rubric = _course_rubric(task) if found is None else None
        if found is None and rubric is None:
            raise CheckFailed(
                "no self-check bundle: pass the file your course gave you, e.g. gradebench.check("
                f"{task!r}, bundle='dl2025-a2.gbundle'), put it next to this notebook, or set {ENVIRONMENT}"
            )
        bundle = found
    work = Path(tempfile.mkdtemp(prefix="gradebench-check-"))
    try:
        request = {
            "task": task,
            "bundle": str(Path(bundle).resolve()) if bundle is not None else None,
            "rubric": str(Path(rubric).resolve()) if rubric is not None else None,
            "data": str(Path(data).resolve()) if data is not None else None,
            "work": str(work),
            "cwd": os.getcwd(),  # classes defined in files here are the student's (the probe's workspace)
            "source_text": _kernel_source(namespace),
        }
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        host = _Host(work, timeout_s)
        try:
            prepared = host.answer("prepare")
            _probe(prepared["config"], namespace)
            host.go_on()
            answer = host.answer("check")
        finally:
            host.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notebook = _notebook_name()
    command = (f"--bundle {Path(bundle).name} " if bundle is not None else f"--rubric {rubric} ") + notebook
    return SelfCheck(
        task=answer["task"],
        title=answer["title"],
        assignment=answer["assignment"],
        score=float(answer["score"]),
        points=float(answer["points"]),
        results=tuple(CheckResult(**entry) for entry in answer["results"]),
        checked_with=f"self-check bundle {Path(bundle).name}" if bundle is not None else f"rubric {rubric}",
        command=command,
        model_note=answer.get("model_note", ""),
    )


def _course_rubric(task: str) -> Path | None:
    """In the course repository (its ``reference`` package installed): the one rubric with a task ``task``."""
    import importlib.util

    import yaml

    import harness

    if importlib.util.find_spec("reference") is None:
        return None
    root = Path(harness.__file__).resolve().parents[1]  # the repository root of an editable install

    having = []
    for path in sorted((root / "rubrics").glob("*.yaml")):
        tasks = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("tasks") or []
        if any(isinstance(t, dict) and t.get("id") == task for t in tasks):
            having.append(path)
    if len(having) > 1:
        listed = ", ".join(repr(str(p.relative_to(root))) for p in having)
        raise CheckFailed(f"several course rubrics have a task {task!r}: name one with rubric=, one of {listed}")
    return having[0] if having else None


class _Host:
    """The checker process (:mod:`gradebench.host`): one for both phases, so Python, torch and the harness start
    once. It prepares, waits for a line on its stdin while the kernel runs the probe, then checks."""

    def __init__(self, work: Path, timeout_s: float) -> None:
        self.work = work
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.log = open(work / "host.log", "w", encoding="utf-8")  # noqa: SIM115  (closed by stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradebench.host", str(work / "request.json")], stdin=subprocess.PIPE,
            stdout=self.log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def answer(self, phase: str) -> dict[str, Any]:
        """The answer of ``phase`` once the process wrote it; CheckFailed with its reason when it cannot run."""
        path = self.work / f"answer-{phase}.json"
        while not path.is_file():
            if self.process.poll() is not None and not path.is_file():
                said = (self.work / "host.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
                raise CheckFailed(f"the checker stopped (exit code {self.process.returncode}): "
                                  f"{said[-1] if said else 'no output'}")
            if time.monotonic() > self.deadline:
                raise CheckFailed(f"the check took more than {self.timeout_s:g} s and was stopped")
            time.sleep(0.05)
        result = json.loads(path.read_text(encoding="utf-8"))
        if "error" in result:
            raise CheckFailed(result["error"])
        return result

    def go_on(self) -> None:
        """Tell the process the probe's records are written."""
        assert self.process.stdin is not None
        self.process.stdin.write("check\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """End the process (it has finished, or the check failed) and close its log."""
        if self.process.stdin is not None:
            self.process.stdin.close()  # a process still waiting for the kernel's probe ends at once
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _probe(config: dict[str, Any], namespace: dict[str, Any] | None) -> None:
    """Record the kernel's objects as grading records them after the last cell (``harness.probes.probe.run``)."""
    from harness.probes import probe

    probe.run(config, namespace)
    run = {  # what the runner would have recorded: the cells are the kernel's, not a clean run's
        "format": 1, "kind": "notebook", "source": "the running kernel", "cells_total": 0, "cells_run": 0,
        "errors": [],
    }
    Path(config["artifacts"], "run.json").write_text(json.dumps(run), encoding="utf-8")


def _kernel_source(namespace: dict[str, Any] | None) -> str:
    """The code cells run in this kernel so far (IPython's ``In``), for the checks that read the code."""
    names = namespace if namespace is not None else vars(sys.modules["__main__"])
    cells = names.get("In")
    if isinstance(cells, list) and all(isinstance(cell, str) for cell in cells):
        return "\n\n".join(cells)
    return ""


def _notebook_name() -> str:
    """The notebook's file name where Jupyter says it (VS Code and recent Jupyter set ``__session__``)."""
    session = vars(sys.modules["__main__"]).get("__session__") or os.environ.get("JPY_SESSION_NAME") or ""
    return Path(str(session)).name if str(session).endswith(".ipynb") else "YOUR_NOTEBOOK.ipynb"
