"""Fixtures for the check tests: candidate records built from real modules, as the probe records them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness.architecture import describe_layers
from harness.checks.context import CheckContext
from harness.checks.verify import EXPORTED_INPUTS
from harness.probes.trace import trace_forward, trace_layers


@dataclass
class Spec:
    """A rubric check entry, as harness.rubric gives it."""

    check: str
    points: float = 1.0
    equals: Any = None
    min: float | None = None
    max: float | None = None
    relative_to_reference: float | None = None
    layer: str | None = None
    tolerance: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


def record(model: nn.Module, artifacts: Path, images: torch.Tensor | None = None, name: str = "model") -> dict[str, Any]:
    """Describe ``model`` like the probe does and export its state_dict and outputs into ``artifacts``."""
    shapes: list[dict[str, Any]] = []
    hooks = [
        module.register_forward_hook(
            lambda m, i, o, path=path: shapes.append({"path": path, "type": type(m).__name__, "output_shape": list(o.shape)})
        )
        for path, module in model.named_modules()
        if path and next(module.children(), None) is None
    ]
    model.eval()
    with torch.no_grad():  # the probe traces the same pass (functional calls become layers)
        computation = trace_forward(model, torch.zeros(2, 1, 28, 28))
    forward_error = computation["error"]  # the student's network may not run
    for hook in hooks:
        hook.remove()
    folder = artifacts / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, folder / "state_dict.pt")
    entry: dict[str, Any] = {
        "id": name,
        "name": name,
        "origin": "instance",
        "class_name": type(model).__name__,
        "modules": describe_layers(model),
        "layer_shapes": shapes,
        "computation": computation,
        "forward_error": forward_error,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "state_dict": f"models/{name}/state_dict.pt",
        "outputs": {},
        "inputs": {},
    }
    if images is not None and forward_error is None:
        with torch.no_grad():
            torch.save(model(images), folder / "outputs-mnist.pt")
        torch.save(images[:EXPORTED_INPUTS].clone(), folder / "inputs-mnist.pt")
        entry["outputs"]["mnist"] = f"models/{name}/outputs-mnist.pt"
        entry["inputs"]["mnist"] = f"models/{name}/inputs-mnist.pt"
    return entry


@pytest.fixture
def make_context(tmp_path: Path):
    """Build a CheckContext around a model (or none)."""

    def build(model: nn.Module | None = None, *, reference: nn.Module | None = None, **kwargs: Any) -> CheckContext:
        images = kwargs.pop("images", None)
        candidate = record(model, tmp_path, images) if model is not None else None
        if images is not None and "hidden_images" not in kwargs:  # the grader's copy: the pixels, before ToTensor
            kwargs["hidden_images"] = pixels(images)
        return CheckContext(
            task_id="cnn",
            model=candidate,
            model_note="graded `model`" if candidate else "no PyTorch model (nn.Module) was found after running your code",
            artifacts_dir=tmp_path,
            dataset="mnist",
            reference_layers=reference_layers(reference) if reference is not None else None,
            reference_model=reference,
            **kwargs,
        )

    return build


def reference_layers(reference: nn.Module) -> list[dict[str, Any]]:
    """The reference described as the pipeline describes it: its traced computation on an MNIST-shaped batch."""
    return trace_layers(reference, [[1, 28, 28], [784]]) or describe_layers(reference)


def pixels(images: torch.Tensor) -> np.ndarray:
    """The uint8 images (N, 28, 28) that ``ToTensor()`` turned into ``images`` (N, 1, 28, 28) in [0, 1]."""
    return (images.reshape(len(images), 28, 28) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture
def digits() -> tuple[torch.Tensor, np.ndarray]:
    """A small labelled batch: 200 random images (pixels / 255, as ToTensor gives them) with labels 0..9 (20 each)."""
    generator = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (200, 1, 28, 28), generator=generator, dtype=torch.uint8)
    return raw.float() / 255, np.repeat(np.arange(10), 20)
