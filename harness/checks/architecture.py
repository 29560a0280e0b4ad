"""Checks on what the network is: its layers, parameter count, feature widths, output and loss."""

from __future__ import annotations

import copy
import math
import re
import typing
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationInfo, field_validator

from harness.architecture import (
    compare_computation,
    compare_layers,
    count_activations,
    describe_reference,
    layer_token,
    layers_of,
    structural,
)
from harness.checks import CheckSpecLike, check, options
from harness.rubric import CheckParams, Count
from harness.rubric import _resolve_spec as resolve_spec  # the rubric's own reading of module:Class
from harness.rubric import resolves_specs, spec_signature

if TYPE_CHECKING:  # imported where used: registering checks and validating a rubric must not import torch
    import torch

    from harness.checks.context import CheckContext

_FUNCTIONAL_ACTIVATION = re.compile(r"\b(?:F|functional|torch|nn\.functional)\.(?:relu|leaky_relu|gelu|elu|silu|tanh|sigmoid)\b|\.(?:relu|tanh|sigmoid)\(\)")


def _reference_layers(ctx: CheckContext) -> list[dict]:
    if ctx.reference_layers is None:
        raise RuntimeError(f"task {ctx.task_id} has no reference model (add model.spec to the rubric task)")
    return ctx.reference_layers


class ArchitectureOptions(CheckParams):
    """The ``params`` of ``architecture_matches``: ``{also: "reference.classifiers:FeedForwardLogits"}``."""

    also: tuple[str, ...] = ()
    """Other networks (``module:Class``, one or a list) the task accepts as equally correct, e.g. dl2025-a2's
    feed-forward net without its LogSoftmax, whose logits are trained with CrossEntropyLoss (task 1.2)."""

    @field_validator("also", mode="before")
    @classmethod
    def _importable(cls, value: object, info: ValidationInfo) -> object:
        """Accept one spec or a list, each a class that imports (the rubric fails at load time otherwise)."""
        specs = [value] if isinstance(value, str) else value
        if isinstance(specs, (list, tuple)) and resolves_specs(info):
            for one in specs:
                if isinstance(one, str):
                    spec_signature(one)  # read, not imported: the rubric loads before torch is needed
        return specs


class ArchitectureParams(CheckParams):
    """What ``architecture_matches`` reads: nothing, or ``params.also`` (other accepted networks)."""

    params: ArchitectureOptions = ArchitectureOptions()
    """Options: ``also``."""


def _accepted(ctx: CheckContext, spec: CheckSpecLike) -> list[tuple[str, torch.nn.Module | None, list[dict]]]:
    """Every other network the entry accepts (``params.also``) by spec: built with its layers, or (a self-check
    from a bundle, without the reference code) only the layers the bundle publishes."""
    accepted = []
    for one in options(spec, ArchitectureOptions).also:
        if ctx.reference_accepted is not None:
            if one not in ctx.reference_accepted:
                raise RuntimeError(f"the self-check bundle has no description of {one} (task {ctx.task_id})")
            accepted.append((one, None, ctx.reference_accepted[one]))
        else:
            network = resolve_spec(one)()
            accepted.append((one, network, _layers_of_network(ctx, network)))
    return accepted


