"""Describe a network as a list of layers, and compare two such lists readably.

The probe describes students' models inside the sandbox with ``describe_layers``; the host
describes the reference model the same way, so the two lists compare entry by entry. A
layer is ``{"path": "main.0", "type": "Conv2d", "hyper": {...}}``: its place in the module
tree, its class name, and the constructor hyperparameters that fix its shape and behaviour.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the host's checks read layer descriptions without importing torch for it
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

RESHAPES = frozenset({"Flatten", "Unflatten", "Reshape"})
"""Reshaping layers: a side without them (a model taking flat images) is not wrong. ``Reshape`` is a traced
``view``/``reshape`` that is neither a Flatten nor an Unflatten (``harness.probes.trace``)."""

WEIGHTED = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"})
"""Layers with a weight matrix or kernel: where a network's width changes."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def layer_hyper(module: nn.Module) -> dict[str, Any]:
    """The recorded hyperparameters of one layer (JSON-serialisable)."""
    from torch import nn

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
    if kind == "Flatten" and h.get("start_dim", 1) == 1 and h.get("end_dim", -1) == -1:
        return "Flatten()"
    if kind in {"ReLU", "Sigmoid", "Tanh", "Identity"} or not h:
        return f"{kind}()"
    return f"{kind}({', '.join(f'{k}={_pair(v)}' for k, v in h.items())})"


