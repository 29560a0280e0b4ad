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
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.architecture import layer_hyper
from harness.probes import fixed_inputs, tracking
from harness.probes.trace import trace_forward

FORMAT = 1
"""Version of the probe.json layout."""

MAX_CANDIDATES = 12
"""Model candidates recorded at most."""

MAX_REPR_CHARS = 20_000
"""The model's repr is cut here."""

MAX_HOOK_CALLS = 2_000
"""Leaf calls recorded on the dummy batch (a recurrent loop could call one layer very often)."""

MAX_CONTAINER_ITEMS = 64
"""Items looked at inside one dict, list or tuple of the namespace."""

MAX_JSON_ITEMS = 100
"""A list, array or dict task value with more items than this is not recorded as JSON."""

MAX_VALUE_ELEMENTS = 4_000_000
"""Elements of the largest array task value saved as a tensor file (values/<name>.pt)."""

MAX_CALL_VALUES = 10
"""Numbers recorded from a call's tuple or list result."""

MAX_CALLABLES = 200
"""Names of the student's functions and classes recorded at most."""

MAX_STATE_BYTES = 256 * 1024**2
"""A state_dict bigger than this is not exported."""

MAX_OUTPUT_BYTES = 64 * 1024**2
"""An outputs file bigger than this is not exported."""

EVAL_BATCH = 1_000
"""Evaluation images per forward pass."""

DEFAULT_INPUT_SHAPES = {"mnist": [[1, 28, 28], [784]], "fashionmnist": [[1, 28, 28], [784]], "signs": [[3, 64, 64]]}
"""Dummy-batch shapes (one example, no batch dimension) tried in order, per dataset."""

TORCHVISION_CLASSES = {"mnist": "MNIST", "fashionmnist": "FashionMNIST"}
"""The torchvision dataset class a student reads each dataset with."""

MNIST_MEAN_STD = (0.1307, 0.3081)
"""The usual MNIST normalisation, used when the student's own transform cannot be found."""

_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


@dataclass(frozen=True)
class _Torch:
    """The torch functions the probe calls, captured before the student's code can replace them."""

    save: Callable[..., Any] = torch.save
    zeros: Callable[..., Any] = torch.zeros
    randn: Callable[..., Any] = torch.randn
    from_numpy: Callable[..., Any] = torch.from_numpy
    cat: Callable[..., Any] = torch.cat
    stack: Callable[..., Any] = torch.stack
    is_tensor: Callable[..., Any] = torch.is_tensor
    numel: Callable[..., Any] = torch.Tensor.numel
    data_ptr: Callable[..., Any] = torch.Tensor.data_ptr
    inference_mode: Callable[..., Any] = torch.inference_mode
    no_grad: Callable[..., Any] = torch.no_grad
    generator: Callable[..., Any] = torch.Generator
    named_modules: Callable[..., Any] = nn.Module.named_modules
    named_parameters: Callable[..., Any] = nn.Module.named_parameters
    named_buffers: Callable[..., Any] = nn.Module.named_buffers
    children: Callable[..., Any] = nn.Module.children
    state_dict: Callable[..., Any] = nn.Module.state_dict
    train: Callable[..., Any] = nn.Module.train
    register_forward_hook: Callable[..., Any] = nn.Module.register_forward_hook
    module_call: Callable[..., Any] = nn.Module.__call__
    module_repr: Callable[..., Any] = nn.Module.__repr__
    tensor_type: type = torch.Tensor
    module_type: type = nn.Module
    loss_type: type = nn.modules.loss._Loss
    optimizer_type: type = torch.optim.Optimizer


_T = _Torch()


class ProbeTimeout(Exception):
    """One probe step (constructing a class, a forward pass) ran over its time limit."""


@dataclass
class _Found:
    """A model candidate before it is inspected."""

    name: str
    origin: str
    obj: Any
    rank: float
    order: int
    module: nn.Module | None = None
    top_level: bool = True
    """Bound to a name of the namespace itself (not found inside a dict, list or tuple)."""
    built: tracking.Built | None = None
    """Its construction record (site, trained), when it was built while the tracker watched."""
    bound: bool = True
    """Found in the namespace; False for a model only the construction tracker kept (a function's local)."""


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
    items = _namespace_items(namespace, errors)
    module_name = str(config.get("module_name") or namespace.get("__name__") or "__main__")

    record: dict[str, Any] = {
        "format": FORMAT,
        "torch_version": torch.__version__.split("+")[0],
        "models": [],
        "losses": _losses(items, errors),
        "optimizers": _optimizers(items, errors),
        "figures": [],
        "namespace_errors": errors,
        "task_values": _task_values(namespace, config.get("task_values", ()), artifacts, step_s, errors),
        "callables": _callables(items, module_name, config.get("workspace")),
        # Before the models: a call is quick, and a slow model inspection must not crowd it out.
        "calls": _calls(namespace, config.get("calls", ()), step_s, deadline, errors),
    }
    found = _find_candidates(items, namespace, config, errors, tracker)
    context = _EvalContext.build(items, config, errors)
    for index, candidate in enumerate(found):
        started = time.monotonic()
        if started > deadline:  # leave time to write what was found before the runner's probe timeout
            left = ", ".join(c.name for c in found[index:])
            errors.append(f"the probe ran out of time; not inspected: {left}"[:2_000])
            break
        try:
            entry = _inspect(candidate, f"m{index}", artifacts, config, context, step_s)
        except Exception as error:  # one hostile model must not cost the others
            entry = {"id": f"m{index}", "name": candidate.name, "origin": candidate.origin,
                     "probe_error": _one_line(error)}
            errors.append(f"{candidate.name}: inspecting it failed: {_one_line(error)}")
        entry["probe_seconds"] = round(time.monotonic() - started, 3)
        record["models"].append(entry)

    from harness.probes.figures import save_open_figures

    with contextlib.suppress(Exception):
        save_open_figures(artifacts / "figures")
    record["figures"] = _figures(artifacts / "figures", int(config.get("max_figures", 50)))
    _write_json(artifacts / "probe.json", record)
    return record


