"""Checks on how the run went: errors, figures, time against the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import model_validator

from harness.checks import CheckSpecLike, Partial, check, options
from harness.contract import CellErrorRecord
from harness.rubric import CheckParams, Count, NoParams

if TYPE_CHECKING:  # the context imports torch: registering checks and validating a rubric must not
    from harness.checks.context import CheckContext


def _errors(ctx: CheckContext) -> list[CellErrorRecord]:
    return list(ctx.run.errors if ctx.run else ())


@check("runs_without_error", params=NoParams)
def check_runs_without_error(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that every cell (or the script) ran without raising.

    Partial credit is the share of cells that ran to their end without an error: a cell that
    raised, the cell the kernel died in and every cell that never ran (after a crash, or because
    the notebook could not be run on) earn nothing. A run the sandbox stopped (a limit breached,
    the whole run killed) earns nothing.
    """
    if ctx.execution is not None and ctx.execution.sandbox.verdict not in ("ok", "error"):
        raise AssertionError(f"your code did not finish: it {ctx.execution.sandbox.message}{_in_cell(ctx)}")
    if ctx.run is None:
        raise AssertionError("your code could not be run at all" + (f": {ctx.model_note}" if ctx.model_note else ""))
    errors = _errors(ctx)
    total = max(ctx.run.cells_total, 1)
    ran = min(max(ctx.run.cells_run, 0), total)
    failed = {e.cell for e in errors}
    clean = max(0, ran - len(failed))
    ctx.details.update(errors=len(errors), cells=total, cells_run=ran)
    if clean == total:
        return
    own, environment = _split_environment(errors, ctx.run.missing_packages)
    problems = [_describe(e) for e in own[:5]]
    if len(own) > 5:
        problems[-1] += f" (and {len(own) - 5} more)"
    if ran < total:
        problems.append(f"{total - ran} of {total} cells did not run")
    if environment and not problems:  # only the grading environment failed: a fault for the TA, not the student's
        raise RuntimeError(environment)
    if environment:
        problems.append(environment)
    raise Partial(clean / total, "; ".join(problems))


def _split_environment(
    errors: list[CellErrorRecord], missing: tuple[str, ...]
) -> tuple[list[CellErrorRecord], str]:
    """The student's own errors, and one sentence for the imports of packages the grading environment lacks
    (run.json ``missing_packages``) with the NameErrors that follow them ("" when there are none)."""
    from harness.environment import missing_module

    lacking = set(missing)
    own, imports, cascade = [], [], []
    for error in errors:
        name = missing_module(error.ename, error.evalue)
        if name in lacking:
            imports.append((error, name))
        elif imports and error.ename == "NameError":
            cascade.append(error)
        else:
            own.append(error)
    if not imports:
        return own, ""
    names = ", ".join(dict.fromkeys(f"`{name}`" for _, name in imports))
    where = ", ".join(dict.fromkeys(_where(error) for error, _ in imports))
    text = (f"{where} could not import {names}, which the grading environment lacks: not your error (a TA will "
            "install it and grade again)")
    if cascade:
        cells = ", ".join(_where(e).removeprefix("cell ") for e in cascade[:10]) + (" ..." if len(cascade) > 10 else "")
        text += f"; {len(cascade)} later NameError{'s' if len(cascade) != 1 else ''} (cell{'s' if len(cascade) != 1 else ''} {cells}) follow from it"
    return own, text


def _where(error: CellErrorRecord) -> str:
    return f"cell {error.cell + 1}" if error.cell >= 0 else "the script"


def _describe(error: CellErrorRecord) -> str:
    """One error as a student reads it: ``cell 5 raised NameError: ...``, ``the kernel was killed by ... in cell 3``,
    ``cell 2 printed more than 1 MiB of output (an output flood) and was stopped``."""
    where = _where(error)
    if error.ename == "DeadKernelError":
        return f"{error.evalue} in {where}"
    if error.ename == "OutputFlood":
        return f"{where} {error.evalue}"
    return f"{where} raised {error.ename}: {error.evalue}"


def _in_cell(ctx: CheckContext) -> str:
    """`` in cell N`` for the cell that was running when the run was stopped, if run.json says which."""
    running = ctx.run.running_cell if ctx.run else None
    if running is not None and running >= 0:
        return f" in cell {running + 1}"
    return ""


class FiguresPresentOptions(CheckParams):
    """The ``params`` of ``figures_present``."""

    count: Count = 1
    """How many figures the code must show at least (default 1)."""


class FiguresPresentParams(CheckParams):
    """What ``figures_present`` reads: ``{min: 2}`` or ``{params: {count: 2}}`` (at least one figure without either)."""

    min: Count | None = None
    """How many figures the code must show at least (the same as ``params.count``)."""
    params: FiguresPresentOptions = FiguresPresentOptions()
    """Options: ``count``."""

    @model_validator(mode="after")
    def _one_count(self) -> FiguresPresentParams:
        """min and params.count say the same thing: one of them."""
        if self.min is not None and "count" in self.params.model_fields_set:
            raise ValueError("min and params.count both give the number of figures: keep one")
        return self


@check("figures_present", params=FiguresPresentParams)
def check_figures_present(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the code produced at least the expected number of figures."""
    expected = int(spec.min if spec.min is not None else options(spec, FiguresPresentOptions).count)
    figures = len(ctx.probe.figures) if ctx.probe else 0
    ctx.details.update(measured=figures, expected=expected)
    assert figures >= expected, f"your code produced {figures} figure{'s' if figures != 1 else ''}; the task asks for at least {expected}"


@check("within_budget", params=NoParams)
def check_within_budget(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the run finished within its time budget (a multiple of the reference's time, capped)."""
    assert ctx.execution is not None, "your code was not run" + (f": {ctx.model_note}" if ctx.model_note else "")
    ctx.require_work("its running time says nothing: there is no time to credit")
    sandbox = ctx.execution.sandbox
    if sandbox.verdict == "timeout":
        budget = f" (budget: {ctx.budget_note})" if ctx.budget_note else ""
        raise AssertionError(f"your code {sandbox.message}{_in_cell(ctx)}{budget}")
    if ctx.budget_s is None:
        raise RuntimeError(f"task {ctx.task_id} has no time budget (rubric budget or calibration missing)")
    ctx.details.update(measured=round(sandbox.wall_s, 2), budget=round(ctx.budget_s, 2), how=ctx.budget_note)
    assert sandbox.wall_s <= ctx.budget_s, f"your code took {sandbox.wall_s:.0f} s; the budget is {ctx.budget_note or f'{ctx.budget_s:.0f} s'}"
