"""Find the model candidates in the namespace, by what they are (runs in the sandbox): the preferred names, every
``nn.Module`` instance, the models only the construction tracker kept, then the classes the student defined."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from harness.contract import MAX_MODELS
from harness.probes import tracking
from harness.probes.capture import TORCH, one_line, safe_isinstance
from harness.probes.namespace import expand_containers

MAX_CANDIDATES = MAX_MODELS
"""Model candidates recorded at most (as many as the host reads)."""


@dataclass
class Found:
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


def find_candidates(
    items: list[tuple[str, Any]],
    namespace: dict[str, Any],
    config: dict[str, Any],
    errors: list[str],
    tracker: tracking.Tracker | None = None,
) -> list[Found]:
    """Instances (preferred names first), models only the tracker kept (trained first), then student-defined
    classes without an instance; at most the cap."""
    prefer = [str(p) for p in config.get("prefer", ())]

    def rank(name: str, class_name: str) -> float:
        if name in prefer:
            return prefer.index(name)
        if class_name in prefer:
            return prefer.index(class_name) + 0.5
        return len(prefer) + 1

    instances: list[Found] = []
    seen: set[int] = set()
    for order, (name, value, top) in enumerate(expand_containers(items, errors)):
        if not safe_isinstance(value, TORCH.module_type) or safe_isinstance(value, TORCH.loss_type):
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if not _has_parameters(value):
            continue
        instances.append(
            Found(name, "instance", value, rank(name, type(value).__name__), order, module=value, top_level=top)
        )

    # A submodule of another candidate is part of it, unless the student bound it to a name of its own.
    inside: dict[int, str] = {}
    for found in instances:
        try:
            for path, sub in TORCH.named_modules(found.obj):
                if path:
                    inside.setdefault(id(sub), found.name)
        except Exception as error:
            errors.append(f"{found.name}: could not list its modules: {one_line(error)}")
    instances = [f for f in instances if f.top_level or id(f.obj) not in inside]
    instances += _unbound_models(instances, set(inside), tracker, config.get("workspace"), rank, errors)

    instance_types = {type(f.obj) for f in instances}
    for found in instances:
        with contextlib.suppress(Exception):
            instance_types.update(type(sub) for _, sub in TORCH.named_modules(found.obj))

    module_name = str(config.get("module_name") or namespace.get("__name__") or "__main__")
    workspace = config.get("workspace")
    classes = []
    for order, (name, value) in enumerate(items):
        if not safe_isinstance(value, type) or value in instance_types:
            continue
        try:
            if not issubclass(value, TORCH.module_type) or issubclass(value, TORCH.loss_type):
                continue
        except Exception:
            continue
        if not defined_by_student(value, module_name, workspace):
            continue
        classes.append(Found(value.__name__, "class", value, rank(name, value.__name__), order))

    ordered = sorted(instances, key=lambda f: (f.rank, f.order)) + sorted(classes, key=lambda f: (f.rank, f.order))
    # Preferred names lead even when they are only classes.
    ordered.sort(key=lambda f: (f.rank >= len(prefer) + 1, f.origin != "instance"))
    cap = int(config.get("max_candidates", MAX_CANDIDATES))
    if len(ordered) > cap:
        skipped = ", ".join(f.name for f in ordered[cap:])
        errors.append(f"more than {cap} models were found; not inspected: {skipped}"[:2000])
    return ordered[:cap]


def _unbound_models(
    instances: list[Found],
    inside: set[int],
    tracker: tracking.Tracker | None,
    workspace: str | None,
    rank: Callable[[str, str], float],
    errors: list[str],
) -> list[Found]:
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
        if model is None or id(model) in known or safe_isinstance(model, TORCH.loss_type) or not _has_parameters(model):
            continue
        known.add(id(model))
        unbound.append(built)
    parts: set[int] = set()
    for built in unbound:
        try:
            parts.update(id(sub) for path, sub in TORCH.named_modules(built.module) if path)
        except Exception as error:
            errors.append(f"{built.label(workspace)}: could not list its modules: {one_line(error)}")
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
        found.append(Found(name, "instance", module, rank(name, built.class_name), 10_000 + position, module=module,
                            built=built, bound=False))
    return found


def _has_parameters(module: nn.Module) -> bool:
    """True for a module with parameters or children (a lone ReLU or Flatten is no model)."""
    try:
        return any(True for _ in TORCH.named_parameters(module)) or any(True for _ in TORCH.children(module))
    except Exception:
        return True


def defined_by_student(cls: Any, module_name: str, workspace: str | None) -> bool:
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