# --------------------------------------------------------------------------- namespace


def _namespace_items(namespace: dict[str, Any], errors: list[str]) -> list[tuple[str, Any]]:
    """The student's names and values, in definition order, without IPython's and the harness's own."""
    items = []
    for name, value in list(namespace.items()):
        if not isinstance(name, str) or _hidden_name(name):
            continue
        items.append((name, value))
    return items


def _hidden_name(name: str) -> bool:
    """IPython's history variables (``_``, ``_i3``, ``_5``, ``_oh``, ``Out``...), dunders and the harness's names."""
    if name in _IPYTHON_NAMES or name.startswith("__"):
        return True
    if name.startswith("_"):
        rest = name[1:]
        history = rest in ("", "i", "ii", "iii", "oh", "ih", "dh")
        return history or rest.isdigit() or (rest[:1] == "i" and rest[1:].isdigit())
    return False


def _safe_isinstance(value: Any, kind: type | tuple[type, ...]) -> bool:
    """isinstance that a hostile ``__class__`` cannot turn into an exception."""
    try:
        return isinstance(value, kind)
    except Exception:
        return False


def _expand(items: list[tuple[str, Any]], errors: list[str]) -> Iterator[tuple[str, Any, bool]]:
    """Every value and, one level deep, the items of dicts, lists and tuples: (name, value, top_level)."""
    for name, value in items:
        yield name, value, True
        try:
            if _safe_isinstance(value, dict):
                for count, (key, item) in enumerate(list(value.items())):
                    if count >= MAX_CONTAINER_ITEMS:
                        break
                    yield f"{name}[{key!r}]", item, False
            elif type(value) in (list, tuple):
                for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                    yield f"{name}[{index}]", item, False
        except Exception as error:
            errors.append(f"{name}: could not look inside it: {_one_line(error)}")


