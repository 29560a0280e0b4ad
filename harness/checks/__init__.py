"""Host-side checks: small functions over what the probes exported, each checking one property.

A check is a plain function registered under a name with ``@check("name", params=Declaration)``.
The declaration (a ``harness.rubric.CheckParams`` model) names the keys of the rubric entry the check
reads, with their types, defaults and a docstring each: the rubric loader validates every entry
against it, so a rubric mistake fails when the rubric loads, not in every student's report. The check
reads the ``CheckContext`` (the chosen model's record, the run record, hidden labels, the calibrated
reference) and the rubric's ``CheckSpec``; it asserts the property with a message a student
understands; for partial credit it raises ``Partial(fraction, message)``. Figures worth
showing in a report (the measured value, the threshold, an architecture diff) go into
``ctx.details``, which ``run_check`` empties before each check and copies afterwards.

``run_check`` turns any check into a ``CheckResult``: an ``AssertionError`` is the student's
failure (``failed``), any other exception is a harness fault (``error``), and neither stops
the batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.models import CheckResult
from harness.rubric import CheckParams

if TYPE_CHECKING:  # the context imports torch; registering checks and validating rubrics must not
    from harness.checks.context import CheckContext


class CheckSpecLike(Protocol):
    """What a check reads from the rubric's check entry (``harness.rubric.CheckSpec``)."""

    check: str
    points: float
    equals: Any
    min: float | None
    max: float | None
    relative_to_reference: float | None
    layer: str | None
    tolerance: float | None
    params: dict[str, Any]


CheckFunction = Callable[["CheckContext", CheckSpecLike], None]


class Partial(Exception):
    """Raised by a check to award part of its points: ``raise Partial(0.5, "what is missing")``."""

    def __init__(self, fraction: float, message: str) -> None:
        super().__init__(message)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"partial credit must be in [0, 1], got {fraction!r}")
        self.fraction = fraction
        self.message = message


@dataclass(frozen=True)
class Registered:
    """A check as registered: its function and the declaration of the rubric keys it reads."""

    function: CheckFunction
    """The check itself."""
    params: type[CheckParams]
    """The keys of its rubric entry it reads (common keys and ``params``), validated when a rubric loads."""


_CHECKS: dict[str, Registered] = {}


def check(name: str, *, params: type[CheckParams]) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check function under ``name`` (the name rubrics use) with the declaration of what it reads."""

    def register(fn: CheckFunction) -> CheckFunction:
        if name in _CHECKS:
            earlier = _CHECKS[name].function
            raise HarnessError(f"check {name!r} is registered twice ({earlier.__module__} and {fn.__module__})")
        _CHECKS[name] = Registered(fn, params)
        return fn

    return register


def get_check(name: str) -> CheckFunction:
    """The check registered under ``name``."""
    _load_builtin_checks()
    try:
        return _CHECKS[name].function
    except KeyError:
        raise HarnessError(f"no check {name!r}; known: {', '.join(sorted(_CHECKS))}") from None


def known_checks() -> dict[str, type[CheckParams]]:
    """Every registered check by name (sorted), with its declaration: what a rubric is validated against."""
    _load_builtin_checks()
    return {name: _CHECKS[name].params for name in sorted(_CHECKS)}


Options = TypeVar("Options", bound=CheckParams)


def options(spec: CheckSpecLike, model: type[Options]) -> Options:
    """The entry's ``params`` as the check declared them (``model``): validated, with the declared defaults.

    A rubric loaded with the registered checks was validated against the same model already; an entry that
    still does not fit was built some other way, a harness fault (``error``), never the student's.
    """
    try:
        return model.model_validate(spec.params)
    except ValidationError as error:
        problems = "; ".join(f"params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise RuntimeError(f"the params of check {spec.check} do not fit its declaration: {problems}") from None


_ONE_AT_A_TIME = threading.Lock()
"""Checks run one at a time in a process. A batch grades several submissions on threads, and two host checks
doing linear algebra at once (numpy's OpenBLAS, e.g. two PCA checks) were seen to deadlock; checks take
milliseconds to seconds beside the minutes of sandboxed runs, which stay parallel."""


def run_check(ctx: CheckContext, spec: CheckSpecLike) -> CheckResult:
    """Run one check and capture its outcome as a ``CheckResult`` (one check at a time per process)."""
    with _ONE_AT_A_TIME:
        return _run_check(ctx, spec)


def _run_check(ctx: CheckContext, spec: CheckSpecLike) -> CheckResult:
    ctx.details.clear()
    try:
        get_check(spec.check)(ctx, spec)
        status, message, score = "passed", "", float(spec.points)
    except Partial as partial:
        status, message, score = "failed", partial.message, spec.points * partial.fraction
    except AssertionError as error:
        status, message, score = "failed", str(error), 0.0
    except Exception as error:  # a harness fault: report it, never stop the batch
        status, message, score = "error", f"{type(error).__name__}: {error}", 0.0
    details = dict(ctx.details)
    ctx.details.clear()
    return CheckResult(
        task=ctx.task_id,
        check=spec.check,
        status=status,
        message=message,
        points=float(spec.points),
        score=round(score, 4),
        details=details,
    )


def _load_builtin_checks() -> None:
    """Import the modules that register the built-in checks (once)."""
    from harness.checks import (  # noqa: F401
        architecture,
        evaluation,
        execution,
        figures,
        generative,
        pca,
        reconstruction,
        weights,
    )
