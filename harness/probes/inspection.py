"""Inspect one model candidate (runs in the sandbox): its module tree and hyperparameters, parameter counts, a
dummy forward pass with the shape of every leaf (forward hooks) and the traced computation, and its state_dict."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.architecture import layer_hyper
from harness.contract import DEFAULT_INPUT_SHAPES
from harness.probes.candidates import Found
from harness.probes.capture import TORCH, cap_text, one_line, safe_isinstance, time_limit
from harness.probes.eval_inputs import EvalContext, export_outputs
from harness.probes.trace import trace_forward

MAX_REPR_CHARS = 20_000
"""The model's repr is cut here."""

MAX_HOOK_CALLS = 2_000
"""Leaf calls recorded on the dummy batch (a recurrent loop could call one layer very often)."""

MAX_STATE_BYTES = 256 * 1024**2
"""A state_dict bigger than this is not exported."""


def inspect_candidate(
    found: Found, model_id: str, artifacts: Path, config: dict[str, Any], context: EvalContext, step_s: float
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
            with time_limit(step_s):
                model = found.obj()
        except Exception as error:
            entry["construct_error"] = one_line(error)
            return entry
        if not safe_isinstance(model, TORCH.module_type):
            entry["construct_error"] = f"TypeError: {found.obj.__name__}() did not return an nn.Module"
            return entry
    assert model is not None

    with contextlib.suppress(Exception):
        entry["repr"] = cap_text(str(TORCH.module_repr(model)), MAX_REPR_CHARS)
    entry["training_mode"] = bool(getattr(model, "training", False))
    entry["modules"] = _leaf_modules(model)
    parameters = dict(TORCH.named_parameters(model))
    entry["total_parameters"] = int(sum(TORCH.numel(p) for p in parameters.values()))
    entry["trainable_parameters"] = int(sum(TORCH.numel(p) for p in parameters.values() if p.requires_grad))
    entry["buffers"] = {name: list(b.shape) for name, b in TORCH.named_buffers(model) if b is not None}

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
                    export_outputs(model, dataset, good["input_shape"], device, dtype, folder, artifacts, context,
                                    entry, step_s)
    return entry


def _construction(found: Found, entry: dict[str, Any], workspace: str | None) -> None:
    """Fill ``trained``, ``trained_how`` and ``built_at`` from the candidate's construction record."""
    built = found.built
    if built is None:
        entry["trained"], entry["trained_how"] = None, "unknown"
        return
    entry["trained"], entry["trained_how"] = built.trained()
    entry["built_at"] = {
        "file": cap_text(built.source(workspace), 500),
        "line": int(built.line),
        "function": cap_text(built.function, 200),
        "label": cap_text(built.label(workspace), 700),
    }
    if built.arguments is not None:  # what a second, clean process needs to build it again (harness.checks.rebuild)
        entry["constructor"] = built.arguments


def _leaf_modules(model: nn.Module) -> list[dict[str, Any]]:
    """Every leaf module in registration order with its hyperparameters (as harness.architecture records them)."""
    layers = []
    for path, module in TORCH.named_modules(model):
        if path and next(iter(TORCH.children(module)), None) is None:
            layers.append({"path": path, "type": type(module).__name__, "hyper": _hyper(module)})
    if not layers and next(iter(TORCH.children(model)), None) is None:
        layers.append({"path": "", "type": type(model).__name__, "hyper": _hyper(model)})
    return layers[:MAX_HOOK_CALLS]


def _hyper(module: nn.Module) -> dict[str, Any]:
    try:
        return layer_hyper(module)
    except Exception as error:
        return {"error": one_line(error)}


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters live and their floating type (cpu/float32 when it has none)."""
    for _, parameter in TORCH.named_parameters(model):
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
            return [list(shape) for shape in DEFAULT_INPUT_SHAPES[dataset]]
    return [list(shape) for shape in DEFAULT_INPUT_SHAPES["mnist"]]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode for the probe's forward passes; the model's own modes are restored afterwards."""
    modes = [(m, m.training) for _, m in TORCH.named_modules(model)]
    TORCH.train(model, False)
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
    for path, module in TORCH.named_modules(model):
        if next(iter(TORCH.children(module)), None) is not None:
            continue

        def hook(mod: nn.Module, args: Any, output: Any, path: str = path) -> None:
            if len(calls) < MAX_HOOK_CALLS:
                calls.append({"path": path, "type": type(mod).__name__, "output_shape": _shape_of(output)})

        handles.append(TORCH.register_forward_hook(module, hook))
    generator = TORCH.generator().manual_seed(0)
    result: dict[str, Any] = {"input_shape": shape, "error": None, "output_shape": None, "computation": None}
    outputs: list[Any] = []

    def forward(module: nn.Module, batch: torch.Tensor) -> None:
        outputs.append(TORCH.module_call(module, batch))

    try:
        batch = TORCH.randn(*shape, generator=generator).to(device=device, dtype=dtype)
        with time_limit(step_s), TORCH.inference_mode():
            # the same pass is traced: functional calls (F.relu, F.max_pool2d, x.view) become layers too
            traced = trace_forward(model, batch, call=forward)
        result["computation"] = traced
        if traced["error"] is not None:
            result["error"] = traced["error"]
        elif outputs:
            result["output_shape"] = _shape_of(outputs[0])
    except Exception as error:
        result["error"] = one_line(error)
    finally:
        for handle in handles:
            handle.remove()
    result["order"] = [c["path"] for c in calls]
    result["shapes"] = calls
    return result


def _shape_of(value: Any) -> list[int] | None:
    """The shape of a tensor, or of the first tensor in a tuple/list output; None otherwise."""
    if safe_isinstance(value, TORCH.tensor_type):
        return list(value.shape)
    if type(value) in (tuple, list) and value:
        return _shape_of(value[0])
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
        for key, value in TORCH.state_dict(model).items():
            if safe_isinstance(value, TORCH.tensor_type) and value.layout == torch.strided:
                where = (TORCH.data_ptr(value), tuple(value.shape), tuple(value.stride()), value.dtype)
                if where[0] and where in first:
                    aliases[str(key)] = first[where]
                else:
                    first[where] = str(key)
                state[str(key)] = value.detach().to("cpu").clone().as_subclass(TORCH.tensor_type)
        size = sum(TORCH.numel(t) * t.element_size() for t in state.values())
        if size > MAX_STATE_BYTES:
            errors.append(f"{name}: its weights take {size:,} bytes, over the {MAX_STATE_BYTES:,} export cap")
            return None
        folder.mkdir(parents=True, exist_ok=True)
        TORCH.save(state, folder / "state_dict.pt")
        return (folder / "state_dict.pt").relative_to(artifacts).as_posix()
    except Exception as error:
        errors.append(f"{name}: exporting its weights failed: {one_line(error)}")
        return None
