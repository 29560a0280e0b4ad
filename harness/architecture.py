"""Describe a network as a list of layers, and compare two such lists readably.

The probe describes students' models inside the sandbox with ``describe_layers``; the host
describes the reference model the same way, so the two lists compare entry by entry. A
layer is ``{"path": "main.0", "type": "Conv2d", "hyper": {...}}``: its place in the module
tree, its class name, and the constructor hyperparameters that fix its shape and behaviour.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from torch import nn

# Hyperparameters recorded per layer type (attribute names of the torch module).
_HYPER: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features"),
    "Bilinear": ("in1_features", "in2_features", "out_features"),
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    "Conv3d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    "ConvTranspose1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding"),
    "ConvTranspose2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding"),
    "ConvTranspose3d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding"),
    "MaxPool1d": ("kernel_size", "stride", "padding"),
    "MaxPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "AdaptiveAvgPool2d": ("output_size",),
    "BatchNorm1d": ("num_features", "affine", "track_running_stats"),
    "BatchNorm2d": ("num_features", "affine", "track_running_stats"),
    "LayerNorm": ("normalized_shape",),
    "Dropout": ("p",),
    "Dropout2d": ("p",),
    "Flatten": ("start_dim", "end_dim"),
    "Unflatten": ("dim", "unflattened_size"),
    "LogSoftmax": ("dim",),
    "Softmax": ("dim",),
    "LeakyReLU": ("negative_slope",),
    "Embedding": ("num_embeddings", "embedding_dim"),
}

ACTIVATIONS = frozenset(
    {"ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softplus", "PReLU", "ReLU6", "Mish", "Hardtanh"}
)
"""Element-wise activations: students often call them functionally (F.relu), where hooks cannot see them."""

OUTPUT_LAYERS = frozenset({"LogSoftmax", "Softmax"})
"""Output normalisations: judged by the output-kind check, not by the layer comparison."""

NEUTRAL = frozenset({"Identity", "Dropout", "Dropout2d", "Dropout1d", "AlphaDropout"})
"""Layers that do not change what a trained network computes at evaluation time."""

RESHAPES = frozenset({"Flatten", "Unflatten"})
"""Reshaping layers: ``x.view(...)`` in forward does the same invisibly, so a side without them is not wrong."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def layer_hyper(module: nn.Module) -> dict[str, Any]:
    """The recorded hyperparameters of one layer (JSON-serialisable)."""
    names = _HYPER.get(type(module).__name__, ())
    hyper = {name: _jsonable(getattr(module, name)) for name in names if hasattr(module, name)}
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        hyper["bias"] = module.bias is not None
    if isinstance(hyper.get("padding"), str):
        hyper["padding"] = _explicit_padding(hyper["padding"], module)
    return hyper