@check("architecture_matches", params=ArchitectureParams)
def check_architecture_matches(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that what the model computes matches the assignment's network (or one it also accepts), layer by
    layer, activations included."""
    model = ctx.require_model()
    reference = _reference_layers(ctx)
    layers = layers_of(model)
    traced = _traced(model)
    ctx.details["model"] = ctx.model_note
    ctx.details["student_layers"] = [layer_token(layer) for layer in (layers if traced else structural(layers))]
    ctx.details["reference_layers"] = [layer_token(layer) for layer in (reference if traced else structural(reference))]
    if traced and count_activations(reference) and not count_activations(layers):
        raise AssertionError(
            "your network has no non-linearity (no ReLU, neither a layer nor an F.relu call): stacked linear layers "
            "collapse into a single linear map"
        )
    # the traced computation sees F.relu and F.softmax; the module list only the layers' structure
    compare = compare_computation if traced else compare_layers
    diff = compare(layers, reference)
    network = ctx.reference_model
    for name, accepted, accepted_layers in _accepted(ctx, spec) if diff else ():
        if not compare(layers, accepted_layers):
            ctx.details["matched"] = name  # e.g. the logits variant the task accepts as well
            diff, network = [], accepted
            break
    ctx.details["diff"] = diff
    assert not diff, "your network differs from the assignment's:\n  " + "\n  ".join(diff)
    _believe_record(ctx, model)
    free = any(layer.get("free") for layer in reference)  # the reference has one size of many: its weights may not fit
    if model.get("origin") == "instance" and network is not None and not free:
        assert _weights_fit_reference(ctx, model, network), (
            "the layers recorded while your code ran do not match the weights your model exported: "
            "the record was not made by your network (was the grader's probe replaced or torch patched?)"
        )
    if not traced and count_activations(reference) and not count_activations(model.get("modules", [])):
        assert _FUNCTIONAL_ACTIVATION.search(ctx.source_text), (
            "your network has no non-linearity (no ReLU layer and no F.relu call): stacked linear layers "
            "collapse into a single linear map"
        )


def _layers_of_network(ctx: CheckContext, network: torch.nn.Module) -> list[dict]:
    """Another accepted network's layers, described as the reference's are (traced on the task's dummy batch)."""
    from harness.contract import DEFAULT_INPUT_SHAPES

    shapes = DEFAULT_INPUT_SHAPES.get(ctx.dataset or "", DEFAULT_INPUT_SHAPES["mnist"])
    return describe_reference(lambda: network, {}, {}, shapes)


def _traced(model: dict) -> bool:
    """Whether the candidate's whole forward pass was traced (``harness.architecture.layers_of`` reads it)."""
    trace = model.get("computation")
    return isinstance(trace, dict) and not trace.get("error") and not trace.get("truncated") and bool(trace.get("layers"))


class ParameterCountParams(CheckParams):
    """What ``parameter_count`` reads: ``{check: parameter_count, equals: 12810}``."""

    equals: Count
    """The number of trainable parameters the network must have.

    An integer: ``12810``, not ``'12,810'``."""


@check("parameter_count", params=ParameterCountParams)
def check_parameter_count(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the model has exactly the expected number of trainable parameters."""
    model = ctx.require_model()
    got = model.get("trainable_parameters")
    expected = spec.equals
    ctx.details.update(measured=got, expected=expected)
    if model.get("origin") == "instance":
        exported = _exported_parameters(ctx, model)
        ctx.details["exported"] = exported
        assert exported is not None, (
            "your model's weights were not exported, so its parameter count cannot be confirmed"
        )
        counted = model.get("total_parameters", got)
        assert exported == counted, (
            f"the weights your model exported hold {exported:,} parameters, but {counted:,} were counted "
            f"while your code ran (was torch patched?)"
        )
        assert got is None or got <= exported, (
            f"your model's record claims {got:,} trainable parameters, more than the {exported:,} in the weights it "
            f"exported (was torch patched?)"
        )
        _believe_record(ctx, model)
    assert got == expected, (
        f"the model has {got:,} trainable parameters; the assignment's network has {expected:,}"
    )


def _exported_state(ctx: CheckContext, model: dict) -> dict[str, torch.Tensor] | None:
    """The state_dict the probe exported for ``model`` (plain tensors), or None when there is none."""
    relative = model.get("state_dict")
    if not relative:
        return None
    state = ctx.load_tensor(relative)
    return state if isinstance(state, dict) else None


def _exported_parameters(ctx: CheckContext, model: dict) -> int | None:
    """Parameters in the exported weights (buffers left out), counted on the host; None without weights.

    The probe's own count is made inside the student's process, where torch may be patched.
    """
    import torch

    state = _exported_state(ctx, model)
    if state is None:
        return None
    skipped = set(model.get("buffers") or {}) | set(model.get("state_aliases") or {})  # tied weights count once
    return sum(t.numel() for name, t in state.items() if isinstance(t, torch.Tensor) and name not in skipped)


def _weights_fit_reference(ctx: CheckContext, model: dict, network: torch.nn.Module | None = None) -> bool:
    """Whether the exported weights load into the reference network (or ``network``, another one the task
    accepts), as the recorded layers say they should."""
    from harness.checks.verify import load_weights_by_order

    state = _exported_state(ctx, model)
    target = ctx.reference_model if network is None else network
    return state is not None and load_weights_by_order(copy.deepcopy(target), state) is not None


def _weight_shape(layer: dict) -> tuple[int, ...] | None:
    """The weight shape a Linear or convolution layer's recorded hyperparameters imply; None for other layers."""
    hyper, kind = layer.get("hyper") or {}, layer.get("type", "")
    try:
        if kind == "Linear":
            return (int(hyper["out_features"]), int(hyper["in_features"]))
        if kind.startswith("ConvTranspose"):
            return (int(hyper["in_channels"]), int(hyper["out_channels"]) // int(hyper.get("groups", 1)),
                    *map(int, hyper["kernel_size"]))
        if kind.startswith("Conv"):
            return (int(hyper["out_channels"]), int(hyper["in_channels"]) // int(hyper.get("groups", 1)),
                    *map(int, hyper["kernel_size"]))
    except (KeyError, TypeError, ValueError):
        return None
    return None


def record_contradictions(model: dict, state: dict[str, torch.Tensor]) -> list[str]:
    """Layers whose recorded hyperparameters the exported weights contradict, as ``"main.7: Linear(800 -> 10)
    recorded, weights of shape (10, 3872)"``; empty when the record agrees with the weights it came with.

    The record is made inside the student's process; the weights' shapes are read here, on the host.
    """
    import torch

    found = []
    traced = [layer for layer in (model.get("computation") or {}).get("layers") or [] if layer.get("path")]
    for layer in [*model.get("modules", []), *traced]:  # a traced module call names its module: the same weights
        expected = _weight_shape(layer)
        if expected is None:
            continue
        path = layer.get("path", "")
        key = f"{path}.weight" if path else "weight"
        weight = state.get(key)
        if weight is None:
            if not any(name.startswith(f"{path}.") for name in state):  # reparametrised weights are named otherwise
                found.append(f"{path or 'the model'}: a {layer['type']} recorded, no weights exported for it")
            continue
        if isinstance(weight, torch.Tensor) and tuple(weight.shape) != expected:
            found.append(f"{path or 'the model'}: {layer_token(layer)} recorded, weights of shape {tuple(weight.shape)}")
    return found


def _believe_record(ctx: CheckContext, model: dict) -> None:
    """Fail the check when the host cannot believe the chosen model's record (a check it can make disagrees).

    Three things are held against the record: its layers against the shapes of the weights it exported,
    its exported predictions against the host's test images, and, where the host can rebuild the network,
    against the host's own run of those weights (``harness.checks.verify``). Predictions that are merely
    bad (NaN) are the accuracy checks' business, not a reason to doubt the record.
    """
    from harness.checks.verify import Forgery

    if model.get("origin") != "instance":
        return
    state = _exported_state(ctx, model)
    if state is not None:
        contradictions = record_contradictions(model, state)
        assert not contradictions, (
            "the layers recorded while your code ran do not match the weights your model exported (was the grader's "
            "probe replaced or torch patched?): " + "; ".join(contradictions[:3])
        )
    if not (model.get("outputs") or {}).get(ctx.dataset or "") or ctx.hidden_images is None:
        return
    try:
        verdict = ctx.verified_predictions()
    except Forgery as forgery:
        raise AssertionError(f"the grader cannot tell that this is the network your notebook used: {forgery}") from None
    except AssertionError:
        return
    assert verdict.believed, f"the grader cannot tell that this is the network your notebook used: {verdict.problem}"
    if verdict.held:  # the record may be a hand-written one: its architecture waits for a TA like its predictions
        ctx.details["held"] = verdict.held


def _width(shape: list[int]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else shape[0]


def _first_linear_in(model: dict) -> int | None:
    for layer in model.get("modules", []):
        if layer["type"] == "Linear":
            return layer["hyper"].get("in_features")
    return None


def _pool_count(layers: list[dict]) -> int:
    return sum(1 for layer in layers if "Pool" in layer["type"])


class FeatureWidthParams(CheckParams):
    """What ``feature_width`` reads: ``{check: feature_width, layer: Flatten, equals: 800}``."""

    layer: str = "Flatten"
    """The type of the layer whose output is measured, a class name (default ``Flatten``)."""
    equals: Count
    """The number of features per image the layer must produce (800 for the assignment's CNN)."""


@check("feature_width", params=FeatureWidthParams)
def check_feature_width(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that a layer (e.g. the Flatten before the classifier) produces the expected number of features."""
    model = ctx.require_model()
    _believe_record(ctx, model)
    layer_type, expected = spec.layer or "Flatten", spec.equals
    shapes = model.get("layer_shapes", [])
    produced = next((entry for entry in shapes if entry["type"] == layer_type), None)
    if produced is None and _traced(model):  # a functional flatten (torch.flatten, x.view) is in the trace only
        shapes = [layer for layer in model["computation"]["layers"] if layer.get("output_shape")]
        produced = next((entry for entry in shapes if entry["type"] == layer_type), None)
    hint = ""
    if ctx.reference_layers is not None:
        # what ran before a failure counts too: F.max_pool2d calls are in the trace only
        ran = (model.get("computation") or {}).get("layers") or model.get("modules", [])
        missing_pools = _pool_count(ctx.reference_layers) - _pool_count(ran)
        if missing_pools > 0:
            hint = f": did you drop {'a' if missing_pools == 1 else missing_pools} MaxPool2d layer{'s' if missing_pools > 1 else ''}?"
    if produced is None:
        error = model.get("forward_error")
        if error:
            raise AssertionError(f"your network's forward pass fails on a batch of images ({error}){hint}")
        width_in = _first_linear_in(model)
        assert width_in == expected, (
            f"no {layer_type} layer ran in your network, and its first Linear layer takes {width_in} features; "
            f"the assignment's takes {expected}{hint}"
        )
        return
    width = _width(produced["output_shape"])
    ctx.details.update(measured=width, expected=expected, layer=layer_type)
    position = shapes.index(produced)
    after = shapes[position + 1] if position + 1 < len(shapes) else None
    consumer = next((m for m in model.get("modules", []) if after and after.get("path") and m.get("path") == after.get("path")), None)
    if consumer is not None and consumer["type"] == "Linear" and _exported_state(ctx, model) is not None:
        # the hyperparameters were just held against the weights: the next Linear's input is the true width
        taken = consumer["hyper"].get("in_features")
        assert taken == width, (
            f"the layer shapes recorded while your code ran say your {layer_type} produces {width:,} features, but "
            f"the weights your model exported take {taken:,} in the next Linear layer: the grader counts {taken:,}"
            + ("" if taken == expected else f"; the assignment's network has {expected:,} here")
        )
    source = f" (from {' x '.join(map(str, shapes[position - 1]['output_shape'][1:]))})" if position > 0 else ""
    linear_in = _first_linear_in(model)
    if width == expected:
        return
    if linear_in and linear_in != width:
        raise AssertionError(f"your Linear layer expects {linear_in:,} input features but your {layer_type} produces {width:,}{source}{hint}")
    raise AssertionError(f"your {layer_type} produces {width:,} features{source}; the assignment's network has {expected:,} here{hint}")


def output_kind_of(outputs: torch.Tensor, atol: float = 1e-3) -> str:
    """``log_probabilities``, ``probabilities`` or ``logits``, judged from a batch of raw outputs (N, C)."""
    import torch

    rows = outputs[:512].double()
    if rows.numel() == 0:
        return "unknown"
    if (rows >= -atol).all() and (rows <= 1 + atol).all() and torch.allclose(rows.sum(1), torch.ones(len(rows), dtype=rows.dtype), atol=atol):
        return "probabilities"
    if (rows <= atol).all() and torch.allclose(rows.exp().sum(1), torch.ones(len(rows), dtype=rows.dtype), atol=atol):
        return "log_probabilities"
    return "logits"


def _declared_output(model: dict) -> str:
    layers = layers_of(model)
    last = layers[-1]["type"] if layers else ""
    return {"LogSoftmax": "log_probabilities", "Softmax": "probabilities"}.get(last, "logits")


_KIND_WORDS = {
    "log_probabilities": "log-probabilities (LogSoftmax)",
    "probabilities": "probabilities (Softmax)",
    "logits": "logits (no output activation)",
}


def _output_kind(ctx: CheckContext) -> str:
    model = ctx.require_model()
    try:
        return output_kind_of(ctx.model_outputs())
    except AssertionError:
        return _declared_output(model)


OutputKind = Literal["log_probabilities", "probabilities", "logits"]
"""What a classifier outputs (keys of ``_KIND_WORDS``)."""


class OutputKindParams(CheckParams):
    """What ``output_kind`` reads: ``{check: output_kind, equals: log_probabilities}``, or a list of kinds the
    task accepts alike (``equals: [log_probabilities, logits]``)."""

    equals: str | list[str]
    """What the network must output: ``log_probabilities`` (LogSoftmax), ``probabilities`` (Softmax) or ``logits``;
    a list accepts any of them."""

    @field_validator("equals")
    @classmethod
    def _known_kinds(cls, value: str | list[str]) -> str | list[str]:
        """Every kind named is one the check tells apart (one message for one kind or a list)."""
        kinds = typing.get_args(OutputKind)
        for kind in [value] if isinstance(value, str) else value:
            if kind not in kinds:
                raise ValueError(f"expected {', '.join(map(repr, kinds[:-1]))} or {kinds[-1]!r}, got {kind!r}")
        return value


@check("output_kind", params=OutputKindParams)
def check_output_kind(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the network outputs what the task asks for: log-probabilities or logits (or either, when listed)."""
    kind = _output_kind(ctx)
    accepted = [spec.equals] if isinstance(spec.equals, str) else list(spec.equals)
    ctx.details.update(measured=kind, expected=spec.equals)
    advice = ""
    if kind == "probabilities":
        advice = ": a Softmax output fed to NLLLoss trains badly; use LogSoftmax with NLLLoss, or logits with CrossEntropyLoss"
    asked = " or ".join(_KIND_WORDS[k] for k in accepted)
    assert kind in accepted, f"your network outputs {_KIND_WORDS.get(kind, kind)}; the task asks for {asked}{advice}"


_LOSS_PATTERNS = {
    "NLLLoss": re.compile(r"\bNLLLoss\b|\bnll_loss\b"),
    "CrossEntropyLoss": re.compile(r"\bCrossEntropyLoss\b|\bcross_entropy\b"),
}


def losses_used(ctx: CheckContext) -> set[str]:
    """Classification losses the student's code uses: loss objects the probe found, and calls in the source."""
    found = {entry.type for entry in (ctx.probe.losses if ctx.probe else ())}
    found |= {name for name, pattern in _LOSS_PATTERNS.items() if pattern.search(ctx.source_text)}
    return {name for name in found if name in _LOSS_PATTERNS}


class LossChoiceParams(CheckParams):
    """What ``loss_choice`` reads: ``{check: loss_choice}``, or ``{check: loss_choice, equals: NLLLoss}``."""

    equals: Literal["NLLLoss", "CrossEntropyLoss"] | None = None
    """The loss the task prescribes (optional); without it, any loss that fits the output passes."""


@check("loss_choice", params=LossChoiceParams)
def check_loss_choice(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the loss fits the output: NLLLoss after LogSoftmax, CrossEntropyLoss on logits."""
    ctx.require_work("the loss in your code never trained anything")
    kind = _output_kind(ctx)
    used = losses_used(ctx)
    ctx.details.update(output=kind, losses=sorted(used))
    assert used, "no classification loss (NLLLoss or CrossEntropyLoss) was found in your code"
    if kind == "probabilities":
        raise AssertionError(
            f"your network outputs probabilities (Softmax) and is trained with {', '.join(sorted(used))}; "
            "NLLLoss expects log-probabilities: use LogSoftmax, or drop the Softmax and use CrossEntropyLoss"
        )
    fitting = {"log_probabilities": "NLLLoss", "logits": "CrossEntropyLoss"}[kind]
    if spec.equals:
        assert spec.equals in used, f"the task asks for {spec.equals}; your code uses {', '.join(sorted(used))}"
    assert fitting in used, (
        f"your network outputs {_KIND_WORDS[kind]} but is trained with {', '.join(sorted(used))}; "
        f"with {_KIND_WORDS[kind]} use {fitting}"
    )
