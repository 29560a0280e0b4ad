"""The rubric's sections as pydantic models: what a rubric may say, and the rules its parts must follow.

Each section is immutable and refuses unknown keys; its validators raise the errors that
:mod:`harness.rubric.messages` turns into ``field: reason`` lines. ``ModelRef`` imports the class its ``spec``
names (:func:`_resolve_spec`) to check that it exists and can be built with ``args``.
A rubric read from a self-check bundle (``harness.bundle``) is validated with ``resolve_specs=False``: the
reference classes are not installed there, and the bundle carries what the checks need of them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from harness.contract import FIXED_INPUT_KINDS
from harness.errors import RubricError
from harness.rubric.messages import _declared_reason, did_you_mean, _problem
from harness.rubric.params import _one_or_many, _python_name, references
from harness.syntax import parse

Dataset = Literal["mnist", "fashionmnist", "signs"]
"""Dataset names a rubric may list; the same names as ``harness.data.DATASETS``."""

Device = Literal["cpu", "gpu"]

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ASSIGNMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _nonempty_text(value: str) -> str:
    """Strip a text field and refuse an empty one."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, Field(strict=True)]
Title = Annotated[str, Field(strict=True), AfterValidator(_nonempty_text)]
"""A title shown in reports: kept without the spaces around it, never blank."""
Alternatives = Annotated[tuple[Annotated[str, Field(strict=True, min_length=1)], ...], BeforeValidator(_one_or_many)]


