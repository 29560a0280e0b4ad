"""Record every model the student's code builds, where, and whether it was trained (runs in the sandbox).

``install()`` (called by ``bootstrap.install`` before the student's first line) wraps
``nn.Module.__init__`` so that each module constructed outside another module's ``__init__`` is
recorded with its construction site (file, line, enclosing function), and holds it by a strong
reference, so a model that only ever lived as a function's local (``def run_q1(): model = AE();
train(model)``) is still there when the probe runs. Whether it was trained is known three ways,
none of them costing Python work per training step beyond one global optimizer hook:

- an optimizer stepped its parameters (``register_optimizer_step_post_hook``; each optimizer is
  looked at on its first step only, later steps return after a set lookup);
- its weights were loaded (``load_state_dict``);
- its weights changed after they were first seen: a small fingerprint is taken on the first
  forward pass after its construction (a global forward pre-hook installed only while some model
  waits for its fingerprint, removed on the first call) and compared when the probe asks.

How it was built is recorded too, for a second, clean process to build it again: its constructor's
arguments when each is a plain value, or a module recorded here itself (``Classifier(ConvEncoder(12))``:
the encoder's own construction, nested; ``harness.contract.CONSTRUCTION``). So is how each part of a
model was built (``AE(enc=Frozen(clf.enc))``), and ``copy.deepcopy``, which builds a module without its
constructor, notes a copy of a recorded module as built like its original.

Memory is bounded: at most ``MAX_KEPT`` models and ``MAX_KEPT_BYTES`` of parameters are held;
beyond that the untrained ones go first, oldest first, and ``dropped`` says which (the probe
reports it). A released model is still found if the student's code keeps it alive itself.

The student's code runs in this process and may monkeypatch torch: every torch function used
here is captured when this module is imported (before the student's code runs). ``stop()``
(called by the probe) restores ``nn.Module`` and removes the hooks before the probe constructs
or runs anything itself.
"""

from __future__ import annotations

import copy
import copyreg
import functools
import linecache
import os
import re
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from harness.contract import TRAINED_HOW  # noqa: F401  (how ``trained`` is known: the keys this module records)
from harness.contract import CONSTRUCTION, MAX_NESTING

MAX_KEPT = 24
"""Models held alive at most (the probe inspects at most a dozen anyway)."""

MAX_KEPT_BYTES = 512 * 1024**2
"""Parameter bytes of the models held alive at most."""

MAX_RECORDS = 5_000
"""Construction records kept at most (released ones included); later constructions are not recorded."""

MAX_FRAMES = 60
"""Frames walked up from a construction to find whether another module's ``__init__`` is building it."""

FINGERPRINT_SAMPLES = 64
"""Parameter values kept per parameter to tell whether it changed (with the parameter's sum)."""


_MODULE_INIT = nn.Module.__init__
_RECONSTRUCT = copy._reconstruct  # type: ignore[attr-defined]  # what copy.deepcopy does with an object's reduction
_DISPATCH_TABLE = copyreg.dispatch_table
_LOAD_STATE_DICT = nn.Module.load_state_dict
_NAMED_PARAMETERS = nn.Module.named_parameters
_NAMED_MODULES = nn.Module.named_modules
_CHILDREN = nn.Module.children
_REGISTER_STEP_POST_HOOK = register_optimizer_step_post_hook
_REGISTER_FORWARD_PRE_HOOK = nn.modules.module.register_module_forward_pre_hook
_NO_GRAD = torch.no_grad
_NUMEL = torch.Tensor.numel
_MODULE = nn.Module
_LOSS = nn.modules.loss._Loss
_GETFRAME = sys._getframe
_ASSIGNED = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(?::[^=]*)?=(?!=)")
_NOTEBOOK_CELL = re.compile(r"ipykernel_\d+|<ipython-input-|^<cell")


