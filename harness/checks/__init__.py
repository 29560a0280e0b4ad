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

A check whose figure can set a bar relative to the reference declares it:
``@check("test_accuracy", params=AccuracyParams, measures={"hidden_accuracy": "measured"})`` names
the calibrated value (``hidden_accuracy``) and the key of ``ctx.details`` the check writes it to
(``measured``) before judging anything. Calibration (:mod:`harness.calibration`) keeps exactly the
declared values of the reference's checks (:func:`measurements`), and the check's relative bar reads
the same name from ``ctx.reference_metrics``.

``run_check`` turns any check into a ``CheckResult``: an ``AssertionError`` is the student's
failure (``failed``), any other exception is a harness fault (``error``), and neither stops
the batch.
"""

from __future__ import annotations

import threading
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, TypeVar

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


class NotAvailable(Exception):
    """Raised by a check that cannot run in a student's self-check from a bundle, because it needs what the
    bundle leaves out (the reference code): the check is ``skipped`` with the reason, never passed."""


NOT_AVAILABLE = "not available in the self-check"
"""How a ``NotAvailable`` check's message starts."""


@dataclass(frozen=True)
class Registered:
    """A check as registered: its function and the declaration of the rubric keys it reads."""

    function: CheckFunction
    """The check itself."""
    params: type[CheckParams]
    """The keys of its rubric entry it reads (common keys and ``params``), validated when a rubric loads."""
    measures: dict[str, str] = field(default_factory=dict)
    """What calibration keeps of its figures: the name of each calibrated value and the key of the check's
    details holding it (``{"hidden_accuracy": "measured"}``); none for a check no relative bar reads."""


_CHECKS: dict[str, Registered] = {}


def check(
    name: str, *, params: type[CheckParams], measures: Mapping[str, str] | None = None
) -> Callable[[CheckFunction], CheckFunction]:
    """Register a check function under ``name`` (the name rubrics use) with the declaration of what it reads and,
    in ``measures``, of what calibration keeps of its figures (calibrated name: key of its details)."""

    def register(fn: CheckFunction) -> CheckFunction:
        if name in _CHECKS:
            earlier = _CHECKS[name].function
            raise HarnessError(f"check {name!r} is registered twice ({earlier.__module__} and {fn.__module__})")
        _CHECKS[name] = Registered(fn, params, dict(measures or {}))
        return fn

    return register


def declared_measures(name: str) -> dict[str, str]:
    """What the check ``name`` declared it measures: calibrated name -> key of its details (none when nothing)."""
    _load_builtin_checks()
    registered = _CHECKS.get(name)
    return dict(registered.measures) if registered else {}


def calibrated_name(name: str) -> str:
    """The one calibrated value the check ``name`` measures: the name its relative bar reads from the reference."""
    declared = list(declared_measures(name))
    if len(declared) != 1:
        raise RuntimeError(f"check {name} declares {len(declared)} calibrated values, not one: it cannot have a relative bar")
    return declared[0]


def reference_value(ctx: CheckContext, spec: CheckSpecLike) -> float:
    """The calibrated reference's value of what the check of ``spec`` measures, in ``ctx``'s task: the base of its
    relative bar. RuntimeError (a harness error for the TA, never the student's failure) when it was not calibrated."""
    name = calibrated_name(spec.check)
    value = ctx.reference_metrics.get(name)
    if value is None:
        raise RuntimeError(
            f"no calibrated reference value {name!r} for task {ctx.task_id}: grade with the reference submission "
            "(--reference DIR, or submissions/<assignment>/reference) to calibrate relative bars"
        )
    return float(value)


def measurements(result: CheckResult) -> dict[str, float]:
    """The values ``result``'s check declared it measures, read from its details: finite numbers only (a figure the
    check did not reach, or that is not a number, is left out)."""
    found: dict[str, float] = {}
    for measure, key in declared_measures(result.check).items():
        value = result.details.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[measure] = float(value)
    return found


def get_check(name: str) -> CheckFunction:
    """The check registered under ``name``."""
    _load_builtin_checks()
    try:
        return _CHECKS[name].function
    except KeyError:
        raise HarnessError(f"no check {name!r}; known: {', '.join(sorted(_CHECKS))}") from None


class KnownChecks(dict[str, type[CheckParams]]):
    """Checks by name with their declarations (what a rubric is validated against), and what each measures."""

    def __init__(self, declarations: Mapping[str, type[CheckParams]], measures: Mapping[str, Iterable[str]]) -> None:
        super().__init__(declarations)
        self.measures: dict[str, tuple[str, ...]] = {name: tuple(values) for name, values in measures.items()}
        """The calibrated values each check measures, by check name (``test_accuracy``: ``hidden_accuracy``):
        a relative bar (``relative_to_reference``) needs exactly one."""


def known_checks() -> KnownChecks:
    """Every registered check by name (sorted), with its declaration and what it measures: what a rubric is
    validated against."""
    _load_builtin_checks()
    names = sorted(_CHECKS)
    return KnownChecks({name: _CHECKS[name].params for name in names},
                       {name: tuple(_CHECKS[name].measures) for name in names})


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
    except NotAvailable as missing:
        status, message, score = "skipped", f"{NOT_AVAILABLE}: {missing}", 0.0
    except Partial as partial:
        status, message, score = "failed", partial.message, spec.points * partial.fraction
    except AssertionError as error:
        status, message, score = "failed", str(error), 0.0
    except Exception as error:  # a harness fault: report it, never stop the batch
        status, message, score = "error", f"{type(error).__name__}: {error}", 0.0
    details = dict(ctx.details)
    ctx.details.clear()
    held = str(details.pop("held", "")) if score > 0 else ""  # a check that earned nothing has nothing to hold
    return CheckResult(
        task=ctx.task_id,
        check=spec.check,
        status=status,
        message=message,
        points=float(spec.points),
        score=round(score, 4),
        details=details,
        held=held,
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