class _Strict(BaseModel):
    """Base of every rubric section: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckSpec(_Strict):
    """One check of a task with its points and thresholds; what a check function receives."""

    check: Text
    """Name of a registered check (``parameter_count``...)."""
    points: float = Field(gt=0)
    """Points the check is worth; a check may award any part of them (partial credit)."""
    equals: int | float | str | bool | list[int | float | str | bool] | None = None
    """Exact expected value (a parameter count, a feature width, a shape)."""
    min: float | None = None
    """Absolute lower bound of the measured value (e.g. ``0.97`` test accuracy)."""
    max: float | None = None
    """Absolute upper bound of the measured value (e.g. a reconstruction error)."""
    relative_to_reference: float | None = Field(default=None, gt=0, le=2)
    """Bound as a fraction of what the calibrated reference reached (``0.98``: 98% of it)."""
    layer: Text | None = None
    """Layer the check looks at (``Flatten``): a class name or a module path in the model."""
    tolerance: float | None = Field(default=None, ge=0)
    """Allowed deviation from ``equals`` (absolute)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Check-specific options, documented with each check."""

    @field_validator("check")
    @classmethod
    def _known_check(cls, name: str, info: ValidationInfo) -> str:
        """Reject a check name that is not registered, when the caller says which are."""
        known = (info.context or {}).get("known_checks")
        if known is not None and name not in known:
            raise ValueError(f"unknown check {name!r}{did_you_mean(name, known)}; known: {', '.join(sorted(known))}")
        return name

    @field_validator("min", "max", "tolerance", "points", "relative_to_reference")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        """Refuse .nan and .inf, which YAML allows."""
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent_bounds(self) -> CheckSpec:
        """Refuse thresholds that contradict each other."""
        if self.min is not None and self.relative_to_reference is not None:
            raise _problem("min", "min and relative_to_reference cannot be used together: choose one lower bound")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem("min", f"min ({self.min}) is greater than max ({self.max})")
        if self.equals is not None and (self.min, self.max, self.relative_to_reference) != (None, None, None):
            raise _problem("equals", "equals cannot be combined with min, max or relative_to_reference")
        if self.tolerance is not None and self.equals is None:
            raise _problem("tolerance", "tolerance applies to equals, which this check does not set")
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _as_declared(cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> CheckSpec:
        """Validate the entry against its check's declaration, when the caller gives the registered checks.

        Defined after the other validators so that it runs last: an entry that breaks the rules every check
        shares is reported by those first.
        """
        spec = handler(data)
        declared = (info.context or {}).get("known_checks")
        if not isinstance(declared, Mapping) or spec.check not in declared or not isinstance(data, dict):
            return spec
        declaration = declared[spec.check]
        given = {key: value for key, value in data.items() if key not in ("check", "points")}
        if "params" in declaration.model_fields:
            given.setdefault("params", {})  # a missing block reports its required keys one by one
        try:
            declaration.model_validate(given, context=info.context)  # resolve_specs reaches the check's own
        except ValidationError as error:
            problems = []
            for line in error.errors():
                loc, reason = _declared_reason(line, declaration, spec.check)
                problems.append(
                    {"type": _problem("", reason), "loc": loc, "input": line.get("input")}
                )
            raise ValidationError.from_exception_data(cls.__name__, problems) from None
        measures = (info.context or {}).get("measures")
        if spec.relative_to_reference is not None and isinstance(measures, Mapping):
            measured = tuple(measures.get(spec.check, ()))
            # the bar is a fraction of the reference's value of what the check measures: it needs exactly one
            if not measured:
                raise _problem("relative_to_reference",
                               f"{spec.check} measures nothing the reference is calibrated on, so there is no "
                               "reference value to take a fraction of: give an absolute bound (min) instead")
            if len(measured) > 1:
                raise _problem("relative_to_reference",
                               f"{spec.check} measures {len(measured)} calibrated values ({', '.join(measured)}), "
                               "and a relative bar is a fraction of one: give an absolute bound (min) instead")
        return spec


class ModelRef(_Strict):
    """How to find a task's model in the submission and what it should be."""

    prefer: Alternatives = ()
    """Names a student probably used for the class or instance (``Net``, ``CNNNet``), tried first."""
    spec: Text | None = None
    """``module:Class`` of the reference implementation the model is compared with."""
    dataset: Dataset | None = None
    """Dataset the model is evaluated on; one of the rubric's ``datasets``."""
    architecture: Literal["fixed", "free"] = "fixed"
    """``fixed``: the assignment prescribes the network, and a candidate unlike ``spec`` is not graded as it.
    ``free``: students design their own network; ``spec`` (optional) only ranks the candidates."""
    args: dict[str, int | float | str | bool] = Field(default_factory=dict)
    """Keyword arguments the reference class is built with (``{latent_dim: 3}``: the sheet's latent-3 model)."""
    free: tuple[str, ...] = ()
    """Sizes the assignment leaves open, named as the reference class's arguments (``[dim2]``: the autoencoder's
    hidden width): the architecture check accepts any value for the layer sizes they set."""

    @field_validator("spec")
    @classmethod
    def _importable(cls, spec: str | None, info: ValidationInfo) -> str | None:
        """Check that the reference class exists, so a typo fails now rather than mid-batch."""
        if spec is not None and resolves_specs(info):
            spec_signature(spec)
        return spec

    @model_validator(mode="after")
    def _buildable(self, info: ValidationInfo) -> ModelRef:
        """Check that the reference class can be built with ``args``, so a wrong argument fails at load time."""
        if self.args and self.spec is None:
            raise _problem("args", "args need a spec (the reference class they are passed to)")
        if self.spec is not None and resolves_specs(info):
            try:
                spec_signature(self.spec).bind(**self.args)
            except TypeError as error:
                raise _problem("args", f"{self.spec} cannot be built with {self.args}: {error}") from None
        return self

    @model_validator(mode="after")
    def _free_sizes_exist(self, info: ValidationInfo) -> ModelRef:
        """Check that every free size is a whole-number argument of the reference class.

        That it only sizes layers (building the class with another value changes no layer's type) needs torch and
        is judged where the reference is first described: :meth:`reference_layers`.
        """
        if not self.free:
            return self
        if self.spec is None:
            raise _problem("free", "free sizes need a spec (the reference class whose arguments they name)")
        if resolves_specs(info):
            self.free_sizes()
        return self

    def reference_layers(self, shapes: Sequence[Sequence[int]], where: str) -> list[dict[str, Any]]:
        """The reference network's computation with its free sizes marked (``describe_reference``).

        ``where``: the file and task this section is in (``r.yaml: tasks (ae)``), for the RubricError raised when
        a free size is not a size (it changes the network's layers).
        """
        from harness.architecture import FreeSizeError, describe_reference

        try:
            return describe_reference(self.reference_class(), self.args, self.free_sizes(), shapes)
        except FreeSizeError as error:
            raise RubricError(f"{where} > model > free: {error}") from None

    def free_sizes(self) -> dict[str, int]:
        """Each free size with its value in the reference (from ``args``, else the class's default)."""
        if self.spec is None:
            self.reference_class()  # says that there is none
        parameters = spec_signature(str(self.spec)).parameters
        sizes = {}
        for name in self.free:
            value = self.args.get(name, parameters[name].default if name in parameters else None)
            if isinstance(value, bool) or not isinstance(value, int):
                raise _problem("free", f"{name} is not a whole-number argument of {self.spec} "
                                       f"(arguments: {', '.join(parameters)})")
            sizes[name] = value
        return sizes

    def build_reference(self) -> Any:
        """A fresh instance of the reference class, built with ``args``."""
        return self.reference_class()(**self.args)

    @model_validator(mode="after")
    def _says_something(self) -> ModelRef:
        """Refuse an empty model section."""
        if not self.prefer and self.spec is None:
            raise _problem("", "give prefer (names to look for), spec (the reference class), or both")
        return self

    def reference_class(self) -> type:
        """The reference class ``spec`` names."""
        if self.spec is None:
            raise RubricError("this task's model section has no spec (no reference class)")
        return _resolve_spec(self.spec)


