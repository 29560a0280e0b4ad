"""The grading environment's packages: what a rubric needs, and what a student imported that it lacks.

Course notebooks import more than the assignment needs (tqdm progress bars, wandb logging, plotly
and seaborn plots, pandas tables); the grading environment carries the common ones (pyproject
dependencies, ``COMMON_PACKAGES``), and a rubric may list more (``packages:``), checked before
grading starts. A package still missing when a student imports it is the environment's problem,
not the student's: the runner records it (run.json ``missing_packages``) and the reports tell the
TA, and the student that it is not their fault.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable

from harness.errors import HarnessError

COMMON_PACKAGES = (
    "numpy", "scipy", "torch", "torchvision", "matplotlib", "sklearn", "pandas", "tqdm", "ipywidgets", "wandb", "plotly",
    "seaborn",
)
"""Modules course notebooks commonly import, all installed with gradebench (pyproject dependencies)."""

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
"""A dotted module name (``tqdm.notebook``)."""

HOSTED_ONLY = ("google.colab",)
"""Modules that exist only on a hosted notebook service (``from google.colab import drive``): no package installs
them, so importing one is the hand-in's problem (code written for that service), not the environment's."""

_NO_MODULE = re.compile(r"No module named '([^']+)'")


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules among ``names`` this interpreter cannot import (not found, or a parent package missing)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def check_packages(packages: Iterable[str], rubric: str) -> None:
    """Raise HarnessError naming every package of the rubric's ``packages`` the grading environment lacks."""
    missing = missing_modules(packages)
    if missing:
        listed = ", ".join(missing)
        raise HarnessError(
            f"{rubric}: the rubric's packages need {listed}, which the grading environment lacks: install "
            f"{'it' if len(missing) == 1 else 'them'} into gradebench's environment (pip install ...) before grading"
        )


def missing_module(ename: str, evalue: str) -> str | None:
    """The top-level module a ``ModuleNotFoundError: No module named 'x.y'`` names, else None (also for
    ``HOSTED_ONLY`` modules, which no environment can have)."""
    found = _NO_MODULE.search(evalue) if ename == "ModuleNotFoundError" else None
    if not found:
        return None
    name = found.group(1)
    if any(name == hosted or name.startswith(hosted + ".") for hosted in HOSTED_ONLY):
        return None
    return name.split(".")[0]


def environment_problem(source: str, packages: Iterable[str]) -> str:
    """What a TA reads about packages a source imported that the grading environment lacks."""
    names = sorted(set(packages))
    quoted = ", ".join(f"`{name}`" for name in names)
    return (
        f"{source} imports {quoted}, which the grading environment does not have (an environment problem, not the "
        f"student's): install {'it' if len(names) == 1 else 'them'} into gradebench's environment (and list "
        f"{'it' if len(names) == 1 else 'them'} in the rubric's packages, so that grading checks for "
        f"{'it' if len(names) == 1 else 'them'} first), then grade again"
    )
