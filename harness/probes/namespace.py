"""Read the student's namespace after their code ran (runs in the sandbox): the names and values in it,
the losses and optimizers, and the values a rubric asks for by name (``task_values``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.probes.capture import TORCH, cap_text, json_number, json_value, one_line, safe_isinstance, time_limit

MAX_CONTAINER_ITEMS = 64
"""Items looked at inside one dict, list or tuple of the namespace."""

MAX_JSON_ITEMS = 100
"""A list, array or dict task value with more items than this is not recorded as JSON."""

MAX_VALUE_ELEMENTS = 4_000_000
"""Elements of the largest array task value saved as a tensor file (values/<name>.pt)."""

_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})


def namespace_items(namespace: dict[str, Any], errors: list[str]) -> list[tuple[str, Any]]:
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


def expand_containers(items: list[tuple[str, Any]], errors: list[str]) -> Iterator[tuple[str, Any, bool]]:
    """Every value and, one level deep, the items of dicts, lists and tuples: (name, value, top_level)."""
    for name, value in items:
        yield name, value, True
        try:
            if safe_isinstance(value, dict):
                for count, (key, item) in enumerate(list(value.items())):
                    if count >= MAX_CONTAINER_ITEMS:
                        break
                    yield f"{name}[{key!r}]", item, False
            elif type(value) in (list, tuple):
                for index, item in enumerate(value[:MAX_CONTAINER_ITEMS]):
                    yield f"{name}[{index}]", item, False
        except Exception as error:
            errors.append(f"{name}: could not look inside it: {one_line(error)}")


def find_losses(items: list[tuple[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
    """nn loss instances in the namespace, with their type names."""
    found = []
    for name, value, _ in expand_containers(items, errors):
        if safe_isinstance(value, TORCH.loss_type):
            found.append({"name": name, "type": type(value).__name__})
    return found[:MAX_CONTAINER_ITEMS]


def find_optimizers(items: list[tuple[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
    """Optimizer instances: type, first learning rate, and how many parameters they update."""
    found = []
    for name, value, _ in expand_containers(items, errors):
        if not safe_isinstance(value, TORCH.optimizer_type):
            continue
        entry: dict[str, Any] = {"name": name, "type": type(value).__name__, "lr": None, "parameters": None}
        try:
            groups = value.param_groups
            lr = groups[0].get("lr") if groups else None
            entry["lr"] = json_number(lr)
            entry["parameters"] = int(sum(p.numel() for g in groups for p in g["params"]))
        except Exception as error:
            errors.append(f"{name}: could not read the optimizer's parameter groups: {one_line(error)}")
        found.append(entry)
    return found[:MAX_CONTAINER_ITEMS]


def record_task_values(
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
            with time_limit(step_s):
                values[name] = _task_value(name, namespace[name], artifacts, files)
        except _NotRecorded as reason:
            errors.append(f"{name}: {reason}")
        except Exception as error:
            errors.append(f"{name}: could not be read as a task value: {one_line(error)}")
    return values


class _NotRecorded(Exception):
    """A task value the probe leaves out on purpose (too big); the message says why."""


def _task_value(name: str, value: Any, artifacts: Path, files: set[str]) -> Any:
    """One task value as recorded in probe.json (a tensor file is written for a big array)."""
    if safe_isinstance(value, dict):
        if len(value) > MAX_JSON_ITEMS:
            raise _NotRecorded(f"a dict of {len(value):,} items; task values take at most {MAX_JSON_ITEMS}")
        return {cap_text(str(key), 200): _json_item(item) for key, item in list(value.items())}
    tensor = _numeric(value)
    if tensor is None:
        return json_value(value)
    if TORCH.numel(tensor) <= MAX_JSON_ITEMS and tensor.dim() <= 2:
        return json_value(tensor.tolist())
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
    TORCH.save(data, artifacts / relative)
    return {"tensor": relative, "shape": list(data.shape)}


def _numeric(value: Any) -> torch.Tensor | None:
    """A detached cpu tensor of a numeric tensor, array, or list/tuple of numbers or tensors; None otherwise.

    Raises _NotRecorded for one with more than ``MAX_VALUE_ELEMENTS`` elements (checked before copying).
    """
    if safe_isinstance(value, TORCH.tensor_type):
        _check_size(TORCH.numel(value))
        return value.detach().to("cpu").as_subclass(TORCH.tensor_type)
    if safe_isinstance(value, (np.ndarray, np.generic)):
        _check_size(int(np.size(value)))
        array = np.asarray(value)
        return TORCH.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind in "biufc" else None
    if type(value) not in (list, tuple) or not value:
        return None
    _check_size(len(value))
    if all(safe_isinstance(item, TORCH.tensor_type) for item in value):
        _check_size(sum(TORCH.numel(item) for item in value))
        return TORCH.stack([item.detach().to("cpu", torch.float32) for item in value])
    if not all(type(item) in (int, float, bool, list, tuple) or safe_isinstance(item, np.generic) for item in value):
        return None
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        return None
    _check_size(array.size)
    return TORCH.from_numpy(np.ascontiguousarray(array)) if array.dtype.kind in "biuf" else None


def _check_size(elements: int) -> None:
    if elements > MAX_VALUE_ELEMENTS:
        raise _NotRecorded(f"has {elements:,} elements; task values are cut at {MAX_VALUE_ELEMENTS:,}")


def _json_item(value: Any) -> Any:
    """A dict task value's item: JSON as ``_json_value`` makes it, small tensors and arrays as lists."""
    try:
        tensor = _numeric(value)
    except _NotRecorded:
        tensor = None
    if tensor is not None and TORCH.numel(tensor) <= MAX_JSON_ITEMS and tensor.dim() <= 2:
        return json_value(tensor.tolist())
    if tensor is not None:
        return f"<{type(value).__name__} of shape {list(tensor.shape)}: too big for a dict task value>"
    return json_value(value)