class Budget(_Strict):
    """Time a task's source may take to run."""

    reference_multiple: float | None = Field(default=None, gt=0)
    """Allowed multiple of the calibrated reference's time on the same machine."""
    wall_s: float | None = Field(default=None, gt=0)
    """Absolute wall-clock ceiling in seconds."""
    device: Device = "cpu"
    """Where the source runs: ``cpu`` or ``gpu``."""


class Manual(_Strict):
    """A TA-graded item (a written answer)."""

    points: float = Field(gt=0)
    """Points a TA may award."""


class RunLimits(_Strict):
    """Limits of every sandboxed run of the assignment that differ from the defaults (``limits: {memory: 8GiB}``)."""

    memory: ByteSize | None = Field(default=None, gt=0)
    """Resident memory of a run's whole process tree: a number of bytes or a size such as ``8GiB`` or ``512MB``."""
    cell_timeout_s: float | None = Field(default=None, gt=0)
    """Seconds one notebook cell may run before it is stopped (the rest still runs); by default a cell may use
    the run's whole wall-clock limit."""
    workspace: ByteSize | None = Field(default=None, gt=0)
    """Disk space one submission's working folder may hold (default 1GiB): past it the run is stopped as
    ``workspace``; as root the folder is a tmpfs of this size, so nothing more reaches the host's disk."""
    workspace_files: int | None = Field(default=None, gt=0)
    """Files and folders that working folder may hold (default 10,000; the same verdict)."""


class LatePenalty(_Strict):
    """What a hand-in the LMS marked late loses (``late_penalty: {percent: 10}``)."""

    percent: float = Field(gt=0, le=100)
    """Share of the points it earned that a late hand-in loses, in percent (100: a late hand-in scores 0)."""


class ProbeCall(_Strict):
    """A function of the student's the probe calls on fixed inputs after the run (``harness.probes.fixed_inputs``)."""

    id: Text
    """Key of the result in probe.json ``calls`` and in a check's ``params.call``."""
    names: Alternatives
    """Names the student may have given the function, tried in order (the first callable one is called)."""
    inputs: Text
    """Kind of fixed inputs to call it with (``vae_loss``: recon, x, mu, logvar)."""

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        """Keep the id usable as a JSON key and in messages."""
        return _python_name(value)

    @field_validator("names")
    @classmethod
    def _valid_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Every alternative is a Python name, and there is at least one."""
        if not value:
            raise ValueError("must list at least one function name")
        for name in value:
            _python_name(name)
        return tuple(dict.fromkeys(value))

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, value: str) -> str:
        """The fixed inputs must be a kind the probe (and the host) can build."""
        if value not in FIXED_INPUT_KINDS:
            raise ValueError(f"no fixed inputs {value!r}; known: {', '.join(sorted(FIXED_INPUT_KINDS))}")
        return value

    def as_config(self) -> dict[str, Any]:
        """The entry of the runner config's ``calls``."""
        return {"id": self.id, "names": list(self.names), "inputs": self.inputs}