@dataclass
class Built:
    """One module the student's code constructed (not as a part of another module being built)."""

    ref: weakref.ReferenceType[nn.Module]
    """The module, while it is alive."""
    kept: nn.Module | None
    """The strong reference that keeps it alive; None once released (over the caps, or a part of another model)."""
    class_name: str
    """Its class's name."""
    file: str
    """The file of the line that constructed it (a notebook cell's compiled name for a notebook)."""
    line: int
    """That line's number."""
    function: str
    """The function the line is in (``<module>`` at top level)."""
    order: int
    """Construction order, from 0."""
    stepped: bool = False
    """An optimizer stepped at least one of its parameters."""
    loaded: bool = False
    """``load_state_dict`` was called on it."""
    fingerprint: dict[str, tuple[float, torch.Tensor]] | None = None
    """Per parameter name, its sum and a few values on its first forward pass; None before that."""
    parameter_bytes: int = 0
    """Bytes of its parameters when its fingerprint was taken."""
    arguments: dict[str, Any] | None = None
    """Its class's constructor arguments, ``{"args": [...], "kwargs": {...}}``, when every one is a plain value
    (``plain_value``) or a module recorded here with arguments of its own (``construction``), so that a second
    process can build it again; None otherwise."""
    library: str | None = None
    """``torch.nn`` when its class is one of torch.nn's own (``nn.Linear``); None for any other class."""
    nesting: int = 1
    """Constructions in its record: 1, plus the deepest of the modules among its arguments."""

    @property
    def module(self) -> nn.Module | None:
        """The module if it is still alive."""
        return self.kept if self.kept is not None else self.ref()

    def source(self, workspace: str | None = None) -> str:
        """The file it was built in, for people: ``q1.py`` (relative to ``workspace``) or ``a notebook cell``."""
        if _NOTEBOOK_CELL.search(self.file):
            return "a notebook cell"
        name = self.file
        if workspace:
            try:
                name = os.path.relpath(self.file, workspace)
            except ValueError:
                pass
        return os.path.basename(self.file) if name.startswith("..") else name

    def site(self, workspace: str | None = None) -> str:
        """Where it was built, for people: ``q1.py line 14`` or ``a notebook cell, line 3``."""
        source = self.source(workspace)
        return f"{source}, line {self.line}" if source == "a notebook cell" else f"{source} line {self.line}"

    def label(self, workspace: str | None = None) -> str:
        """``AE() built in run_q1, q1.py line 14`` (``at top level`` outside any function)."""
        where = "at top level" if self.function == "<module>" else f"in {self.function}"
        return f"{self.class_name}() built {where}, {self.site(workspace)}"

    def variable(self) -> str | None:
        """The name the construction line assigns to (``model = AE()`` gives ``model``), if it reads as one."""
        try:
            text = linecache.getline(self.file, self.line)
        except Exception:
            return None
        match = _ASSIGNED.match(text or "")
        return match.group(1) if match else None

    def trained(self) -> tuple[bool | None, str]:
        """Whether it was trained and how that is known (a ``TRAINED_HOW`` key)."""
        if self.stepped:
            return True, "optimizer"
        if self.loaded:
            return True, "loaded"
        module = self.module
        if self.fingerprint is None or module is None:
            return False, "never_used"
        return (True, "weights_changed") if _changed(module, self.fingerprint) else (False, "unchanged")


@dataclass
class Tracker:
    """What the hooks record while the student's code runs."""

    built: list[Built] = field(default_factory=list)
    """Every top-level module constructed, in order (dead released ones pruned when the list fills)."""
    dropped: list[str] = field(default_factory=list)
    """Models released to stay under the caps, for the probe's errors."""
    pending: list[Built] = field(default_factory=list)
    """Models waiting for their fingerprint (their first forward pass)."""
    stepped: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    """Optimizers already looked at."""
    handles: list[Any] = field(default_factory=list)
    """The optimizer hook's removable handle."""
    forward_handle: Any = None
    """The forward pre-hook's handle while models wait for a fingerprint."""
    full: bool = False
    """``MAX_RECORDS`` was reached: later constructions are not recorded."""
    count: int = 0
    """Modules recorded so far (the next one's ``order``)."""
    workspace: str | None = None
    """The submission's folder: files in messages are named relative to it."""
    others: dict[int, tuple[weakref.ReferenceType[nn.Module], Construction]] = field(default_factory=dict)
    """How modules that are no candidates were built, by id (the module, and its construction): parts another
    module's ``__init__`` built with recordable arguments (``AE(enc=Frozen(clf.enc))``), and ``copy.deepcopy``
    copies of recorded modules, built as their originals (``Classifier(copy.deepcopy(pretrained.encoder))``)."""


_ACTIVE: Tracker | None = None


def install(workspace: str | None = None) -> Tracker:
    """Start recording (idempotent): wrap ``nn.Module.__init__`` and ``load_state_dict``, add the optimizer hook."""
    global _ACTIVE
    if _ACTIVE is not None:
        return _ACTIVE
    tracker = Tracker(workspace=workspace)
    tracker.handles.append(_REGISTER_STEP_POST_HOOK(_on_step))
    nn.Module.__init__ = _tracked_init  # type: ignore[method-assign]
    nn.Module.load_state_dict = _tracked_load_state_dict  # type: ignore[method-assign]
    if "__deepcopy__" not in vars(nn.Module):  # copy.deepcopy's own way for modules (this torch's) is kept as it is
        nn.Module.__deepcopy__ = _tracked_deepcopy  # type: ignore[attr-defined]
    _ACTIVE = tracker
    return tracker


