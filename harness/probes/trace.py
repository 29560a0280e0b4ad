"""Trace a forward pass as the layers it computes, functional calls included (sandbox and host).

A network written with ``F.relu``, ``F.max_pool2d``, ``torch.flatten`` and ``F.log_softmax`` has
no modules for those steps, so a module list cannot see them. ``trace_forward`` runs one batch
through the model under a ``TorchFunctionMode`` and lists what was computed, in order:

- a call of a leaf module (one without children) counts once, as that module, and the torch calls
  made inside it are not listed;
- a torch call made outside any leaf module that a layer could have made becomes that layer, with
  the hyperparameters the layer would record (``harness.architecture.layer_hyper``):
  ``F.max_pool2d(x, 2)`` is ``MaxPool2d(kernel_size=2, stride=2)``, ``F.relu``/``torch.relu``/
  ``x.relu()`` are ``ReLU``, ``torch.flatten(x, 1)``/``x.view(x.size(0), -1)`` are ``Flatten``,
  ``F.log_softmax(x, dim=1)`` is ``LogSoftmax(dim=1)``, ``F.linear``/``F.conv2d`` are ``Linear``/
  ``Conv2d`` of their weights' shapes; other calls (``x.size(0)``, ``x + y``) are not layers.

The probe imports this module before the student's code runs (through ``harness.probes.probe``),
so the functions recognised and the mode class are the real torch ones even if the student's
code later replaces them. The trace is bounded (``MAX_TRACE_OPS`` torch calls looked at,
``MAX_TRACE_LAYERS`` layers listed) and never raises: a failure is recorded in the result.
The host traces the reference network with the same function, so both sides compare alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from harness.architecture import layer_hyper

MAX_TRACE_OPS = 20_000
"""Torch calls looked at during one traced forward pass; later ones run untraced (the trace is then truncated)."""

MAX_TRACE_LAYERS = 1_000
"""Layers listed at most in one trace."""

_MODE = TorchFunctionMode
_REGISTER_PRE_HOOK = nn.Module.register_forward_pre_hook
_REGISTER_HOOK = nn.Module.register_forward_hook
_NAMED_MODULES = nn.Module.named_modules
_CHILDREN = nn.Module.children
_TENSOR = torch.Tensor
_MODULE = nn.Module
_META = torch.device("meta")


def _error_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:297] + "..."


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` of a torch call, given by position (``index`` counts the input as 0) or by keyword."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _shape(value: Any) -> list[int] | None:
    """The shape of a tensor, or of the first tensor of a tuple/list; None otherwise."""
    if isinstance(value, _TENSOR):
        return [int(n) for n in value.shape]
    if type(value) in (tuple, list) and value:
        return _shape(value[0])
    return None


def _plain(name: str) -> Callable[[tuple, dict, Any], tuple[str, dict[str, Any]]]:
    """A layer without hyperparameters (``ReLU``...)."""
    return lambda args, kwargs, result: (name, {})


def _leaky_relu(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
    return "LeakyReLU", layer_hyper(nn.LeakyReLU(float(_arg(args, kwargs, 1, "negative_slope", 0.01))))


def _softmax(name: str) -> Callable[[tuple, dict, Any], tuple[str, dict[str, Any]]]:
    """``Softmax``/``LogSoftmax`` with its dimension counted from the front (``dim=-1`` of a (B, C) batch is 1)."""

    def layer(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
        ndim = args[0].dim() if args and isinstance(args[0], _TENSOR) else None
        return name, {"dim": normal_dim(_arg(args, kwargs, 1, "dim"), ndim)}

    return layer


def normal_dim(dim: Any, ndim: int | None) -> Any:
    """A softmax dimension counted from the front; ``None`` is the dimension torch's legacy rule picks."""
    if ndim is None:
        return dim
    if dim is None:  # torch's _get_softmax_dim
        return 0 if ndim in (0, 1, 3) else 1
    return dim % ndim if isinstance(dim, int) and ndim > 0 else dim


