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