class Probe(_Strict):
    """What the probe records for a task besides the models: named values and function calls."""

    values: Alternatives = ()
    """Namespace names whose values the probe records (probe.json ``task_values``)."""
    calls: tuple[ProbeCall, ...] = ()
    """Functions the probe calls on fixed inputs (probe.json ``calls``)."""

    @field_validator("values")
    @classmethod
    def _valid_values(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Every value is a Python name; repeats are dropped."""
        for name in value:
            _python_name(name)
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _distinct_calls(self) -> Probe:
        """Call ids are unique within the block; an empty block says nothing."""
        seen: dict[str, int] = {}
        for i, call in enumerate(self.calls):
            if call.id in seen:
                raise _problem(f"calls[{i}].id", f"call id {call.id!r} is already used by calls[{seen[call.id]}]")
            seen[call.id] = i
        if not self.values and not self.calls:
            raise _problem("", "give values (names to record), calls (functions to call), or both")
        return self


class Task(_Strict):
    """One graded item of the assignment: automatic (source + checks) or manual."""

    id: Text
    """Unique id: lowercase letters, digits and hyphens (``cnn-why-800``)."""
    title: Title
    """What the task is called in reports (``1.3 CNN on MNIST``)."""
    source: Alternatives = ()
    """The notebook or module producing the task, matched case-insensitively; alternatives in order of preference."""
    model: ModelRef | None = None
    """How to find the task's model (optional)."""
    budget: Budget | None = None
    """Timing budget of the source (optional)."""
    probe: Probe | None = None
    """Values and function calls the probe records for this task's checks (optional)."""
    checks: tuple[CheckSpec, ...] = ()
    """Checks that score the task, in order."""
    manual: Manual | None = None
    """Set for a TA-graded item, which has no source and no checks."""
    unverified: Literal["hold", "believe"] | None = None
    """This task's own policy for points resting on predictions the grader could not verify (optional; the
    rubric's ``unverified`` otherwise): e.g. ``believe`` for a VAE that samples its code when evaluated too."""

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        """Keep ids usable as CSV column names and file names."""
        if not _ID.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid id: use lowercase letters, digits and single hyphens (e.g. 'cnn-why-800')"
            )
        return value

    @model_validator(mode="after")
    def _automatic_or_manual(self) -> Task:
        """A task is either automatic (source + checks) or manual (manual.points), never both."""
        if self.manual is not None:
            extra = [name for name in ("source", "model", "budget", "probe", "checks") if getattr(self, name)]
            if extra:
                reason = f"a task is either manual or automatic, not both: remove manual, or remove {', '.join(extra)}"
                raise _problem("manual", reason)
            return self
        if not self.source:
            raise _problem(
                "source", "is required for an automatic task (or give manual: {points: N} for a TA-graded one)"
            )
        if not self.checks:
            raise _problem("checks", "an automatic task needs at least one check")
        return self

    @property
    def is_manual(self) -> bool:
        """True for a TA-graded item."""
        return self.manual is not None

    @property
    def points(self) -> float:
        """Points the task is worth."""
        return self.manual.points if self.manual is not None else sum(c.points for c in self.checks)

    def find_source(self, files: Iterable[str]) -> str | None:
        """The submission file (relative path) this task's source names, or None.

        For each alternative in order: a file whose relative path equals it
        case-insensitively; else, for an alternative without a folder, the
        least deeply nested file whose name equals it case-insensitively.
        """
        files = sorted(files, key=lambda f: (len(PurePosixPath(f).parts), f))
        for wanted in self.source:
            key = wanted.casefold()
            for f in files:
                if f.casefold() == key:
                    return f
            if "/" not in wanted:
                for f in files:
                    if PurePosixPath(f).name.casefold() == key:
                        return f
        return None