def _pool(kind: str, names: tuple[str, ...]) -> Callable[[tuple, dict, Any], tuple[str, dict[str, Any]]]:
    """A pooling call as the pooling module built with the same arguments (``stride`` defaults to the kernel)."""

    def layer(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
        given = {name: _arg(args, kwargs, i + 1, name) for i, name in enumerate(names)}
        given = {name: value for name, value in given.items() if value is not None}
        if not given.get("stride"):  # torch.max_pool2d's default stride is [] (the kernel size)
            given.pop("stride", None)
        given.pop("return_indices", None)
        return kind, layer_hyper(getattr(nn, kind)(**given))

    return layer


_MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")


def _dropout(kind: str) -> Callable[[tuple, dict, Any], tuple[str, dict[str, Any]]]:
    return lambda args, kwargs, result: (kind, {"p": float(_arg(args, kwargs, 1, "p", 0.5))})


def _linear(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
    weight, bias = _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
    out_features, in_features = (int(n) for n in weight.shape)
    return "Linear", {"in_features": in_features, "out_features": out_features, "bias": bias is not None}


def _conv(kind: str, transposed: bool) -> Callable[[tuple, dict, Any], tuple[str, dict[str, Any]]]:
    """A convolution call as the module of its weight's shape (built on the meta device: no memory)."""
    names = ("stride", "padding", "output_padding", "groups", "dilation") if transposed else (
        "stride", "padding", "dilation", "groups")

    def layer(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
        weight, bias = _arg(args, kwargs, 1, "weight"), _arg(args, kwargs, 2, "bias")
        given = {name: _arg(args, kwargs, i + 3, name) for i, name in enumerate(names)}
        given = {name: value for name, value in given.items() if value is not None}
        groups = int(given.get("groups", 1))
        a, b, *kernel = (int(n) for n in weight.shape)
        channels = (a, b * groups) if transposed else (b * groups, a)
        module = getattr(nn, kind)(*channels, tuple(kernel), bias=bias is not None, device=_META, **given)
        return kind, layer_hyper(module)

    return layer


def _batch_norm(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]]:
    x = args[0]
    kind = "BatchNorm2d" if x.dim() == 4 else "BatchNorm3d" if x.dim() == 5 else "BatchNorm1d"
    return kind, {
        "num_features": int(x.shape[1]),
        "affine": _arg(args, kwargs, 3, "weight") is not None,
        "track_running_stats": _arg(args, kwargs, 1, "running_mean") is not None,
    }


def _reshape(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]] | None:
    """``view``/``reshape``/``flatten`` as Flatten (batch kept, one feature axis), Unflatten or a Reshape."""
    before, after = _shape(args[0]), _shape(result)
    if before is None or after is None or before == after or not before:
        return None
    if after and after[0] == before[0]:
        if len(after) == 2 and len(before) > 2:
            return "Flatten", {"start_dim": 1, "end_dim": -1}
        if len(before) == 2 and len(after) > 2:
            return "Unflatten", {"dim": 1, "unflattened_size": after[1:]}
    return "Reshape", {"from": before[1:], "to": after}


def _flatten(args: tuple, kwargs: dict, result: Any) -> tuple[str, dict[str, Any]] | None:
    """``torch.flatten(x, start_dim, end_dim)``: Flatten of those dimensions (``torch.flatten(x)`` flattens the batch too)."""
    before = _shape(args[0])
    if before is None:
        return None
    ndim = len(before)
    start, end = _arg(args, kwargs, 1, "start_dim", 0), _arg(args, kwargs, 2, "end_dim", -1)
    if not (isinstance(start, int) and isinstance(end, int)) or ndim == 0:
        return None
    start, end = start % ndim, end % ndim
    if start >= end:
        return None
    return "Flatten", {"start_dim": start, "end_dim": -1 if end == ndim - 1 else end}


def _table() -> dict[Any, Callable[[tuple, dict, Any], Any]]:
    """Torch functions that are layers, captured once (the student's code cannot swap them after import)."""
    T = torch.Tensor
    table: dict[Any, Callable[[tuple, dict, Any], Any]] = {}

    def add(functions: tuple[Any, ...], handler: Callable[[tuple, dict, Any], Any]) -> None:
        for function in functions:
            table[function] = handler

    add((F.relu, F.relu_, torch.relu, torch.relu_, T.relu, T.relu_), _plain("ReLU"))
    add((torch.sigmoid, F.sigmoid, T.sigmoid, T.sigmoid_, torch.sigmoid_), _plain("Sigmoid"))
    add((torch.tanh, F.tanh, T.tanh, T.tanh_, torch.tanh_), _plain("Tanh"))
    add((F.gelu,), _plain("GELU"))
    add((F.silu,), _plain("SiLU"))
    add((F.elu, F.elu_), _plain("ELU"))
    add((F.softplus,), _plain("Softplus"))
    add((F.relu6,), _plain("ReLU6"))
    add((F.mish,), _plain("Mish"))
    add((F.hardtanh, F.hardtanh_), _plain("Hardtanh"))
    add((F.leaky_relu, F.leaky_relu_), _leaky_relu)
    add((F.softmax, torch.softmax, T.softmax), _softmax("Softmax"))
    add((F.log_softmax, torch.log_softmax, T.log_softmax), _softmax("LogSoftmax"))
    add((F.max_pool1d, torch.max_pool1d), _pool("MaxPool1d", _MAX_POOL))
    add((F.max_pool2d, torch.max_pool2d), _pool("MaxPool2d", _MAX_POOL))
    add((F.max_pool3d, torch.max_pool3d), _pool("MaxPool3d", _MAX_POOL))
    add((F.avg_pool1d,), _pool("AvgPool1d", _AVG_POOL))
    add((F.avg_pool2d,), _pool("AvgPool2d", _AVG_POOL))
    add((F.adaptive_avg_pool2d,), _pool("AdaptiveAvgPool2d", ("output_size",)))
    add((F.dropout, torch.dropout, torch.dropout_), _dropout("Dropout"))
    add((F.dropout2d,), _dropout("Dropout2d"))
    add((F.linear,), _linear)
    add((F.conv1d,), _conv("Conv1d", transposed=False))
    add((F.conv2d,), _conv("Conv2d", transposed=False))
    add((F.conv3d,), _conv("Conv3d", transposed=False))
    add((F.conv_transpose1d,), _conv("ConvTranspose1d", transposed=True))
    add((F.conv_transpose2d,), _conv("ConvTranspose2d", transposed=True))
    add((F.batch_norm,), _batch_norm)
    add((T.view, T.reshape, torch.reshape), _reshape)
    add((torch.flatten, T.flatten), _flatten)
    return table


_LAYERS = _table()


def _function_name(function: Any) -> str:
    """``torch.nn.functional.relu``, ``Tensor.view``: how the trace names the call a layer came from."""
    owner = getattr(function, "__objclass__", None)
    if owner is not None:
        return f"Tensor.{getattr(function, '__name__', '?')}"
    module = getattr(function, "__module__", None) or "torch"
    return f"{module}.{getattr(function, '__name__', '?')}"


class _Tracer:
    """The layers of one forward pass, filled by the mode (functional calls) and by hooks (leaf modules)."""

    def __init__(self) -> None:
        self.layers: list[dict[str, Any]] = []
        self.ops = 0
        self.depth = 0
        """Leaf-module calls in progress: torch calls inside one are that module's own, not layers."""
        self.truncated = False
        self.problems: list[str] = []
        self.open: dict[str, Any] | None = None
        """The entry of the leaf module being called, completed with its output shape when it returns."""

    def full(self) -> bool:
        if self.ops >= MAX_TRACE_OPS or len(self.layers) >= MAX_TRACE_LAYERS:
            self.truncated = True
        return self.truncated

    def call(self, function: Any, args: tuple, kwargs: dict, result: Any) -> None:
        """Record one torch call made outside every leaf module, when it is a layer."""
        self.ops += 1
        if self.depth or self.full():
            return
        handler = _LAYERS.get(function) if _hashable(function) else None
        if handler is None:
            return
        try:
            layer = handler(args, kwargs, result)
        except Exception as error:  # an odd call (bad arguments the op itself accepted): noted, not fatal
            if len(self.problems) < 5:
                self.problems.append(f"{_function_name(function)}: {_error_line(error)}")
            return
        if layer is not None:
            kind, hyper = layer
            self.layers.append({"path": None, "type": kind, "hyper": hyper, "function": _function_name(function),
                                "output_shape": _shape(result)})

    def enter(self, path: str, module: nn.Module, args: Any) -> None:
        """A leaf module is called: it is one layer, unless it runs inside another leaf."""
        self.depth += 1
        if self.depth > 1 or self.full():
            return
        try:
            hyper = layer_hyper(module)
        except Exception as error:
            hyper = {"error": _error_line(error)}
        kind = type(module).__name__
        if kind in ("Softmax", "LogSoftmax") and "dim" in hyper:  # compare with F.softmax(x, dim=-1) and its kin
            first = args[0] if isinstance(args, tuple) and args else None
            hyper["dim"] = normal_dim(hyper["dim"], first.dim() if isinstance(first, _TENSOR) else None)
        self.layers.append({"path": path, "type": kind, "hyper": hyper, "function": None, "output_shape": None})
        self.open = self.layers[-1]

    def leave(self, output: Any) -> None:
        """The leaf module returns: its output shape completes its entry."""
        self.depth = max(self.depth - 1, 0)
        if self.depth == 0 and self.open is not None:
            self.open["output_shape"] = _shape(output)
            self.open = None


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except Exception:
        return False
    return True


class _Recording(_MODE):
    """Hands every torch call to the tracer after running it (the call itself is never changed)."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        try:
            self.tracer.call(func, args, kwargs, result)
        except Exception as error:  # never let the grader's bookkeeping break the student's forward pass
            if len(self.tracer.problems) < 5:
                self.tracer.problems.append(_error_line(error))
        return result


def trace_forward(model: nn.Module, batch: torch.Tensor, call: Callable[[nn.Module, Any], Any] | None = None) -> dict[str, Any]:
    """Run ``batch`` through ``model`` and list the layers it computed (see the module doc).

    Returns ``{"layers": [...], "error": str | None, "truncated": bool, "problems": [...]}``; a layer is
    ``{"path", "type", "hyper", "function", "output_shape"}`` where ``path`` is the leaf module's place in the
    module tree (None for a functional call) and ``function`` the torch function a functional layer came from.
    ``call`` runs the forward pass (default ``model(batch)``); the caller sets modes and time limits.
    """
    tracer = _Tracer()
    handles = []
    result: dict[str, Any] = {"layers": tracer.layers, "error": None, "truncated": False, "problems": tracer.problems}
    try:
        for path, module in _NAMED_MODULES(model):
            # the root never counts as a leaf: a network without submodules is all functional calls
            if not path or next(iter(_CHILDREN(module)), None) is not None:
                continue
            handles.append(_REGISTER_PRE_HOOK(module, lambda m, a, path=path: tracer.enter(path, m, a)))
            handles.append(_REGISTER_HOOK(module, lambda m, a, o: tracer.leave(o)))
        with _Recording(tracer):
            (call or (lambda m, x: m(x)))(model, batch)
    except Exception as error:
        result["error"] = _error_line(error)
    finally:
        for handle in handles:
            try:
                handle.remove()
            except Exception:
                pass
    result["truncated"] = tracer.truncated
    return result


def feature_width(shape: list[int] | None) -> int | None:
    """Features per example of an output shape (batch dimension first)."""
    if not shape:
        return None
    return math.prod(shape[1:]) if len(shape) > 1 else shape[0]


def trace_layers(model: nn.Module, shapes: Any) -> list[dict[str, Any]] | None:
    """The computation of a network the grader trusts (the reference), on the first example shape in ``shapes``
    it takes (a seeded random batch of two, evaluation mode); None when it runs on none of them."""
    was_training = model.training
    model.eval()
    try:
        for shape in shapes:
            batch = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                traced = trace_forward(model, batch)
            if traced["error"] is None and not traced["truncated"]:
                return traced["layers"]
        return None
    finally:
        model.train(was_training)
