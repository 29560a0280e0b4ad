"""A one-task rubric grading tests/fixtures/scripts/cnn_script.py, for tests of how grading runs (not what)."""

from __future__ import annotations

from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "fixtures" / "scripts"
SCRIPT = SCRIPTS / "cnn_script.py"
"""The dl2025-a2 CNN as a script: trains a few steps on random tensors, about 12,810 parameters."""


def cnn_script_rubric(
    assignment: str,
    checks: str = "      - {check: runs_without_error, points: 1}\n",
    *,
    sources: str = "cnn_script.py",
    budget: str = "{wall_s: 120}",
    spec: bool = False,
) -> str:
    """The rubric's YAML: task ``cnn`` on ``sources`` with ``checks`` (indented check lines) and ``budget``."""
    model = '{prefer: [model], spec: "reference.classifiers:CNN", dataset: mnist}' if spec else \
        "{prefer: [model], dataset: mnist}"
    return (
        f"assignment: {assignment}\n"
        'title: "A CNN script"\n'
        "datasets: [mnist]\n"
        "tasks:\n"
        "  - id: cnn\n"
        '    title: "CNN"\n'
        f"    source: {sources}\n"
        f"    model: {model}\n"
        f"    budget: {budget}\n"
        "    checks:\n"
        f"{checks}"
    )


class CountingSandbox:
    """The real sandbox, recording the workspace folder name (``reference``, a student) of each run of submitted code
    it makes: the runner's runs, not the clean rebuilds of a student's class (harness.checks.rebuild)."""

    def __init__(self) -> None:
        from harness.sandbox import make_sandbox

        self.inner = make_sandbox("auto")
        self.isolated, self.warning = self.inner.isolated, self.inner.warning
        self.runs: list[str] = []
        self.rebuilds = 0
        """The clean rebuilds of a student's class it ran (counted apart from ``runs``)."""

    def run(self, command, **options):
        if "harness.engines.runner" in command:
            self.runs.append(Path(options["workspace"]).name)
        elif "harness.probes.rebuild" in command:
            self.rebuilds += 1
        return self.inner.run(command, **options)