def stop() -> Tracker | None:
    """Stop recording and restore ``nn.Module``; returns what was recorded (None if nothing was installed)."""
    global _ACTIVE
    tracker, _ACTIVE = _ACTIVE, None
    if tracker is None:
        return None
    nn.Module.__init__ = _MODULE_INIT  # type: ignore[method-assign]
    nn.Module.load_state_dict = _LOAD_STATE_DICT  # type: ignore[method-assign]
    if vars(nn.Module).get("__deepcopy__") is _tracked_deepcopy:
        del nn.Module.__deepcopy__  # nn.Module had none of its own
    for handle in [*tracker.handles, tracker.forward_handle]:
        if handle is not None:
            handle.remove()
    tracker.forward_handle = None
    return tracker


@functools.wraps(_MODULE_INIT)
def _tracked_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
    _MODULE_INIT(self, *args, **kwargs)
    tracker = _ACTIVE
    if tracker is not None and not tracker.full:
        try:
            _record(tracker, self)
        except Exception:  # recording must never break the student's code
            pass


@functools.wraps(_LOAD_STATE_DICT)
def _tracked_load_state_dict(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    result = _LOAD_STATE_DICT(self, *args, **kwargs)
    tracker = _ACTIVE
    if tracker is not None:
        for built in tracker.built:
            if built.ref() is self:
                built.loaded = True
    return result


def _tracked_deepcopy(self: nn.Module, memo: dict[int, Any]) -> nn.Module:
    """``copy.deepcopy(module)`` as without this hook (the object's reduction, rebuilt); a copy of a module recorded
    with its arguments is noted in ``Tracker.others``, so that a model built from the copy can be built again."""
    reductor = _DISPATCH_TABLE.get(type(self))
    reduction = reductor(self) if reductor else self.__reduce_ex__(4)
    if isinstance(reduction, str):
        return self
    copied = _RECONSTRUCT(self, memo, *reduction)
    tracker = _ACTIVE
    if tracker is not None:
        try:
            original = construction(tracker, self)
            if original is not None:
                _note(tracker, copied, original)
        except Exception:  # recording must never break the student's code
            pass
    return copied


def _note(tracker: Tracker, module: nn.Module, built: Construction) -> None:
    """Keep how ``module`` (no candidate) was built in ``Tracker.others``, released ones pruned when it fills."""
    if len(tracker.others) >= MAX_RECORDS:
        tracker.others = {k: v for k, v in tracker.others.items() if v[0]() is not None}
        if len(tracker.others) >= MAX_RECORDS:
            return
    tracker.others[id(module)] = (weakref.ref(module), built)


def _record(tracker: Tracker, module: nn.Module) -> None:
    """Record ``module`` unless another module's ``__init__`` is building it (then it is a part of that one)."""
    if isinstance(module, _LOSS):
        return
    frame = _GETFRAME(2)  # 0 _record, 1 _tracked_init, 2 the class's own __init__ (super().__init__()) or the site
    own = None  # the outermost: the constructor the site called
    while frame is not None and _init_self(frame) is module:  # the class's (and its bases') own __init__
        own, frame = frame, frame.f_back
    if frame is None:
        return
    site, outer = frame, frame
    for _ in range(MAX_FRAMES):
        owner = _init_self(outer)
        if owner is not None and owner is not module and isinstance(owner, _MODULE):
            # built inside another module's __init__: a part, no candidate; how, in case a model is built from it
            arguments, nesting = _arguments(own, tracker)
            if arguments is not None:
                _note(tracker, module, Construction(type(module).__name__, _library(type(module)), arguments, nesting))
            return
        outer = outer.f_back
        if outer is None:
            break
    if len(tracker.built) >= MAX_RECORDS:
        tracker.built = [b for b in tracker.built if b.module is not None]
        if len(tracker.built) >= MAX_RECORDS:
            tracker.full = True
            tracker.dropped.append(f"more than {MAX_RECORDS:,} models were built; later ones were not recorded")
            return
    arguments, nesting = _arguments(own, tracker)
    built = Built(weakref.ref(module), module, type(module).__name__, site.f_code.co_filename, site.f_lineno,
                  site.f_code.co_name, tracker.count, arguments=arguments, library=_library(type(module)),
                  nesting=nesting)
    tracker.count += 1
    tracker.built.append(built)
    tracker.pending.append(built)
    if tracker.forward_handle is None:
        tracker.forward_handle = _REGISTER_FORWARD_PRE_HOOK(_on_forward)
    if sum(1 for b in tracker.built if b.kept is not None) > MAX_KEPT:
        _make_room(tracker, building=built)


def _library(cls: type) -> str | None:
    """``torch.nn`` for one of torch.nn's own classes (``nn.Linear``), else None (the student's definitions')."""
    return "torch.nn" if cls.__module__.startswith("torch.nn.") and getattr(nn, cls.__name__, None) is cls else None


MAX_PLAIN_ITEMS = 100
"""Items a recorded constructor argument (a list or dict) may hold."""

_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


def _arguments(frame: Any, tracker: Tracker) -> tuple[dict[str, Any] | None, int]:
    """The arguments an ``__init__`` frame was called with, as plain values and constructions (a module among them
    that this tracker recorded with arguments of its own, ``construction``); None if one is neither. With the
    record's ``nesting`` (1, or 1 plus its deepest construction's).

    Read when ``nn.Module.__init__`` runs (usually the constructor's first line), so they are the values
    passed. No frame: the class has no ``__init__`` of its own and took no arguments.
    """
    if frame is None:
        return {"args": [], "kwargs": {}}, 1
    code, values = frame.f_code, frame.f_locals
    names = code.co_varnames
    positional = list(names[1 : code.co_argcount])  # without self
    keyword = list(names[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])
    extra = code.co_argcount + code.co_kwonlyargcount
    star = names[extra] if code.co_flags & _CO_VARARGS else None
    starstar = names[extra + (1 if star else 0)] if code.co_flags & _CO_VARKEYWORDS else None
    try:
        args = [values[name] for name in positional] + list(values[star] if star else ())
        kwargs = {name: values[name] for name in keyword}
        kwargs.update(values[starstar] if starstar else {})
    except KeyError:  # a parameter deleted before super().__init__()
        return None, 1
    if len(args) > MAX_PLAIN_ITEMS or len(kwargs) > MAX_PLAIN_ITEMS:
        return None, 1
    nesting = 1
    for index, value in [*enumerate(args), *kwargs.items()]:
        if not isinstance(value, _MODULE):
            if not plain_value(value, 1):
                return None, 1
            continue
        inner = construction(tracker, value)
        if inner is None:
            return None, 1
        (args if isinstance(index, int) else kwargs)[index] = {CONSTRUCTION: inner.record()}
        nesting = max(nesting, inner.nesting + 1)
    return ({"args": args, "kwargs": kwargs}, nesting) if nesting <= MAX_NESTING else (None, 1)


def construction(tracker: Tracker, module: nn.Module) -> Construction | None:
    """How ``module`` was built, when this tracker recorded its construction (this very object) with its arguments;
    None for a module built by something the tracker did not see: before the tracker started, or loaded whole, or
    with arguments it could not record. A part another module's ``__init__`` built, and a ``copy.deepcopy`` of a
    recorded module (built as its original was), are found in ``Tracker.others``."""
    ref, other = tracker.others.get(id(module), (None, None))
    if ref is not None and ref() is module:  # first: a part's layers are looked up for every part built
        return other
    for built in reversed(tracker.built):
        if built.ref() is module:
            if built.arguments is None:
                return None
            return Construction(built.class_name, built.library, built.arguments, built.nesting)
    return None


@dataclass(frozen=True)
class Construction:
    """A module among another's constructor arguments, as the record names it (``CONSTRUCTION``)."""

    class_name: str
    """Its class's name."""
    library: str | None
    """``torch.nn`` for torch.nn's own classes; None: a class of the student's definitions."""
    arguments: dict[str, Any]
    """Its own constructor record, ``{"args", "kwargs"}`` (constructions inside already)."""
    nesting: int
    """Constructions in its record, itself included."""

    def record(self) -> dict[str, Any]:
        """The value under ``CONSTRUCTION``: ``{"class_name", "library", "args", "kwargs"}``."""
        return {"class_name": self.class_name, "library": self.library, **self.arguments}


def plain_value(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` survives JSON unchanged in meaning: None, bools, numbers, short strings, and short
    lists, tuples and string-keyed dicts of them (tuples come back as lists)."""
    if value is None or isinstance(value, (bool, int, float)):
        return not isinstance(value, float) or value == value and abs(value) != float("inf")
    if isinstance(value, str):
        return len(value) <= 1_000
    if depth >= 4:
        return False
    if isinstance(value, (list, tuple)):
        return len(value) <= MAX_PLAIN_ITEMS and all(plain_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        if CONSTRUCTION in value:  # the key that marks a module's construction: no dict the student passed holds it
            return False
        return len(value) <= MAX_PLAIN_ITEMS and all(
            isinstance(k, str) and plain_value(v, depth + 1) for k, v in value.items())
    return False


def _init_self(frame: Any) -> Any:
    """The ``self`` of an ``__init__`` frame; None for any other frame."""
    code = frame.f_code
    if code.co_name != "__init__" or not code.co_argcount:
        return None
    return frame.f_locals.get(code.co_varnames[0])


def _on_forward(module: nn.Module, args: Any) -> None:
    """The first forward pass after a construction: fingerprint the waiting models, then remove this hook."""
    tracker = _ACTIVE
    if tracker is None:
        return None
    if tracker.forward_handle is not None:
        tracker.forward_handle.remove()
        tracker.forward_handle = None
    waiting, tracker.pending = tracker.pending, []
    for built in waiting:
        model = built.module
        if model is None:
            continue
        try:
            built.fingerprint, built.parameter_bytes = _fingerprint(model)
        except Exception:
            continue
    if sum(b.parameter_bytes for b in tracker.built if b.kept is not None) > MAX_KEPT_BYTES:
        _make_room(tracker)
    return None


def _on_step(optimizer: Any, args: Any, kwargs: Any) -> None:
    """After an optimizer's step: on its first step only, mark the models whose parameters it updates."""
    tracker = _ACTIVE
    if tracker is None or optimizer in tracker.stepped:
        return
    try:
        tracker.stepped.add(optimizer)
        updated = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for built in tracker.built:
            model = built.module
            if model is not None and not built.stepped:
                built.stepped = any(id(p) in updated for _, p in _NAMED_PARAMETERS(model))
    except Exception:  # recording must never break the student's training
        pass


def _fingerprint(model: nn.Module) -> tuple[dict[str, tuple[float, torch.Tensor]], int]:
    """Per parameter: its sum and up to ``FINGERPRINT_SAMPLES`` evenly spread values; and the parameters' bytes."""
    prints, size = {}, 0
    with _NO_GRAD():
        for name, parameter in _NAMED_PARAMETERS(model):
            flat = parameter.detach().reshape(-1)
            count = _NUMEL(flat)
            size += count * flat.element_size()
            step = max(1, count // FINGERPRINT_SAMPLES)
            prints[name] = (float(flat.double().sum()), flat[::step][:FINGERPRINT_SAMPLES].clone())
    return prints, size


def _changed(model: nn.Module, prints: dict[str, tuple[float, torch.Tensor]]) -> bool:
    """True when a fingerprinted parameter's sum or sampled values differ now."""
    with _NO_GRAD():
        for name, parameter in _NAMED_PARAMETERS(model):
            if name not in prints:
                continue
            total, sample = prints[name]
            flat = parameter.detach().reshape(-1)
            step = max(1, _NUMEL(flat) // FINGERPRINT_SAMPLES)
            now = flat[::step][:FINGERPRINT_SAMPLES]
            if now.shape != sample.shape or float(flat.double().sum()) != total or not bool((now == sample).all()):
                return True
    return False


def _make_room(tracker: Tracker, building: Built | None = None) -> None:
    """Release held models until the caps hold: parts of other held models and parameterless ones silently,
    then untrained ones oldest first, then trained ones oldest first (each noted in ``dropped``).

    ``building``: the model whose ``__init__`` is running (it has no layers yet): never released here.
    """
    held = [b for b in tracker.built if b.kept is not None and b is not building]
    inside: set[int] = set()
    for built in held:
        for path, sub in _NAMED_MODULES(built.kept):
            if path:
                inside.add(id(sub))
    for built in held:
        model = built.kept
        empty = next(iter(_NAMED_PARAMETERS(model)), None) is None and next(iter(_CHILDREN(model)), None) is None
        if id(model) in inside or empty:
            built.kept = None
    held = [b for b in held if b.kept is not None]
    held.sort(key=lambda b: (b.stepped or b.loaded, b.order))
    count = len(held) + (building is not None)
    size = sum(b.parameter_bytes for b in held)
    for built in held:
        if count <= MAX_KEPT and size <= MAX_KEPT_BYTES:
            break
        built.kept = None
        count, size = count - 1, size - built.parameter_bytes
        trained = "trained" if built.stepped or built.loaded else "untrained"
        tracker.dropped.append(
            f"{built.label(tracker.workspace)} ({trained}) was not kept for grading: more than {MAX_KEPT} models or "
            f"{MAX_KEPT_BYTES // 1024**2} MiB of weights were built"
        )