def _explicit_padding(mode: str, module: nn.Module) -> Any:
    """``padding="same"`` / ``"valid"`` as the per-side padding it amounts to, so ``padding=1`` compares equal.

    "same" with stride 1 pads ``dilation * (kernel - 1)`` in all; when that is even on every side it is the
    explicit symmetric padding. An asymmetric "same" (even kernel) stays "same".
    """
    kernel = getattr(module, "kernel_size", None)
    if mode == "valid" and kernel is not None:
        return [0] * len(kernel)
    dilation = getattr(module, "dilation", None) or (1,) * len(kernel or ())
    if mode == "same" and kernel is not None:
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if all(t % 2 == 0 for t in totals):
            return [t // 2 for t in totals]
    return mode


def describe_layers(model: nn.Module) -> list[dict[str, Any]]:
    """Every leaf module of ``model`` in registration order, as ``{"path", "type", "hyper"}``."""
    layers = []
    for path, module in model.named_modules():
        if path and next(module.children(), None) is None:
            layers.append({"path": path, "type": type(module).__name__, "hyper": layer_hyper(module)})
    if not layers and not list(model.children()):  # the model itself is a single layer
        layers.append({"path": "", "type": type(model).__name__, "hyper": layer_hyper(model)})
    return layers


def _pair(value: Any) -> str:
    """``[3, 3]`` -> ``3``; ``[2, 1]`` -> ``2x1``; anything else as text."""
    if isinstance(value, list):
        if len(set(map(str, value))) == 1:
            return str(value[0])
        return "x".join(map(str, value))
    return str(value)


def layer_token(layer: dict[str, Any]) -> str:
    """A short readable description: ``Conv2d(1->16, kernel 3, stride 1, padding 0)``."""
    kind, h = layer["type"], layer.get("hyper", {})
    if kind == "Linear":
        text = f"Linear({h.get('in_features')}->{h.get('out_features')}"
        return text + (", no bias)" if h.get("bias") is False else ")")
    if "in_channels" in h:
        parts = [f"{h['in_channels']}->{h['out_channels']}", f"kernel {_pair(h.get('kernel_size'))}"]
        parts += [f"stride {_pair(h.get('stride'))}", f"padding {_pair(h.get('padding'))}"]
        if h.get("output_padding") not in (None, [0, 0], [0], 0):
            parts.append(f"output_padding {_pair(h['output_padding'])}")
        if h.get("bias") is False:
            parts.append("no bias")
        return f"{kind}({', '.join(parts)})"
    if kind.startswith(("MaxPool", "AvgPool")):
        return f"{kind}(kernel {_pair(h.get('kernel_size'))}, stride {_pair(h.get('stride'))})"
    if kind.startswith("BatchNorm"):
        return f"{kind}({h.get('num_features')})"
    if kind in {"Flatten", "ReLU", "Sigmoid", "Tanh", "Identity"} or not h:
        return f"{kind}()"
    return f"{kind}({', '.join(f'{k}={_pair(v)}' for k, v in h.items())})"


def structural(layers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers that define the computation's shape: everything but activations, outputs and neutral layers."""
    return [
        layer for layer in layers if layer["type"] not in ACTIVATIONS | OUTPUT_LAYERS | NEUTRAL
    ]


def _comparable_tokens(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Both sides' structural layers as tokens; a reshape layer present on one side only is left out of both
    (the other side reshaped with ``x.view()``, which no hook sees)."""
    mine, wanted = structural(student), structural(reference)
    for kind in RESHAPES:  # reshaped with x.view() on one side, with a layer on the other: compare without them
        if sum(l["type"] == kind for l in mine) != sum(l["type"] == kind for l in wanted):
            mine = [l for l in mine if l["type"] != kind]
            wanted = [l for l in wanted if l["type"] != kind]
    ours = [layer_token(layer) for layer in mine]
    theirs = [layer_token(layer) for layer in wanted]
    return ours, theirs


def compare_layers(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[str]:
    """A readable diff of the structural layers: empty when they match one to one.

    Lines read ``missing: MaxPool2d(kernel 2, stride 2) (after Conv2d(16->32, ...))``,
    ``extra: ...`` and ``expected X, found Y``.
    """
    ours, theirs = _comparable_tokens(student, reference)
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=theirs, b=ours, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            lines += [f"expected {a}, found {b}" for a, b in zip(theirs[i1:i2], ours[j1:j2])]
            continue
        context = f" (after {theirs[i1 - 1]})" if i1 > 0 else " (at the start)"
        if op in ("delete", "replace"):
            lines += [f"missing: {token}{context}" for token in theirs[i1:i2]]
        if op in ("insert", "replace"):
            lines += [f"extra: {token}{context}" for token in ours[j1:j2]]
    return lines


def similarity(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> float:
    """How alike two structural layer lists are, from 0 (nothing shared) to 1 (identical)."""
    ours, theirs = _comparable_tokens(student, reference)
    if not ours and not theirs:
        return 1.0
    return difflib.SequenceMatcher(a=theirs, b=ours, autojunk=False).ratio()


def count_activations(layers: Iterable[dict[str, Any]]) -> int:
    """How many activation modules the list holds (0 may mean functional calls, or none at all)."""
    return sum(1 for layer in layers if layer["type"] in ACTIVATIONS)