def _losses(items: list[tuple[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
    """nn loss instances in the namespace, with their type names."""
    found = []
    for name, value, _ in _expand(items, errors):
        if _safe_isinstance(value, _T.loss_type):
            found.append({"name": name, "type": type(value).__name__})
    return found[:MAX_CONTAINER_ITEMS]


def _optimizers(items: list[tuple[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
    """Optimizer instances: type, first learning rate, and how many parameters they update."""
    found = []
    for name, value, _ in _expand(items, errors):
        if not _safe_isinstance(value, _T.optimizer_type):
            continue
        entry: dict[str, Any] = {"name": name, "type": type(value).__name__, "lr": None, "parameters": None}
        try:
            groups = value.param_groups
            lr = groups[0].get("lr") if groups else None
            entry["lr"] = _json_number(lr)
            entry["parameters"] = int(sum(p.numel() for g in groups for p in g["params"]))
        except Exception as error:
            errors.append(f"{name}: could not read the optimizer's parameter groups: {_one_line(error)}")
        found.append(entry)
    return found[:MAX_CONTAINER_ITEMS]


def _task_values(
    namespace: dict[str, Any], names: Any, artifacts: Path, step_s: float, errors: list[str]
) -> dict[str, Any]:
    """Values a rubric asks for by name (ARTIFACTS.md).

    JSON scalars, short lists (tensors and arrays of at most ``MAX_JSON_ITEMS`` elements
    included) and small dicts are recorded inline; bigger numeric arrays, tensors and lists
    of numbers or tensors are saved as float32 tensors in ``values/<name>.pt`` and recorded as
    ``{"tensor": path, "shape": [...]}``.
    """
    values: dict[str, Any] = {}
    files: set[str] = set()
    try:
        wanted = [str(name) for name in list(names)[:MAX_CONTAINER_ITEMS]]
    except Exception:
        wanted = []
    for name in wanted:
        if name not in namespace:
            continue
        try:
            with _time_limit(step_s):
                values[name] = _task_value(name, namespace[name], artifacts, files)
        except _NotRecorded as reason:
            errors.append(f"{name}: {reason}")
        except Exception as error:
            errors.append(f"{name}: could not be read as a task value: {_one_line(error)}")
    return values


class _NotRecorded(Exception):
    """A task value the probe leaves out on purpose (too big); the message says why."""


def _task_value(name: str, value: Any, artifacts: Path, files: set[str]) -> Any:
    """One task value as recorded in probe.json (a tensor file is written for a big array)."""
    if _safe_isinstance(value, dict):
        if len(value) > MAX_JSON_ITEMS:
            raise _NotRecorded(f"a dict of {len(value):,} items; task values take at most {MAX_JSON_ITEMS}")
        return {_cap(str(key), 200): _json_item(item) for key, item in list(value.items())}
    tensor = _numeric(value)
    if tensor is None:
        return _json_value(value)
    if _T.numel(tensor) <= MAX_JSON_ITEMS and tensor.dim() <= 2:
        return _json_value(tensor.tolist())
    if tensor.is_complex():
        raise _NotRecorded("holds complex numbers; task values are real")
    stem = re.sub(r"[^A-Za-z0-9_]", "_", name)[:100] or "value"
    relative = f"values/{stem}.pt"
    count = 1
    while relative in files:
        count += 1
        relative = f"values/{stem}_{count}.pt"
    files.add(relative)
    (artifacts / "values").mkdir(parents=True, exist_ok=True)
    data = tensor.to(torch.float32).contiguous().clone()
    _T.save(data, artifacts / relative)
    return {"tensor": relative, "shape": list(data.shape)}


def _numeric(value: Any) -> torch.Tensor | None:
    """A detached cpu tensor of a numeric tensor, array, or list/tuple of numbers or tensors; None otherwise.

    Raises _NotRecorded for one with more than ``MAX_VALUE_ELEMENTS`` elements (checked before copying).
    """
    if _safe_isinstance(value, _T.tensor_type):
        _check_size(_T.numel(value))
        return value.detach().to("cpu").as_subclass(_T.tensor_type)
    if _safe_isinstance(value, (np.ndarray, np.generic)):
        _check_size(int(np.size(value)))
        array = np.asarray(value)
        return _T.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind in "biufc" else None
    if type(value) not in (list, tuple) or not value:
        return None
    _check_size(len(value))
    if all(_safe_isinstance(item, _T.tensor_type) for item in value):
        _check_size(sum(_T.numel(item) for item in value))
        return _T.stack([item.detach().to("cpu", torch.float32) for item in value])
    if not all(type(item) in (int, float, bool, list, tuple) or _safe_isinstance(item, np.generic) for item in value):
        return None
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        return None
    _check_size(array.size)
    return _T.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind in "biuf" else None


def _check_size(elements: int) -> None:
    if elements > MAX_VALUE_ELEMENTS:
        raise _NotRecorded(f"has {elements:,} elements; task values are cut at {MAX_VALUE_ELEMENTS:,}")


def _json_item(value: Any) -> Any:
    """A dict task value's item: JSON as ``_json_value`` makes it, small tensors and arrays as lists."""
    try:
        tensor = _numeric(value)
    except _NotRecorded:
        tensor = None
    if tensor is not None and _T.numel(tensor) <= MAX_JSON_ITEMS and tensor.dim() <= 2:
        return _json_value(tensor.tolist())
    if tensor is not None:
        return f"<{type(value).__name__} of shape {list(tensor.shape)}: too big for a dict task value>"
    return _json_value(value)


def _callables(items: list[tuple[str, Any]], module_name: str, workspace: str | None) -> list[str]:
    """Sorted namespace names bound to functions and classes the student defined (not imported ones)."""
    names = []
    for name, value in items:
        try:
            if not (_safe_isinstance(value, type) or _safe_isinstance(value, types.FunctionType)):
                continue
            if _defined_by_student(value, module_name, workspace):
                names.append(name)
        except Exception:
            continue
    return sorted(names)[:MAX_CALLABLES]


# --------------------------------------------------------------------------- calls


def _calls(
    namespace: dict[str, Any], specs: Any, step_s: float, deadline: float, errors: list[str]
) -> dict[str, dict[str, Any]]:
    """Call the functions a rubric names on fixed inputs (``fixed_inputs.build``); one record per call id."""
    results: dict[str, dict[str, Any]] = {}
    try:
        specs = list(specs)[:MAX_CONTAINER_ITEMS]
    except Exception:
        specs = []
    for spec in specs:
        try:
            call_id = str(spec["id"])
            names = [str(name) for name in spec.get("names", ())]
            kind = str(spec.get("inputs", ""))
        except Exception as error:
            errors.append(f"a call in the probe's configuration is malformed: {_one_line(error)}")
            continue
        results[call_id] = _call(namespace, names, kind, step_s, deadline)
    return results


def _call(namespace: dict[str, Any], names: list[str], kind: str, step_s: float, deadline: float) -> dict[str, Any]:
    """Try the named callables in order; the first call that returns a number wins, else the first one's error."""
    present = [(name, namespace[name]) for name in names if name in namespace]
    functions = [(name, value) for name, value in present if _is_function(value)]
    if not functions:
        listed = ", ".join(names)
        if not present:
            error = f"none of {listed} is defined"
        else:
            kinds = ", ".join(f"{name} is a {_type_name(value)}" for name, value in present)
            error = f"none of {listed} is a function ({kinds})"
        return {"function": None, "value": None, "values": [], "error": _cap(error, 2_000)}
    first = None
    for name, function in functions:
        left = deadline - time.monotonic()
        if left <= 0:
            outcome = {"function": name, "value": None, "values": [], "error": "the probe ran out of time before "
                       "calling it"}
        else:
            outcome = {"function": name, **_call_one(function, kind, min(step_s, left))}
        if outcome["error"] is None:
            return outcome
        first = first or outcome
    assert first is not None
    return first


def _is_function(value: Any) -> bool:
    """Callable and not a class (calling a class builds an object, not a result)."""
    try:
        return callable(value) and not _safe_isinstance(value, type)
    except Exception:
        return False


def _type_name(value: Any) -> str:
    try:
        return _cap(type(value).__name__, 100)
    except Exception:
        return "object"


def _call_one(function: Any, kind: str, limit: float) -> dict[str, Any]:
    """Call ``function`` on fresh fixed inputs without gradients, under ``limit`` seconds; read the numbers back."""
    record: dict[str, Any] = {"value": None, "values": [], "error": None}
    try:
        arguments = fixed_inputs.build(kind)
    except Exception as error:
        record["error"] = _one_line(error)
        return record
    try:
        with _time_limit(limit), _T.no_grad():
            result = function(*arguments)
            record["result_type"] = _type_name(result)
            numbers = _result_numbers(result)
    except (Exception, SystemExit) as error:
        record["error"] = _one_line(error)
        return record
    record["values"] = [_json_number(n) for n in numbers]
    record["value"] = record["values"][0]
    if record["value"] is None:
        record["error"] = f"ValueError: the result is {numbers[0]}, not a finite number"
    return record


def _result_numbers(result: Any) -> list[float]:
    """The number a call returned, or the numbers in its tuple/list result (at most ``MAX_CALL_VALUES``)."""
    if _safe_isinstance(result, (tuple, list)):
        numbers = []
        for item in itertools.islice(iter(result), MAX_JSON_ITEMS):
            number = _single_number(item)
            if number is not None:
                numbers.append(number)
                if len(numbers) == MAX_CALL_VALUES:
                    break
        if not numbers:
            raise TypeError(f"the result is a {_type_name(result)} with no single number in it")
        return numbers
    number = _single_number(result)
    if number is None:
        if _safe_isinstance(result, _T.tensor_type):
            raise TypeError(f"the result is a tensor of shape {list(result.shape)}, not a single number")
        raise TypeError(f"the result is a {_type_name(result)}, not a number")
    return [number]


def _single_number(value: Any) -> float | None:
    """A one-element real tensor or a real number as a float; None for anything else."""
    if _safe_isinstance(value, _T.tensor_type):
        if _T.numel(value) != 1 or value.is_complex():
            return None
        return float(value.detach().to("cpu", torch.float64).reshape(-1)[0].item())
    if type(value) in (int, float) or _safe_isinstance(value, (np.integer, np.floating)):
        return float(value)
    return None


# --------------------------------------------------------------------------- candidates


def _find_candidates(
    items: list[tuple[str, Any]],
    namespace: dict[str, Any],
    config: dict[str, Any],
    errors: list[str],
    tracker: tracking.Tracker | None = None,
) -> list[_Found]:
    """Instances (preferred names first), models only the tracker kept (trained first), then student-defined
    classes without an instance; at most the cap."""
    prefer = [str(p) for p in config.get("prefer", ())]

    def rank(name: str, class_name: str) -> float:
        if name in prefer:
            return prefer.index(name)
        if class_name in prefer:
            return prefer.index(class_name) + 0.5
        return len(prefer) + 1

    instances: list[_Found] = []
    seen: set[int] = set()
    for order, (name, value, top) in enumerate(_expand(items, errors)):
        if not _safe_isinstance(value, _T.module_type) or _safe_isinstance(value, _T.loss_type):
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if not _has_parameters(value):
            continue
        instances.append(
            _Found(name, "instance", value, rank(name, type(value).__name__), order, module=value, top_level=top)
        )

    # A submodule of another candidate is part of it, unless the student bound it to a name of its own.
    inside: dict[int, str] = {}
    for found in instances:
        try:
            for path, sub in _T.named_modules(found.obj):
                if path:
                    inside.setdefault(id(sub), found.name)
        except Exception as error:
            errors.append(f"{found.name}: could not list its modules: {_one_line(error)}")
    instances = [f for f in instances if f.top_level or id(f.obj) not in inside]
    instances += _unbound_models(instances, set(inside), tracker, config.get("workspace"), rank, errors)

    instance_types = {type(f.obj) for f in instances}
    for found in instances:
        with contextlib.suppress(Exception):
            instance_types.update(type(sub) for _, sub in _T.named_modules(found.obj))

    module_name = str(config.get("module_name") or namespace.get("__name__") or "__main__")
    workspace = config.get("workspace")
    classes = []
    for order, (name, value) in enumerate(items):
        if not _safe_isinstance(value, type) or value in instance_types:
            continue
        try:
            if not issubclass(value, _T.module_type) or issubclass(value, _T.loss_type):
                continue
        except Exception:
            continue
        if not _defined_by_student(value, module_name, workspace):
            continue
        classes.append(_Found(value.__name__, "class", value, rank(name, value.__name__), order))

    ordered = sorted(instances, key=lambda f: (f.rank, f.order)) + sorted(classes, key=lambda f: (f.rank, f.order))
    # Preferred names lead even when they are only classes.
    ordered.sort(key=lambda f: (f.rank >= len(prefer) + 1, f.origin != "instance"))
    cap = int(config.get("max_candidates", MAX_CANDIDATES))
    if len(ordered) > cap:
        skipped = ", ".join(f.name for f in ordered[cap:])
        errors.append(f"more than {cap} models were found; not inspected: {skipped}"[:2000])
    return ordered[:cap]


def _unbound_models(
    instances: list[_Found],
    inside: set[int],
    tracker: tracking.Tracker | None,
    workspace: str | None,
    rank: Callable[[str, str], float],
    errors: list[str],
) -> list[_Found]:
    """Models the student's code built that no name of the namespace holds (a function's locals), trained first.

    Also attaches its construction record to each namespace instance the tracker saw being built.
    """
    if tracker is None:
        return []
    records: dict[int, tracking.Built] = {}
    for built in tracker.built:
        model = built.module
        if model is not None:
            records.setdefault(id(model), built)
    for found in instances:
        found.built = records.get(id(found.obj))
    known = {id(f.obj) for f in instances} | inside
    unbound = []
    for built in tracker.built:
        model = built.module
        if model is None or id(model) in known or _safe_isinstance(model, _T.loss_type) or not _has_parameters(model):
            continue
        known.add(id(model))
        unbound.append(built)
    parts: set[int] = set()
    for built in unbound:
        try:
            parts.update(id(sub) for path, sub in _T.named_modules(built.module) if path)
        except Exception as error:
            errors.append(f"{built.label(workspace)}: could not list its modules: {_one_line(error)}")
    trained = {id(b): b.trained() for b in unbound}
    unbound = [b for b in unbound if id(b.module) not in parts]
    unbound.sort(key=lambda b: (trained[id(b)][0] is not True, b.order))
    names = {f.name for f in instances}
    found = []
    for position, built in enumerate(unbound):
        variable = built.variable()
        name = variable or f"{built.class_name}()"
        if name in names:
            where = "at top level" if built.function == "<module>" else f"in {built.function}()"
            name = f"{name} {where}, {built.site(workspace)}"
        names.add(name)
        module = built.module
        found.append(_Found(name, "instance", module, rank(name, built.class_name), 10_000 + position, module=module,
                            built=built, bound=False))
    return found


def _has_parameters(module: nn.Module) -> bool:
    """True for a module with parameters or children (a lone ReLU or Flatten is no model)."""
    try:
        return any(True for _ in _T.named_parameters(module)) or any(True for _ in _T.children(module))
    except Exception:
        return True


def _defined_by_student(cls: Any, module_name: str, workspace: str | None) -> bool:
    """A class (or function) from the notebook or script itself, or from a module file inside the submission."""
    owner = getattr(cls, "__module__", None)
    if owner == module_name or owner == "__main__":
        return True
    if not workspace or not owner:
        return False
    source = getattr(sys.modules.get(owner), "__file__", None)
    if not source:
        return False
    try:
        return Path(source).resolve().is_relative_to(Path(workspace).resolve())
    except Exception:
        return False


# --------------------------------------------------------------------------- one candidate


def _inspect(
    found: _Found, model_id: str, artifacts: Path, config: dict[str, Any], context: _EvalContext, step_s: float
) -> dict[str, Any]:
    """Everything ARTIFACTS.md records for one candidate; exports its tensors."""
    entry: dict[str, Any] = {
        "id": model_id,
        "name": found.name,
        "origin": found.origin,
        "class_name": found.obj.__name__ if found.origin == "class" else type(found.obj).__name__,
        "construct_error": None,
        "repr": "",
        "training_mode": None,
        "modules": [],
        "forward_order": [],
        "layer_shapes": [],
        "computation": None,
        "input_shape": None,
        "output_shape": None,
        "forward_error": None,
        "trainable_parameters": None,
        "total_parameters": None,
        "buffers": {},
        "state_dict": None,
        "outputs": {},
        "inputs": {},
        "preprocessing": {},
        "bound": found.bound,
        "trained": None,
        "trained_how": None,
        "built_at": None,
    }
    if found.origin == "instance":
        _construction(found, entry, config.get("workspace"))
    model = found.module
    if found.origin == "class":
        try:
            with _time_limit(step_s):
                model = found.obj()
        except Exception as error:
            entry["construct_error"] = _one_line(error)
            return entry
        if not _safe_isinstance(model, _T.module_type):
            entry["construct_error"] = f"TypeError: {found.obj.__name__}() did not return an nn.Module"
            return entry
    assert model is not None

    with contextlib.suppress(Exception):
        entry["repr"] = _cap(str(_T.module_repr(model)), MAX_REPR_CHARS)
    entry["training_mode"] = bool(getattr(model, "training", False))
    entry["modules"] = _leaf_modules(model)
    parameters = dict(_T.named_parameters(model))
    entry["total_parameters"] = int(sum(_T.numel(p) for p in parameters.values()))
    entry["trainable_parameters"] = int(sum(_T.numel(p) for p in parameters.values() if p.requires_grad))
    entry["buffers"] = {name: list(b.shape) for name, b in _T.named_buffers(model) if b is not None}

    device, dtype = _device_dtype(model)
    shapes = _input_shapes(config)
    with _eval_mode(model):
        attempts = []
        for shape in shapes:
            attempt = _dummy_forward(model, [2, *shape], device, dtype, step_s)
            attempts.append(attempt)
            if attempt["error"] is None:
                break
        good = next((a for a in attempts if a["error"] is None), None)
        shown = good or (attempts[0] if attempts else None)
        if shown is not None:
            entry["forward_order"] = shown["order"]
            entry["layer_shapes"] = shown["shapes"]
            entry["computation"] = shown["computation"]
        if good is not None:
            entry["input_shape"] = good["input_shape"]
            entry["output_shape"] = good["output_shape"]
        elif attempts:
            entry["forward_error"] = attempts[0]["error"]
            if len(attempts) > 1:
                entry["forward_attempts"] = [{"input_shape": a["input_shape"], "error": a["error"]} for a in attempts]

        if found.origin == "instance":
            folder = artifacts / "models" / model_id
            aliases: dict[str, str] = {}
            entry["state_dict"] = _export_state(model, folder, artifacts, found.name, context.errors, aliases)
            entry["state_aliases"] = aliases
            if good is not None:
                for dataset in context.datasets:
                    _export_outputs(model, dataset, good["input_shape"], device, dtype, folder, artifacts, context,
                                    entry, step_s)
    return entry


def _construction(found: _Found, entry: dict[str, Any], workspace: str | None) -> None:
    """Fill ``trained``, ``trained_how`` and ``built_at`` from the candidate's construction record."""
    built = found.built
    if built is None:
        entry["trained"], entry["trained_how"] = None, "unknown"
        return
    entry["trained"], entry["trained_how"] = built.trained()
    entry["built_at"] = {
        "file": _cap(built.source(workspace), 500),
        "line": int(built.line),
        "function": _cap(built.function, 200),
        "label": _cap(built.label(workspace), 700),
    }
    if built.arguments is not None:  # what a second, clean process needs to build it again (harness.checks.rebuild)
        entry["constructor"] = built.arguments


def _leaf_modules(model: nn.Module) -> list[dict[str, Any]]:
    """Every leaf module in registration order with its hyperparameters (as harness.architecture records them)."""
    layers = []
    for path, module in _T.named_modules(model):
        if path and next(iter(_T.children(module)), None) is None:
            layers.append({"path": path, "type": type(module).__name__, "hyper": _hyper(module)})
    if not layers and next(iter(_T.children(model)), None) is None:
        layers.append({"path": "", "type": type(model).__name__, "hyper": _hyper(model)})
    return layers[:MAX_HOOK_CALLS]


def _hyper(module: nn.Module) -> dict[str, Any]:
    try:
        return layer_hyper(module)
    except Exception as error:
        return {"error": _one_line(error)}


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters live and their floating type (cpu/float32 when it has none)."""
    for _, parameter in _T.named_parameters(model):
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.float32


def _input_shapes(config: dict[str, Any]) -> list[list[int]]:
    """The dummy example shapes to try: configured, else by the run's first dataset."""
    shapes = config.get("input_shapes")
    if shapes:
        return [list(map(int, s)) for s in shapes]
    for dataset in config.get("datasets", ()):
        if dataset in DEFAULT_INPUT_SHAPES:
            return DEFAULT_INPUT_SHAPES[dataset]
    return DEFAULT_INPUT_SHAPES["mnist"]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode for the probe's forward passes; the model's own modes are restored afterwards."""
    modes = [(m, m.training) for _, m in _T.named_modules(model)]
    _T.train(model, False)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def _dummy_forward(
    model: nn.Module, shape: list[int], device: torch.device, dtype: torch.dtype, step_s: float
) -> dict[str, Any]:
    """Run a seeded random batch through the model with hooks on every leaf; record call order and shapes."""
    calls: list[dict[str, Any]] = []
    handles = []
    for path, module in _T.named_modules(model):
        if next(iter(_T.children(module)), None) is not None:
            continue

        def hook(mod: nn.Module, args: Any, output: Any, path: str = path) -> None:
            if len(calls) < MAX_HOOK_CALLS:
                calls.append({"path": path, "type": type(mod).__name__, "output_shape": _shape_of(output)})

        handles.append(_T.register_forward_hook(module, hook))
    generator = _T.generator().manual_seed(0)
    result: dict[str, Any] = {"input_shape": shape, "error": None, "output_shape": None, "computation": None}
    outputs: list[Any] = []

    def forward(module: nn.Module, batch: torch.Tensor) -> None:
        outputs.append(_T.module_call(module, batch))

    try:
        batch = _T.randn(*shape, generator=generator).to(device=device, dtype=dtype)
        with _time_limit(step_s), _T.inference_mode():
            # the same pass is traced: functional calls (F.relu, F.max_pool2d, x.view) become layers too
            traced = trace_forward(model, batch, call=forward)
        result["computation"] = traced
        if traced["error"] is not None:
            result["error"] = traced["error"]
        elif outputs:
            result["output_shape"] = _shape_of(outputs[0])
    except Exception as error:
        result["error"] = _one_line(error)
    finally:
        for handle in handles:
            handle.remove()
    result["order"] = [c["path"] for c in calls]
    result["shapes"] = calls
    return result


def _shape_of(value: Any) -> list[int] | None:
    """The shape of a tensor, or of the first tensor in a tuple/list output; None otherwise."""
    if _safe_isinstance(value, _T.tensor_type):
        return list(value.shape)
    if type(value) in (tuple, list) and value:
        return _shape_of(value[0])
    return None


def _first_tensor(value: Any) -> torch.Tensor | None:
    if _safe_isinstance(value, _T.tensor_type):
        return value
    if type(value) in (tuple, list) and value:
        return _first_tensor(value[0])
    return None


def _export_state(
    model: nn.Module, folder: Path, artifacts: Path, name: str, errors: list[str], aliases: dict[str, str]
) -> str | None:
    """Save the state_dict as plain cpu tensors (copies, so no shared storage drags more along).

    Entries that are the same tensor as an earlier one (tied weights) are noted in ``aliases``
    (key -> the earlier key): the copies no longer share, and the host must not count them twice.
    """
    try:
        state = {}
        first: dict[tuple[Any, ...], str] = {}
        for key, value in _T.state_dict(model).items():
            if _safe_isinstance(value, _T.tensor_type) and value.layout == torch.strided:
                where = (_T.data_ptr(value), tuple(value.shape), tuple(value.stride()), value.dtype)
                if where[0] and where in first:
                    aliases[str(key)] = first[where]
                else:
                    first[where] = str(key)
                state[str(key)] = value.detach().to("cpu").clone().as_subclass(_T.tensor_type)
        size = sum(_T.numel(t) * t.element_size() for t in state.values())
        if size > MAX_STATE_BYTES:
            errors.append(f"{name}: its weights take {size:,} bytes, over the {MAX_STATE_BYTES:,} export cap")
            return None
        folder.mkdir(parents=True, exist_ok=True)
        _T.save(state, folder / "state_dict.pt")
        return (folder / "state_dict.pt").relative_to(artifacts).as_posix()
    except Exception as error:
        errors.append(f"{name}: exporting its weights failed: {_one_line(error)}")
        return None


def _export_outputs(
    model: nn.Module,
    dataset: str,
    input_shape: list[int],
    device: torch.device,
    dtype: torch.dtype,
    folder: Path,
    artifacts: Path,
    context: _EvalContext,
    entry: dict[str, Any],
    step_s: float,
) -> None:
    """Run the evaluation images through the model in batches; save raw outputs (N, C) and the first inputs."""
    try:
        inputs, how = context.inputs(dataset)
    except Exception as error:
        context.errors.append(f"{dataset}: preparing the evaluation images failed: {_one_line(error)}")
        return
    entry["preprocessing"][dataset] = how
    example = int(np.prod(input_shape[1:]))
    if len(inputs) == 0 or inputs[0].numel() != example:
        values = inputs[0].numel() if len(inputs) else 0
        entry.setdefault("output_errors", {})[dataset] = (
            f"the evaluation images have {values} values each after preprocessing; "
            f"the model takes {example}"
        )
        return
    batch_shape = [-1, *input_shape[1:]]
    chunks = []
    try:
        with _time_limit(max(step_s, 0.001 * len(inputs) + step_s)), _T.inference_mode():
            for start in range(0, len(inputs), EVAL_BATCH):
                batch = inputs[start : start + EVAL_BATCH].reshape(batch_shape).to(device=device, dtype=dtype)
                output = _first_tensor(_T.module_call(model, batch))
                if output is None:
                    raise TypeError("the model's forward returned no tensor")
                chunks.append(output.detach().to("cpu", torch.float32).reshape(len(batch), -1))
        outputs = _T.cat(chunks)  # (N, C)
    except Exception as error:
        entry.setdefault("output_errors", {})[dataset] = _one_line(error)
        return
    if outputs.numel() * 4 > MAX_OUTPUT_BYTES:
        size = outputs.numel() * 4
        entry.setdefault("output_errors", {})[dataset] = f"outputs of {size:,} bytes are over the export cap"
        return
    folder.mkdir(parents=True, exist_ok=True)
    _T.save(outputs.contiguous().clone(), folder / f"outputs-{dataset}.pt")
    entry["outputs"][dataset] = f"{folder.relative_to(artifacts).as_posix()}/outputs-{dataset}.pt"
    keep = context.export_inputs
    if keep > 0:
        sample = inputs[:keep].reshape(batch_shape).to(torch.float32).contiguous().clone()
        _T.save(sample, folder / f"inputs-{dataset}.pt")
        entry["inputs"][dataset] = f"{folder.relative_to(artifacts).as_posix()}/inputs-{dataset}.pt"


# --------------------------------------------------------------------------- evaluation inputs


@dataclass
class _EvalContext:
    """The evaluation images per dataset, preprocessed once as the student's test data was."""

    datasets: list[str]
    paths: dict[str, str]
    items: list[tuple[str, Any]]
    errors: list[str]
    max_images: int
    export_inputs: int
    cache: dict[str, tuple[torch.Tensor, str]] = field(default_factory=dict)

    @classmethod
    def build(cls, items: list[tuple[str, Any]], config: dict[str, Any], errors: list[str]) -> _EvalContext:
        paths = {str(k): str(v) for k, v in (config.get("eval") or {}).items()}
        return cls(
            datasets=list(paths),
            paths=paths,
            items=items,
            errors=errors,
            max_images=int(config.get("max_eval_images", 20_000)),
            export_inputs=int(config.get("export_inputs", 1_000)),
        )

    def inputs(self, dataset: str) -> tuple[torch.Tensor, str]:
        """Preprocessed images (N, ...) and a description of the preprocessing."""
        if dataset not in self.cache:
            images = np.load(self.paths[dataset], mmap_mode="r", allow_pickle=False)[: self.max_images]
            images = np.ascontiguousarray(images, dtype=np.uint8)
            self.cache[dataset] = _preprocess(images, dataset, self.items, self.errors)
        return self.cache[dataset]


def _preprocess(
    images: np.ndarray, dataset: str, items: list[tuple[str, Any]], errors: list[str]
) -> tuple[torch.Tensor, str]:
    """Apply the student's own test transform (found in the namespace) to each image, else the default."""
    transform, where = _student_transform(items, dataset, errors)
    if transform is not None:
        try:
            from PIL import Image

            mode = "L" if images.ndim == 3 else "RGB"
            tensors = [transform(Image.fromarray(image, mode=mode)) for image in images]
            if not all(_safe_isinstance(t, _T.tensor_type) for t in tensors):
                raise TypeError("the transform does not return tensors")
            stacked = _T.stack([t.to(torch.float32) for t in tensors])  # (N, 1, 28, 28) for MNIST
            return stacked, f"student transform ({where}): {_cap(_describe_transform(transform), 500)}"
        except Exception as error:
            errors.append(f"{dataset}: the transform from {where} failed on the evaluation images "
                          f"({_one_line(error)}); the default preprocessing was used")
    return _default_preprocess(images, dataset)


def _default_preprocess(images: np.ndarray, dataset: str) -> tuple[torch.Tensor, str]:
    """The assignments' usual preprocessing: MNIST ToTensor + Normalize, FashionMNIST ToTensor, SIGNS /255 as NCHW."""
    scaled = _T.from_numpy(images.astype(np.float32) / 255.0)
    if dataset == "signs" or images.ndim == 4:
        return scaled.permute(0, 3, 1, 2).contiguous(), "default: x / 255, as (N, 3, 64, 64)"  # (N, 3, 64, 64)
    scaled = scaled.unsqueeze(1)  # (N, 1, 28, 28)
    if dataset == "mnist":
        mean, std = MNIST_MEAN_STD
        return (scaled - mean) / std, f"default: ToTensor(), Normalize(({mean},), ({std},))"
    return scaled, "default: ToTensor()"


def _student_transform(items: list[tuple[str, Any]], dataset: str, errors: list[str]) -> tuple[Any, str]:
    """The transform of the student's test dataset (else train dataset), else a Compose named like a transform."""
    class_name = TORCHVISION_CLASSES.get(dataset)
    if class_name and "torchvision" in sys.modules:
        test, train = None, None
        for name, value, _ in _expand(items, errors):
            dataset_obj = _unwrap_dataset(value)
            if dataset_obj is None or type(dataset_obj).__name__ != class_name:
                continue
            transform = getattr(dataset_obj, "transform", None)
            if transform is None:
                continue
            if getattr(dataset_obj, "train", True) is False:
                test = test or (transform, name)
            else:
                train = train or (transform, name)
        chosen = test or train
        if chosen is not None:
            return chosen[0], f"`{chosen[1]}`"
    compose = None
    if "torchvision.transforms" in sys.modules:
        compose = getattr(sys.modules["torchvision.transforms"], "Compose", None)
    named = [
        (n, v) for n, v in items if "transform" in n.lower() and compose is not None and _safe_isinstance(v, compose)
    ]
    named.sort(key=lambda nv: "test" not in nv[0].lower())
    if named:
        return named[0][1], f"`{named[0][0]}`"
    return None, ""


def _unwrap_dataset(value: Any) -> Any:
    """The torchvision dataset behind a dataset, Subset or DataLoader value; None if there is none."""
    for _ in range(3):
        module = type(value).__module__ or ""
        if module.startswith("torchvision.datasets"):
            return value
        inner = None
        if module.startswith("torch.utils.data"):
            inner = getattr(value, "dataset", None)
        if inner is None:
            return None
        value = inner
    return None


def _describe_transform(transform: Any) -> str:
    try:
        return " ".join(repr(transform).split())
    except Exception:
        return type(transform).__name__


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise ProbeTimeout in the main thread after ``seconds``; no limit off the main thread."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ProbeTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _figures(folder: Path, limit: int) -> list[str]:
    """Relative paths of the saved figures, in number order."""
    if not folder.is_dir():
        return []
    numbered = sorted((int(p.stem), p) for p in folder.glob("*.png") if p.stem.isdigit() and p.stat().st_size > 0)
    return [f"figures/{p.name}" for _, p in numbered[:limit]]


def _one_line(error: BaseException) -> str:
    """``TypeError: message``, cut to a readable length."""
    return _cap(f"{type(error).__name__}: {error}", 2_000)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ... [cut]"


def _json_number(value: Any) -> float | int | None:
    if type(value) is bool or value is None:
        return None
    try:
        number = float(value)
    except Exception:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if type(value) is int or _safe_isinstance(value, np.integer) else number


def _json_value(value: Any, depth: int = 0) -> Any:
    """A JSON scalar or short list of them; anything else becomes its (capped) text."""
    if value is None or type(value) is bool:
        return value
    if type(value) is str:
        return _cap(value, 2_000)
    if type(value) in (int, float) or _safe_isinstance(value, (np.integer, np.floating)):
        return _json_number(value)
    if type(value) in (list, tuple) and depth < 2 and len(value) <= 100:
        return [_json_value(v, depth + 1) for v in value]
    return _cap(str(value), 2_000)


def _write_json(path: Path, record: dict[str, Any]) -> None:
    """Write JSON atomically, so a killed probe leaves no half-written file."""
    temporary = path.with_suffix(".json.partial")
    temporary.write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    os.replace(temporary, path)