class Rubric(_Strict):
    """A validated rubric; build it with :func:`load_rubric`."""

    assignment: Text
    """Assignment id (``dl2025-a2``)."""
    title: Title
    """Human title of the assignment."""
    datasets: tuple[Dataset, ...] = ()
    """Datasets the assignment's sources read; prepared before grading."""
    tasks: tuple[Task, ...]
    """Tasks in the order they are graded and reported."""
    limits: RunLimits | None = None
    """Optional: memory, per-cell time and workspace limits of the sandboxed runs (the command line can override
    memory and the cell time)."""
    late_penalty: LatePenalty | None = None
    """Optional: what a hand-in the LMS marked late loses; without it lateness is reported but costs nothing."""
    unverified: Literal["hold", "believe"] = "hold"
    """What a check's points resting on predictions the grader could not verify do (a student's class it cannot
    rebuild): ``hold`` (the default) keeps them out of the score until a TA releases them in the manual-scores
    file; ``believe`` counts them as they are, only marked unverified."""
    packages: tuple[Annotated[str, Field(strict=True)], ...] = ()
    """Modules the students' code imports beyond gradebench's own dependencies (``packages: [lightning]``):
    grading refuses to start, naming them, while the environment lacks any."""
    seed: Annotated[int, Field(strict=True, ge=0, lt=2**32)] | None = 0
    """The seed of Python's ``random``, NumPy and torch before each run's first line, so that a regrade, and a
    student's self-check, train the same way (a notebook's own ``manual_seed`` still decides from where it is
    called); ``null`` leaves the runs unseeded."""

    _path: Path | None = PrivateAttr(default=None)
    _hash: str | None = PrivateAttr(default=None)

    @field_validator("assignment")
    @classmethod
    def _valid_assignment(cls, value: str) -> str:
        """Keep the assignment id usable in file names."""
        if not _ASSIGNMENT.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid assignment id: use letters, digits, '.', '_' and '-'")
        return value

    @field_validator("packages")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each package is an importable module name (``tqdm.notebook``), listed once."""
        from harness.environment import MODULE_NAME

        for name in value:
            if not MODULE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a module name: write it as Python imports it (sklearn, not scikit-learn)")
        return tuple(dict.fromkeys(value))

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: tuple[Task, ...]) -> tuple[Task, ...]:
        """Refuse a rubric without tasks (checked after the tasks themselves validate)."""
        if not value:
            raise ValueError("must list at least one task")
        return value

    @field_validator("datasets")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Drop repeated dataset names, keeping their order."""
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Rubric:
        """Task ids are unique; a task's dataset is one the rubric prepares; probe blocks and the tasks, calls and
        values that check parameters name agree."""
        seen: dict[str, int] = {}
        for i, task in enumerate(self.tasks):
            if task.id in seen:
                reason = f"task id {task.id!r} is already used by tasks[{seen[task.id]}]; ids must be unique"
                raise _problem(f"tasks[{i}].id", reason)
            seen[task.id] = i
            if task.model is not None and task.model.dataset is not None and task.model.dataset not in self.datasets:
                listed = ", ".join(self.datasets) or "none"
                raise _problem(
                    f"tasks[{i}].model.dataset",
                    f"{task.model.dataset!r} is not among the rubric's datasets ({listed}): add it to datasets",
                )
        self._check_probe_calls(seen)
        declared = (info.context or {}).get("known_checks")
        if isinstance(declared, Mapping):
            self._check_named(seen, declared)
        return self

    def _check_probe_calls(self, index: dict[str, int]) -> None:
        """Tasks sharing a source must not give one call id two meanings."""
        for source in self.sources_in_order():
            calls: dict[str, tuple[ProbeCall, str]] = {}
            for task in self.tasks_for_source(source):
                for j, call in enumerate(task.probe.calls if task.probe else ()):
                    earlier = calls.get(call.id)
                    if earlier is not None and earlier[0] != call:
                        raise _problem(
                            f"tasks[{index[task.id]}].probe.calls[{j}]",
                            f"call {call.id!r} is defined differently by task {earlier[1]!r}, which runs the same source: "
                            "use another id or the same definition",
                        )
                    calls.setdefault(call.id, (call, task.id))

    def _check_named(self, index: dict[str, int], declared: Mapping[str, type[BaseModel]]) -> None:
        """What check parameters name (see :class:`Names`) exists: a task graded earlier, a probe call or value."""
        order = {task.id: n for n, task in enumerate(self.grading_order())}
        for source in self.sources_in_order():
            values, calls = self.probe_requests(source)
            call_ids = [call.id for call in calls]
            for task in self.tasks_for_source(source):
                for k, spec in enumerate(task.checks):
                    declaration = declared.get(spec.check)
                    for key, what in references(declaration) if declaration is not None else ():
                        named = spec.params.get(key)
                        if named is None:
                            continue
                        where = f"tasks[{index[task.id]}].checks[{k}].params.{key}"
                        if what == "probe_call" and named not in call_ids:
                            defined = ", ".join(call_ids) or "none"
                            raise _problem(
                                where,
                                f"call {named!r} is not among the probe calls of this source ({defined}): add it to probe.calls",
                            )
                        if what == "probe_value":
                            missing = [name for name in _one_or_many(named) if name not in values]
                            if missing:
                                raise _problem(where, f"{', '.join(map(str, missing))} not recorded: add to probe.values")
                        if what == "task" and named not in order:
                            known = ", ".join(t.id for t in self.automatic_tasks)
                            raise _problem(where, f"{named!r} is not an automatic task of this rubric; tasks: {known}")
                        if what == "task" and named == task.id:
                            raise _problem(where, f"names its own task {named!r}: name a task graded before it")
                        if what == "task" and order[named] >= order[task.id]:
                            raise _problem(where, f"task {named!r} is graded after {task.id!r}: list it (and its source) first")

    def grading_order(self) -> tuple[Task, ...]:
        """Automatic tasks in the order they are graded: by source in order of first use, then rubric order."""
        return tuple(t for source in self.sources_in_order() for t in self.tasks_for_source(source))

    def probe_requests(self, source: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[ProbeCall, ...]]:
        """The values and calls the probe block of every task of ``source`` asks for, merged in rubric order."""
        values: dict[str, None] = {}
        calls: dict[str, ProbeCall] = {}
        for task in self.tasks_for_source(source):
            if task.probe is not None:
                values.update(dict.fromkeys(task.probe.values))
                for call in task.probe.calls:
                    calls.setdefault(call.id, call)
        return tuple(values), tuple(calls.values())

    @property
    def path(self) -> Path | None:
        """The file the rubric was loaded from (None when built in memory)."""
        return self._path

    @property
    def hash(self) -> str:
        """sha256 of the rubric file's bytes (of its canonical JSON when built in memory)."""
        if self._hash is None:
            return hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return self._hash

    def restricted(self, task_ids: Iterable[str]) -> Rubric:
        """The same rubric with only these tasks (in rubric order), under a hash of its own.

        A self-check of one notebook grades (and calibrates) only that notebook's tasks; its own
        hash keeps the cached calibration of the part apart from the whole rubric's.
        """
        wanted = set(task_ids)
        unknown = wanted - {t.id for t in self.tasks}
        if unknown:
            raise RubricError(f"no task {', '.join(sorted(unknown))} in rubric {self.assignment}")
        part = self.model_copy(update={"tasks": tuple(t for t in self.tasks if t.id in wanted)})
        part._hash = hashlib.sha256(f"{self.hash} restricted to {sorted(wanted)}".encode()).hexdigest()
        return part

    @property
    def automatic_tasks(self) -> tuple[Task, ...]:
        """Tasks scored by checks, in rubric order."""
        return tuple(t for t in self.tasks if not t.is_manual)

    @property
    def manual_tasks(self) -> tuple[Task, ...]:
        """Tasks a TA grades, in rubric order."""
        return tuple(t for t in self.tasks if t.is_manual)

    @property
    def points_total(self) -> float:
        """Points the whole assignment is worth."""
        return sum(t.points for t in self.tasks)

    def task(self, task_id: str) -> Task:
        """The task with this id."""
        for t in self.tasks:
            if t.id == task_id:
                return t
        known = ", ".join(t.id for t in self.tasks)
        raise KeyError(f"rubric {self.assignment!r} has no task {task_id!r}; tasks: {known}")

    def sources_in_order(self) -> tuple[tuple[str, ...], ...]:
        """Distinct sources (each a tuple of alternatives) in order of first use.

        Run them in this order: a later task that loads an earlier task's
        checkpoint comes after it in the rubric.
        """
        seen: dict[tuple[str, ...], tuple[str, ...]] = {}
        for t in self.automatic_tasks:
            seen.setdefault(tuple(s.casefold() for s in t.source), t.source)
        return tuple(seen.values())

    def tasks_for_source(self, source: tuple[str, ...]) -> tuple[Task, ...]:
        """Automatic tasks whose source is ``source`` (as returned by :meth:`sources_in_order`)."""
        key = tuple(s.casefold() for s in source)
        return tuple(t for t in self.automatic_tasks if tuple(s.casefold() for s in t.source) == key)