def structural(layers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers that define the computation's shape: everything but activations, outputs and neutral layers."""
    return [
        layer for layer in layers if layer["type"] not in ACTIVATIONS | OUTPUT_LAYERS | NEUTRAL
    ]


def layers_of(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The layers a probe candidate is judged by: its traced computation when the trace is whole, else its modules.

    The computation (``harness.probes.trace``) lists functional calls (``F.relu``, ``F.max_pool2d``) as layers
    and a module called twice twice; the module list is all there is when the forward pass failed or was cut.
    """
    trace = candidate.get("computation")
    if isinstance(trace, Mapping) and not trace.get("error") and not trace.get("truncated"):
        layers = trace.get("layers")
        if isinstance(layers, list) and layers:
            return layers
    return list(candidate.get("modules") or [])


def _token(layer: dict[str, Any]) -> str:
    """``layer_token`` with the sizes the assignment leaves free shown by their names: ``Linear(784->dim2)``."""
    free = layer.get("free") or {}
    if free:
        layer = {**layer, "hyper": {**(layer.get("hyper") or {}), **free}}
    return layer_token(layer)


def _tokens(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Both sides as tokens; a student's layer that matches a reference layer but for its free sizes takes that
    layer's token (``Linear(784->512)`` reads ``Linear(784->dim2)`` where ``dim2`` is free)."""
    theirs = [_token(layer) for layer in reference]
    masks = [(layer, token) for layer, token in zip(reference, theirs) if layer.get("free")]
    ours = []
    for layer in student:
        token = layer_token(layer)
        for wanted, masked in masks:
            if layer["type"] == wanted["type"] and _token({**layer, "free": wanted["free"]}) == masked:
                token = masked
                break
        ours.append(token)
    return ours, theirs


def _without_unmatched_reshapes(
    mine: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both lists without the reshape layers that one side has and the other has not (or not as often).

    A reshape changes no value: an autoencoder that takes flat images needs no Flatten, and a module list
    cannot see ``x.view()`` at all.
    """
    for kind in RESHAPES:
        if sum(l["type"] == kind for l in mine) != sum(l["type"] == kind for l in wanted):
            mine = [l for l in mine if l["type"] != kind]
            wanted = [l for l in wanted if l["type"] != kind]
    return mine, wanted


def _comparable_tokens(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Both sides' structural layers as tokens; a reshape layer present on one side only is left out of both
    (the other side reshaped with ``x.view()``, which no hook sees)."""
    return _tokens(*_without_unmatched_reshapes(structural(student), structural(reference)))


def _context(layers: list[dict[str, Any]], tokens: list[str], index: int) -> str:
    """`` (after Conv2d(...))``: the last reference layer before ``index`` that is not an activation."""
    for i in range(index - 1, -1, -1):
        if layers[i]["type"] not in ACTIVATIONS:
            return f" (after {tokens[i]})"
    return " (at the start)"


def _diff(
    mine: list[dict[str, Any]], wanted: list[dict[str, Any]], latent: int | None = None
) -> list[str]:
    """Readable lines for the differences between two layer lists (see ``compare_layers``)."""
    ours, theirs = _tokens(mine, wanted)
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=theirs, b=ours, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            for a, b, expected, found in zip(theirs[i1:i2], ours[j1:j2], wanted[i1:i2], mine[j1:j2]):
                if {expected["type"], found["type"]} <= OUTPUT_LAYERS and expected["type"] != found["type"]:
                    lines.append(f"your network applies {found['type']} where the assignment has {expected['type']}")
                else:
                    lines.append(f"expected {a}, found {b}")
            continue
        context = _context(wanted, theirs, i1)
        if op in ("delete", "replace"):
            lines += [f"missing: {token}{context}" for token in theirs[i1:i2]]
        if op in ("insert", "replace"):
            for token, found in zip(ours[j1:j2], mine[j1:j2]):
                if latent is not None and i1 - 1 == latent and found["type"] in ACTIVATIONS:
                    lines.append(
                        f"a {found['type']} is applied to the latent code (the output of {theirs[latent]}); "
                        "the assignment's encoder ends without an activation"
                    )
                else:
                    lines.append(f"extra: {token}{context}")
    return lines


def compare_layers(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[str]:
    """A readable diff of the structural layers: empty when they match one to one.

    Lines read ``missing: MaxPool2d(kernel 2, stride 2) (after Conv2d(16->32, ...))``,
    ``extra: ...`` and ``expected X, found Y``.
    """
    return _diff(*_without_unmatched_reshapes(structural(student), structural(reference)))


def latent_index(layers: list[dict[str, Any]]) -> int | None:
    """Where an hourglass network's code is made: the index of its narrowest weighted layer, when that layer is
    neither the last one nor as wide as the output (an autoencoder's encoder end); None for a classifier."""
    widths = [
        (i, math.prod(layer["output_shape"][1:]))
        for i, layer in enumerate(layers)
        if layer["type"] in WEIGHTED and isinstance(layer.get("output_shape"), list) and len(layer["output_shape"]) > 1
    ]
    if len(widths) < 2:
        return None
    index, narrowest = min(widths, key=lambda item: item[1])
    last_index, last_width = widths[-1]
    return index if index != last_index and narrowest < last_width else None


def compare_computation(student: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[str]:
    """A readable diff of two computations (``layers_of``), activations included: empty when they match.

    Beyond ``compare_layers``' lines: ``missing: ReLU() (after Linear(784->128))``, ``your network applies
    Softmax where the assignment has LogSoftmax``, ``a ReLU is applied to the latent code (...)``. An output
    normalisation that only one side ends with is left to the output-kind and loss checks (logits with
    CrossEntropyLoss are as right as LogSoftmax with NLLLoss); neutral layers (Dropout) are left out.
    """
    mine = [layer for layer in student if layer["type"] not in NEUTRAL]
    wanted = [layer for layer in reference if layer["type"] not in NEUTRAL]
    mine, wanted = _without_unmatched_reshapes(mine, wanted)
    mine_ends, wanted_ends = (bool(side) and side[-1]["type"] in OUTPUT_LAYERS for side in (mine, wanted))
    if mine_ends and not wanted_ends:
        mine = mine[:-1]
    elif wanted_ends and not mine_ends:
        wanted = wanted[:-1]
    return _diff(mine, wanted, latent_index(wanted))


def similarity(student: list[dict[str, Any]] | Mapping[str, Any], reference: list[dict[str, Any]]) -> float:
    """How alike two structural layer lists are, from 0 (nothing shared) to 1 (identical).

    ``student`` may be a probe candidate: its traced computation is read when it has one (``layers_of``).
    """
    if isinstance(student, Mapping):
        student = layers_of(student)
    ours, theirs = _comparable_tokens(student, reference)
    if not ours and not theirs:
        return 1.0
    return difflib.SequenceMatcher(a=theirs, b=ours, autojunk=False).ratio()


def count_activations(layers: Iterable[dict[str, Any]]) -> int:
    """How many activation modules the list holds (0 may mean functional calls, or none at all)."""
    return sum(1 for layer in layers if layer["type"] in ACTIVATIONS)


class FreeSizeError(ValueError):
    """A size the assignment leaves free changes the network's layers, not only their sizes."""


def mark_free(layers: list[dict[str, Any]], other: list[dict[str, Any]], name: str) -> None:
    """Mark in ``layers`` the hyperparameters that differ in ``other``, the same network built with another value
    of the size ``name``: ``{"free": {"out_features": "dim2"}}``. FreeSizeError when the two differ in structure."""
    if [l["type"] for l in layers] != [l["type"] for l in other]:
        raise FreeSizeError(f"changing {name} changes the network's layers, not only their sizes")
    for layer, changed in zip(layers, other):
        for key, value in (layer.get("hyper") or {}).items():
            if (changed.get("hyper") or {}).get(key) != value:
                layer.setdefault("free", {})[key] = name


def describe_reference(build: Callable[..., nn.Module], args: Mapping[str, Any], free: Mapping[str, int],
                       shapes: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """The reference network's computation (traced on a dummy batch of the first of ``shapes`` it takes; its
    module list when none runs), its free sizes marked (``mark_free``).

    ``build(**args)`` makes the network; ``free`` maps each size the assignment leaves open to its value in
    ``args`` (or the class's default): the network is built once more with another value to see what it sizes.
    """
    from harness.probes.trace import trace_layers  # the tracer imports this module

    def describe(model: nn.Module) -> list[dict[str, Any]]:
        return trace_layers(model, shapes) or describe_layers(model)

    layers = describe(build(**args))
    for name, value in free.items():
        mark_free(layers, describe(build(**{**args, name: value * 2 + 1})), name)
    return layers
