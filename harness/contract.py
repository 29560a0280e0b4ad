"""What crosses the sandbox boundary, defined once for both sides (standard library only).

The host tells the runner what to do with a :class:`RunnerConfig` (``runner-config.json``); the
runner answers with a :class:`RunRecord` (``run.json``) and the probe with a :class:`ProbeRecord`
(``probe.json``), one :class:`ModelRecord` per model candidate. Each is a frozen dataclass with
``to_json()`` and ``from_json()``: ``from_json`` checks every field's type (and the few rules a
type cannot say: caps, shapes, known names) once, and raises :class:`ContractError` naming the
field (``models[2].trainable_parameters``) and what is wrong with it. The host reads the records
with ``harness.artifacts.load_artifacts``, which turns that error into an ``ArtifactError``.

The runner imports this module inside the sandbox before torch, so it imports nothing but the
standard library. The constants both sides need (dataset names, dummy input shapes, the offline
environment, the artifact file names) are defined here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

# --------------------------------------------------------------------------- shared constants

DATASETS: tuple[str, ...] = ("mnist", "fashionmnist", "signs")
"""The datasets the grader prepares and a rubric may name."""

DEFAULT_INPUT_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "mnist": ((1, 28, 28), (784,)),
    "fashionmnist": ((1, 28, 28), (784,)),
    "signs": ((3, 64, 64),),
}
"""Dummy-batch shapes the probe tries (one example, no batch dimension), per dataset, in order."""

OFFLINE_ENV: dict[str, str] = {
    "WANDB_MODE": "disabled",
    "WANDB_SILENT": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
"""Environment that keeps common logging and model-hub libraries from reaching the network."""

TRAINED_HOW: dict[str, str] = {
    "optimizer": "an optimizer stepped it",
    "loaded": "its weights were loaded with load_state_dict",
    "weights_changed": "its weights changed after it was built",
    "unchanged": "no optimizer stepped it and its weights never changed after its first forward pass",
    "never_used": "it was never called and no optimizer stepped it",
    "unknown": "it was not built while the grader watched (loaded whole, or copied)",
}
"""How ``trained`` is known (probe.json's ``trained_how``), and what a person reads for each."""

CONSTRUCTION = "__gradebench_module__"
"""Marks a recorded constructor argument that is a module the student's code built itself:
``{CONSTRUCTION: {"class_name", "library", "args", "kwargs"}}``, which the clean rebuild builds first and passes in
(``Classifier(ConvEncoder(12))``). A plain argument may not hold this key, so no dict a student passed reads as one."""

CONSTRUCTION_LIBRARIES = ("torch.nn",)
"""Where a construction's class may come from besides the student's definitions (its ``library``; null: theirs)."""

MAX_NESTING = 3
"""Constructions nested in one another's arguments at most (``A(B(C()))`` is three)."""

MAX_ARGUMENT_DEPTH = 12
"""Lists and objects nested in a constructor record at most."""

TORCHVISION_FOLDERS: dict[str, str] = {"mnist": "MNIST", "fashionmnist": "FashionMNIST"}
"""Datasets torchvision reads from a root folder, by the class (and folder) name it uses."""

RUN_FILE = "run.json"
"""The runner's record, in the artifacts folder."""

EXECUTED_FILE = "executed.ipynb"
"""The notebook as the runner executed it (outputs cut), in the artifacts folder: a report aid."""

PROBE_FILE = "probe.json"
"""The probe's record, in the artifacts folder."""

MAX_JSON_BYTES = 16 * 1024**2
"""A run.json or probe.json bigger than this is refused, wherever the host reads one (the runner and the probe
write far less)."""

CONFIG_FILE = "runner-config.json"
"""The runner's config, written by the host next to the artifacts folder."""

RUN_FORMAT = 1
"""Version of the run.json layout."""

PROBE_FORMAT = 1
"""Version of the probe.json layout."""

CONFIG_FORMAT = 1
"""Version of the runner config layout."""

MAX_MODELS = 12
"""Model candidates a probe record may hold."""

MAX_CALLS = 64
"""Call records a probe record may hold."""

MAX_CALL_VALUES = 10
"""Numbers one call record may hold."""

MAX_CALLABLES = 200
"""Names in a probe record's ``callables`` at most."""

FIXED_INPUT_KINDS: tuple[str, ...] = ("vae_loss",)
"""Kinds of fixed inputs a rubric's probe call may name (``harness.probes.fixed_inputs`` builds each); here, not
there, so a rubric is validated without importing torch."""

MAX_MISSING_PACKAGES = 50
"""Module names run.json's ``missing_packages`` may list."""

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ContractError(ValueError):
    """A record does not follow the contract: ``path`` names the field, ``reason`` says what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}" if path else f"the record {reason}")
        self.path = path
        """Where in the record: ``models[2].trainable_parameters`` (empty for the record itself)."""
        self.reason = reason
        """What is wrong, in plain words, to follow the path: ``is str, expected int``."""


# --------------------------------------------------------------------------- field rules


def _shape(value: tuple[int, ...]) -> str | None:
    return None if all(d >= 0 for d in value) else "has a negative size"


def _cell(value: int) -> str | None:
    return None if value >= -1 else "is below -1 (a cell number, or -1 for a whole script)"


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "is not a finite number"


def _rule(check: Any = None, max_items: int | None = None, each: Any = None) -> dict[str, Any]:
    """Field metadata: ``check(value)`` returns a reason or None; ``max_items`` caps a list or object;
    ``each(item)`` checks every item of a list or every value of an object."""
    return {"check": check, "max_items": max_items, "each": each}


def _optional(rule: Any) -> Any:
    return lambda value: None if value is None else rule(value)


# --------------------------------------------------------------------------- the generic reader

R = TypeVar("R", bound="Record")


class Record:
    """A frozen dataclass that crosses the sandbox boundary as a JSON object."""

    _hints: ClassVar[dict[type, dict[str, Any]]] = {}

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (tuples become lists; fields left at None are kept)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], value: Any, path: str = "") -> R:
        """Read a record from parsed JSON, checking every field once; raises ContractError naming the field.

        Keys the record does not declare are ignored (an older host reads a newer runner's record).
        """
        if not isinstance(value, dict):
            raise ContractError(path, f"is {_kind(value)}, expected an object")
        hints = Record._hints.get(cls)
        if hints is None:
            hints = Record._hints[cls] = typing.get_type_hints(cls)
        values = {}
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            where = f"{path}.{spec.name}" if path else spec.name
            if spec.name not in value:
                if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                    raise ContractError(where, "is missing")
                continue
            item = _read(hints[spec.name], value[spec.name], where, spec.metadata)
            values[spec.name] = item
        record = cls(**values)
        reason = record._problem()
        if reason:
            raise ContractError(path, reason)
        return record

    def _problem(self) -> str | None:
        """A rule across fields that types cannot say; None when the record keeps it."""
        return None


def _read(hint: Any, value: Any, path: str, rules: Any = None) -> Any:
    """``value`` read as ``hint`` says, with the field's ``rules`` (``_rule``) applied."""
    item = _convert(hint, value, path, rules or {})
    rules = rules or {}
    if item is not None and rules.get("check"):
        reason = rules["check"](item)
        if reason:  # a reason, or (where inside the field, reason) for a field with parts of its own
            where, reason = reason if isinstance(reason, tuple) else ("", reason)
            raise ContractError(path + where, reason)
    return item


def _convert(hint: Any, value: Any, path: str, rules: dict[str, Any]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        problems = []
        for option in options:
            try:
                return _convert(option, value, path, rules)
            except ContractError as error:
                problems.append(error)
        if len(problems) == 1:
            problem = problems[0]
            if problem.path == path and type(None) in args and "expected" in problem.reason:
                raise ContractError(path, f"{problem.reason} or null")  # the field itself, not a part of it
            raise problem
        raise ContractError(path, f"is {_kind(value)}, expected {' or '.join(_hint_name(a) for a in args)}")
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise ContractError(path, f"is {_short(value)}, expected one of {', '.join(repr(a) for a in args)}")
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_json(value, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ContractError(path, f"is {_kind(value)}, expected a list")
        _cap(value, path, rules)
        element = args[0]
        return tuple(_each(_convert(element, v, f"{path}[{i}]", {}), f"{path}[{i}]", rules) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ContractError(path, f"is {_kind(value)}, expected an object")
        _cap(value, path, rules)
        return {
            k: _each(_convert(args[1], v, f"{path}[{k!r}]", {}), f"{path}[{k!r}]", rules) for k, v in value.items()
        }
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise ContractError(path, f"is {_kind(value)}, expected a number")
    if hint in (int, str, bool):
        if isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
            return value
        raise ContractError(path, f"is {_kind(value)}, expected {hint.__name__}")
    raise TypeError(f"the contract cannot read {hint!r}")  # a record declared with a type this reader lacks


def _cap(value: list[Any] | dict[str, Any], path: str, rules: dict[str, Any]) -> None:
    cap = rules.get("max_items")
    if cap is not None and len(value) > cap:
        raise ContractError(path, f"has {len(value)} entries, over the cap of {cap}")


def _each(item: Any, path: str, rules: dict[str, Any]) -> Any:
    if rules.get("each") is not None:
        reason = rules["each"](item)
        if reason:
            raise ContractError(path, reason)
    return item


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    return repr(value) if len(repr(value)) <= 100 else repr(value)[:100] + "..."


def _hint_name(hint: Any) -> str:
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _constructor_problem(value: dict[str, Any], nesting: int = 0) -> tuple[str, str] | None:
    """What is wrong with a constructor record ``{"args": [...], "kwargs": {...}}``, as (where in it, why); None if
    nothing. Its values are JSON values, or constructions (``CONSTRUCTION``) of the same form, ``MAX_NESTING`` deep."""
    if set(value) != {"args", "kwargs"}:
        return "", f"has the keys {sorted(value)}, expected args and kwargs"
    if not isinstance(value["args"], list):
        return ".args", f"is {_kind(value['args'])}, expected a list"
    if not isinstance(value["kwargs"], dict):
        return ".kwargs", f"is {_kind(value['kwargs'])}, expected an object"
    parts = [(f".args[{i}]", v) for i, v in enumerate(value["args"])]
    parts += [(f".kwargs[{k!r}]", v) for k, v in value["kwargs"].items()]
    for where, item in parts:
        problem = _argument_problem(item, nesting, 1)
        if problem:
            return where + problem[0], problem[1]
    return None


def _argument_problem(value: Any, nesting: int, depth: int) -> tuple[str, str] | None:
    """What is wrong with one recorded constructor argument, as ``_constructor_problem`` says it."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else ("", "is not a finite number")
    if depth > MAX_ARGUMENT_DEPTH:
        return "", f"nests lists or objects more than {MAX_ARGUMENT_DEPTH} deep"
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _argument_problem(item, nesting, depth + 1)
            if problem:
                return f"[{i}]{problem[0]}", problem[1]
        return None
    if not isinstance(value, dict):
        return "", f"is {_kind(value)}, expected a JSON value"
    if CONSTRUCTION not in value:
        for key, item in value.items():
            problem = ("", "has a key that is no str") if not isinstance(key, str) else _argument_problem(
                item, nesting, depth + 1)
            if problem:
                return f"[{key!r}]{problem[0]}", problem[1]
        return None
    if len(value) != 1:
        return "", f"holds {CONSTRUCTION!r} beside other keys (a construction is an object of that key alone)"
    where, built = f"[{CONSTRUCTION!r}]", value[CONSTRUCTION]
    if not isinstance(built, dict):
        return where, f"is {_kind(built)}, expected an object"
    if set(built) != {"class_name", "library", "args", "kwargs"}:
        return where, f"has the keys {sorted(built)}, expected class_name, library, args and kwargs"
    name, library = built["class_name"], built["library"]
    if not (isinstance(name, str) and name.isidentifier()):
        return f"{where}.class_name", f"is {_short(name)}, expected a class name"
    if library is not None and library not in CONSTRUCTION_LIBRARIES:
        return f"{where}.library", f"is {_short(library)}, expected null or one of {', '.join(CONSTRUCTION_LIBRARIES)}"
    if nesting + 1 >= MAX_NESTING:
        return where, f"nests constructions more than {MAX_NESTING} deep"
    problem = _constructor_problem({"args": built["args"], "kwargs": built["kwargs"]}, nesting + 1)
    return (where + problem[0], problem[1]) if problem else None


# --------------------------------------------------------------------------- run.json


@dataclass(frozen=True)
class CellErrorRecord(Record):
    """One error of run.json: where it happened and what was raised."""

    cell: int = field(metadata=_rule(_cell))
    """Code cell (0-based) that raised; -1 for a whole script or the notebook itself."""
    ename: str
    """The exception's class name."""
    evalue: str
    """The exception's message."""
    source_excerpt: str = ""
    """The first lines of the cell (``line N: ...`` for a script)."""
    traceback: str = ""
    """The end of the traceback, without colour codes."""


@dataclass(frozen=True)
class KernelDeath(Record):
    """How a notebook's kernel died during a cell."""

    cell: int = field(metadata=_rule(_cell))
    """The cell that was running."""
    message: str = ""
    """What a person reads: out of memory, killed by a signal..."""
    signal: str | None = None
    """The signal's name when one killed it (``SIGKILL``)."""


@dataclass(frozen=True)
class RunRecord(Record):
    """run.json: how the runner ran one notebook or script (rewritten after every cell)."""

    format: int
    """Version of the layout (``RUN_FORMAT``)."""
    source: str
    """The source run, relative to the workspace."""
    kind: Literal["notebook", "script"]
    """How it was run."""
    cells_total: int
    """Code cells of the notebook (1 for a script)."""
    cells_run: int
    """Code cells that finished."""
    errors: tuple[CellErrorRecord, ...]
    """Errors raised, in order."""
    cell_seconds: tuple[float, ...] = field(default=(), metadata=_rule(each=_finite))
    """Wall time of each finished cell."""
    timed_out_cell: int | None = None
    """The first cell interrupted for running past the cell timeout."""
    running_cell: int | None = None
    """The cell running when the record was last written (left when the sandbox killed the run)."""
    outputs_cut: tuple[int, ...] = ()
    """Cells whose kept output was cut short."""
    outputs_flooded: tuple[int, ...] = ()
    """Cells stopped for printing past the output limit."""
    kernel_died: KernelDeath | None = None
    """How the kernel died, when it did."""
    setup_error: str | None = None
    """Why the grader's own preparation (the hidden first cell, a script's bootstrap) failed."""
    probe_error: str | None = None
    """Why the probe failed (a harness fault)."""
    probe_skipped: str | None = None
    """Why the probe did not run (the run stopped first)."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (``kernel_start_s``, ``cells_s``, ``probe_s``, ``total_s``...)."""
    figure_cells: dict[str, int] = field(default_factory=dict, metadata=_rule(each=_cell))
    """The cell that showed each figure, by figure path (``figures/0.png``)."""
    missing_packages: tuple[str, ...] = field(default=(), metadata=_rule(max_items=MAX_MISSING_PACKAGES, each=lambda m: (
        None if _MODULE_NAME.fullmatch(m) and len(m) <= 100 else "is not a module name")))
    """Modules the code imported that this environment lacks (the environment's fault, not the student's)."""


# --------------------------------------------------------------------------- probe.json


@dataclass(frozen=True)
class BuiltAt(Record):
    """Where the student's code built a model instance."""

    file: str
    """The source file (relative to the workspace when inside it)."""
    line: int
    """The line."""
    function: str
    """The function that built it (``<module>`` at top level)."""
    label: str
    """How a person reads it: ``train.py line 12, in main``."""


@dataclass(frozen=True)
class ModuleEntry(Record):
    """One leaf module of a model, with its hyper-parameters."""

    path: str
    """Its dotted path in the model (``features.0``); empty for a model without children."""
    type: str
    """Its class name."""
    hyper: dict[str, Any]
    """Its hyper-parameters (``in_channels``, ``kernel_size``...), as recorded."""


@dataclass(frozen=True)
class LayerShape(Record):
    """One leaf module call during the dummy forward pass, with the shape it returned."""

    path: str
    """The module's dotted path."""
    type: str
    """The module's class name."""
    output_shape: tuple[int, ...] | None = field(default=None, metadata=_rule(_shape))
    """The output's shape; None when it was no tensor."""


@dataclass(frozen=True)
class TracedLayer(Record):
    """One step of a traced forward pass: a module call or a functional call (``F.relu``)."""

    type: str
    """The module class or function name."""
    hyper: dict[str, Any]
    """Its hyper-parameters."""
    path: str | None = None
    """The module's dotted path; None for a functional call."""
    function: str | None = None
    """The function called, for a functional call."""
    output_shape: tuple[int, ...] | None = field(default=None, metadata=_rule(_shape))
    """The output's shape; None when it was no tensor."""


@dataclass(frozen=True)
class Computation(Record):
    """A candidate's traced forward pass (``harness.probes.trace``)."""

    truncated: bool
    """The trace stopped at its cap."""
    problems: tuple[str, ...]
    """What the trace could not follow."""
    layers: tuple[TracedLayer, ...]
    """The steps, in order."""
    error: str | None = None
    """Why the forward pass failed."""


@dataclass(frozen=True)
class ModelRecord(Record):
    """One model candidate of probe.json: what the probe found about it (ARTIFACTS.md)."""

    id: str
    """Its id in this record (``m0``); names its files under ``models/``."""
    name: str
    """The name it was found under."""
    origin: Literal["instance", "class"]
    """A built model, or only a class the student defined."""
    probe_error: str | None = None
    """Inspecting it failed: then only ``id``, ``name`` and ``origin`` are recorded."""
    class_name: str | None = None
    """Its class's name (None only with ``probe_error``)."""
    construct_error: str | None = None
    """Why building an instance of a class failed."""
    forward_error: str | None = None
    """Why its dummy forward pass failed."""
    trainable_parameters: int | None = None
    """Parameters with ``requires_grad``."""
    total_parameters: int | None = None
    """All parameters."""
    bound: bool | None = None
    """Bound to a name of the namespace (False: a function's local the tracker kept)."""
    trained: bool | None = None
    """Whether it was trained; None when unknown."""
    trained_how: str | None = field(default=None, metadata=_rule(_optional(lambda how: (
        None if how in TRAINED_HOW else f"is {_short(how)}, expected one of {', '.join(TRAINED_HOW)}"))))
    """How ``trained`` is known (a ``TRAINED_HOW`` key)."""
    built_at: BuiltAt | None = None
    """Where the student's code built it."""
    constructor: dict[str, Any] | None = field(default=None, metadata=_rule(_optional(_constructor_problem)))
    """The arguments its class's constructor was called with, ``{"args": [...], "kwargs": {...}}``, when all were
    plain values or modules the student's code built the same way (``CONSTRUCTION``): what a second, clean process
    needs to build it again (``harness.checks.rebuild``)."""
    modules: tuple[ModuleEntry, ...] = ()
    """Its leaf modules."""
    layer_shapes: tuple[LayerShape, ...] = ()
    """Leaf module calls of the dummy forward pass."""
    computation: Computation | None = None
    """Its traced forward pass."""
    input_shape: tuple[int, ...] | None = field(default=None, metadata=_rule(_shape))
    """The dummy input shape that worked."""
    output_shape: tuple[int, ...] | None = field(default=None, metadata=_rule(_shape))
    """The output shape of the dummy forward pass."""
    state_dict: str | None = None
    """Its exported state_dict (a path in the artifacts folder)."""
    state_aliases: dict[str, str] = field(default_factory=dict)
    """State_dict entries that are another entry's tensor (tied weights), to the entry they repeat."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Its exported outputs on each dataset's evaluation images, by dataset (paths)."""
    inputs: dict[str, str] = field(default_factory=dict)
    """The preprocessed evaluation inputs those outputs came from, by dataset (paths)."""
    repr: str = ""
    """``repr(model)``, capped."""
    training_mode: bool | None = None
    """``model.training`` when the probe found it."""
    forward_order: tuple[Any, ...] = ()
    """Leaf modules in the order the forward pass called them."""
    buffers: dict[str, Any] = field(default_factory=dict)
    """Buffers, described."""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    """How the evaluation images were preprocessed, by dataset."""
    forward_attempts: tuple[dict[str, Any], ...] = ()
    """The dummy input shapes tried before one worked (or none did), with their errors."""
    probe_seconds: float | None = None
    """Seconds the probe spent on it."""

    def _problem(self) -> str | None:
        if self.probe_error is None and self.class_name is None:
            return "has no class_name (a candidate the probe inspected names its class)"
        return None


@dataclass(frozen=True)
class LossRecord(Record):
    """A loss module found in the namespace."""

    name: str
    """The name it is bound to."""
    type: str
    """Its class name (``CrossEntropyLoss``)."""


@dataclass(frozen=True)
class OptimizerRecord(Record):
    """An optimizer found in the namespace."""

    name: str
    """The name it is bound to."""
    type: str
    """Its class name (``Adam``)."""
    lr: float | None = None
    """Its first parameter group's learning rate."""
    parameters: int | None = None
    """Parameters it steps."""


@dataclass(frozen=True)
class CallRecord(Record):
    """A function the probe called on fixed inputs, and the number(s) it returned."""

    function: str | None = None
    """The name called; None when none of the names given was a function."""
    value: float | None = field(default=None, metadata=_rule(_optional(_finite)))
    """The first number returned."""
    values: tuple[float | None, ...] = field(default=(), metadata=_rule(
        max_items=MAX_CALL_VALUES, each=_optional(_finite)))
    """Every number returned (None for one that was not finite)."""
    error: str | None = None
    """Why the call failed."""
    result_type: str | None = None
    """The type of what it returned."""


@dataclass(frozen=True)
class ProbeRecord(Record):
    """probe.json: what the probe found in the namespace after the student's code ran (ARTIFACTS.md)."""

    format: int
    """Version of the layout (``PROBE_FORMAT``)."""
    models: tuple[ModelRecord, ...] = field(metadata=_rule(max_items=MAX_MODELS))
    """Model candidates, best first."""
    losses: tuple[LossRecord, ...]
    """Loss modules found."""
    optimizers: tuple[OptimizerRecord, ...]
    """Optimizers found."""
    figures: tuple[str, ...]
    """Figure files (``figures/0.png``) the run left."""
    namespace_errors: tuple[Any, ...]
    """What the probe could not read in the namespace."""
    torch_version: str | None = None
    """The torch version the run used."""
    task_values: dict[str, Any] | None = None
    """Recorded values by name: JSON as given, or ``{"tensor": path, "shape": [...]}`` for a big array."""
    calls: dict[str, CallRecord] = field(default_factory=dict, metadata=_rule(max_items=MAX_CALLS))
    """Call records by the rubric's id."""
    callables: tuple[str, ...] | None = field(default=None, metadata=_rule(max_items=MAX_CALLABLES))
    """Functions and classes of the student's code, by name; None in a record from before they were listed."""

    def model(self, model_id: str) -> ModelRecord | None:
        """The candidate of id ``model_id``, or None."""
        return next((m for m in self.models if m.id == model_id), None)


# --------------------------------------------------------------------------- runner-config.json


@dataclass(frozen=True)
class CallSpec(Record):
    """A function the rubric asks the probe to call on fixed inputs."""

    id: str
    """The rubric's id of the call (the key of probe.json's ``calls``)."""
    names: tuple[str, ...]
    """Names to try, in order: the first that is callable is called."""
    inputs: str = ""
    """The kind of fixed inputs ``harness.probes.fixed_inputs.build`` makes the arguments from."""


@dataclass(frozen=True)
class RunnerConfig(Record):
    """What the host tells the runner: what to run, the limits, the data, what the probe looks for."""

    format: int
    """Version of the layout (``CONFIG_FORMAT``)."""
    kind: Literal["notebook", "script"]
    """How to run the source."""
    source: str
    """The source, relative to the workspace."""
    workspace: str
    """The workspace folder, as the runner sees it."""
    datasets: tuple[str, ...] = ()
    """Datasets the source reads (the evaluation datasets included)."""
    prefer: tuple[str, ...] = ()
    """Model names the rubric prefers."""
    task_values: tuple[str, ...] = ()
    """Namespace names whose values the probe records."""
    calls: tuple[CallSpec, ...] = ()
    """Functions the probe calls after the run."""
    cell_timeout_s: float | None = 600.0
    """Seconds one cell (or a whole script) may run; None: no limit."""
    probe_timeout_s: float = 120.0
    """Seconds the probe may take."""
    step_timeout_s: float = 30.0
    """Seconds one probe step (one candidate, one call) may take."""
    probe_budget_s: float = 90.0
    """Seconds the probe plans to spend (below its timeout)."""
    threads: int = 1
    """CPU threads torch may use."""
    seed: int | None = None
    """The seed of ``random``, NumPy and torch before the student's first line; None: unseeded."""
    max_candidates: int = MAX_MODELS
    """Model candidates the probe inspects at most."""
    export_inputs: int = 1_000
    """Preprocessed evaluation images exported with each model."""
    output_bytes: int | None = None
    """Text a cell may print."""
    eval: dict[str, str] = field(default_factory=dict)
    """The evaluation images file of each dataset, as the runner sees it."""
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    """Dummy-batch shapes to try; None: by the datasets (``DEFAULT_INPUT_SHAPES``)."""
    data_root: str | None = None
    """The public data folder, as the runner sees it."""
    artifacts: str | None = None
    """The artifacts folder, as the runner sees it (the runner adds it from its ``--artifacts``)."""
    max_figures: int = 50
    """Figures the run may save."""
    max_eval_images: int = 20_000
    """Evaluation images the probe reads at most."""
    module_name: str | None = None
    """The module name the student's script runs under."""
    kernel_startup_timeout_s: float = 120.0
    """Seconds a notebook's kernel may take to start."""
    recovery_timeout_s: float = 15.0
    """Seconds a kernel gets to answer again after an interrupted cell."""