def resolves_specs(info: ValidationInfo) -> bool:
    """Whether this validation imports the classes ``module:Class`` specs name (not for a bundle's rubric)."""
    return bool((info.context or {}).get("resolve_specs", True))


def _resolve_spec(spec: str) -> type:
    """Import the class a ``module:Class`` spec names; ValueError saying what is wrong."""
    if not _SPEC.fullmatch(spec):
        raise ValueError(f"{spec!r} is not of the form 'module:Class' (e.g. 'reference.classifiers:CNN')")
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} ({e})") from None
    obj = getattr(module, class_name, None)
    if obj is None:
        classes = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        defined = ", ".join(classes) or "no classes"
        raise ValueError(f"module {module_name!r} has no class {class_name!r}; it defines: {defined}")
    if not inspect.isclass(obj):
        raise ValueError(f"{spec!r} is not a class")
    return obj


def spec_signature(spec: str) -> inspect.Signature:
    """The signature the class a ``module:Class`` spec names is built with; ValueError saying what is wrong.

    Read from the module's source without running it where the source defines the class plainly, with an
    ``__init__`` of its own whose defaults are literals: the reference package imports torch, and a rubric is
    validated before anything else needs torch. Any other class (imported from elsewhere, decorated, inheriting
    its ``__init__``) is imported, as :func:`_resolve_spec` does.
    """
    if not _SPEC.fullmatch(spec):
        raise ValueError(f"{spec!r} is not of the form 'module:Class' (e.g. 'reference.classifiers:CNN')")
    module_name, class_name = spec.split(":")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as e:  # a parent package that is not there, or fails to import
        raise ValueError(f"cannot import module {module_name!r} ({e})") from None
    if found is None:
        raise ValueError(f"cannot import module {module_name!r} (No module named {module_name!r})")
    signature = _source_signature(found.origin, module_name, class_name) if found.origin else None
    return signature if signature is not None else inspect.signature(_resolve_spec(spec))


def _source_signature(origin: str, module_name: str, class_name: str) -> inspect.Signature | None:
    """The signature of ``class_name``'s ``__init__`` as its module's source declares it (``self`` left out); None
    where the source cannot say (see :func:`spec_signature`); ValueError when the module defines no such class."""
    if not origin.endswith(".py"):
        return None
    try:
        tree = parse(Path(origin).read_bytes(), origin)
    except (OSError, SyntaxError, ValueError):
        return None  # importing it says what is wrong
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    node = classes.get(class_name)
    if node is None:
        if any(class_name in _bound_names(statement) for statement in tree.body):
            return None  # imported or assigned there: only importing tells what it is
        defined = ", ".join(sorted(classes)) or "no classes"
        raise ValueError(f"module {module_name!r} has no class {class_name!r}; it defines: {defined}")
    init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
    if node.decorator_list or init is None:
        return None
    arguments = init.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    try:
        parameters = [
            _parameter(a.arg, inspect.Parameter.POSITIONAL_ONLY if i < len(arguments.posonlyargs)
                       else inspect.Parameter.POSITIONAL_OR_KEYWORD, d)
            for i, (a, d) in enumerate(zip(positional, defaults))
        ][1:]  # self
        if arguments.vararg:
            parameters.append(inspect.Parameter(arguments.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
        parameters += [_parameter(a.arg, inspect.Parameter.KEYWORD_ONLY, d)
                       for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults)]
        if arguments.kwarg:
            parameters.append(inspect.Parameter(arguments.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
        return inspect.Signature(parameters)
    except ValueError:  # a default that is not a literal (literal_eval), or an unusual signature
        return None


def _parameter(name: str, kind: Any, default: ast.expr | None) -> inspect.Parameter:
    """One parameter of a signature read from source; ValueError when its default is not a literal."""
    value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
    return inspect.Parameter(name, kind, default=value)


def _bound_names(statement: ast.stmt) -> set[str]:
    """The names a top-level statement other than a class definition binds (imports, assignments, functions)."""
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {statement.name}
    return {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
